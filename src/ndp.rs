//! IPv6 router solicitations from PXE firmware (RFC 4861).
//!
//! iPXE — the NIC ROM of QEMU, KVM and Proxmox guests and of many chainload
//! setups — configures IPv6 beside DHCPv4 and ends `Configuring (net0 …)`
//! only when both are done (ipxe `src/usr/ifmgmt.c`, `ifconf`). On a LAN
//! without an IPv6 router its router solicitations go unanswered until its
//! retry timer gives up (`src/net/ndp.c`, `ipv6conf_expired`): every boot
//! waits ~15 s before its first TFTP request, whatever the DHCP side does.
//!
//! pxe-sidecar ends that wait for the PXE clients it has just answered, and
//! only when no router does: a router answers a solicitation within
//! MAX_RA_DELAY_TIME, 0.5 s (§6.2.6), so after `WAIT_MS` with no router
//! advertisement on the LAN it unicasts to that client an advertisement that
//! announces nothing — router lifetime 0 ("not a default router", §4.2), no
//! M/O flags (no DHCPv6), no prefixes, hop limit, reachable time and retrans
//! timer 0 ("unspecified"). iPXE takes the first solicited advertisement and
//! is done (`ipv6conf_rx_router_advertisement`); a host that gets it changes
//! nothing. It is never multicast, never sent to a machine we did not answer
//! as a PXE client moments before, and never while a real router advertises.
//!
//! This module is the pure part: reading frames, the decision, the reply
//! frame. The socket and the clock are in `serve.rs`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::Ipv6Addr;

use etherparse::{
    Icmpv6Type, NetSlice, PacketBuilder, SlicedPacket, TransportSlice,
    icmpv6::RouterAdvertisementHeader,
};

use crate::mac::Mac;

/// How long a solicitation waits for a real router's answer (§6.2.6:
/// MAX_RA_DELAY_TIME is 0.5 s) before we answer it.
pub const WAIT_MS: u64 = 600;
/// A router seen advertising within this long is taken to be there still:
/// routers advertise unsolicited at least every MaxRtrAdvInterval, at most
/// 1800 s (§6.2.1).
const ROUTER_MEMORY_MS: u64 = 1_800_000;
/// Only machines we answered as PXE clients this recently are in their
/// firmware's network setup: iPXE solicits routers while its DHCP runs.
pub const PXE_RECENT_MS: u64 = 30_000;
/// One answer per machine per this long: firmware takes the first one.
const REPEAT_MS: u64 = 10_000;
/// Bound on remembered answers; the table starts over when it is full.
const MAX_ANSWERED: usize = 4096;

/// ICMPv6 messages are only valid with the hop limit at 255: proof they
/// were not forwarded by a router (§6.1.1, §6.1.2).
const LINK_HOP_LIMIT: u8 = 255;

/// A Neighbor Discovery message this door acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ndp {
    /// A host asks for routers (type 133).
    Solicitation { mac: Mac, src: Ipv6Addr },
    /// A router announces itself (type 134).
    Advertisement {
        mac: Mac,
        src: Ipv6Addr,
        lifetime: u16,
    },
}

/// Why a frame is not a Neighbor Discovery message we act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    NotIcmpv6,
    OtherType,
    HopLimit(u8),
    Code(u8),
    Checksum,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::NotIcmpv6 => write!(f, "not an ICMPv6 frame"),
            Invalid::OtherType => write!(f, "not a router solicitation or advertisement"),
            Invalid::HopLimit(h) => write!(f, "hop limit {h}, not 255 (RFC 4861 §6.1)"),
            Invalid::Code(c) => write!(f, "ICMP code {c}, not 0"),
            Invalid::Checksum => write!(f, "bad ICMPv6 checksum"),
        }
    }
}

/// Reads an Ethernet frame as a router solicitation or advertisement,
/// validated as RFC 4861 §6.1 asks (hop limit 255, code 0, checksum).
pub fn parse(frame: &[u8]) -> Result<Ndp, Invalid> {
    let p = SlicedPacket::from_ethernet(frame).map_err(|_| Invalid::NotIcmpv6)?;
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = &p.link else {
        return Err(Invalid::NotIcmpv6);
    };
    let mac = Mac(eth.source());
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        return Err(Invalid::NotIcmpv6);
    };
    let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else {
        return Err(Invalid::NotIcmpv6);
    };
    let h = ip.header();
    let (src, dst) = (h.source_addr(), h.destination_addr());
    if !matches!(
        icmp.icmp_type(),
        Icmpv6Type::RouterSolicitation | Icmpv6Type::RouterAdvertisement(_)
    ) {
        return Err(Invalid::OtherType);
    }
    if h.hop_limit() != LINK_HOP_LIMIT {
        return Err(Invalid::HopLimit(h.hop_limit()));
    }
    if icmp.code_u8() != 0 {
        return Err(Invalid::Code(icmp.code_u8()));
    }
    // The strict slice refused a message shorter than its IPv6 payload
    // length; the checksum catches a damaged one.
    let sum = icmp
        .icmp_type()
        .calc_checksum(src.octets(), dst.octets(), icmp.payload())
        .map_err(|_| Invalid::Checksum)?;
    if sum != icmp.checksum() {
        return Err(Invalid::Checksum);
    }
    Ok(match icmp.icmp_type() {
        Icmpv6Type::RouterAdvertisement(ra) => Ndp::Advertisement {
            mac,
            src,
            lifetime: ra.router_lifetime,
        },
        _ => Ndp::Solicitation { mac, src },
    })
}

/// Why a solicitation is left unanswered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    Off,
    NotPxe,
    Unspecified,
    Router(Ipv6Addr),
    Answered,
    NoLinkLocal,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::Off => write!(f, "[proxy] router_hint is off"),
            Skip::NotPxe => write!(
                f,
                "not a PXE client we answered in the last {} s",
                PXE_RECENT_MS / 1000
            ),
            Skip::Unspecified => write!(
                f,
                "sent from :: (no address yet), which only a multicast answer reaches"
            ),
            Skip::Router(r) => write!(f, "the IPv6 router {r} advertises on this LAN"),
            Skip::Answered => write!(
                f,
                "answered less than {} s ago, or an answer is on its way",
                REPEAT_MS / 1000
            ),
            Skip::NoLinkLocal => write!(
                f,
                "our interface has no IPv6 link-local address to answer from (IPv6 off)"
            ),
        }
    }
}

/// What the door remembers: the last router heard and whom we answered.
#[derive(Debug, Default)]
pub struct Routers {
    /// The last real router advertisement: when (ms) and from whom.
    heard: Option<(u64, Ipv6Addr)>,
    answered: HashMap<Mac, u64>,
    /// Machines whose solicitation is waiting out `WAIT_MS`: a flood of
    /// solicitations from one machine starts one wait, not one per frame.
    waiting: HashSet<Mac>,
}

impl Routers {
    /// Notes another machine's router advertisement. `true` when this
    /// router was not known before (worth a log line).
    pub fn heard(&mut self, src: Ipv6Addr, now: u64) -> bool {
        let new = self.router(now) != Some(src);
        self.heard = Some((now, src));
        new
    }

    fn router(&self, now: u64) -> Option<Ipv6Addr> {
        self.heard
            .filter(|(t, _)| now.saturating_sub(*t) < ROUTER_MEMORY_MS)
            .map(|(_, r)| r)
    }

    /// Whether a solicitation from `mac` (source address `src`) is worth
    /// waiting `WAIT_MS` on (then `answer` must follow); `pxe_ago` is how
    /// long ago (ms) we answered that machine as a PXE client, if ever.
    pub fn consider(
        &mut self,
        enabled: bool,
        mac: Mac,
        src: Ipv6Addr,
        pxe_ago: Option<u64>,
        now: u64,
    ) -> Result<(), Skip> {
        if !enabled {
            return Err(Skip::Off);
        }
        if pxe_ago.is_none_or(|ago| ago >= PXE_RECENT_MS) {
            return Err(Skip::NotPxe);
        }
        // §6.2.6: a solicitation from :: is answered by multicast to all
        // nodes — which would reach every host on the LAN. Never.
        if src.is_unspecified() {
            return Err(Skip::Unspecified);
        }
        if self.waiting.contains(&mac) {
            return Err(Skip::Answered);
        }
        self.still_needed(mac, now)?;
        if self.waiting.len() >= MAX_ANSWERED {
            self.waiting.clear();
        }
        self.waiting.insert(mac);
        Ok(())
    }

    /// No router advertises, and we have not answered `mac` just now.
    fn still_needed(&self, mac: Mac, now: u64) -> Result<(), Skip> {
        if let Some(r) = self.router(now) {
            return Err(Skip::Router(r));
        }
        if self
            .answered
            .get(&mac)
            .is_some_and(|t| now.saturating_sub(*t) < REPEAT_MS)
        {
            return Err(Skip::Answered);
        }
        Ok(())
    }

    /// The wait ended without an answer to send (we have no address).
    pub fn cancel(&mut self, mac: Mac) {
        self.waiting.remove(&mac);
    }

    /// After the wait: answer unless a router spoke up meanwhile, or we
    /// already answered this machine. Records the answer.
    pub fn answer(&mut self, mac: Mac, now: u64) -> Result<(), Skip> {
        self.waiting.remove(&mac);
        self.still_needed(mac, now)?;
        if self.answered.len() >= MAX_ANSWERED {
            self.answered.clear();
        }
        self.answered.insert(mac, now);
        Ok(())
    }
}

/// The "no router here" advertisement (see the module comment), from our
/// link-local address to the soliciting host, Ethernet-unicast.
pub fn no_router_frame(our_mac: Mac, our_ip: Ipv6Addr, to_mac: Mac, to_ip: Ipv6Addr) -> Vec<u8> {
    let ra = RouterAdvertisementHeader {
        cur_hop_limit: 0,
        managed_address_config: false,
        other_config: false,
        router_lifetime: 0,
    };
    // Reachable time and retrans timer 0 (unspecified), then the source
    // link-layer address option (type 1, 8 bytes), which §6.2.3 says a
    // router SHOULD include.
    let mut payload = [0u8; 16];
    payload[8] = 1;
    payload[9] = 1;
    payload[10..16].copy_from_slice(&our_mac.0);
    let builder = PacketBuilder::ethernet2(our_mac.0, to_mac.0)
        .ipv6(our_ip.octets(), to_ip.octets(), LINK_HOP_LIMIT)
        .icmpv6(Icmpv6Type::RouterAdvertisement(ra));
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    // Writing into a Vec cannot fail, and the payload is far below any limit.
    let _ = builder.write(&mut out, &payload);
    out
}

/// The interface's IPv6 link-local address, from the kernel's table
/// (`/proc/net/if_inet6`: address, ifindex, prefix length, scope 0x20 =
/// link, flags, name). `None` when IPv6 is off there.
pub fn link_local(table: &str, iface: &str) -> Option<Ipv6Addr> {
    table.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 6 || f[5] != iface || f[3] != "20" || f[0].len() != 32 {
            return None;
        }
        let n = u128::from_str_radix(f[0], 16).ok()?;
        Some(Ipv6Addr::from(n))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: Mac = Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    const US: Mac = Mac([2, 0, 0, 0, 0, 2]);

    fn ll(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn solicitation(hop: u8, src: Ipv6Addr) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(CLIENT.0, [0x33, 0x33, 0, 0, 0, 2])
            .ipv6(src.octets(), ll("ff02::2").octets(), hop)
            .icmpv6(Icmpv6Type::RouterSolicitation);
        // reserved word, then the source link-layer address option
        let payload = [0, 0, 0, 0, 1, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56];
        let mut v = Vec::new();
        b.write(&mut v, &payload).unwrap();
        v
    }

    #[test]
    fn reads_ipxes_solicitation_and_checks_rfc4861_validity() {
        let src = ll("fe80::5054:ff:fe12:3456");
        assert_eq!(
            parse(&solicitation(255, src)),
            Ok(Ndp::Solicitation { mac: CLIENT, src })
        );
        // forwarded by a router: hop limit below 255
        assert_eq!(parse(&solicitation(64, src)), Err(Invalid::HopLimit(64)));
        let mut bad = solicitation(255, src);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(parse(&bad), Err(Invalid::Checksum));
        // every truncation is refused without a panic
        let good = solicitation(255, src);
        for n in 0..good.len() {
            assert!(parse(&good[..n]).is_err(), "{n} bytes accepted");
        }
    }

    #[test]
    fn our_advertisement_says_no_router_and_nothing_else() {
        let (ours, theirs) = (ll("fe80::2"), ll("fe80::5054:ff:fe12:3456"));
        let f = no_router_frame(US, ours, CLIENT, theirs);
        assert_eq!(
            parse(&f),
            Ok(Ndp::Advertisement {
                mac: US,
                src: ours,
                lifetime: 0
            })
        );
        // Ethernet unicast to the client, IPv6 to its link-local address
        assert_eq!(&f[..6], &CLIENT.0);
        assert_eq!(&f[38..54], &theirs.octets());
        // no M/O flags, hop limit and timers unspecified
        let icmp = &f[54..];
        assert_eq!(icmp[0], 134);
        assert_eq!(&icmp[4..16], &[0u8; 12]);
        // only the source link-layer address option follows
        assert_eq!(&icmp[16..], &[1, 1, 2, 0, 0, 0, 0, 2]);
    }

    #[test]
    fn answers_only_recent_pxe_clients_only_without_a_router_only_once() {
        let src = ll("fe80::5054:ff:fe12:3456");
        let mut r = Routers::default();
        assert_eq!(r.consider(false, CLIENT, src, Some(1), 10), Err(Skip::Off));
        assert_eq!(r.consider(true, CLIENT, src, None, 10), Err(Skip::NotPxe));
        assert_eq!(
            r.consider(true, CLIENT, src, Some(PXE_RECENT_MS), 10),
            Err(Skip::NotPxe)
        );
        assert_eq!(
            r.consider(true, CLIENT, Ipv6Addr::UNSPECIFIED, Some(1), 10),
            Err(Skip::Unspecified)
        );
        assert_eq!(r.consider(true, CLIENT, src, Some(1), 10), Ok(()));
        // repeats during the wait start no second wait
        assert_eq!(
            r.consider(true, CLIENT, src, Some(1), 20),
            Err(Skip::Answered)
        );
        assert_eq!(r.answer(CLIENT, 10 + WAIT_MS), Ok(()));
        assert_eq!(r.answer(CLIENT, 20 + WAIT_MS), Err(Skip::Answered));
        assert_eq!(
            r.consider(true, CLIENT, src, Some(1), 10 + REPEAT_MS + WAIT_MS),
            Ok(())
        );
        // a router speaks up during the wait: it answers, we do not
        let other = Mac([2, 0, 0, 0, 0, 9]);
        assert_eq!(r.consider(true, other, src, Some(1), 50_000), Ok(()));
        assert!(r.heard(ll("fe80::1"), 50_100));
        assert!(!r.heard(ll("fe80::1"), 50_200));
        assert_eq!(r.answer(other, 50_600), Err(Skip::Router(ll("fe80::1"))));
        // and is remembered for MaxRtrAdvInterval, then forgotten
        assert_eq!(
            r.consider(true, other, src, Some(1), 50_200 + ROUTER_MEMORY_MS - 1),
            Err(Skip::Router(ll("fe80::1")))
        );
        assert_eq!(
            r.consider(true, other, src, Some(1), 50_200 + ROUTER_MEMORY_MS),
            Ok(())
        );
    }

    #[test]
    fn finds_the_link_local_address_in_the_kernel_table() {
        let table = "\
00000000000000000000000000000001 01 80 10 80       lo
fe800000000000000000000000000002 02 40 20 80     eth0
20010db8000000000000000000000002 02 40 00 00     eth0
fe8000000000000000000000000000aa 03 40 20 80     eth1
";
        assert_eq!(link_local(table, "eth0"), Some(ll("fe80::2")));
        assert_eq!(link_local(table, "eth1"), Some(ll("fe80::aa")));
        assert_eq!(link_local(table, "wlan0"), None);
        assert_eq!(link_local("garbage\n\n", "eth0"), None);
    }
}
