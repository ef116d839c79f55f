//! The port 4011 door: the boot-server step (PXE spec 2.1 §2.2.6). A UDP
//! socket bound to the serving interface; ACKs go back to the request's
//! source address and port, on our subnets or behind a named relay.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::UdpSocket;
use tracing::warn;

use super::Server;
use crate::listen::{self, Interface};
use crate::proxy::PXE_PORT;
use crate::step::{Datagram, Send};

pub fn bind(iface: &Interface) -> Result<UdpSocket> {
    let std = std::net::UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, PXE_PORT))).with_context(|| {
        format!("binding UDP port 4011 (PXE boot server) on {}: is another PXE server running? (ss -ulpn 'sport = 4011')", iface.name)
    })?;
    listen::bind_to_device(std.as_raw_fd(), &iface.name).with_context(|| {
        format!(
            "SO_BINDTODEVICE {} on the 4011 socket (needs CAP_NET_RAW)",
            iface.name
        )
    })?;
    std.set_broadcast(true)?;
    std.set_nonblocking(true)?;
    Ok(UdpSocket::from_std(std)?)
}

pub async fn serve(server: Arc<Server>, sock: Arc<UdpSocket>) -> Result<()> {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                warn!("port 4011 receive failed: {e}");
                continue;
            }
        };
        let SocketAddr::V4(src) = from else { continue };
        let d = Datagram {
            src_mac: None,
            src,
            dst_port: PXE_PORT,
            payload: &buf[..n],
        };
        let Ok(p) = server.process(&d) else { continue };
        if let (Some(Send::Routed(addr)), Some(reply)) = (&p.send, p.decision.reply())
            && let Err(e) = sock.send_to(&reply.payload, SocketAddr::V4(*addr)).await
        {
            warn!("sending {} to {addr}: {e}", reply.msg);
        }
        server.log(&p, &buf[..n]);
    }
}
