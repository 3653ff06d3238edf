//! Synchronisation primitives of the data plane: the atomics facade (so `loom` can replace
//! the atomics when the ring algorithms are model-checked) and cache-line padding.

/// Atomics used by lock-free algorithms: `std`'s, or `loom`'s under `--cfg loom`.
pub mod atomic {
    #[cfg(loom)]
    pub use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
    #[cfg(not(loom))]
    pub use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
}

/// Aligns and pads a value to 128 bytes: two cache lines, because adjacent-line prefetchers
/// pull pairs of 64-byte lines, so producer and consumer state 64 bytes apart would still
/// interfere.
#[derive(Debug, Default)]
#[repr(C, align(128))]
pub struct CachePadded<T>(pub T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Spins, then yields: the waiting policy of a busy-poll loop that may be sharing a core.
#[derive(Debug, Default)]
pub struct Backoff {
    step: u32,
}

impl Backoff {
    /// Spins that double up to this many steps before yielding.
    const SPIN_LIMIT: u32 = 6;

    /// A fresh backoff.
    pub fn new() -> Backoff {
        Backoff { step: 0 }
    }

    /// Waits a little longer each call: 1, 2, 4, ... spin-loop hints, then yields the CPU.
    pub fn snooze(&mut self) {
        if self.step <= Self::SPIN_LIMIT {
            for _ in 0..1u32 << self.step {
                std::hint::spin_loop();
            }
            self.step += 1;
        } else {
            std::thread::yield_now();
        }
    }

    /// Starts over after progress.
    pub fn reset(&mut self) {
        self.step = 0;
    }

    /// Whether the backoff has reached yielding (a caller may park instead).
    pub fn is_yielding(&self) -> bool {
        self.step > Self::SPIN_LIMIT
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn padding_separates_lines() {
        assert_eq!(std::mem::align_of::<super::CachePadded<u64>>(), 128);
        assert_eq!(std::mem::size_of::<super::CachePadded<u64>>(), 128);
        let mut b = super::Backoff::new();
        while !b.is_yielding() {
            b.snooze();
        }
        b.reset();
        assert!(!b.is_yielding());
    }
}

/// A lock taken with one atomic exchange and released with one store, for state that one
/// thread at a time works on and others only try to take ([`SpinLock::try_lock`]) or wait
/// for briefly ([`SpinLock::lock`] spins, then yields). No poisoning: a panic while held
/// releases it.
#[derive(Debug, Default)]
pub struct SpinLock<T> {
    locked: std::sync::atomic::AtomicBool,
    value: std::cell::UnsafeCell<T>,
}

// SAFETY: the value is reached only through a guard, and one guard exists at a time (the
// `locked` exchange), so sharing the lock shares `T` between threads one at a time.
unsafe impl<T: Send> Sync for SpinLock<T> {}

/// Access to the value of a [`SpinLock`] while held.
#[derive(Debug)]
pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> SpinLock<T> {
    /// A free lock over `value`.
    pub fn new(value: T) -> SpinLock<T> {
        SpinLock {
            locked: std::sync::atomic::AtomicBool::new(false),
            value: std::cell::UnsafeCell::new(value),
        }
    }

    /// Takes the lock if it is free now (a plain load first, so a thread that finds it taken
    /// does not pull the line away from its holder).
    #[inline]
    pub fn try_lock(&self) -> Option<SpinGuard<'_, T>> {
        use std::sync::atomic::Ordering;
        if self.locked.load(Ordering::Relaxed) || self.locked.swap(true, Ordering::Acquire) {
            return None;
        }
        Some(SpinGuard { lock: self })
    }

    /// Takes the lock, waiting (spinning, then yielding) while another thread holds it.
    pub fn lock(&self) -> SpinGuard<'_, T> {
        let mut backoff = Backoff::new();
        loop {
            if let Some(g) = self.try_lock() {
                return g;
            }
            backoff.snooze();
        }
    }
}

impl<T> std::ops::Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one (see `SpinLock`), so no `&mut T` exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> std::ops::DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard is the only one and is borrowed mutably.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        self.lock
            .locked
            .store(false, std::sync::atomic::Ordering::Release);
    }
}
