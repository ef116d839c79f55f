use futures_lite::{AsyncRead, AsyncWrite};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::packet;

/// pxe-sidecar patch: a request as it arrived, before the handler opens it.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// True for WRQ, false for RRQ.
    pub write: bool,
    pub filename: String,
    pub mode: &'static str,
    /// Every option as the client sent it (name, value).
    pub options: Vec<(String, String)>,
}

/// pxe-sidecar patch: how a read transfer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferOutcome {
    /// Every block was acknowledged.
    Complete,
    /// The client sent an ERROR packet (RFC 1350: the transfer ends at once).
    ClientError { code: u16, message: String },
    /// The client stopped acknowledging.
    Timeout,
    /// A local failure (read error, socket error).
    Failed(String),
}

/// pxe-sidecar patch: what a finished read transfer looked like.
#[derive(Debug, Clone)]
pub struct TransferReport {
    /// Data bytes the client acknowledged.
    pub bytes: u64,
    /// Blocks sent again after a timeout.
    pub retransmits: u64,
    pub elapsed: Duration,
    /// The options we accepted in the OACK, as sent ("blksize 1468, tsize 1234").
    pub negotiated: String,
    pub outcome: TransferOutcome,
}

/// Trait for implementing advance handlers.
pub trait Handler: Send {
    type Reader: AsyncRead + Unpin + Send + 'static;
    type Writer: AsyncWrite + Unpin + Send + 'static;

    /// Open `Reader` to serve a read request.
    fn read_req_open(
        &mut self,
        client: &SocketAddr,
        path: &Path,
    ) -> impl Future<Output = Result<(Self::Reader, Option<u64>), packet::Error>>
           + Send;

    /// Open `Writer` to serve a write request.
    fn write_req_open(
        &mut self,
        client: &SocketAddr,
        path: &Path,
        size: Option<u64>,
    ) -> impl Future<Output = Result<Self::Writer, packet::Error>> + Send;

    /// pxe-sidecar patch: called for every RRQ/WRQ before it is opened.
    fn request_received(&mut self, _client: &SocketAddr, _req: &RequestInfo) {}

    /// pxe-sidecar patch: a request refused before opening (malformed, busy).
    fn request_refused(&mut self, _client: &SocketAddr, _why: &str) {}

    /// pxe-sidecar patch: called once a read transfer has ended, either way.
    fn read_req_done(
        &mut self,
        _client: &SocketAddr,
        _path: &Path,
        _report: &TransferReport,
    ) {
    }
}
