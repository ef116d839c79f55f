//! pxe-sidecar patch (PATCHES.md #4, #5): the thread that runs every read
//! transfer. Each transfer is a state machine (read_req.rs) advanced by one
//! poll(2) loop, as dnsmasq runs its TFTP transfers: one wakeup serves every
//! socket that became readable, and no syscall is spent per block besides
//! the receive and the send.
//!
//! Why poll(2) and not epoll (tokio, the previous version of this engine):
//! a socket in an epoll set runs the epoll callback (a lock taken with
//! interrupts off, a ready-list insert) on every datagram it receives, on
//! the CPU that delivers the datagram. poll(2) hooks a waiter into the
//! sockets only while the thread sleeps in it; a busy thread, or one that
//! looks with a zero timeout, costs the delivering CPU nothing. In the tftp
//! bench the delivering CPU is the clients' one, the bottleneck of the
//! 50-client run, where the callback was ~2 % of its time.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use crate::server::{TransferOutcome, TransferReport};

/// What the engine saw on a transfer's socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ready {
    /// Readable, or an error (ICMP port unreachable) waits on it.
    pub(crate) read: bool,
    /// Writable again after a send found the buffer full.
    pub(crate) write: bool,
}

/// A transfer the engine drives. It never blocks: it receives, reads and
/// sends only what can be done now and says what it waits for.
pub(crate) trait Transfer: Send {
    /// Its socket, connected to the client.
    fn fd(&self) -> RawFd;
    /// poll(2) events it waits for on the socket (none while it waits for
    /// its reader).
    fn interest(&self) -> i16;
    /// When it must be advanced even if nothing arrives (retransmission).
    fn deadline(&self) -> Option<Instant>;
    /// Does what can be done now: at start, when the socket is ready, when
    /// the reader woke it (through `waker`) or when the deadline passed.
    /// Returns the report once the transfer has ended.
    fn advance(
        &mut self,
        now: Instant,
        ready: Ready,
        waker: &Waker,
    ) -> Option<TransferReport>;
    /// The report of a transfer stopped from outside (it panicked).
    fn report(&self, outcome: TransferOutcome) -> TransferReport;
}

struct Job {
    transfer: Box<dyn Transfer>,
    reply: tokio::sync::oneshot::Sender<TransferReport>,
}

/// Wakes the engine's thread: an eventfd it always polls.
struct Bell(OwnedFd);

impl Bell {
    fn new() -> io::Result<Bell> {
        // SAFETY: no pointers; the result is checked.
        let fd =
            unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        Ok(Bell(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn ring(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer. A full counter
        // (EAGAIN) already means "rung".
        unsafe {
            libc::write(self.0.as_raw_fd(), one.as_ptr().cast(), one.len())
        };
    }

    fn clear(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live buffer; nonblocking.
        unsafe {
            libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
        };
    }
}

/// A reader's waker: marks its transfer and rings the bell.
struct ReaderWake {
    woken: AtomicBool,
    bell: Arc<Bell>,
}

impl Wake for ReaderWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.bell.ring();
    }
}

pub(crate) struct Engine {
    jobs: Option<mpsc::Sender<Job>>,
    bell: Arc<Bell>,
}

impl Engine {
    /// Starts the thread; it ends when the engine is dropped (running
    /// transfers are dropped with it).
    pub(crate) fn start() -> io::Result<Engine> {
        let bell = Arc::new(Bell::new()?);
        let (jobs, rx) = mpsc::channel();
        let thread_bell = Arc::clone(&bell);
        std::thread::Builder::new()
            .name("tftp-transfers".into())
            .spawn(move || run(&rx, &thread_bell))?;
        Ok(Engine {
            jobs: Some(jobs),
            bell,
        })
    }

    /// Runs `transfer` on the engine's thread and waits for its report; Err
    /// says why there is none (the engine stopped).
    pub(crate) async fn run(
        &self,
        transfer: Box<dyn Transfer>,
    ) -> Result<TransferReport, String> {
        let stopped = || "server shutting down".to_string();
        let (reply, report) = tokio::sync::oneshot::channel();
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send(Job {
            transfer,
            reply,
        })
        .map_err(|_| stopped())?;
        self.bell.ring();
        report.await.map_err(|_| stopped())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // The thread ends once it finds the channel closed.
        self.jobs.take();
        self.bell.ring();
    }
}

/// How long the thread keeps looking (polls with a zero timeout, which
/// hooks no waiter into any socket) after its last event before it sleeps,
/// while transfers run. A lock-step client's next ACK usually comes within
/// that; a datagram that finds the thread awake needs no wakeup, and waking
/// a thread on an idle CPU is a cross-CPU interrupt (two VM exits in a
/// guest) paid by the CPU that delivers the datagram. Cost: up to 50 us of
/// spinning per idle moment while a transfer runs; none when none runs.
const LOOK: Duration = Duration::from_micros(50);

struct Slot {
    transfer: Box<dyn Transfer>,
    reply: tokio::sync::oneshot::Sender<TransferReport>,
    wake: Arc<ReaderWake>,
    waker: Waker,
}

impl Slot {
    /// Advances the transfer; a panic ends it with a report, not the thread.
    fn advance(
        &mut self,
        now: Instant,
        ready: Ready,
    ) -> Option<TransferReport> {
        let (transfer, waker) = (&mut self.transfer, &self.waker);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            transfer.advance(now, ready, waker)
        }))
        .unwrap_or_else(|p| {
            let why = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Some(self.transfer.report(TransferOutcome::Failed(format!(
                "transfer panicked: {why}"
            ))))
        })
    }
}

/// The engine's loop: take new transfers, poll every socket, advance what
/// is ready or due, hand back finished reports.
fn run(jobs: &mpsc::Receiver<Job>, bell: &Arc<Bell>) {
    let mut slots: Vec<Slot> = Vec::new();
    let mut fds: Vec<libc::pollfd> = Vec::new();
    let mut done: Vec<(usize, TransferReport)> = Vec::new();
    let mut last_event = Instant::now();
    loop {
        let now = Instant::now();
        loop {
            match jobs.try_recv() {
                Ok(Job {
                    transfer,
                    reply,
                }) => {
                    let wake = Arc::new(ReaderWake {
                        woken: AtomicBool::new(false),
                        bell: Arc::clone(bell),
                    });
                    let waker = Waker::from(Arc::clone(&wake));
                    let mut slot = Slot {
                        transfer,
                        reply,
                        wake,
                        waker,
                    };
                    match slot.advance(now, Ready::default()) {
                        Some(report) => {
                            let _ = slot.reply.send(report);
                        }
                        None => slots.push(slot),
                    }
                    last_event = now;
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return,
            }
        }

        fds.clear();
        fds.push(libc::pollfd {
            fd: bell.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        fds.extend(slots.iter().map(|s| libc::pollfd {
            fd: s.transfer.fd(),
            events: s.transfer.interest(),
            revents: 0,
        }));
        let timeout =
            if !slots.is_empty() && now.duration_since(last_event) < LOOK {
                0
            } else {
                slots.iter().filter_map(|s| s.transfer.deadline()).min().map_or(
                    -1,
                    |d| {
                        // Round up: waking before the deadline only loops again.
                        let ms = d
                            .saturating_duration_since(now)
                            .as_micros()
                            .div_ceil(1000);
                        ms.min(i32::MAX as u128) as i32
                    },
                )
            };
        // SAFETY: `fds` is a live, initialized array of `fds.len()` entries.
        let n = unsafe {
            libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout)
        };
        let now = Instant::now();
        if n < 0 {
            // EINTR; anything else (ENOMEM) is retried the same way.
            continue;
        }
        if n > 0 {
            last_event = now;
        }
        if fds[0].revents != 0 {
            bell.clear();
        }

        for (i, slot) in slots.iter_mut().enumerate() {
            let revents = fds[i + 1].revents;
            let ready = Ready {
                read: revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP)
                    != 0,
                write: revents & libc::POLLOUT != 0,
            };
            let woken = slot.wake.woken.swap(false, Ordering::Acquire);
            let due = slot.transfer.deadline().is_some_and(|d| d <= now);
            if ready == Ready::default() && !woken && !due {
                continue;
            }
            if let Some(report) = slot.advance(now, ready) {
                done.push((i, report));
            }
        }
        // Highest index first, so the indexes left stay valid.
        while let Some((i, report)) = done.pop() {
            let _ = slots.swap_remove(i).reply.send(report);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    /// Counts its advances; ends after the third, which must come from its
    /// deadline (nothing is ever sent to its socket).
    struct Ticker {
        socket: UdpSocket,
        deadline: Instant,
        advances: u32,
    }

    impl Transfer for Ticker {
        fn fd(&self) -> RawFd {
            self.socket.as_raw_fd()
        }
        fn interest(&self) -> i16 {
            libc::POLLIN
        }
        fn deadline(&self) -> Option<Instant> {
            Some(self.deadline)
        }
        fn advance(
            &mut self,
            now: Instant,
            ready: Ready,
            _: &Waker,
        ) -> Option<TransferReport> {
            assert_eq!(
                ready,
                Ready::default(),
                "nothing was sent to the socket"
            );
            self.advances += 1;
            if self.advances == 3 {
                return Some(self.report(TransferOutcome::Complete));
            }
            if self.advances > 1 {
                assert!(now >= self.deadline, "advanced before its deadline");
            }
            self.deadline = now + Duration::from_millis(20);
            None
        }
        fn report(&self, outcome: TransferOutcome) -> TransferReport {
            TransferReport {
                bytes: u64::from(self.advances),
                retransmits: 0,
                elapsed: Duration::ZERO,
                negotiated: String::new(),
                outcome,
            }
        }
    }

    /// A transfer with nothing to receive is advanced at start and then by
    /// its deadlines only; its report comes back to the caller.
    #[test]
    fn deadlines_advance_an_idle_transfer() {
        let engine = Engine::start().unwrap();
        let ticker = Ticker {
            socket: UdpSocket::bind("127.0.0.1:0").unwrap(),
            deadline: Instant::now(),
            advances: 0,
        };
        let start = Instant::now();
        let report =
            futures_lite::future::block_on(engine.run(Box::new(ticker)))
                .unwrap();
        assert_eq!(report.outcome, TransferOutcome::Complete);
        assert_eq!(report.bytes, 3);
        assert!(start.elapsed() >= Duration::from_millis(40));
    }

    /// A transfer that panics ends with a report; the engine keeps serving.
    #[test]
    fn a_panicking_transfer_is_reported_and_the_engine_goes_on() {
        struct Bomb(UdpSocket);
        impl Transfer for Bomb {
            fn fd(&self) -> RawFd {
                self.0.as_raw_fd()
            }
            fn interest(&self) -> i16 {
                libc::POLLIN
            }
            fn deadline(&self) -> Option<Instant> {
                None
            }
            fn advance(
                &mut self,
                _: Instant,
                _: Ready,
                _: &Waker,
            ) -> Option<TransferReport> {
                panic!("boom")
            }
            fn report(&self, outcome: TransferOutcome) -> TransferReport {
                TransferReport {
                    bytes: 0,
                    retransmits: 0,
                    elapsed: Duration::ZERO,
                    negotiated: String::new(),
                    outcome,
                }
            }
        }
        let engine = Engine::start().unwrap();
        let bomb = Bomb(UdpSocket::bind("127.0.0.1:0").unwrap());
        let report =
            futures_lite::future::block_on(engine.run(Box::new(bomb))).unwrap();
        assert_eq!(
            report.outcome,
            TransferOutcome::Failed("transfer panicked: boom".into())
        );
        let ticker = Ticker {
            socket: UdpSocket::bind("127.0.0.1:0").unwrap(),
            deadline: Instant::now(),
            advances: 0,
        };
        let report =
            futures_lite::future::block_on(engine.run(Box::new(ticker)))
                .unwrap();
        assert_eq!(report.outcome, TransferOutcome::Complete);
    }
}
