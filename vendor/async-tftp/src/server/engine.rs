//! pxe-sidecar patch (PATCHES.md #4): the thread that runs every read
//! transfer, a current-thread tokio runtime. One thread drives all
//! transfers, so one epoll wakeup serves every socket that became readable
//! (50 clients cost no more context switches than one), and tokio's
//! edge-triggered epoll with its timer wheel adds no syscall per block:
//! async-io re-armed the socket and updated a timerfd on every wait.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::time::{Duration, Instant};

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

pub(crate) struct Engine {
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
}

impl Engine {
    /// Starts the thread; it ends when the engine is dropped (running
    /// transfers are dropped with it).
    pub(crate) fn start() -> io::Result<Engine> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_park(look_before_sleeping)
            .build()?;
        let (jobs, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
        std::thread::Builder::new()
            .name("tftp-transfers".into())
            .spawn(move || {
                rt.block_on(async move {
                    while let Some(job) = rx.recv().await {
                        tokio::spawn(job);
                    }
                })
            })?;
        Ok(Engine { jobs })
    }

    /// Runs `fut` on the engine's thread and waits for its result; Err says
    /// why there is none (the transfer panicked, or the engine stopped).
    pub(crate) async fn run<T, F>(&self, fut: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        use futures_lite::FutureExt;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::pin(async move {
            let result = std::panic::AssertUnwindSafe(fut).catch_unwind().await;
            let _ = tx.send(result.map_err(|p| {
                let why = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                format!("transfer panicked: {why}")
            }));
        });
        let stopped = || "server shutting down".to_string();
        self.jobs.send(job).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

/// How long the engine's thread keeps looking for a datagram before it
/// sleeps in epoll_wait, while transfers run.
const LOOK: Duration = Duration::from_micros(50);

thread_local! {
    /// A level-triggered epoll set of every running transfer's socket (the
    /// engine's thread only; the kernel drops a socket from it when it closes).
    static WATCH: Option<OwnedFd> = {
        // SAFETY: epoll_create1 has no preconditions; the fd it returns is owned from here on.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        // SAFETY: fd is a new, valid descriptor nobody else owns.
        (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
    };
    static RUNNING: Cell<usize> = const { Cell::new(0) };
}

/// A running transfer, counted while it lives.
pub(crate) struct Watched;

impl Drop for Watched {
    fn drop(&mut self) {
        RUNNING.with(|r| r.set(r.get().saturating_sub(1)));
    }
}

/// Puts a transfer's socket (on the engine's thread) in the set the thread
/// looks at before it sleeps.
pub(crate) fn watch(fd: RawFd) -> Watched {
    WATCH.with(|w| {
        if let Some(w) = w {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: 0,
            };
            // SAFETY: both fds are open; ev is a valid epoll_event. A
            // failure only means this socket is not looked at early.
            unsafe { libc::epoll_ctl(w.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        }
    });
    RUNNING.with(|r| r.set(r.get() + 1));
    Watched
}

/// Runs each time the engine's thread has nothing to do: while transfers
/// run, it looks for a readable socket for up to `LOOK` before letting the
/// thread sleep. A lock-step client's next ACK usually comes within that;
/// a datagram that finds the thread awake needs no wakeup, and a wakeup of
/// an idle CPU is a cross-CPU interrupt (two VM exits in a guest) that the
/// sending side pays for (tftp bench: wakeup IPIs per 50-client run).
fn look_before_sleeping() {
    if RUNNING.with(Cell::get) == 0 {
        return;
    }
    WATCH.with(|w| {
        let Some(w) = w else { return };
        let start = Instant::now();
        let mut ev = [libc::epoll_event { events: 0, u64: 0 }];
        while start.elapsed() < LOOK {
            // SAFETY: a one-element buffer and a zero timeout.
            if unsafe { libc::epoll_wait(w.as_raw_fd(), ev.as_mut_ptr(), 1, 0) } != 0 {
                return;
            }
            std::hint::spin_loop();
        }
    });
}
