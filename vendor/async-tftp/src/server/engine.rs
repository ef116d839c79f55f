//! pxe-sidecar patch (PATCHES.md #4): the thread that runs every read
//! transfer, a current-thread tokio runtime. One thread drives all
//! transfers, so one epoll wakeup serves every socket that became readable
//! (50 clients cost no more context switches than one), and tokio's
//! edge-triggered epoll with its timer wheel adds no syscall per block:
//! async-io re-armed the socket and updated a timerfd on every wait.

use std::cell::Cell;
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
                    EPOLL.with(|e| e.set(find_own_epoll()));
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
    /// Transfers running on the engine's thread.
    static RUNNING: Cell<usize> = const { Cell::new(0) };
    /// The engine runtime's own epoll descriptor, found once at start.
    static EPOLL: Cell<Option<RawFd>> = const { Cell::new(None) };
}

/// A running transfer; the engine's thread looks before it sleeps while
/// any lives.
pub(crate) struct Running;

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

/// Counts a transfer (on the engine's thread) as running.
pub(crate) fn running() -> Running {
    RUNNING.with(|n| n.set(n.get() + 1));
    Running
}

/// The epoll descriptor of the runtime this runs on. tokio does not expose
/// it, so a fresh socket pair is registered with the runtime and the one
/// eventpoll descriptor that lists it (/proc/self/fdinfo, "tfd:") is it.
/// Looking at that single descriptor costs the same for 1 transfer or 100,
/// and hooks no extra callback into any socket: poll(2) with a zero timeout
/// registers no waiter, and tokio's epoll already holds the sockets. (The
/// first version polled every transfer's socket: at 50 clients that poll
/// was ~17 % of the server CPU's samples; a second epoll set instead ran one
/// more callback per datagram on the sending CPU.)
fn find_own_epoll() -> Option<RawFd> {
    let (probe, _peer) = tokio::net::UnixDatagram::pair().ok()?;
    let want = std::os::fd::AsRawFd::as_raw_fd(&probe).to_string();
    std::fs::read_dir("/proc/self/fd").ok()?.flatten().find_map(|e| {
        let name = e.file_name().into_string().ok()?;
        if std::fs::read_link(e.path()).ok()?.as_os_str() != "anon_inode:[eventpoll]" {
            return None;
        }
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{name}")).ok()?;
        info.lines()
            .any(|l| {
                let mut w = l.split_whitespace();
                w.next() == Some("tfd:") && w.next() == Some(want.as_str())
            })
            .then(|| name.parse().ok())?
    })
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
    let Some(epfd) = EPOLL.with(Cell::get) else {
        return;
    };
    let start = Instant::now();
    while start.elapsed() < LOOK {
        // Ready, or the descriptor cannot be polled: stop looking.
        if !matches!(has_events(epfd), Ok(false)) {
            return;
        }
        std::hint::spin_loop();
    }
}

/// Whether events wait in an epoll descriptor's ready list (it is readable
/// then). poll(2) with a zero timeout: no waiter is registered.
fn has_events(epfd: RawFd) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: epfd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; zero timeout.
    match unsafe { libc::poll(&mut pfd, 1, 0) } {
        n if n < 0 => Err(io::Error::last_os_error()),
        n => Ok(n > 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The descriptor found is the runtime's own: it turns readable when a
    /// socket registered with this runtime gets a datagram, and not before.
    #[test]
    fn finds_the_runtimes_epoll_and_it_signals_datagrams() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let epfd = find_own_epoll().expect("no eventpoll descriptor lists our socket");
            let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            // Let the driver take the registration's first readiness event.
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert!(!has_events(epfd).unwrap(), "ready before anything was sent");
            peer.send_to(b"ack", sock.local_addr().unwrap()).unwrap();
            assert!(has_events(epfd).unwrap(), "a datagram did not make it readable");
            let mut buf = [0u8; 8];
            assert_eq!(sock.recv(&mut buf).await.unwrap(), 3);
        });
    }
}
