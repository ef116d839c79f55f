//! pxe-sidecar patch: who is calling.
//!
//! The file system methods get no request context, yet a server that keeps
//! per-client areas or checks permissions needs the client's socket address
//! and its `AUTH_UNIX` credential. Every RPC is handled inside
//! [`CALLER`]'s scope, so [`current`] answers from any `NfsReadFileSystem`
//! method awaited by the handler.

use std::cell::RefCell;
use std::net::SocketAddr;

use nfs3_types::rpc::auth_unix;

/// The peer of the RPC being handled.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The client's socket address (`None` if the transport has none).
    pub addr: Option<SocketAddr>,
    /// The `AUTH_UNIX` credential, `None` for `AUTH_NULL` and other flavors.
    pub auth: Option<auth_unix>,
}

tokio::task_local! {
    pub(crate) static CALLER: RefCell<Caller>;
}

/// The caller of the RPC being handled, or `None` outside a handler.
#[must_use]
pub fn current() -> Option<Caller> {
    CALLER.try_with(|c| c.borrow().clone()).ok()
}
