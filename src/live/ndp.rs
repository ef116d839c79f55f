//! The IPv6 router-solicitation door (decisions in `crate::ndp`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tracing::{debug, info};

use super::Server;
use crate::event::{self, Door, Event, Kind, Level, emit};
use crate::listen::{Interface, RawSocket};
use crate::mac::Mac;
use crate::ndp;

/// Router solicitations and advertisements (src/ndp.rs): remembers the
/// routers it hears, and answers a PXE client's solicitation with "no router
/// here" when, `ndp::WAIT_MS` later, no router has answered it.
pub async fn serve(server: Arc<Server>, sock: Arc<RawSocket>) -> Result<()> {
    let mut buf = vec![0u8; 2048];
    loop {
        let len = sock.recv_incoming(&mut buf, "IPv6 router discovery").await;
        let now = server.now().as_millis() as u64;
        match ndp::parse(&buf[..len]) {
            Err(why) => {
                if event::log_ok() {
                    debug!("IPv6 router discovery frame ignored: {why}");
                }
            }
            Ok(ndp::Ndp::Advertisement { mac, src, lifetime }) => {
                let new = server
                    .routers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .heard(src, now);
                if new {
                    info!(
                        "RA from IPv6 router {src} ({mac}, lifetime {lifetime} s): PXE clients' router solicitations are left to it"
                    );
                }
            }
            Ok(ndp::Ndp::Solicitation { mac, src }) => {
                let (enabled, iface) = {
                    let l = server.live.read().unwrap_or_else(|e| e.into_inner());
                    (l.cfg.proxy.router_hint, l.iface.clone())
                };
                let pxe_ago = server
                    .clients
                    .answered_ago(mac)
                    .map(|d| d.as_millis() as u64);
                let verdict = server
                    .routers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .consider(enabled, mac, src, pxe_ago, now);
                match verdict {
                    Ok(()) => {
                        tokio::spawn(answer_solicitation(
                            server.clone(),
                            sock.clone(),
                            iface,
                            mac,
                            src,
                        ));
                    }
                    // Every host on the LAN solicits routers: only PXE clients are
                    // news; firmware repeats its solicitation while we wait.
                    Err(why) => {
                        let level = match why {
                            ndp::Skip::NotPxe | ndp::Skip::Answered => Level::Debug,
                            _ => Level::Info,
                        };
                        emit(ndp_event(
                            mac,
                            src,
                            level,
                            format!(
                                "RS from {mac} ({src}) via {}: not answered: {why}",
                                iface.name
                            ),
                        ));
                    }
                }
            }
        }
    }
}

async fn answer_solicitation(
    server: Arc<Server>,
    sock: Arc<RawSocket>,
    iface: Interface,
    mac: Mac,
    src: std::net::Ipv6Addr,
) {
    tokio::time::sleep(Duration::from_millis(ndp::WAIT_MS)).await;
    let table = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    let ours = ndp::link_local(&table, &iface.name);
    let now = server.now().as_millis() as u64;
    let verdict = {
        let mut routers = server.routers.lock().unwrap_or_else(|e| e.into_inner());
        match ours {
            Some(ours) => routers.answer(mac, now).map(|()| ours),
            None => {
                routers.cancel(mac);
                Err(ndp::Skip::NoLinkLocal)
            }
        }
    };
    let sent = match verdict {
        Err(why) => Err(format!("not answered: {why}")),
        Ok(ours) => {
            let frame = ndp::no_router_frame(iface.mac, ours, mac, src);
            (sock.send(&frame).await).map_err(|e| format!("sending the RA failed: {e}"))
        }
    };
    let text = match sent {
        Ok(()) => format!(
            "RS from {mac} ({src}) via {}: no IPv6 router answered in {} ms; sent RA \"no router here\" (lifetime 0, no prefixes) so its firmware stops waiting for one (iPXE waits ~15 s)",
            iface.name,
            ndp::WAIT_MS
        ),
        Err(e) => format!("RS from {mac} ({src}) via {}: {e}", iface.name),
    };
    emit(ndp_event(mac, src, Level::Info, text));
}

fn ndp_event(mac: Mac, src: std::net::Ipv6Addr, level: Level, text: String) -> Event {
    Event::new(Door::Ipv6, Kind::RouterHint, level, text)
        .mac(Some(mac))
        .ip(Some(IpAddr::V6(src)))
}
