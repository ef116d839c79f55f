use async_io::{Async, Timer};
use bytes::{BufMut, Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncReadExt, StreamExt};
use log::trace;
use std::cmp;
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::slice;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::server::{TransferOutcome, TransferReport};
use crate::packet::{Opts, Packet, RwReq, PACKET_DATA_HEADER_LEN};
use crate::server::{ServerConfig, DEFAULT_BLOCK_SIZE};

pub(crate) struct ReadRequest<'r, R>
where
    R: AsyncRead + Send,
{
    peer: SocketAddr,
    socket: Async<UdpSocket>,
    reader: &'r mut R,
    block_size: usize,
    timeout: Duration,
    max_send_retries: u32,
    oack_opts: Option<Opts>,
    window_size: usize,
    // pxe-sidecar patch: counters for the transfer report.
    bytes_acked: u64,
    retransmits: u64,
    // pxe-sidecar patch: one interval timer for the whole transfer. A fresh
    // `Timer` per ACK wait made async-io notify its reactor on every block
    // (an eventfd write and an extra epoll round), which cost ~10-15% of
    // lock-step throughput. Timeouts now fire between 1 and 1.25 x timeout.
    tick: Timer,
}

impl<'r, R> ReadRequest<'r, R>
where
    R: AsyncRead + Send + Unpin,
{
    pub(crate) async fn init(
        reader: &'r mut R,
        file_size: Option<u64>,
        peer: SocketAddr,
        req: &RwReq,
        config: ServerConfig,
        local_ip: IpAddr,
    ) -> Result<ReadRequest<'r, R>> {
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

        let addr = SocketAddr::new(local_ip, 0);
        let socket = Async::<UdpSocket>::bind(addr).map_err(Error::Bind)?;

        Ok(ReadRequest {
            peer,
            socket,
            reader,
            block_size,
            timeout,
            max_send_retries: config.max_send_retries,
            oack_opts,
            window_size: negotiated_window_size,
            bytes_acked: 0,
            retransmits: 0,
            tick: Timer::interval((timeout / 4).max(Duration::from_millis(10))),
        })
    }

    pub(crate) async fn handle(&mut self) -> TransferReport {
        let start = Instant::now();
        let result = self.try_handle().await;
        let outcome = match &result {
            Ok(()) => TransferOutcome::Complete,
            Err(Error::Packet(crate::packet::Error::Msg(m))) if m.starts_with(CLIENT_ERROR) => {
                // pxe-sidecar patch: "client-error:<code>:<message>"
                let rest = &m[CLIENT_ERROR.len()..];
                let (code, message) = rest.split_once(':').unwrap_or(("0", rest));
                TransferOutcome::ClientError {
                    code: code.parse().unwrap_or(0),
                    message: message.to_string(),
                }
            }
            Err(Error::MaxSendRetriesReached(..)) => TransferOutcome::Timeout,
            Err(e) => TransferOutcome::Failed(e.to_string()),
        };
        if let Err(e) = result {
            trace!("RRQ request failed (peer: {}, error: {})", &self.peer, &e);
            // pxe-sidecar patch: never answer an ERROR with an ERROR (RFC 1350 §7).
            if !matches!(outcome, TransferOutcome::ClientError { .. }) {
                let mut buffer = BytesMut::with_capacity(DEFAULT_BLOCK_SIZE);
                Packet::Error(e.into()).encode(&mut buffer);
                let buf = buffer.split().freeze();
                // Errors are never retransmitted.
                // We do not care if `send_to` resulted to an IO error.
                let _ = self.socket.send_to(&buf[..], self.peer).await;
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

    async fn try_handle(&mut self) -> Result<()> {
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
            let mut buff = BytesMut::with_capacity(PACKET_DATA_HEADER_LEN + 64);
            Packet::OAck(opts.to_owned()).encode(&mut buff);
            // OACK is not really part of the window, so we send it separately
            self.send_window(&VecDeque::from([buff.freeze()]), 0).await?;
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

            let blocks_acked = self.send_window(&window, window_base).await?;
            window_base = window_base.wrapping_add(blocks_acked);

            self.bytes_acked += window
                .iter()
                .take(blocks_acked as usize)
                .map(|b| (b.len() - PACKET_DATA_HEADER_LEN) as u64)
                .sum::<u64>();

            // remove acked blocks from window
            if blocks_acked == window.len() as u16 {
                window.clear()
            } else {
                window.drain(..blocks_acked as usize);
            }

            if is_last_block && window.is_empty() {
                // transfer is done
                break;
            }
        }

        trace!("RRQ request served (peer: {})", &self.peer);
        Ok(())
    }

    async fn fill_data_block(
        &mut self,
        block_id: u16,
    ) -> Result<(Bytes, bool), Error> {
        let mut buffer: BytesMut =
            BytesMut::with_capacity(PACKET_DATA_HEADER_LEN + self.block_size);
        Packet::encode_data_head(block_id, &mut buffer);

        // Read block in buffer
        unsafe {
            let uninit_buf = buffer.chunk_mut();
            let data_buf = slice::from_raw_parts_mut(
                uninit_buf.as_mut_ptr(),
                uninit_buf.len(),
            );

            let len = self.read_block(data_buf).await?;
            buffer.advance_mut(len);
            Ok((buffer.split().freeze(), len < self.block_size))
        }
    }

    /// Sends packets contained in a window and waits for client to acknowledge them. Returns amount
    /// of packets acknowledged.
    async fn send_window(
        &mut self,
        window: &VecDeque<Bytes>,
        window_base: u16,
    ) -> Result<u16> {
        // Send packet until we receive an ack
        for attempt in 0..=self.max_send_retries {
            if attempt > 0 {
                self.retransmits += window.len() as u64;
            }
            for packet in window {
                self.socket.send_to(&packet[..], self.peer).await?;
            }

            match self.recv_ack(window_base, window.len() as u16).await {
                Ok(blocks_acked) => {
                    trace!(
                        "RRQ (peer: {}, window_base: {}, blocks_acked: {}, window_len: {}) - Received ACK",
                        &self.peer,
                        window_base,
                        blocks_acked,
                        window.len()
                    );
                    return Ok(blocks_acked);
                }
                Err(ref e) if e.kind() == io::ErrorKind::TimedOut => {
                    trace!(
                        "RRQ (peer: {}, block_id: {}) - Timeout",
                        &self.peer,
                        window_base
                    );
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {
                    // pxe-sidecar patch: the client sent ERROR; stop now.
                    return Err(Error::Packet(crate::packet::Error::Msg(
                        e.to_string(),
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }

        Err(Error::MaxSendRetriesReached(self.peer, window_base))
    }

    /// Waits for ack packet, returns amount of packets acknowledged.
    async fn recv_ack(
        &mut self,
        window_base: u16,
        window_len: u16,
    ) -> io::Result<u16> {
        // We can not use `self` within `async_std::io::timeout` because not all
        // struct members implement `Sync`. So we borrow only what we need.
        let socket = &mut self.socket;
        let peer = self.peer;
        let tick = &mut self.tick;
        let deadline = Instant::now() + self.timeout;
        let timed_out = async move {
            loop {
                tick.next().await;
                if Instant::now() >= deadline {
                    return Err(io::ErrorKind::TimedOut.into());
                }
            }
        };

        futures_lite::future::race(async {
            let mut buf = [0u8; 1024];

            loop {
                let (len, recved_peer) = socket.recv_from(&mut buf[..]).await?;

                // if the packet do not come from the client we are serving, then ignore it
                if recved_peer != peer {
                    continue;
                }

                // pxe-sidecar patch: an ERROR from the client ends the
                // transfer at once (RFC 1350 §7), e.g. EDK2's tsize probe
                // (ERROR 8) or iPXE's "TFTP Aborted"; before, the server kept
                // re-sending until its retries ran out.
                if let Ok(Packet::Error(e)) = Packet::decode(&buf[..len]) {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        format!("{CLIENT_ERROR}{}:{}", e.code(), e.msg()),
                    ));
                }

                // parse only valid Ack packets, the rest are ignored
                if let Ok(Packet::Ack(recved_block_id)) =
                    Packet::decode(&buf[..len])
                {
                    let window_end = window_base.wrapping_add(window_len);

                    if window_end > window_base {
                        // window_end did not wrap
                        if recved_block_id >= window_base && recved_block_id < window_end {
                            // number of blocks acked
                            return Ok(recved_block_id-window_base+1u16);
                        }
                        else {
                            trace!("Unexpected ack packet {recved_block_id}, window_base: {window_base}, window_len: {window_len}");
                        }
                    }else {
                        // window_end wrapped
                        if recved_block_id >= window_base {
                            return Ok(1u16 + (recved_block_id - window_base));
                        } else if recved_block_id < window_end {
                            return Ok(1u16 + recved_block_id + (window_len - window_end));
                        } else {
                            trace!("Unexpected ack packet {recved_block_id}, window_base: {window_base}, window_len: {window_len}");
                        }
                    }
                }
            }
        }, timed_out)
        .await
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
