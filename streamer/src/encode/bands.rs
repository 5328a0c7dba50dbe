//! Running the bands of a conversion on the calling thread, with rayon's threads joining in
//! while they are free.
//!
//! A conversion split over a thread pool the usual way (`par_chunks_mut` and the like) hands
//! every band to the pool and blocks the caller until the pool has run them: the encoder thread
//! sleeps while pool threads wake up, and when the app or anything else keeps the cores busy,
//! it sits idle until the scheduler gives a pool thread a core. Here the calling thread claims
//! bands itself, one after the other, and pool threads claim bands too once they run. The
//! caller waits only for bands a pool thread has started; a pool thread that comes late finds
//! nothing left and returns without touching the caller's data. So a busy pool costs the time
//! of a serial conversion, never a wait for a core. In the pipeline bench a whole 720p frame
//! now converts in 0.44 to 0.47 ms instead of 0.76 to 0.85 ms, and with a busy loop beside it
//! the p99 of a whole frame's conversion fell from 7.7 to 8.0 ms to 0.9 to 3.3 ms
//! (`docs/benchmarks.md`, section 1).

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use anyhow::Result;

/// One band of work: `band(i)` for each `i` in `0..n`.
pub(super) type Band<'a> = dyn Fn(usize) -> Result<()> + Sync + 'a;

/// Runs `band(i)` for every `i` in `0..n`, each once: on the calling thread, and on up to
/// `helpers` of rayon's threads while they are free. Returns once every band has run, with an
/// error if a band returned one (the first to finish with one). A band's panic is raised again
/// on the calling thread after the others have finished. Without helpers (or with one band)
/// the bands run in order on the calling thread and the first error ends the run.
pub(super) fn run(n: usize, helpers: usize, band: &Band<'_>) -> Result<()> {
    if n <= 1 || helpers == 0 {
        return (0..n).try_for_each(band);
    }
    // SAFETY: only the lifetime is erased. `Shared::work` calls the band only for an index it
    // claimed, and `wait` below (or, should anything unwind first, its guard) returns only
    // after claims have stopped and every claimed band has finished, so no call outlives
    // `band`. A pool thread that starts after that finds no index left and never calls it.
    let band: *const Band<'static> = unsafe { std::mem::transmute(band as *const Band<'_>) };
    let shared = Arc::new(Shared {
        n,
        next: AtomicUsize::new(0),
        band,
        done: Mutex::new(Done::default()),
        all_done: Condvar::new(),
    });
    let guard = WaitOnExit(&shared);
    for _ in 0..helpers.min(n - 1) {
        let shared = Arc::clone(&shared);
        rayon::spawn(move || shared.work());
    }
    shared.work();
    let (panicked, error) = {
        let mut done = shared.wait();
        (done.panic.take(), done.error.take())
    };
    drop(guard);
    if let Some(payload) = panicked {
        panic::resume_unwind(payload);
    }
    error.map_or(Ok(()), Err)
}

/// Waits for the bands claimed so far when dropped, so that leaving [`run`] in any way (an
/// unwinding panic included) leaves no band running on a pool thread.
struct WaitOnExit<'s>(&'s Shared);

impl Drop for WaitOnExit<'_> {
    fn drop(&mut self) {
        drop(self.0.wait());
    }
}

/// What the threads working on one call of [`run`] share.
struct Shared {
    n: usize,
    /// The next band to claim; a claim past `n` finds nothing.
    next: AtomicUsize,
    /// Valid while a claimed band has not finished, see [`run`].
    band: *const Band<'static>,
    done: Mutex<Done>,
    all_done: Condvar,
}

// SAFETY: `band` points to a `Sync` closure, which any thread may call through a shared
// reference; everything else is `Send` and `Sync` already.
unsafe impl Send for Shared {}
// SAFETY: as for `Send`.
unsafe impl Sync for Shared {}

/// The bands that have finished, and how the first failures went.
#[derive(Default)]
struct Done {
    finished: usize,
    /// Whether [`Shared::wait`] waits for `all_done`.
    waiting: bool,
    error: Option<anyhow::Error>,
    panic: Option<Box<dyn Any + Send>>,
}

impl Shared {
    /// Stops further claims and waits until every band claimed so far has finished.
    fn wait(&self) -> MutexGuard<'_, Done> {
        let claimed = self.next.fetch_max(self.n, Ordering::Relaxed).min(self.n);
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        while done.finished < claimed {
            done.waiting = true;
            done = self.all_done.wait(done).unwrap_or_else(|e| e.into_inner());
        }
        done
    }

    /// Claims and runs bands until none is left.
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.n {
                return;
            }
            // SAFETY: band `i` is claimed and not finished, so `run` is still waiting and the
            // closure is alive (see there).
            let band = unsafe { &*self.band };
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| band(i)));
            let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    done.error.get_or_insert(err);
                }
                Err(payload) => {
                    done.panic.get_or_insert(payload);
                }
            }
            done.finished += 1;
            if done.waiting {
                self.all_done.notify_all();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::thread::{self, ThreadId};
    use std::time::Duration;

    /// Runs `n` bands with every helper rayon has, recording which thread ran each.
    fn threads_of_bands(n: usize) -> Vec<ThreadId> {
        let ran: Vec<Mutex<Vec<ThreadId>>> = (0..n).map(|_| Mutex::new(Vec::new())).collect();
        run(n, rayon::current_num_threads(), &|i| {
            ran[i].lock().unwrap().push(thread::current().id());
            thread::sleep(Duration::from_millis(1));
            Ok(())
        })
        .unwrap();
        ran.into_iter()
            .enumerate()
            .map(|(i, r)| {
                let r = r.into_inner().unwrap();
                assert_eq!(r.len(), 1, "band {i} ran {} times", r.len());
                r[0]
            })
            .collect()
    }

    #[test]
    fn every_band_runs_once() {
        for n in [0, 1, 2, 3, 16, 100] {
            assert_eq!(threads_of_bands(n).len(), n);
        }
    }

    #[test]
    fn the_caller_does_every_band_while_the_pool_is_busy() {
        // Hold every rayon thread: a conversion that waited for the pool would never return.
        let threads = rayon::current_num_threads();
        let (release, held) = mpsc::channel::<()>();
        let held = Arc::new(Mutex::new(held));
        let (started, all_started) = mpsc::channel();
        for _ in 0..threads {
            let (held, started) = (Arc::clone(&held), started.clone());
            rayon::spawn(move || {
                started.send(()).unwrap();
                let _ = held.lock().unwrap().recv();
            });
        }
        // One of them takes the lock and waits on the channel; the others wait for the lock.
        for _ in 0..threads {
            all_started.recv_timeout(Duration::from_secs(10)).unwrap();
        }

        let (finished, result) = mpsc::channel();
        thread::spawn(move || {
            let caller = thread::current().id();
            let ran = threads_of_bands(8);
            finished.send(ran.iter().all(|t| *t == caller)).unwrap();
        });
        let outcome = result.recv_timeout(Duration::from_secs(10));
        for _ in 0..threads {
            release.send(()).unwrap();
        }
        assert_eq!(outcome, Ok(true), "the bands did not all run on the caller");
    }

    #[test]
    fn free_pool_threads_take_bands() {
        // The caller's bands wait (up to a deadline) until a pool thread has run one.
        let caller = thread::current().id();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let (helped, cv) = (Mutex::new(false), Condvar::new());
        run(64, rayon::current_num_threads(), &|_| {
            let mut helped = helped.lock().unwrap();
            if thread::current().id() != caller {
                *helped = true;
                cv.notify_all();
            }
            while !*helped {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                helped = cv.wait_timeout(helped, left).unwrap().0;
            }
            Ok(())
        })
        .unwrap();
        assert!(*helped.lock().unwrap(), "no pool thread ran a band");
    }

    #[test]
    fn a_bands_error_is_returned_after_the_others_ran() {
        let ran = AtomicUsize::new(0);
        let err = run(16, 4, &|i| {
            ran.fetch_add(1, Ordering::Relaxed);
            anyhow::ensure!(i != 5, "band {i} failed");
            Ok(())
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "band 5 failed");
        assert_eq!(ran.load(Ordering::Relaxed), 16);
    }

    #[test]
    fn a_bands_panic_reaches_the_caller() {
        let ran = AtomicUsize::new(0);
        let caught = panic::catch_unwind(AssertUnwindSafe(|| {
            run(16, 4, &|i| {
                ran.fetch_add(1, Ordering::Relaxed);
                assert!(i != 9, "band 9 panicked");
                Ok(())
            })
        }))
        .unwrap_err();
        assert_eq!(caught.downcast_ref::<&str>(), Some(&"band 9 panicked"));
        assert_eq!(ran.load(Ordering::Relaxed), 16);
    }
}
