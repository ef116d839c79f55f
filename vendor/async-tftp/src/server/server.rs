use async_executor::Executor;
use async_io::Async;
use async_lock::Mutex;
use log::trace;
use std::collections::HashSet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use super::read_req::*;
use super::write_req::*;
use super::{Handler, RequestInfo};
use crate::error::*;
use crate::packet::{Packet, RwReq};

/// TFTP server.
pub struct TftpServer<H>
where
    H: Handler,
{
    pub(crate) socket: Async<UdpSocket>,
    pub(crate) handler: Arc<Mutex<H>>,
    pub(crate) reqs_in_progress: Arc<Mutex<HashSet<SocketAddr>>>,
    pub(crate) ex: Executor<'static>,
    pub(crate) config: ServerConfig,
    pub(crate) local_ip: IpAddr,
    // pxe-sidecar patch: the thread that runs read transfers.
    pub(crate) engine: Arc<super::engine::Engine>,
}

#[derive(Clone)]
pub(crate) struct ServerConfig {
    pub(crate) timeout: Duration,
    pub(crate) block_size_limit: Option<u16>,
    pub(crate) window_size_limit: Option<u16>,
    pub(crate) max_send_retries: u32,
    pub(crate) ignore_client_timeout: bool,
    pub(crate) ignore_client_block_size: bool,
    pub(crate) ignore_client_window_size: bool,
    // pxe-sidecar patch: bounded concurrency.
    pub(crate) max_transfers: Option<usize>,
    pub(crate) max_transfers_per_ip: Option<usize>,
}

pub(crate) const DEFAULT_BLOCK_SIZE: usize = 512;

impl<H: 'static> TftpServer<H>
where
    H: Handler,
{
    /// Returns the listenning socket address.
    pub fn listen_addr(&self) -> Result<SocketAddr> {
        Ok(self.socket.get_ref().local_addr()?)
    }

    /// Consume and start the server.
    pub async fn serve(self) -> Result<()> {
        self.ex
            .run(async {
                let mut buf = [0u8; 4096];

                loop {
                    let (len, peer) = self.socket.recv_from(&mut buf).await?;
                    self.handle_req_packet(peer, &buf[..len]).await;
                }
            })
            .await
    }

    async fn handle_req_packet(&self, peer: SocketAddr, data: &[u8]) {
        let packet = match Packet::decode(data) {
            Ok(p @ Packet::Rrq(_)) => p,
            Ok(p @ Packet::Wrq(_)) => p,
            // Ignore packets that are not requests
            Ok(_) => return,
            // pxe-sidecar patch: say why an invalid request was dropped.
            Err(_) => {
                let why = if matches!(data.get(..2), Some([0, 1]) | Some([0, 2])) {
                    "malformed request (no filename/mode, bad mode or options)"
                } else {
                    "not a TFTP request"
                };
                self.handler.lock().await.request_refused(&peer, why);
                return;
            }
        };

        if let Packet::Rrq(req) | Packet::Wrq(req) = &packet {
            let info = RequestInfo {
                write: matches!(packet, Packet::Wrq(_)),
                filename: req.filename.clone(),
                mode: req.mode.to_str(),
                options: req.raw_opts.clone(),
            };
            self.handler.lock().await.request_received(&peer, &info);
        }

        {
            let mut reqs = self.reqs_in_progress.lock().await;
            if reqs.contains(&peer) {
                // Ignore pending requests
                return;
            }
            // pxe-sidecar patch: bounded concurrency, in total and per client.
            let busy = if self.config.max_transfers.is_some_and(|m| reqs.len() >= m) {
                Some("server busy: too many transfers")
            } else if self.config.max_transfers_per_ip.is_some_and(|m| {
                reqs.iter().filter(|p| p.ip() == peer.ip()).count() >= m
            }) {
                Some("server busy: too many transfers from this client")
            } else {
                None
            };
            if let Some(why) = busy {
                drop(reqs);
                self.handler.lock().await.request_refused(&peer, why);
                let data = Packet::Error(crate::packet::Error::Msg(why.into())).to_bytes();
                let _ = self.socket.send_to(&data[..], peer).await;
                return;
            }
            reqs.insert(peer);
        }

        match packet {
            Packet::Rrq(req) => self.handle_rrq(peer, req),
            Packet::Wrq(req) => self.handle_wrq(peer, req),
            _ => unreachable!(),
        }
    }

    fn handle_rrq(&self, peer: SocketAddr, req: RwReq) {
        trace!("RRQ recieved (peer: {}, req: {:?})", &peer, &req);

        let handler = Arc::clone(&self.handler);
        let config = self.config.clone();
        let local_ip = self.local_ip;
        let engine = Arc::clone(&self.engine);

        // Prepare request future
        let req_fut = async move {
            let (reader, size) = handler
                .lock()
                .await
                .read_req_open(&peer, req.filename.as_ref())
                .await
                .map_err(Error::Packet)?;

            let read_req =
                ReadRequest::init(reader, size, peer, &req, config, local_ip)?;

            // pxe-sidecar patch: the transfer runs on a pool thread.
            let report = read_req.handle(&engine).await;
            handler.lock().await.read_req_done(
                &peer,
                req.filename.as_ref(),
                &report,
            );

            Ok(())
        };

        let reqs_in_progress = Arc::clone(&self.reqs_in_progress);

        // Run request future in a new task
        self.ex
            .spawn(run_req(req_fut, peer, reqs_in_progress, local_ip))
            .detach();
    }

    fn handle_wrq(&self, peer: SocketAddr, req: RwReq) {
        trace!("WRQ recieved (peer: {}, req: {:?})", &peer, &req);

        let handler = Arc::clone(&self.handler);
        let config = self.config.clone();
        let local_ip = self.local_ip;

        // Prepare request future
        let req_fut = async move {
            let mut writer = handler
                .lock()
                .await
                .write_req_open(
                    &peer,
                    req.filename.as_ref(),
                    req.opts.transfer_size,
                )
                .await
                .map_err(Error::Packet)?;

            let mut write_req =
                WriteRequest::init(&mut writer, peer, &req, config, local_ip)
                    .await?;

            write_req.handle().await;

            Ok(())
        };

        let reqs_in_progress = Arc::clone(&self.reqs_in_progress);

        // Run request future in a new task
        self.ex
            .spawn(run_req(req_fut, peer, reqs_in_progress, local_ip))
            .detach();
    }
}

async fn send_error(
    error: Error,
    peer: SocketAddr,
    local_ip: IpAddr,
) -> Result<()> {
    let addr: SocketAddr = SocketAddr::new(local_ip, 0);
    let socket = Async::<UdpSocket>::bind(addr).map_err(Error::Bind)?;

    let data = Packet::Error(error.into()).to_bytes();
    socket.send_to(&data[..], peer).await?;

    Ok(())
}

async fn run_req(
    req_fut: impl Future<Output = Result<()>>,
    peer: SocketAddr,
    reqs_in_progress: Arc<Mutex<HashSet<SocketAddr>>>,
    local_ip: IpAddr,
) {
    if let Err(e) = req_fut.await {
        trace!("Request failed (peer: {}, error: {}", &peer, &e);

        if let Err(e) = send_error(e, peer, local_ip).await {
            trace!("Failed to send error to peer {}: {}", &peer, &e);
        }
    }

    reqs_in_progress.lock().await.remove(&peer);
}
