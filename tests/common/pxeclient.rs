//! A PXE client made of raw frames, for tests inside a namespace host: it
//! sends DISCOVERs like firmware (from 0.0.0.0:68, broadcast) and records
//! every DHCP reply on the wire, so what it reports is a capture, not our log.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, Message, MessageType, OptionCode};
use pxe_sidecar::frame::{self, Link};

use super::{Client, decode};

#[derive(Debug, Clone)]
pub struct Seen {
    pub msg: Option<MessageType>,
    pub server_id: Option<Ipv4Addr>,
    pub src: SocketAddrV4,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub file: String,
    pub vendor_class: Option<Vec<u8>>,
    pub at: Duration,
}

impl Seen {
    pub fn is_proxy_offer(&self) -> bool {
        self.yiaddr.is_unspecified() && self.vendor_class.as_deref() == Some(b"PXEClient")
    }
}

pub fn seen(m: &Message, src: SocketAddrV4, at: Duration) -> Seen {
    let f = m.fname().unwrap_or_default();
    let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
    Seen {
        msg: m.opts().msg_type(),
        server_id: match m.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
            _ => None,
        },
        src,
        yiaddr: m.yiaddr(),
        siaddr: m.siaddr(),
        file: String::from_utf8_lossy(&f[..end]).to_string(),
        vendor_class: match m.opts().get(OptionCode::ClassIdentifier) {
            Some(DhcpOption::ClassIdentifier(v)) => Some(v.clone()),
            _ => None,
        },
        at,
    }
}

/// Sends each client's DISCOVER from this host's eth0 and collects every
/// reply to port 68 for `wait`. Replies are matched to clients by xid+MAC.
pub fn discover_all(clients: &[Client], wait: Duration) -> Vec<Vec<Seen>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sock = super::raw_eth0();
        let start = Instant::now();
        for c in clients {
            sock.send(&super::discover_frame(c)).await.unwrap();
        }
        let mut out = vec![Vec::new(); clients.len()];
        let mut buf = vec![0u8; 65536];
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(got) =
            tokio::time::timeout_at(deadline, sock.recv_incoming(&mut buf, "test client")).await
        {
            let Some(u) = frame::udp(Link::Ethernet, &buf[..got]) else {
                continue;
            };
            if u.dst.port() != 68 {
                continue;
            }
            let m = decode(u.payload);
            if let Some(i) = clients
                .iter()
                .position(|c| c.mac[..] == m.chaddr()[..6] && m.xid() == c.xid)
            {
                out[i].push(seen(&m, u.src, start.elapsed()));
            }
        }
        out
    })
}

pub fn discover(c: &Client, wait: Duration) -> Vec<Seen> {
    discover_all(std::slice::from_ref(c), wait).remove(0)
}

/// The 4011 step: REQUEST from `src_port` to the boot server, one ACK back.
pub fn request_4011(c: &Client, server: Ipv4Addr, src_port: u16, wait: Duration) -> Option<Seen> {
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, src_port)).unwrap();
    sock.set_read_timeout(Some(wait)).unwrap();
    sock.send_to(&c.encode(), (server, 4011)).unwrap();
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    loop {
        let (n, from) = sock.recv_from(&mut buf).ok()?;
        let m = decode(&buf[..n]);
        if m.xid() == c.xid {
            let std::net::SocketAddr::V4(src) = from else {
                return None;
            };
            return Some(seen(&m, src, start.elapsed()));
        }
    }
}
