use futures_lite::AsyncRead;
use log::trace;
use std::cmp;
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::engine::{Engine, Ready, Transfer};
use crate::error::{Error, Result};
use crate::packet::{Opts, Packet, RwReq, PACKET_DATA_HEADER_LEN};
use crate::server::{ServerConfig, DEFAULT_BLOCK_SIZE};
use crate::server::{TransferOutcome, TransferReport};

// pxe-sidecar patch: a read transfer is a state machine advanced by the
// engine's poll loop (engine.rs, PATCHES.md #4 and #5), with a UDP socket
// connected to the client. Connecting lets the kernel skip the route lookup
// per send and filter datagrams from other ports (RFC 1350 TIDs), and
// reports a client whose port is closed (ICMP port unreachable) instead of
// retrying into it.
pub(crate) struct ReadRequest<R>
where
    R: AsyncRead + Send,
{
    peer: SocketAddr,
    socket: UdpSocket,
    reader: R,
    block_size: usize,
    timeout: Duration,
    max_send_retries: u32,
    oack_opts: Option<Opts>,
    window_size: usize,
    /// The OACK, while the client has not acknowledged it (block 0).
    oack: Option<Vec<u8>>,
    /// DATA packets sent and not yet acknowledged, first is `window_base`.
    window: VecDeque<Block>,
    window_base: u16,
    /// The block the reader is filling when it returned Pending.
    filling: Option<Block>,
    /// Packet buffers of acknowledged blocks, reused: no allocation and no
    /// zero-fill per block.
    spare: Vec<Vec<u8>>,
    /// The reader has ended (the last block, possibly empty, is built).
    eof: bool,
    /// Packets of the window (or the OACK) sent in this round; the rest
    /// wait for the socket to be writable again.
    sent: usize,
    /// Retransmission deadline of the window in flight.
    deadline: Option<Instant>,
    /// Times the window in flight was sent again.
    attempts: u32,
    start: Instant,
    // pxe-sidecar patch: counters for the transfer report.
    bytes_acked: u64,
    retransmits: u64,
}

/// One DATA packet: header and data, `len` bytes of `buf` used.
struct Block {
    buf: Vec<u8>,
    len: usize,
}

/// How a transfer ends early.
enum End {
    /// The client sent ERROR (RFC 1350 §7): never answered with an ERROR.
    Client {
        code: u16,
        message: String,
    },
    /// ICMP port unreachable: the client gave up.
    Refused,
    /// A local failure or the retries ran out: the client gets an ERROR.
    Local(Error),
}

impl From<Error> for End {
    fn from(e: Error) -> End {
        End::Local(e)
    }
}

impl From<io::Error> for End {
    fn from(e: io::Error) -> End {
        End::Local(e.into())
    }
}

impl<R> ReadRequest<R>
where
    R: AsyncRead + Send + Unpin + 'static,
{
    pub(crate) fn init(
        reader: R,
        file_size: Option<u64>,
        peer: SocketAddr,
        req: &RwReq,
        config: ServerConfig,
        local_ip: IpAddr,
    ) -> Result<ReadRequest<R>> {
        let oack_opts = build_oack_opts(&config, req, file_size);

        let block_size = oack_opts
            .as_ref()
            .and_then(|o| o.block_size)
            .map(usize::from)
            .unwrap_or(DEFAULT_BLOCK_SIZE);

        // Default window size is 1 as per rfc7440
        let negotiated_window_size: usize =
            oack_opts.as_ref().and_then(|o| o.window_size).unwrap_or(1u16)
                as usize;

        let timeout = oack_opts
            .as_ref()
            .and_then(|o| o.timeout)
            .map(|t| Duration::from_secs(u64::from(t)))
            .unwrap_or(config.timeout);

        let socket = UdpSocket::bind(SocketAddr::new(local_ip, 0))
            .map_err(Error::Bind)?;
        socket.connect(peer)?;
        socket.set_nonblocking(true)?;

        Ok(ReadRequest {
            peer,
            socket,
            reader,
            block_size,
            timeout,
            max_send_retries: config.max_send_retries,
            oack: oack_opts
                .as_ref()
                .map(|o| Packet::OAck(o.to_owned()).to_bytes().to_vec()),
            oack_opts,
            window_size: negotiated_window_size.max(1),
            window: VecDeque::new(),
            window_base: 1,
            filling: None,
            spare: Vec::new(),
            eof: false,
            sent: 0,
            deadline: None,
            attempts: 0,
            start: Instant::now(),
            bytes_acked: 0,
            retransmits: 0,
        })
    }

    /// Runs the transfer on the engine's thread; the calling task only waits.
    pub(crate) async fn handle(self, engine: &Engine) -> TransferReport {
        let (peer, negotiated) =
            (self.peer, describe_opts(self.oack_opts.as_ref()));
        engine.run(Box::new(self)).await.unwrap_or_else(|why| TransferReport {
            bytes: 0,
            retransmits: 0,
            elapsed: Duration::ZERO,
            negotiated,
            outcome: TransferOutcome::Failed(format!(
                "transfer to {peer} stopped: {why}"
            )),
        })
    }

    /// One step; Ok(true) once every block is acknowledged.
    fn step(
        &mut self,
        now: Instant,
        ready: Ready,
        waker: &Waker,
    ) -> Result<bool, End> {
        if ready.read && self.receive()? {
            // The window moved: what is left of it goes out again with
            // the blocks that join it (RFC 7440 §4).
            self.deadline = None;
            self.attempts = 0;
        }
        if let Some(deadline) = self.deadline {
            if deadline <= now {
                if self.attempts >= self.max_send_retries {
                    return Err(Error::MaxSendRetriesReached(
                        self.peer,
                        self.window_base,
                    )
                    .into());
                }
                trace!(
                    "RRQ (peer: {}, block_id: {}) - Timeout",
                    &self.peer,
                    self.window_base
                );
                self.attempts += 1;
                self.retransmits += self.in_flight() as u64;
                self.sent = 0;
                self.deadline = Some(now + self.timeout);
                self.send()?;
            } else if ready.write {
                self.send()?;
            }
            return Ok(false);
        }
        // Nothing in flight. The window is filled before it (or the OACK)
        // goes out: a reader failing at once is reported instead of an OACK.
        if self.fill(waker)?.is_pending() {
            return Ok(false);
        }
        if self.is_done() {
            return Ok(true);
        }
        self.sent = 0;
        self.deadline = Some(now + self.timeout);
        self.send()?;
        Ok(false)
    }

    /// Reads blocks into the window until it is full or the reader ends.
    fn fill(&mut self, waker: &Waker) -> Result<Poll<()>, End> {
        let full = PACKET_DATA_HEADER_LEN + self.block_size;
        let mut cx = Context::from_waker(waker);
        while !self.eof && self.window.len() < self.window_size {
            let mut block = match self.filling.take() {
                Some(block) => block,
                None => {
                    let mut buf =
                        self.spare.pop().unwrap_or_else(|| vec![0; full]);
                    let id =
                        self.window_base.wrapping_add(self.window.len() as u16);
                    buf[..PACKET_DATA_HEADER_LEN]
                        .copy_from_slice(&Packet::data_head(id));
                    Block {
                        buf,
                        len: PACKET_DATA_HEADER_LEN,
                    }
                }
            };
            while block.len < full {
                match Pin::new(&mut self.reader)
                    .poll_read(&mut cx, &mut block.buf[block.len..full])
                {
                    Poll::Ready(Ok(0)) => {
                        // A short block is the last; when the data ends on
                        // a block boundary the last block is empty.
                        self.eof = true;
                        break;
                    }
                    Poll::Ready(Ok(n)) => block.len += n,
                    Poll::Ready(Err(e))
                        if e.kind() == io::ErrorKind::Interrupted => {}
                    Poll::Ready(Err(e)) => return Err(e.into()),
                    Poll::Pending => {
                        self.filling = Some(block);
                        return Ok(Poll::Pending);
                    }
                }
            }
            self.window.push_back(block);
        }
        Ok(Poll::Ready(()))
    }

    /// Packets in flight: the OACK alone, or the DATA window.
    fn in_flight(&self) -> usize {
        if self.oack.is_some() {
            1
        } else {
            self.window.len()
        }
    }

    /// Sends what is left of the packets in flight; stops when the socket
    /// buffer is full (the engine polls for POLLOUT then).
    fn send(&mut self) -> Result<(), End> {
        while self.sent < self.in_flight() {
            let packet = match &self.oack {
                Some(oack) => &oack[..],
                None => {
                    let block = &self.window[self.sent];
                    &block.buf[..block.len]
                }
            };
            match self.socket.send(packet) {
                Ok(_) => self.sent += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    let (_, end) = self.take_datagrams(true);
                    return Err(end.unwrap_or(End::Refused));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Takes every datagram waiting on the socket; true if an ACK moved
    /// the window. Duplicate and stale ACKs are ignored, never answered
    /// with a resend (the Sorcerer's Apprentice bug, RFC 1123 §4.2.3.1):
    /// only the deadline triggers a retransmission.
    fn receive(&mut self) -> Result<bool, End> {
        match self.take_datagrams(false) {
            (moved, None) => Ok(moved),
            // The client's port closed after it acknowledged the last block.
            (moved, Some(End::Refused)) if self.is_done() => Ok(moved),
            (_, Some(end)) => Err(end),
        }
    }

    /// `receive`'s loop: whether the window moved, and why the transfer
    /// must end, if it must: the client sent ERROR (pxe-sidecar patch: it
    /// ends the transfer at once, RFC 1350 §7, e.g. EDK2's tsize probe,
    /// ERROR 8, or iPXE's "TFTP Aborted"), its port is closed, or the
    /// socket failed. Takes one datagram unless `all` (or the port is
    /// closed): poll(2) is level-triggered, so one more waiting is seen
    /// at the next look, and a lock-step transfer is spared the recv(2)
    /// that fails with EAGAIN after every ACK.
    fn take_datagrams(&mut self, all: bool) -> (bool, Option<End>) {
        let mut moved = false;
        let mut refused = false;
        let mut buf = [0u8; 1024];
        loop {
            let len = match self.socket.recv(&mut buf) {
                Ok(len) => len,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return (moved, refused.then_some(End::Refused));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Linux reports the ICMP error before datagrams already
                // queued: a client that sent ERROR and closed its port
                // must still be heard (its ERROR is the better reason).
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    refused = true;
                    continue;
                }
                Err(e) => return (moved, Some(e.into())),
            };
            match Packet::decode(&buf[..len]) {
                // The code as sent: packet::Error folds the ones it does not
                // name (8, RFC 2347 option refusal) into 0.
                Ok(Packet::Error(e)) => {
                    let code = u16::from_be_bytes([buf[2], buf[3]]);
                    let message = e.msg().to_string();
                    return (
                        moved,
                        Some(End::Client {
                            code,
                            message,
                        }),
                    );
                }
                Ok(Packet::Ack(0)) if self.oack.is_some() => {
                    self.oack = None;
                    moved = true;
                }
                Ok(Packet::Ack(id)) if self.oack.is_none() => {
                    let base = self.window_base;
                    match acked_blocks(base, self.window.len() as u16, id) {
                        Some(n) => {
                            for block in self.window.drain(..usize::from(n)) {
                                self.bytes_acked +=
                                    (block.len - PACKET_DATA_HEADER_LEN) as u64;
                                self.spare.push(block.buf);
                            }
                            self.window_base = base.wrapping_add(n);
                            moved = true;
                        }
                        None => trace!(
                            "Unexpected ack packet {id}, window_base: {base}"
                        ),
                    }
                }
                // parse only valid Ack packets, the rest are ignored
                _ => {}
            }
            if !all && !refused {
                return (moved, None);
            }
        }
    }

    /// Every block is acknowledged.
    fn is_done(&self) -> bool {
        self.eof
            && self.oack.is_none()
            && self.window.is_empty()
            && self.filling.is_none()
    }
}

impl<R> Transfer for ReadRequest<R>
where
    R: AsyncRead + Send + Unpin + 'static,
{
    fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    fn interest(&self) -> i16 {
        if self.deadline.is_some() && self.sent < self.in_flight() {
            libc::POLLIN | libc::POLLOUT
        } else {
            libc::POLLIN
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    fn advance(
        &mut self,
        now: Instant,
        ready: Ready,
        waker: &Waker,
    ) -> Option<TransferReport> {
        let outcome = match self.step(now, ready, waker) {
            Ok(false) => return None,
            Ok(true) => {
                trace!("RRQ request served (peer: {})", &self.peer);
                TransferOutcome::Complete
            }
            Err(End::Client { code, message }) => TransferOutcome::ClientError { code, message },
            Err(End::Refused) => TransferOutcome::Failed(
                "the client's port is closed (ICMP port unreachable): it gave up".into(),
            ),
            Err(End::Local(e)) => {
                trace!("RRQ request failed (peer: {}, error: {})", &self.peer, &e);
                let outcome = match e {
                    Error::MaxSendRetriesReached(..) => TransferOutcome::Timeout,
                    ref e => TransferOutcome::Failed(e.to_string()),
                };
                // Errors are never retransmitted, and a failed send
                // changes nothing.
                let _ = self.socket.send(&Packet::Error(e.into()).to_bytes());
                outcome
            }
        };
        self.deadline = None;
        Some(self.report(outcome))
    }

    fn report(&self, outcome: TransferOutcome) -> TransferReport {
        TransferReport {
            bytes: self.bytes_acked,
            retransmits: self.retransmits,
            elapsed: self.start.elapsed(),
            negotiated: describe_opts(self.oack_opts.as_ref()),
            outcome,
        }
    }
}

/// How many blocks of the window starting at `window_base` (block numbers
/// wrap at 65535, RFC 1350 has no rule; we wrap to 0 like tftp-hpa and
/// most clients) an ACK of `id` acknowledges, or None if it is outside.
fn acked_blocks(window_base: u16, window_len: u16, id: u16) -> Option<u16> {
    let offset = id.wrapping_sub(window_base);
    // Not `then_some`: its argument is evaluated even for a duplicate ACK
    // (offset 65535), where `offset + 1` overflows.
    if offset < window_len {
        Some(offset + 1)
    } else {
        None
    }
}

/// pxe-sidecar patch: the most one transfer's window may hold unacknowledged.
pub(crate) const MAX_WINDOW_BYTES: usize = 256 * 1024;

fn build_oack_opts(
    config: &ServerConfig,
    req: &RwReq,
    file_size: Option<u64>,
) -> Option<Opts> {
    let mut opts = Opts::default();

    if !config.ignore_client_block_size {
        opts.block_size = match (req.opts.block_size, config.block_size_limit) {
            (Some(bsize), Some(limit)) => Some(cmp::min(bsize, limit)),
            (Some(bsize), None) => Some(bsize),
            _ => None,
        };
    }

    if !config.ignore_client_timeout {
        opts.timeout = req.opts.timeout;
    }

    if let (Some(0), Some(file_size)) = (req.opts.transfer_size, file_size) {
        opts.transfer_size = Some(file_size);
    }

    if !config.ignore_client_window_size {
        opts.window_size =
            match (req.opts.window_size, config.window_size_limit) {
                (Some(wsize), Some(limit)) => Some(cmp::min(wsize, limit)),
                (Some(wsize), None) => Some(wsize),
                _ => None,
            };
        // pxe-sidecar patch: a window is held in memory until acknowledged;
        // bound it in bytes, so that jumbo blocks get fewer of them
        // (RFC 7440 §4: the server may answer with a smaller windowsize).
        let block = usize::from(opts.block_size.unwrap_or(DEFAULT_BLOCK_SIZE as u16));
        let most = (MAX_WINDOW_BYTES / block.max(1)).clamp(1, usize::from(u16::MAX)) as u16;
        opts.window_size = opts.window_size.map(|w| w.min(most));
    }

    if opts == Opts::default() {
        None
    } else {
        Some(opts)
    }
}

/// pxe-sidecar patch: the accepted options as they went into the OACK.
fn describe_opts(opts: Option<&Opts>) -> String {
    let Some(o) = opts else {
        return String::new();
    };
    let mut parts = Vec::new();
    if let Some(b) = o.block_size {
        parts.push(format!("blksize {b}"));
    }
    if let Some(t) = o.timeout {
        parts.push(format!("timeout {t}"));
    }
    if let Some(t) = o.transfer_size {
        parts.push(format!("tsize {t}"));
    }
    if let Some(w) = o.window_size {
        parts.push(format!("windowsize {w}"));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Mode;
    use std::sync::{Arc, Mutex};
    use std::task::Context;

    fn config(timeout: Duration, retries: u32) -> ServerConfig {
        ServerConfig {
            timeout,
            block_size_limit: None,
            window_size_limit: None,
            max_send_retries: retries,
            ignore_client_timeout: false,
            ignore_client_block_size: false,
            ignore_client_window_size: false,
            max_transfers: None,
            max_transfers_per_ip: None,
        }
    }

    fn request(block_size: Option<u16>, window_size: Option<u16>) -> RwReq {
        RwReq {
            filename: "f".into(),
            mode: Mode::Octet,
            opts: Opts {
                block_size,
                timeout: None,
                transfer_size: None,
                window_size,
            },
            raw_opts: Vec::new(),
        }
    }

    /// Serves `reader` to a hand-driven client on loopback: `client` gets
    /// the client socket, connected to the transfer's, once the first
    /// packet arrived (given as well).
    fn serve<R, C>(
        reader: R,
        req: RwReq,
        config: ServerConfig,
        client: C,
    ) -> TransferReport
    where
        R: AsyncRead + Send + Unpin + 'static,
        C: FnOnce(UdpSocket, Vec<u8>) + Send + 'static,
    {
        let engine = Engine::start().unwrap();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let peer = sock.local_addr().unwrap();
        let rr = ReadRequest::init(
            reader,
            None,
            peer,
            &req,
            config,
            "127.0.0.1".parse().unwrap(),
        )
        .unwrap();
        let client = std::thread::spawn(move || {
            let mut buf = vec![0u8; 70000];
            let (n, from) = sock.recv_from(&mut buf).expect("no first packet");
            sock.connect(from).unwrap();
            client(sock, buf[..n].to_vec());
        });
        let report = futures_lite::future::block_on(rr.handle(&engine));
        client.join().expect("client failed");
        report
    }

    fn data(packet: &[u8]) -> (u16, Vec<u8>) {
        assert_eq!(packet[..2], [0, 3], "not DATA: {packet:?}");
        (u16::from_be_bytes([packet[2], packet[3]]), packet[4..].to_vec())
    }

    fn ack(sock: &UdpSocket, id: u16) {
        let [a, b] = id.to_be_bytes();
        sock.send(&[0, 4, a, b]).unwrap();
    }

    fn recv(sock: &UdpSocket) -> Vec<u8> {
        let mut buf = vec![0u8; 70000];
        let n = sock.recv(&mut buf).expect("nothing received");
        buf.truncate(n);
        buf
    }

    /// Not ready every other read; wakes its task from another thread.
    struct Slow {
        data: Vec<u8>,
        pos: usize,
        ready: bool,
    }

    impl AsyncRead for Slow {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let ready = self.ready;
            self.ready = !ready;
            if !ready {
                let waker = cx.waker().clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(1));
                    waker.wake();
                });
                return Poll::Pending;
            }
            // Short reads: at most 100 bytes, so a block takes several.
            let n = buf.len().min(100).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Poll::Ready(Ok(n))
        }
    }

    /// The window granted is bounded in bytes: jumbo blocks get fewer.
    #[test]
    fn window_is_bounded_in_bytes() {
        let mut cfg = config(Duration::from_secs(2), 3);
        cfg.window_size_limit = Some(64);
        let window = |cfg: &ServerConfig, b, w| {
            build_oack_opts(cfg, &request(b, w), None).and_then(|o| o.window_size)
        };
        assert_eq!(window(&cfg, Some(1468), Some(64)), Some(64));
        assert_eq!(window(&cfg, Some(65464), Some(64)), Some(4));
        assert_eq!(window(&cfg, None, Some(64)), Some(64));
        assert_eq!(window(&cfg, Some(65464), None), None);
        assert_eq!(window(&cfg, Some(8), Some(64)), Some(64));
        cfg.window_size_limit = None;
        assert_eq!(window(&cfg, Some(8), Some(u16::MAX)), Some(32768));
        assert_eq!(window(&cfg, Some(512), Some(u16::MAX)), Some(512));
    }

    /// A reader that is not always ready (and returns short reads) still
    /// yields the whole file, windowed, with an OACK first; the last block
    /// of data ending on a block boundary is followed by an empty one.
    #[test]
    fn a_reader_that_is_not_ready_wakes_its_transfer() {
        let file: Vec<u8> =
            (0..512 * 10).map(|i| (i * 7 % 251) as u8).collect();
        let expected = file.clone();
        let got = Arc::new(Mutex::new(Vec::new()));
        let out = Arc::clone(&got);
        let reader = Slow {
            data: file,
            pos: 0,
            ready: false,
        };
        let report = serve(
            reader,
            request(Some(512), Some(4)),
            config(Duration::from_secs(2), 3),
            move |sock, first| {
                assert_eq!(first[..2], [0, 6], "OACK first");
                ack(&sock, 0);
                let mut next = 1u16;
                loop {
                    let (id, bytes) = data(&recv(&sock));
                    assert_eq!(id, next, "blocks in order");
                    out.lock().unwrap().extend_from_slice(&bytes);
                    next += 1;
                    if bytes.len() < 512 {
                        ack(&sock, id);
                        break;
                    }
                    if id % 4 == 0 {
                        ack(&sock, id);
                    }
                }
                assert_eq!(next, 12, "10 full blocks and an empty one");
            },
        );
        assert_eq!(report.outcome, TransferOutcome::Complete);
        assert_eq!(report.bytes, 5120);
        assert_eq!(report.retransmits, 0);
        assert_eq!(*got.lock().unwrap(), expected);
    }

    /// RFC 7440: an ACK inside the window moves it to the block after the
    /// one acknowledged; the rest of the window is sent again with the new
    /// blocks, at once (no timeout), and a duplicate ACK sends nothing.
    #[test]
    fn an_ack_inside_the_window_moves_it() {
        let file = vec![9u8; 512 * 6 + 10];
        let reader = futures_lite::io::Cursor::new(file);
        let report = serve(
            reader,
            request(None, Some(4)),
            config(Duration::from_secs(5), 3),
            |sock, first| {
                assert_eq!(first[..2], [0, 6], "OACK first");
                ack(&sock, 0);
                let ids: Vec<u16> =
                    (0..4).map(|_| data(&recv(&sock)).0).collect();
                assert_eq!(ids, [1, 2, 3, 4]);
                ack(&sock, 2);
                let ids: Vec<u16> =
                    (0..4).map(|_| data(&recv(&sock)).0).collect();
                assert_eq!(
                    ids,
                    [3, 4, 5, 6],
                    "the window restarts after the ACKed block"
                );
                ack(&sock, 2);
                sock.set_read_timeout(Some(Duration::from_millis(300)))
                    .unwrap();
                let mut buf = [0u8; 1024];
                assert!(
                    sock.recv(&mut buf).is_err(),
                    "a duplicate ACK was answered"
                );
                sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                ack(&sock, 6);
                let (id, last) = data(&recv(&sock));
                assert_eq!((id, last.len()), (7, 10));
                ack(&sock, 7);
            },
        );
        assert_eq!(report.outcome, TransferOutcome::Complete);
        assert_eq!(report.bytes, 512 * 6 + 10);
    }

    /// A silent client gets the block again at each timeout, then an
    /// ERROR; the report says Timeout and counts the retransmissions.
    #[test]
    fn a_silent_client_times_out_after_the_retries() {
        let reader = futures_lite::io::Cursor::new(vec![1u8; 100]);
        let start = Instant::now();
        let report = serve(
            reader,
            request(None, None),
            config(Duration::from_millis(50), 2),
            |sock, first| {
                assert_eq!(data(&first).0, 1);
                assert_eq!(data(&recv(&sock)).0, 1, "first retransmission");
                assert_eq!(data(&recv(&sock)).0, 1, "second retransmission");
                let error = recv(&sock);
                assert_eq!(error[..2], [0, 5], "an ERROR ends it: {error:?}");
            },
        );
        assert_eq!(report.outcome, TransferOutcome::Timeout);
        assert_eq!(report.retransmits, 2);
        assert!(start.elapsed() >= Duration::from_millis(150));
    }

    /// A client ERROR ends the transfer at once and is not answered.
    #[test]
    fn a_client_error_ends_the_transfer_unanswered() {
        let reader = futures_lite::io::Cursor::new(vec![1u8; 5000]);
        let report = serve(
            reader,
            request(None, None),
            config(Duration::from_millis(100), 50),
            |sock, first| {
                assert_eq!(data(&first).0, 1);
                sock.send(b"\x00\x05\x00\x08TFTP Aborted\x00").unwrap();
                sock.set_read_timeout(Some(Duration::from_millis(400)))
                    .unwrap();
                let mut buf = [0u8; 1024];
                assert!(sock.recv(&mut buf).is_err(), "the ERROR was answered");
            },
        );
        assert_eq!(
            report.outcome,
            TransferOutcome::ClientError {
                code: 8,
                message: "TFTP Aborted".into()
            }
        );
    }
}
