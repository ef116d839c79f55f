//! Link/IP/UDP framing around DHCP payloads: reading captured or raw-socket
//! frames (Ethernet, Linux cooked v1/v2, raw IP, BSD loopback) and building
//! reply frames with correct IPv4 and UDP checksums (etherparse).

use std::net::SocketAddrV4;

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, PacketBuilder, TransportSlice};

use crate::mac::Mac;

/// LINKTYPE_* values (tcpdump.org/linktypes.html) that we can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Null,
    Ethernet,
    Raw,
    LinuxSll,
    LinuxSll2,
}

impl Link {
    /// The upper 16 bits of the pcap link-type field carry flags (FCS length);
    /// only the low 16 bits name the link type.
    pub fn from_linktype(code: u32) -> Option<Link> {
        match code & 0xffff {
            0 => Some(Link::Null),
            1 => Some(Link::Ethernet),
            101 | 12 | 14 => Some(Link::Raw),
            113 => Some(Link::LinuxSll),
            276 => Some(Link::LinuxSll2),
            _ => None,
        }
    }
}

/// A UDP/IPv4 datagram pulled out of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Udp<'a> {
    pub src_mac: Option<Mac>,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub payload: &'a [u8],
}

/// Reads a frame down to UDP over IPv4. `None` for anything else (ARP, IPv6,
/// TCP, a frame too short to hold the headers); a truncated UDP payload is
/// returned as far as it was captured, and the DHCP reader rejects it.
pub fn udp(link: Link, frame: &[u8]) -> Option<Udp<'_>> {
    let (src_mac, pkt) = match link {
        Link::Ethernet => {
            let p = LaxSlicedPacket::from_ethernet(frame).ok()?;
            let mac = match &p.link {
                Some(etherparse::LinkSlice::Ethernet2(e)) => Some(Mac(e.source())),
                _ => None,
            };
            (mac, p)
        }
        Link::Raw => (None, LaxSlicedPacket::from_ip(frame).ok()?),
        Link::Null => {
            // 4-byte address family in the capturing host's byte order; AF_INET is 2.
            let fam = frame.get(..4)?;
            if u32::from_le_bytes(fam.try_into().ok()?) != 2
                && u32::from_be_bytes(fam.try_into().ok()?) != 2
            {
                return None;
            }
            (None, LaxSlicedPacket::from_ip(&frame[4..]).ok()?)
        }
        Link::LinuxSll => {
            // 16-byte header: packet type, ARPHRD, addr len, 8-byte addr, protocol.
            let proto = u16::from_be_bytes(frame.get(14..16)?.try_into().ok()?);
            let mac = sll_mac(frame.get(4..6)?, frame.get(6..14)?);
            (
                mac,
                LaxSlicedPacket::from_ether_type(EtherType(proto), frame.get(16..)?),
            )
        }
        Link::LinuxSll2 => {
            // 20-byte header: protocol first, address length at 11, address at 12.
            let proto = u16::from_be_bytes(frame.get(0..2)?.try_into().ok()?);
            let mac = sll_mac(&[0, *frame.get(11)?], frame.get(12..20)?);
            (
                mac,
                LaxSlicedPacket::from_ether_type(EtherType(proto), frame.get(20..)?),
            )
        }
    };
    let (src_ip, dst_ip) = match &pkt.net {
        Some(LaxNetSlice::Ipv4(ip)) => (ip.header().source_addr(), ip.header().destination_addr()),
        _ => return None,
    };
    match &pkt.transport {
        Some(TransportSlice::Udp(u)) => Some(Udp {
            src_mac,
            src: SocketAddrV4::new(src_ip, u.source_port()),
            dst: SocketAddrV4::new(dst_ip, u.destination_port()),
            payload: u.payload(),
        }),
        _ => None,
    }
}

fn sll_mac(len: &[u8], addr: &[u8]) -> Option<Mac> {
    (u16::from_be_bytes([len[0], len[1]]) == 6).then(|| Mac(addr[..6].try_into().unwrap_or([0; 6])))
}

/// Builds an IPv4 / UDP datagram (TTL 64, checksums filled in) for a raw
/// IP socket: the kernel routes it and adds the link header.
pub fn build_ip(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let b =
        PacketBuilder::ipv4(src.ip().octets(), dst.ip().octets(), 64).udp(src.port(), dst.port());
    let mut out = Vec::with_capacity(b.size(payload.len()));
    // Writing into a Vec cannot fail for payloads that fit a UDP datagram.
    if b.write(&mut out, payload).is_err() {
        out.clear();
    }
    out
}

/// Builds an Ethernet II / IPv4 / UDP frame (TTL 64, checksums filled in).
pub fn build(
    src_mac: Mac,
    dst_mac: Mac,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src_mac.0, dst_mac.0)
        .ipv4(src.ip().octets(), dst.ip().octets(), 64)
        .udp(src.port(), dst.port());
    let mut out = Vec::with_capacity(b.size(payload.len()));
    // Writing into a Vec cannot fail for payloads that fit a UDP datagram.
    if b.write(&mut out, payload).is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn build_then_read_back() {
        let src = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 67);
        let dst = SocketAddrV4::new(Ipv4Addr::BROADCAST, 68);
        let f = build(Mac([2, 0, 0, 0, 0, 1]), Mac::BROADCAST, src, dst, b"hello");
        let u = udp(Link::Ethernet, &f).unwrap();
        assert_eq!(u.src, src);
        assert_eq!(u.dst, dst);
        assert_eq!(u.payload, b"hello");
        assert_eq!(u.src_mac, Some(Mac([2, 0, 0, 0, 0, 1])));
        assert!(udp(Link::Ethernet, &f[..20]).is_none());
        assert!(udp(Link::Raw, &f[14..]).is_some());
        assert_eq!(build_ip(src, dst, b"hello"), f[14..]);
        assert!(udp(Link::Null, &[]).is_none());
        assert!(udp(Link::LinuxSll2, &[0; 5]).is_none());
        // Linux cooked v1: 16-byte header, protocol at 14, address at 6.
        let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&f[14..]);
        let u = udp(Link::LinuxSll, &sll).unwrap();
        assert_eq!((u.src, u.payload), (src, &b"hello"[..]));
        assert_eq!(u.src_mac, Some(Mac([2, 0, 0, 0, 0, 1])));
        // Linux cooked v2: 20-byte header, protocol first, address length at 11.
        let mut sll2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0,
        ];
        sll2.extend_from_slice(&f[14..]);
        let u = udp(Link::LinuxSll2, &sll2).unwrap();
        assert_eq!((u.src, u.dst, u.payload), (src, dst, &b"hello"[..]));
        assert_eq!(u.src_mac, Some(Mac([2, 0, 0, 0, 0, 1])));
        // BSD loopback: 4-byte family (AF_INET = 2) in host order.
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(&f[14..]);
        assert_eq!(udp(Link::Null, &null).unwrap().payload, b"hello");
        assert_eq!(Link::from_linktype(0x0400_0001), Some(Link::Ethernet));
        assert_eq!(Link::from_linktype(276), Some(Link::LinuxSll2));
        assert_eq!(Link::from_linktype(127), None);
    }
}
