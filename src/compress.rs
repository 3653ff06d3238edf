//! lz4 block compression (lz4_flex), applied only when it pays: buffers that compress their
//! contents and codec frames both use it.
#![forbid(unsafe_code)]

use crate::error::{Error, Result};

/// Bodies shorter than this are never compressed (the saving cannot beat the work).
pub const COMPRESS_MIN: usize = 64;

/// The lz4 block of `data` prefixed with its length (4 bytes LE), if that is smaller than
/// `data`; `None` otherwise (send the original).
pub fn compress_if_smaller(data: &[u8]) -> Option<Vec<u8>> {
    if data.len() < COMPRESS_MIN || data.len() > u32::MAX as usize {
        return None;
    }
    let c = lz4_flex::block::compress_prepend_size(data);
    (c.len() < data.len()).then_some(c)
}

/// Decompresses what [`compress_if_smaller`] made, refusing to produce more than `limit`
/// bytes (so a forged length cannot make the receiver allocate without bound).
pub fn decompress(data: &[u8], limit: usize) -> Result<Vec<u8>> {
    if data.len() < 4 {
        return Err(Error::MalformedFrame(
            "compressed body shorter than its length prefix".into(),
        ));
    }
    let n = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
    if n > limit {
        return Err(Error::MalformedFrame(format!(
            "compressed body claims {n} bytes, limit is {limit}"
        )));
    }
    let mut out = vec![0u8; n];
    let got = lz4_flex::block::decompress_into(&data[4..], &mut out)
        .map_err(|e| Error::MalformedFrame(format!("lz4: {e}")))?;
    if got != n {
        return Err(Error::MalformedFrame(format!(
            "lz4: {got} bytes, header said {n}"
        )));
    }
    Ok(out)
}

/// Decompresses the length-prefixed lz4 block at the start of `data`, which may go on past
/// the block (a buffer holding more after it): returns the original bytes and how many bytes
/// of `data` the prefix and block take. The block's end is found by walking its sequences
/// until they produce the prefix's length, so no stored compressed length is needed.
/// `MalformedFrameError` when the prefix claims more than `limit` bytes or the sequences do
/// not add up to it; `BufferUnderflowError` when `data` ends before the block does.
pub fn decompress_prefixed(data: &[u8], limit: usize) -> Result<(Vec<u8>, usize)> {
    let len = block_len(data.get(4..).unwrap_or(&[]), original_len(data, limit)?)?;
    Ok((decompress(&data[..4 + len], limit)?, 4 + len))
}

/// The original length a length-prefixed block claims (at most `limit`).
fn original_len(data: &[u8], limit: usize) -> Result<usize> {
    let Some(&[a, b, c, d]) = data.first_chunk::<4>() else {
        return Err(Error::BufferUnderflow(format!(
            "{} bytes cannot hold a compressed block's 4-byte length prefix",
            data.len()
        )));
    };
    let n = u32::from_le_bytes([a, b, c, d]) as usize;
    if n > limit {
        return Err(Error::MalformedFrame(format!(
            "compressed block claims {n} bytes, limit is {limit}"
        )));
    }
    Ok(n)
}

/// The length of the lz4 block at the start of `block` that decodes to `original` bytes.
/// Each sequence is a token (literal length in the high nibble, match length - 4 in the low
/// one), the literal length's extension, the literals, then a 2-byte match offset and the
/// match length's extension; the block ends with the sequence whose literals reach
/// `original` (the last sequence of a block has no match). Every step is bounded by
/// `block`, which may be anything (a buffer's bytes that another process could have written).
fn block_len(block: &[u8], original: usize) -> Result<usize> {
    let mut c = Cursor { block, at: 0 };
    let mut out = 0usize;
    loop {
        let token = c.byte()?;
        let mut literals = token >> 4;
        if literals == 15 {
            literals += c.extension()?;
        }
        c.skip(literals)?;
        out = out.saturating_add(literals);
        if out >= original {
            if out > original {
                return Err(Error::MalformedFrame(format!(
                    "lz4: the block's literals exceed its {original} bytes"
                )));
            }
            return Ok(c.at);
        }
        // The match: its 2-byte offset (not needed to find the end), then its length.
        c.skip(2)?;
        let mut matched = 4 + (token & 15);
        if token & 15 == 15 {
            matched += c.extension()?;
        }
        out = out.saturating_add(matched);
        if out > original {
            return Err(Error::MalformedFrame(format!(
                "lz4: the block's matches exceed its {original} bytes"
            )));
        }
    }
}

/// A read position in a block, every step checked against its end.
struct Cursor<'a> {
    block: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn short(&self) -> Error {
        Error::BufferUnderflow(format!(
            "the compressed block runs past the {} bytes stored",
            self.block.len()
        ))
    }

    fn byte(&mut self) -> Result<usize> {
        let b = *self.block.get(self.at).ok_or_else(|| self.short())?;
        self.at += 1;
        Ok(b as usize)
    }

    fn skip(&mut self, n: usize) -> Result<()> {
        self.at = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.block.len())
            .ok_or_else(|| self.short())?;
        Ok(())
    }

    /// A length extension: bytes added up while they are 255.
    fn extension(&mut self) -> Result<usize> {
        let mut n = 0usize;
        loop {
            let b = self.byte()?;
            n = n.saturating_add(b);
            if b != 255 {
                return Ok(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_is_kept_only_when_smaller() {
        let text = b"gradient ".repeat(100);
        let c = compress_if_smaller(&text).unwrap();
        assert!(c.len() < text.len());
        assert_eq!(decompress(&c, text.len()).unwrap(), text);
        assert!(decompress(&c, text.len() - 1).is_err(), "limit enforced");
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..1000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        assert!(compress_if_smaller(&noise).is_none());
        assert!(compress_if_smaller(b"short").is_none());
        assert!(decompress(&[1, 0], 10).is_err());
        let mut bad = c.clone();
        bad.truncate(c.len() / 2);
        assert!(decompress(&bad, text.len()).is_err());
    }

    #[test]
    fn a_prefixed_block_is_found_and_decoded_with_whatever_follows_it() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut noise = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 24) as u8
                })
                .collect()
        };
        let inputs: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"a".to_vec(),
            b"aaaaaaaaaaaaaaaa".to_vec(),
            b"all-reduce ".repeat(200),
            vec![0u8; 100_000],
            noise(5000),
            [b"x".repeat(300), noise(700), b"y".repeat(5000)].concat(),
        ];
        for original in inputs {
            let block = lz4_flex::block::compress_prepend_size(&original);
            let mut stored = block.clone();
            stored.extend_from_slice(&noise(37));
            let (got, used) = decompress_prefixed(&stored, 1 << 30).unwrap();
            assert_eq!(got, original);
            assert_eq!(
                used,
                block.len(),
                "the block ends where the compressor ended it"
            );
            // A block cut short is an underflow, never a read past the data.
            let cut = decompress_prefixed(&block[..block.len() - 1], 1 << 30).unwrap_err();
            assert_eq!(cut.kind(), crate::ErrorKind::BufferUnderflow);
        }
        assert_eq!(
            decompress_prefixed(&[5, 0], 10).unwrap_err().kind(),
            crate::ErrorKind::BufferUnderflow
        );
        // A prefix that disagrees with its block.
        let mut lying = lz4_flex::block::compress_prepend_size(b"abc");
        lying[0] = 2;
        assert_eq!(
            decompress_prefixed(&lying, 10).unwrap_err().kind(),
            crate::ErrorKind::MalformedFrame
        );
        assert_eq!(
            decompress_prefixed(&[0xff, 0xff, 0xff, 0x7f, 0xf0], 1 << 20)
                .unwrap_err()
                .kind(),
            crate::ErrorKind::MalformedFrame,
            "a claim beyond the limit"
        );
    }
}
