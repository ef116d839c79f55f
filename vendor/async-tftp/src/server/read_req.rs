use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncReadExt};
use log::trace;
use std::cmp;
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::pin::Pin;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::packet::{Opts, Packet, RwReq, PACKET_DATA_HEADER_LEN};
use crate::server::{ServerConfig, DEFAULT_BLOCK_SIZE};
use crate::server::{TransferOutcome, TransferReport};
use super::engine::Engine;
use tokio::net::UdpSocket as TokioUdp;

// pxe-sidecar patch: a read transfer runs on the engine's tokio thread
// (engine.rs) with a UDP socket connected to the client (PATCHES.md #4).
// Connecting lets the kernel skip the route lookup per send and filter
// datagrams from other ports (RFC 1350 TIDs), and reports a client whose
// port is closed (ICMP port unreachable) instead of retrying into it.
pub(crate) struct ReadRequest<R>
where
    R: AsyncRead + Send,
{
    peer: SocketAddr,
    socket: Option<UdpSocket>,
    reader: R,
    block_size: usize,
    timeout: Duration,
    max_send_retries: u32,
    oack_opts: Option<Opts>,
    window_size: usize,
    // pxe-sidecar patch: counters for the transfer report.
    bytes_acked: u64,
    retransmits: u64,
    /// pxe-sidecar patch: the retransmission timer, armed once and moved
    /// forward only when it fires before the current deadline — not a
    /// timer-wheel insert and remove for every block acknowledged.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
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
            socket: Some(socket),
            reader,
            block_size,
            timeout,
            max_send_retries: config.max_send_retries,
            oack_opts,
            window_size: negotiated_window_size,
            bytes_acked: 0,
            retransmits: 0,
            timer: None,
        })
    }

    /// Runs the transfer on the engine's thread; the calling task only waits.
    pub(crate) async fn handle(self, engine: &Engine) -> TransferReport {
        let (peer, negotiated) = (self.peer, describe_opts(self.oack_opts.as_ref()));
        engine.run(self.transfer()).await.unwrap_or_else(|why| TransferReport {
            bytes: 0,
            retransmits: 0,
            elapsed: Duration::ZERO,
            negotiated,
            outcome: TransferOutcome::Failed(format!("transfer to {peer} stopped: {why}")),
        })
    }

    async fn transfer(mut self) -> TransferReport {
        let start = Instant::now();
        let result = match self.socket.take().map(TokioUdp::from_std) {
            Some(Ok(socket)) => {
                let _running = super::engine::running();
                self.try_handle(&socket).await.map_err(|e| (e, Some(socket)))
            }
            Some(Err(e)) => Err((e.into(), None)),
            None => Err((io::Error::from(io::ErrorKind::NotConnected).into(), None)),
        };
        let outcome = match &result {
            Ok(()) => TransferOutcome::Complete,
            Err((Error::Packet(crate::packet::Error::Msg(m)), _)) if m.starts_with(CLIENT_ERROR) => {
                // pxe-sidecar patch: "client-error:<code>:<message>"
                let rest = &m[CLIENT_ERROR.len()..];
                let (code, message) = rest.split_once(':').unwrap_or(("0", rest));
                TransferOutcome::ClientError {
                    code: code.parse().unwrap_or(0),
                    message: message.to_string(),
                }
            }
            Err((Error::MaxSendRetriesReached(..), _)) => TransferOutcome::Timeout,
            Err((Error::Io(e), _)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                TransferOutcome::Failed(
                    "the client's port is closed (ICMP port unreachable): it gave up".into(),
                )
            }
            Err((e, _)) => TransferOutcome::Failed(e.to_string()),
        };
        if let Err((e, socket)) = result {
            trace!("RRQ request failed (peer: {}, error: {})", &self.peer, &e);
            // pxe-sidecar patch: never answer an ERROR with an ERROR (RFC 1350 §7).
            if let Some(socket) = socket.filter(|_| !matches!(outcome, TransferOutcome::ClientError { .. })) {
                let buf = Packet::Error(e.into()).to_bytes();
                // Errors are never retransmitted.
                // We do not care if `send` resulted to an IO error.
                let _ = socket.send(&buf[..]).await;
            }
        }
        TransferReport {
            bytes: self.bytes_acked,
            retransmits: self.retransmits,
            elapsed: start.elapsed(),
            negotiated: describe_opts(self.oack_opts.as_ref()),
            outcome,
        }
    }

    async fn try_handle(&mut self, socket: &TokioUdp) -> Result<()> {
        let mut window: VecDeque<Bytes> =
            VecDeque::with_capacity(self.window_size);
        let mut block_id: u16;
        let mut window_base: u16 = 1;
        let mut buf: Bytes;
        let mut is_last_block: bool;

        (buf, is_last_block) = self.fill_data_block(window_base).await?;
        window.push_back(buf);

        // Send OACK after we manage to read the first block from reader.
        //
        // We do this because we want to give the developers the option to
        // produce an error after they construct a reader.
        if let Some(opts) = self.oack_opts.as_ref() {
            trace!("RRQ OACK (peer: {}, opts: {:?}", &self.peer, &opts);
            let oack = Packet::OAck(opts.to_owned()).to_bytes();
            // OACK is not really part of the window, so we send it separately
            self.send_window(socket, &VecDeque::from([oack]), 0).await?;
        }

        loop {
            // calculate next block_id, window might not be empty
            block_id = window_base.wrapping_add(window.len() as u16);

            while !is_last_block && (window.len() < self.window_size) {
                // we still have data and window is not full
                (buf, is_last_block) = self.fill_data_block(block_id).await?;
                window.push_back(buf);
                block_id = block_id.wrapping_add(1);
            }

            let blocks_acked = self.send_window(socket, &window, window_base).await?;
            window_base = window_base.wrapping_add(blocks_acked);

            self.bytes_acked += window
                .iter()
                .take(blocks_acked as usize)
                .map(|b| (b.len() - PACKET_DATA_HEADER_LEN) as u64)
                .sum::<u64>();

            // remove acked blocks from window
            window.drain(..blocks_acked as usize);

            if is_last_block && window.is_empty() {
                // transfer is done
                break;
            }
        }

        trace!("RRQ request served (peer: {})", &self.peer);
        Ok(())
    }

    async fn fill_data_block(&mut self, block_id: u16) -> Result<(Bytes, bool), Error> {
        let mut buffer = BytesMut::with_capacity(PACKET_DATA_HEADER_LEN + self.block_size);
        Packet::encode_data_head(block_id, &mut buffer);
        buffer.resize(PACKET_DATA_HEADER_LEN + self.block_size, 0);
        let len = self.read_block(&mut buffer[PACKET_DATA_HEADER_LEN..]).await?;
        buffer.truncate(PACKET_DATA_HEADER_LEN + len);
        Ok((buffer.freeze(), len < self.block_size))
    }

    /// Sends packets contained in a window and waits for client to acknowledge them. Returns amount
    /// of packets acknowledged.
    async fn send_window(
        &mut self,
        socket: &TokioUdp,
        window: &VecDeque<Bytes>,
        window_base: u16,
    ) -> Result<u16> {
        // Send packet until we receive an ack
        for attempt in 0..=self.max_send_retries {
            if attempt > 0 {
                self.retransmits += window.len() as u64;
            }
            for packet in window {
                socket.send(&packet[..]).await?;
            }

            match self.recv_ack(socket, window_base, window.len() as u16).await {
                Ok(blocks_acked) => return Ok(blocks_acked),
                Err(ref e) if e.kind() == io::ErrorKind::TimedOut => {
                    trace!("RRQ (peer: {}, block_id: {}) - Timeout", &self.peer, window_base);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {
                    // pxe-sidecar patch: the client sent ERROR; stop now.
                    return Err(Error::Packet(crate::packet::Error::Msg(e.to_string())));
                }
                Err(e) => return Err(e.into()),
            }
        }

        Err(Error::MaxSendRetriesReached(self.peer, window_base))
    }

    /// Waits for ack packet, returns amount of packets acknowledged.
    /// Duplicate and stale ACKs are ignored, never answered with a resend
    /// (the Sorcerer's Apprentice bug, RFC 1123 §4.2.3.1): only the timeout
    /// triggers a retransmission.
    async fn recv_ack(
        &mut self,
        socket: &TokioUdp,
        window_base: u16,
        window_len: u16,
    ) -> io::Result<u16> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        // The timer holds this deadline or an earlier block's (never a
        // later one): when it fires early it is moved to this deadline.
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        let mut buf = [0u8; 1024];
        loop {
            let got = tokio::select! {
                biased;
                r = socket.recv(&mut buf[..]) => r,
                () = timer.as_mut() => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                    timer.as_mut().reset(deadline);
                    continue;
                }
            };
            let len = match got {
                // Linux reports the ICMP error before datagrams already
                // queued: a client that sent ERROR and closed its port must
                // still be heard (its ERROR is the better explanation).
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    match socket.try_recv(&mut buf[..]) {
                        Ok(len) => len,
                        Err(_) => return Err(e),
                    }
                }
                r => r?,
            };
            match Packet::decode(&buf[..len]) {
                // pxe-sidecar patch: an ERROR from the client ends the
                // transfer at once (RFC 1350 §7), e.g. EDK2's tsize probe
                // (ERROR 8) or iPXE's "TFTP Aborted"; before, the server kept
                // re-sending until its retries ran out.
                Ok(Packet::Error(e)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        format!("{CLIENT_ERROR}{}:{}", e.code(), e.msg()),
                    ));
                }
                Ok(Packet::Ack(id)) => {
                    if let Some(n) = acked_blocks(window_base, window_len, id) {
                        return Ok(n);
                    }
                    trace!("Unexpected ack packet {id}, window_base: {window_base}, window_len: {window_len}");
                }
                // parse only valid Ack packets, the rest are ignored
                _ => {}
            }
        }
    }

    async fn read_block(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut len = 0;

        while len < buf.len() {
            match self.reader.read(&mut buf[len..]).await? {
                0 => break,
                x => len += x,
            }
        }

        Ok(len)
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
    }

    if opts == Opts::default() {
        None
    } else {
        Some(opts)
    }
}

/// pxe-sidecar patch: marks a client ERROR carried through `Error::Packet`.
const CLIENT_ERROR: &str = "client-error:";

/// pxe-sidecar patch: the accepted options as they went into the OACK.
fn describe_opts(opts: Option<&Opts>) -> String {
    let Some(o) = opts else { return String::new() };
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
