//! The frame step: one DHCP datagram heard (on the raw tap, the 4011
//! socket, or in a capture), the server's facts and the clock in; what to
//! send, how, and what was learned out. The live doors and `replay` both
//! call it, so a replay rehearses exactly what the server does on the wire,
//! the rules around the core included (our own frames, other servers'
//! replies, who a request says it is).

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::config::ProxyConfig;
use crate::frame;
use crate::mac::Mac;
use crate::proxy::{
    self, DHCP_CLIENT_PORT, DHCP_SERVER_PORT, Dest, Ignore, Meta, PXE_PORT, Proxy, Reply, Request,
};

/// What the server is, on the link the datagram came from.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub cfg: &'a ProxyConfig,
    pub ip: Ipv4Addr,
    pub mac: Mac,
}

/// One UDP datagram as heard; `src_mac` when the door saw the frame.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    pub src_mac: Option<Mac>,
    pub src: SocketAddrV4,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

impl<'a> Datagram<'a> {
    /// The datagram of a UDP frame.
    pub fn of(udp: &frame::Udp<'a>) -> Datagram<'a> {
        Datagram {
            src_mac: udp.src_mac,
            src: udp.src,
            dst_port: udp.dst.port(),
            payload: udp.payload,
        }
    }

    pub fn meta(&self) -> Meta {
        Meta {
            src: self.src,
            dst_port: self.dst_port,
        }
    }
}

/// Datagrams the step does not hand to the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Our own frame, seen again on the tap.
    OwnFrame,
    /// Another server's offer or ACK on its way to a client (port 68):
    /// part of the client's story, never ours to answer, and no proof of
    /// anything (anyone can forge one).
    ToClient,
    /// Not addressed to a DHCP server port.
    NotServerPort(u16),
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::OwnFrame => f.write_str("our own frame, seen again: dropped"),
            Skip::ToClient => f.write_str("a server's reply to a client: not ours to answer"),
            Skip::NotServerPort(p) => write!(f, "to port {p}, not a DHCP server port"),
        }
    }
}

/// How a request ties its address to its MAC (see `clients.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// The frame's Ethernet source is the `chaddr`.
    Frame(Mac),
    /// No frame seen (the 4011 socket): the neighbour table must agree.
    Neighbour,
    /// Behind a relay the config names: the 4011 step's `chaddr` is all
    /// there is.
    Relayed,
}

/// A request sent from the address it names as its own (`ciaddr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub ip: Ipv4Addr,
    pub mac: Mac,
    pub proof: Proof,
}

/// What the core made of a request.
#[derive(Debug)]
pub struct Decision {
    pub meta: Meta,
    pub outcome: Result<(Request, Result<Reply, Ignore>), Ignore>,
    pub claim: Option<Claim>,
}

/// How a reply leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Send {
    /// A whole Ethernet frame for the raw socket.
    Link(Vec<u8>),
    /// The 4011 ACK, a UDP datagram the kernel routes to the request's
    /// source address and port.
    Routed(SocketAddrV4),
    /// An answer to a relay agent: a whole IPv4/UDP datagram for the raw IP
    /// socket, from our port 67 to the relay's port 67 (RFC 2131 §4.1), so
    /// that router filters passing only 67→67 carry it.
    Relay(Vec<u8>),
}

impl Decision {
    pub fn reply(&self) -> Option<&Reply> {
        self.outcome.as_ref().ok()?.1.as_ref().ok()
    }

    /// How the reply goes out, if there is one.
    pub fn send(&self, facts: &Facts) -> Option<Send> {
        let reply = self.reply()?;
        Some(match reply.dest {
            _ if self.meta.dst_port == PXE_PORT => Send::Routed(reply.dest.addr()),
            Dest::Relay(addr) => Send::Relay(frame::build_ip(
                SocketAddrV4::new(facts.ip, reply.src_port),
                addr,
                &reply.payload,
            )),
            dest => Send::Link(frame::build(
                facts.mac,
                dest.link_mac().unwrap_or(Mac::BROADCAST),
                SocketAddrV4::new(facts.ip, reply.src_port),
                dest.addr(),
                &reply.payload,
            )),
        })
    }
}

/// One datagram through the rules and the core.
pub fn step(core: &mut Proxy, facts: &Facts, d: &Datagram, now_ms: u64) -> Result<Decision, Skip> {
    if d.src_mac == Some(facts.mac) {
        return Err(Skip::OwnFrame);
    }
    match d.dst_port {
        DHCP_SERVER_PORT | PXE_PORT => {}
        DHCP_CLIENT_PORT => return Err(Skip::ToClient),
        p => return Err(Skip::NotServerPort(p)),
    }
    let meta = d.meta();
    let outcome = proxy::classify(d.payload, meta).map(|req| {
        let decision = core.decide(facts.cfg, facts.ip, &req, now_ms);
        (req, decision)
    });
    let claim = outcome
        .as_ref()
        .ok()
        .and_then(|(req, _)| claim(facts.cfg, req, d));
    Ok(Decision {
        meta,
        outcome,
        claim,
    })
}

/// The address a request ties to its MAC: only one sent from the address
/// it names as its own, not relayed.
fn claim(cfg: &ProxyConfig, req: &Request, d: &Datagram) -> Option<Claim> {
    let own =
        *d.src.ip() == req.ciaddr && !req.ciaddr.is_unspecified() && req.giaddr.is_unspecified();
    if !own {
        return None;
    }
    let proof = match d.src_mac {
        Some(m) => Proof::Frame(m),
        None if cfg.relays.iter().any(|r| r.serves(req.ciaddr)) => Proof::Relayed,
        None => Proof::Neighbour,
    };
    Some(Claim {
        ip: req.ciaddr,
        mac: req.mac,
        proof,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn request(ciaddr: Ipv4Addr, giaddr: Ipv4Addr) -> Vec<u8> {
        use dhcproto::v4::{DhcpOption, Message, MessageType};
        use dhcproto::{Encodable, Encoder};
        let mut m = Message::new(
            ciaddr,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            giaddr,
            &[2, 0, 0, 0, 0, 9],
        );
        m.opts_mut()
            .insert(DhcpOption::MessageType(MessageType::Request));
        m.opts_mut().insert(DhcpOption::ClassIdentifier(
            b"PXEClient:Arch:00007:UNDI:003016".to_vec(),
        ));
        let mut b = Vec::new();
        m.encode(&mut Encoder::new(&mut b)).unwrap();
        b
    }

    #[test]
    fn only_a_request_from_its_own_address_claims_it() {
        let raw = config::RawConfig {
            proxy: config::RawProxy {
                relays: vec!["10.9.0.1".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        let cfg = config::validate(raw).unwrap().proxy;
        let facts = Facts {
            cfg: &cfg,
            ip: Ipv4Addr::new(10, 0, 0, 2),
            mac: Mac([2, 0, 0, 0, 0, 2]),
        };
        let me = Ipv4Addr::new(10, 0, 0, 9);
        let run = |src: Ipv4Addr, ciaddr, giaddr, src_mac| {
            let payload = request(ciaddr, giaddr);
            let d = Datagram {
                src_mac,
                src: SocketAddrV4::new(src, 4011),
                dst_port: PXE_PORT,
                payload: &payload,
            };
            step(&mut Proxy::new(), &facts, &d, 0).unwrap().claim
        };
        let chaddr = Mac([2, 0, 0, 0, 0, 9]);
        let frame = Some(Mac([2, 0, 0, 0, 0, 7]));
        assert_eq!(
            run(me, me, Ipv4Addr::UNSPECIFIED, frame),
            Some(Claim {
                ip: me,
                mac: chaddr,
                proof: Proof::Frame(Mac([2, 0, 0, 0, 0, 7]))
            })
        );
        assert_eq!(
            run(me, me, Ipv4Addr::UNSPECIFIED, None).unwrap().proof,
            Proof::Neighbour
        );
        // someone else's address in ciaddr, or a relayed request: no claim
        assert_eq!(
            run(me, Ipv4Addr::new(10, 0, 0, 50), Ipv4Addr::UNSPECIFIED, None),
            None
        );
        assert_eq!(run(me, me, Ipv4Addr::new(10, 9, 0, 1), None), None);
        // behind a named relay, the 4011 step is all there is
        let far = Ipv4Addr::new(10, 9, 0, 77);
        assert_eq!(
            run(far, far, Ipv4Addr::UNSPECIFIED, None).unwrap().proof,
            Proof::Relayed
        );
        // our own frames and other servers' replies never reach the core
        let payload = request(me, Ipv4Addr::UNSPECIFIED);
        let own = Datagram {
            src_mac: Some(facts.mac),
            src: SocketAddrV4::new(me, 68),
            dst_port: 67,
            payload: &payload,
        };
        assert_eq!(
            step(&mut Proxy::new(), &facts, &own, 0).err(),
            Some(Skip::OwnFrame)
        );
        let to_client = Datagram {
            dst_port: 68,
            src_mac: None,
            ..own
        };
        assert_eq!(
            step(&mut Proxy::new(), &facts, &to_client, 0).err(),
            Some(Skip::ToClient)
        );
    }
}
