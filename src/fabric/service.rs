//! The background service: an engine thread that delivers and answers without the caller
//! (spinning, or sleeping on the process's doorbell when idle), and its heartbeats.

use super::{lock, HyperFabricProtocol, IdleStrategy};
use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub(super) struct Service {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    publisher: Option<super::published::Publisher>,
    learner: Option<super::learning::Learner>,
}

impl HyperFabricProtocol {
    /// Starts the engine thread (pinned to `engine_core` when set): from now on messages are
    /// delivered and answered without the caller calling [`progress`](Self::progress).
    pub fn start_background_services(&self) -> Result<()> {
        self.inner.check_process()?;
        let mut service = lock(&self.inner.service);
        if service.is_some() {
            return Ok(());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (inner, stop2) = (self.inner.clone(), stop.clone());
        let core = self.inner.engine_core;
        let thread = std::thread::Builder::new()
            .name("hf-engine".into())
            .spawn(move || {
                if let Some(c) = core {
                    let _ = crate::sys::pin_current_thread(c);
                }
                // Adaptive: spin for SPIN_TIME (and at least a few thousand empty polls) since
                // the last poll that did work, then sleep on the process's
                // doorbell (a futex in the registry that senders ring after writing to one of
                // our rings), with a timeout that doubles up to MAX_NAP: a sleeping engine
                // beats every 50 ms, well inside the 200 ms after which peers mark its nodes
                // down, and wakes 20 times a second. The periodic work (heartbeats, failure
                // detection, deadlines)
                // runs every millisecond at most, checked after every poll that did work (a
                // poll can copy megabytes), every 256 empty ones, and around naps.
                const SPIN_POLLS: u32 = 2_000;
                // A gap shorter than this between messages (a peer copying a megabyte, say)
                // never puts the engine to sleep: waking costs tens of microseconds.
                const SPIN_TIME: Duration = Duration::from_micros(250);
                const FIRST_NAP: Duration = Duration::from_millis(1);
                const MAX_NAP: Duration = Duration::from_millis(50);
                const TICK: Duration = Duration::from_millis(1);
                const POLLS_PER_LOCK: u32 = 16;
                let waiter = lock(&inner.engine).idle_waiter();
                let mut idle = 0u32;
                let mut nap = FIRST_NAP;
                let mut polls = 0u32;
                let mut next_tick = Instant::now();
                let mut last_busy = Instant::now();
                let mut spun_long = false;
                let mut busy = false;
                while !stop2.load(Ordering::Acquire) {
                    polls = polls.wrapping_add(1);
                    if busy || polls % 256 == 0 || idle >= SPIN_POLLS {
                        let now = Instant::now();
                        if busy {
                            last_busy = now;
                        }
                        spun_long = now.duration_since(last_busy) >= SPIN_TIME;
                        if now >= next_tick {
                            let changes = lock(&inner.engine).tick(now);
                            inner.apply_health(changes);
                            next_tick = now + TICK;
                        }
                    }
                    // Several polls per hold of the lock while idle: a spinning engine does
                    // not pay two atomic operations per poll, and threads that send through
                    // the engine get it between holds.
                    let mut polled = 0;
                    busy = {
                        let mut e = lock(&inner.engine);
                        loop {
                            polled += 1;
                            if e.poll() > 0 {
                                break true;
                            }
                            if polled == POLLS_PER_LOCK {
                                break false;
                            }
                            // No pause between polls: a poll already lasts longer than
                            // the pause would, and a pause only delays seeing a message.
                        }
                    };
                    if busy {
                        idle = 0;
                        nap = FIRST_NAP;
                        continue;
                    }
                    idle = idle.saturating_add(polled);
                    if inner.idle == IdleStrategy::Spin || idle < SPIN_POLLS || !spun_long {
                        std::hint::spin_loop();
                        continue;
                    }
                    let bell = lock(&inner.engine).bell();
                    match bell.and_then(|b| inner.registry.bell_words(b)) {
                        Some((word, sleeping)) => {
                            // Announce the sleep, then look once more: a sender that wrote
                            // before seeing the flag is found here, one that wrote after
                            // rings the bell.
                            sleeping.store(1, Ordering::SeqCst);
                            // Senders only order their writes before reading the flag
                            // (sys::fence): this fences them all.
                            crate::sys::fence::heavy();
                            let token = word.load(Ordering::SeqCst);
                            let (polled, holds) = {
                                let mut e = lock(&inner.engine);
                                let polled = e.poll();
                                e.settle();
                                (polled, e.holds_back())
                            };
                            if polled == 0 {
                                // Frames waiting for room onward are sent by a poll: no
                                // bell rings when room frees, so the nap stays short.
                                if holds {
                                    nap = FIRST_NAP;
                                }
                                // With connections to other hosts, the sleep is in
                                // io_uring_enter: data from them wakes it as the bell does.
                                let waited =
                                    waiter.as_ref().is_some_and(|w| w.wait(word, token, nap));
                                if !waited {
                                    crate::sys::futex_wait(word, token, nap);
                                }
                                nap = (nap * 2).min(MAX_NAP);
                            } else {
                                idle = 0;
                                nap = FIRST_NAP;
                            }
                            sleeping.store(0, Ordering::Release);
                        }
                        None => std::thread::sleep(nap),
                    }
                }
            })
            .map_err(|e| Error::io("starting the engine thread", e))?;
        lock(&self.inner.engine).set_beating(true);
        self.inner.running.store(true, Ordering::Release);
        // Without it the process still runs; only the tools see less of it.
        let publisher = super::published::Publisher::start(Arc::downgrade(&self.inner)).ok();
        // Learned routing samples links while the services run; without links configured
        // every destination is direct and there is no route to learn.
        let learner = if self.inner.options.enable_ml_routing && !self.inner.links.is_empty() {
            super::learning::Learner::start(Arc::downgrade(&self.inner), self.inner.learned.clone())
                .ok()
        } else {
            None
        };
        *service = Some(Service {
            stop,
            thread,
            publisher,
            learner,
        });
        Ok(())
    }

    /// What learned routing (`enable_ml_routing`) did so far and how well its link models
    /// predict; `None` without the option. Its thread samples links while background
    /// services run, on a fabric with configured links.
    pub fn learned_routing(&self) -> Option<super::LearnedRouting> {
        self.inner
            .options
            .enable_ml_routing
            .then(|| lock(&self.inner.learned).clone())
    }

    /// Stops the engine thread (pending requests are then progressed by their callers).
    pub fn stop_background_services(&self) -> Result<()> {
        self.inner.check_process()?;
        let taken = lock(&self.inner.service).take();
        if let Some(s) = taken {
            if let Some(p) = s.publisher {
                p.stop(&self.inner);
            }
            if let Some(l) = s.learner {
                l.stop();
            }
            s.stop.store(true, Ordering::Release);
            let _ = s.thread.join();
            let mut e = lock(&self.inner.engine);
            e.set_beating(false);
            // Learning stopped: its connections are no longer timed.
            e.set_connection_probes(false);
            e.flush_spikes(None);
            self.inner.running.store(false, Ordering::Release);
        }
        Ok(())
    }
}
