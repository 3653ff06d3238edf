//! When a send from registered memory ([`crate::buffer::MemoryRegion`]) is copied by its
//! receiver straight from the sender's memory, and when it is posted through shared memory.

use super::Inner;
use std::sync::OnceLock;
use std::time::Instant;

impl Inner {
    /// Whether a send of `len` bytes from registered memory is copied by its receiver
    /// (see [`ProtocolConfig::single_copy_from`](super::ProtocolConfig::single_copy_from)).
    pub(super) fn single_copy(&self, len: usize) -> bool {
        match self.single_copy_from {
            Some(from) => len >= from,
            None => measured_from().is_some_and(|from| len >= from),
        }
    }
}

/// The smallest of 64 KiB, 256 KiB and 1 MiB at which one copy by the kernel out of a
/// process's memory beats the two copies of a post through shared memory (best of three of
/// each, this process reading itself), measured once; `None` when none does.
fn measured_from() -> Option<usize> {
    static FROM: OnceLock<Option<usize>> = OnceLock::new();
    *FROM.get_or_init(|| {
        let me = crate::sys::process::pid();
        let src = vec![0x5au8; 1 << 20];
        let mut dst = vec![0u8; 1 << 20];
        let best = |f: &mut dyn FnMut() -> bool| {
            (0..3)
                .map(|_| {
                    let t = Instant::now();
                    let ok = f();
                    (ok, t.elapsed())
                })
                .filter(|r| r.0)
                .map(|r| r.1)
                .min()
        };
        for n in [64usize << 10, 256 << 10, 1 << 20] {
            let kernel =
                best(&mut || crate::sys::cma::read(me, src.as_ptr() as u64, &mut dst[..n]).is_ok());
            let copies = best(&mut || {
                dst[..n].copy_from_slice(&src[..n]);
                std::hint::black_box(&mut dst);
                true
            });
            match (kernel, copies) {
                (Some(k), Some(c)) if k < 2 * c => return Some(n),
                (None, _) => return None,
                _ => {}
            }
        }
        None
    })
}
