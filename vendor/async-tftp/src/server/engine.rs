//! pxe-sidecar patch (PATCHES.md #4): the thread that runs every read
//! transfer, a current-thread tokio runtime. One thread drives all
//! transfers, so one epoll wakeup serves every socket that became readable
//! (50 clients cost no more context switches than one), and tokio's
//! edge-triggered epoll with its timer wheel adds no syscall per block:
//! async-io re-armed the socket and updated a timerfd on every wait.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::os::fd::RawFd;
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
    /// The sockets of the running transfers (the engine's thread only).
    /// Looked at with poll(2), which hooks into a socket only while it
    /// sleeps: a second epoll set would run one more callback, on the
    /// sending CPU, for every datagram (perf on the clients' CPU).
    static WATCHED: RefCell<Vec<libc::pollfd>> = const { RefCell::new(Vec::new()) };
}

/// A running transfer's socket, looked at while this lives.
pub(crate) struct Watched(RawFd);

impl Drop for Watched {
    fn drop(&mut self) {
        WATCHED.with(|w| w.borrow_mut().retain(|p| p.fd != self.0));
    }
}

/// Puts a transfer's socket (on the engine's thread) in the set the thread
/// looks at before it sleeps.
pub(crate) fn watch(fd: RawFd) -> Watched {
    WATCHED.with(|w| {
        w.borrow_mut().push(libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
    });
    Watched(fd)
}

/// Runs each time the engine's thread has nothing to do: while transfers
/// run, it looks for a readable socket for up to `LOOK` before letting the
/// thread sleep. A lock-step client's next ACK usually comes within that;
/// a datagram that finds the thread awake needs no wakeup, and a wakeup of
/// an idle CPU is a cross-CPU interrupt (two VM exits in a guest) that the
/// sending side pays for (tftp bench: wakeup IPIs per 50-client run).
fn look_before_sleeping() {
    WATCHED.with(|w| {
        let mut fds = w.borrow_mut();
        if fds.is_empty() {
            return;
        }
        let start = Instant::now();
        while start.elapsed() < LOOK {
            // SAFETY: `fds` is a valid pollfd array of its length; zero timeout.
            if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) } != 0 {
                return;
            }
            std::hint::spin_loop();
        }
    });
}
