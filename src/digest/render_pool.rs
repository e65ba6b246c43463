//! Threads that render digests at a lower scheduling priority than the
//! send path.
//!
//! Rendering is throughput work: it keeps every core busy for a whole
//! run. Sending is latency work: each message waits on a handful of
//! replies (the relay's, the database thread's), and each reply wakes a
//! thread. At the same priority the renderers hold the cores and every
//! wake-up queues behind them, and then the renderers wait for the
//! sends. At nice +10 a woken send-path thread runs at once and
//! rendering takes whatever is left (`docs/performance.md`).
//! The daemon's web pages gain the same way during a large run.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

/// The nice value of render threads (0 is normal, 19 the lowest).
const NICE: libc::c_int = 10;

type Job = Box<dyn FnOnce() + Send>;

struct Pool {
    jobs: Mutex<mpsc::Sender<Job>>,
    threads: usize,
}

/// Runs `f` on a render thread and returns its result; an error if it
/// panicked (the thread survives).
pub(super) async fn run<T, F>(f: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        if let Ok(v) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            let _ = tx.send(v);
        }
    });
    pool()
        .jobs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send(job)
        .map_err(|_| anyhow::anyhow!("the render threads stopped"))?;
    rx.await
        .map_err(|_| anyhow::anyhow!("rendering a digest panicked"))
}

/// How many render threads there are: one per core, counted once
/// (counting reads the cgroup files, not for every batch).
pub(super) fn threads() -> usize {
    pool().threads
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("paperboy-render-{i}"))
                .spawn(move || worker(&rx))
                .expect("a render thread starts");
        }
        Pool {
            jobs: Mutex::new(tx),
            threads,
        }
    })
}

fn worker(jobs: &Mutex<mpsc::Receiver<Job>>) {
    lower_priority();
    loop {
        let job = match jobs.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        job();
    }
}

/// Lowers this thread's priority (on Linux, nice applies per thread).
/// Best effort: where it fails, rendering runs at normal priority.
fn lower_priority() {
    // Never raises it: a daemon started niced stays at least as nice.
    let target = nice().max(NICE);
    // SAFETY: setpriority has no memory-safety preconditions; `who = 0`
    // is the calling thread.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, target) };
    if rc != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "cannot lower the render threads' priority"
        );
    }
}

/// This thread's nice value.
fn nice() -> libc::c_int {
    // SAFETY: as above.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn render_jobs_run_at_a_lower_priority_and_survive_a_panic() {
        let mine = nice();
        let theirs = run(nice).await.unwrap();
        assert_eq!(theirs, mine.max(NICE), "render threads are niced");
        let err = run(|| panic!("boom")).await.unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
        // Every thread still takes work after the panic.
        let results =
            futures::future::join_all((0..threads() * 2).map(|i| run(move || i * 2))).await;
        let got: Vec<usize> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(got, (0..threads() * 2).map(|i| i * 2).collect::<Vec<_>>());
    }
}
