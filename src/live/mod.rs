//! The live shell's DHCP side: the state the doors share and the step
//! every DHCP datagram goes through (the frame step of `step.rs`, what it
//! learned applied, its events reported). One door, one module: port 67
//! (`dhcp.rs`), port 4011 (`pxe.rs`), IPv6 router solicitations (`ndp.rs`).

pub mod dhcp;
pub mod ndp;
pub mod pxe;

use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tracing::{debug, info};

use crate::clients::Clients;
use crate::config::Config;
use crate::event::{self, Door, Event, Kind, Level, emit};
use crate::files::Tree;
use crate::listen::Interface;

use crate::proxy::{self, Meta, PXE_PORT, Proxy};
use crate::step::{self, Datagram, Decision, Facts, Send, Skip};

/// What SIGHUP and a changing address replace.
pub struct Live {
    pub cfg: Config,
    pub iface: Interface,
}

/// What the doors share.
pub struct Server {
    pub live: RwLock<Live>,
    pub clients: Clients,
    pub tree: Arc<RwLock<Tree>>,
    pub core: Mutex<Proxy>,
    /// The NDP door's memory (routers heard, clients answered).
    pub routers: Mutex<crate::ndp::Routers>,
    pub started: Instant,
}

impl Server {
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// The frame step (src/step.rs) on one datagram; nothing slower than
    /// the decision here, so the reply leaves first.
    pub fn process(&self, d: &Datagram) -> Result<Processed, Skip> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        let facts = Facts {
            cfg: &live.cfg.proxy,
            ip: live.iface.ipv4,
            mac: live.iface.mac,
        };
        let now = self.now().as_millis() as u64;
        let decision = step::step(
            &mut self.core.lock().unwrap_or_else(|e| e.into_inner()),
            &facts,
            d,
            now,
        )?;
        let send = decision.send(&facts);
        if let Ok((req, Ok(_))) = &decision.outcome {
            self.clients.answered(
                req.mac,
                crate::pxe::Family::of(req.arch, req.is_ipxe(), req.pi.is_some()),
            );
        }
        Ok(Processed {
            decision,
            send,
            iface: live.iface.clone(),
        })
    }

    /// After its reply was sent: the address claim of one datagram taken
    /// (it may read the neighbour table), and its events reported.
    pub fn log(&self, p: &Processed, payload: &[u8]) {
        let meta = p.decision.meta;
        if let Some(c) = p.decision.claim
            && let Err(shown) = self.clients.claim(&c)
        {
            emit(
                Event::new(
                    door_of(meta),
                    Kind::Identity,
                    Level::Warn,
                    format!(
                        "{} claims {} in a request, but {shown} is known at that address: not taken as that machine's address",
                        c.mac, c.ip
                    ),
                )
                .mac(Some(c.mac))
                .ip(Some(IpAddr::V4(c.ip))),
            );
        }
        let (req, decision) = match &p.decision.outcome {
            Ok(x) => x,
            // no client to name (not PXE, malformed): a log line only
            Err(why) => {
                if event::log_ok() {
                    let who = proxy::peek(payload, meta);
                    match why.level() {
                        Level::Debug => debug!(src = %meta.src, "{who}: ignored: {why}"),
                        _ => info!(src = %meta.src, "{who}: ignored: {why}"),
                    }
                }
                return;
            }
        };
        let ip = Some(IpAddr::V4(*meta.src.ip()));
        let ev = |kind, level, text: String| {
            Event::new(door_of(meta), kind, level, text)
                .mac(Some(req.mac))
                .ip(ip)
        };
        emit(
            ev(
                Kind::Request,
                Level::Info,
                format!("{} via {}", proxy::describe_request(req), p.iface.name),
            )
            .firmware(proxy::describe_firmware(req)),
        );
        match decision {
            Ok(reply) => {
                emit(ev(
                    Kind::Reply,
                    proxy::reply_level(req),
                    proxy::describe_reply(req, reply, p.iface.ipv4),
                ));
                let tftp_on = self
                    .live
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .cfg
                    .tftp
                    .enabled;
                if !tftp_on && !reply.boot.file.contains("://") {
                    emit(ev(
                        Kind::Reply,
                        Level::Warn,
                        format!(
                            "{} will fetch {} by TFTP from {}, but [tftp] is off here: unless another TFTP server answers there, it stops with PXE-E32: TFTP open timeout",
                            req.mac, reply.boot.file, p.iface.ipv4
                        ),
                    ));
                }
            }
            Err(why) => emit(ev(
                Kind::NotAnswered,
                why.level(),
                format!("{} not answered: {why}", req.mac),
            )),
        }
    }
}

/// The door a datagram came in by: port 4011 is the boot-server step.
fn door_of(meta: Meta) -> Door {
    if meta.dst_port == PXE_PORT {
        Door::Pxe
    } else {
        Door::Dhcp
    }
}

/// What one datagram came to, kept until its reply is on the wire so that
/// formatting the log lines never delays the reply.
pub struct Processed {
    pub decision: Decision,
    pub send: Option<Send>,
    pub iface: Interface,
}
