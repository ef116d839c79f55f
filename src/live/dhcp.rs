//! The port 67 door: DHCP frames from the raw packet tap (it receives
//! beside another DHCP server holding `*:67`, see `listen.rs`), proxy
//! offers back as whole frames on the link, relayed answers routed.

use std::sync::Arc;

use anyhow::Result;
use tracing::{debug, warn};

use super::Server;
use crate::event;
use crate::frame::{self, Link};
use crate::listen::{RawIp, RawSocket};
use crate::proxy;
use crate::step::{Datagram, Send, Skip};

pub async fn serve(server: Arc<Server>, raw: RawSocket, relay: RawIp) -> Result<()> {
    let mut buf = vec![0u8; 65_536];
    loop {
        let len = raw.recv_incoming(&mut buf, "DHCP").await;
        let Some(udp) = frame::udp(Link::Ethernet, &buf[..len]) else {
            continue;
        };
        let d = Datagram::of(&udp);
        let p = match server.process(&d) {
            Ok(p) => p,
            Err(Skip::ToClient) => {
                if event::log_ok() {
                    debug!("{}", proxy::peek(udp.payload, d.meta()));
                }
                continue;
            }
            Err(_) => continue,
        };
        let sent = match &p.send {
            Some(Send::Link(frame)) => raw.send(frame).await,
            // relay agents are routed, not on our link: the kernel routes it
            Some(Send::Relay(datagram)) => match p.decision.reply() {
                Some(reply) => relay.send(datagram, *reply.dest.addr().ip()).await,
                None => Ok(()),
            },
            // the 4011 door's own
            Some(Send::Routed(_)) | None => Ok(()),
        };
        if let (Err(e), Some(reply)) = (sent, p.decision.reply()) {
            warn!("sending {} to {}: {e}", reply.msg, reply.dest.addr());
        }
        server.log(&p, udp.payload);
    }
}
