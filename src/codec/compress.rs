//! lz4 block compression (lz4_flex), applied only when it pays.

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
}
