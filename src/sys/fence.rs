//! Asymmetric fences: the doorbell's store-load ordering paid by the rare side.
//!
//! A sender writes a message, then reads whether the receiver's engine sleeps; the engine
//! announces its sleep, then looks at its rings once more. Each side needs a full fence
//! between its store and its load, or both can miss each other (a lost wake-up). A full
//! fence costs the sender as much as the message itself on x86 (it waits for the store
//! buffer to drain into the receiver's cache). With `membarrier(2)`'s global expedited
//! command the sleeper makes every running thread of every registered process execute a
//! full fence, so the senders need only a compiler fence: senders pay nothing, a sleeper pays
//! a few microseconds, once before each sleep.
//!
//! Every process that uses the library registers on first use ([`register`]). Where the
//! kernel refuses (older than 4.16, or a seccomp filter), senders of that process keep the
//! full fence, and a sleeper whose membarrier fails falls back to a full fence of its own; a
//! wake-up that then slips between the two is caught by the sleeper's bounded nap.

use std::sync::atomic::{compiler_fence, fence, AtomicBool, Ordering};
use std::sync::OnceLock;

const MEMBARRIER_CMD_QUERY: libc::c_int = 0;
const MEMBARRIER_CMD_GLOBAL_EXPEDITED: libc::c_int = 1 << 1;
const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_int = 1 << 2;

/// Whether this process is registered: its senders use compiler fences.
static REGISTERED: AtomicBool = AtomicBool::new(false);
static TRIED: OnceLock<bool> = OnceLock::new();

fn membarrier(cmd: libc::c_int) -> libc::c_long {
    // SAFETY: membarrier takes two integers and touches no memory of ours.
    unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_uint) }
}

/// Registers this process for global expedited membarriers (once; later calls return the
/// first answer). Returns whether senders of this process may use light fences.
pub fn register() -> bool {
    *TRIED.get_or_init(|| {
        let supported = membarrier(MEMBARRIER_CMD_QUERY);
        let ok = supported >= 0
            && supported as libc::c_int & MEMBARRIER_CMD_GLOBAL_EXPEDITED != 0
            && membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0;
        REGISTERED.store(ok, Ordering::Release);
        ok
    })
}

/// The sender's side: orders its message's stores before its read of the sleep flag.
#[inline(always)]
pub fn light() {
    if REGISTERED.load(Ordering::Relaxed) {
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// The sleeper's side: after announcing the sleep and before looking once more, a full
/// fence in every running thread of every registered process (and in this one).
pub fn heavy() {
    fence(Ordering::SeqCst);
    if membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0 {
        // Nothing more to do: senders that could not register fence themselves, and the
        // nap bounds a wake-up missed by one that did.
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn registration_answers_the_same_every_time() {
        let first = super::register();
        assert_eq!(super::register(), first);
        super::light();
        super::heavy();
    }
}
