//! The proxyDHCP core (PXE spec 2.1 §2.2): `classify` turns a datagram into a
//! typed [`Request`] or an [`Ignore`] reason; [`Proxy::decide`] turns a request,
//! the config and the time into a [`Reply`] or an [`Ignore`]. No sockets, no
//! clock reads: the live listener, the pcap replay and the tests drive it alike.

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use dhcproto::v4::{DhcpOption, Flags, HType, Message, MessageType, Opcode};
use dhcproto::{Encodable, Encoder};

use crate::bootp::{self, Bootp, Malformed, opt};
use crate::config::{ClientAction, ProxyConfig};
use crate::event::Level;
use crate::mac::Mac;
use crate::pxe::{self, Arch, BootItem, BootKey, ClientKind};
use crate::rpi::{self, Pi};

pub const DHCP_SERVER_PORT: u16 = 67;
pub const DHCP_CLIENT_PORT: u16 = 68;
pub const PXE_PORT: u16 = 4011;

/// RFC 1542 §3.3 / RFC 2131 §2: BOOTP messages are at least 300 bytes; some
/// PXE ROMs drop shorter replies.
const BOOTP_MIN_LEN: usize = 300;
/// RFC 2132 §9.10: the smallest legal maximum message size, IP+UDP included.
const MIN_MAX_SIZE: usize = 576;
const IP_UDP_HEADERS: usize = 28;

/// DHCP message types we name in logs (RFC 2132 §9.6, RFC 4388).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Msg {
    Discover,
    Offer,
    Request,
    Decline,
    Ack,
    Nak,
    Release,
    Inform,
    Other(u8),
}

impl Msg {
    fn from_code(c: u8) -> Msg {
        match c {
            1 => Msg::Discover,
            2 => Msg::Offer,
            3 => Msg::Request,
            4 => Msg::Decline,
            5 => Msg::Ack,
            6 => Msg::Nak,
            7 => Msg::Release,
            8 => Msg::Inform,
            n => Msg::Other(n),
        }
    }
}

impl fmt::Display for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Msg::Discover => f.write_str("DHCPDISCOVER"),
            Msg::Offer => f.write_str("DHCPOFFER"),
            Msg::Request => f.write_str("DHCPREQUEST"),
            Msg::Decline => f.write_str("DHCPDECLINE"),
            Msg::Ack => f.write_str("DHCPACK"),
            Msg::Nak => f.write_str("DHCPNAK"),
            Msg::Release => f.write_str("DHCPRELEASE"),
            Msg::Inform => f.write_str("DHCPINFORM"),
            Msg::Other(n) => write!(f, "DHCP type {n}"),
        }
    }
}

/// Where a datagram came from and which of our ports it reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub src: SocketAddrV4,
    pub dst_port: u16,
}

/// A PXE or HTTP-boot client's request, read once into types.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub meta: Meta,
    pub msg: Msg,
    pub mac: Mac,
    pub xid: u32,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub hops: u8,
    pub kind: ClientKind,
    pub arch: Arch,
    pub vendor_class: String,
    pub user_class: Option<String>,
    /// Option 175 present: the client runs iPXE.
    pub ipxe_options: bool,
    pub uuid: Option<Vec<u8>>,
    pub max_size: Option<u16>,
    pub server_id: Option<Ipv4Addr>,
    /// Option 50: in a REQUEST for the router's lease, the address the
    /// client is about to use (our TFTP/HTTP logs name the MAC with it).
    pub requested_ip: Option<Ipv4Addr>,
    pub boot_item: Option<BootItem>,
    /// A Raspberry Pi's bootloader (arch 0, but no PC).
    pub pi: Option<Pi>,
}

impl Request {
    /// iPXE says so in option 175 (its encapsulated options) or a user class
    /// of exactly `iPXE` (option 77).
    pub fn is_ipxe(&self) -> bool {
        self.ipxe_options || self.user_class.as_deref() == Some("iPXE")
    }

    pub fn broadcast(&self) -> bool {
        self.flags & 0x8000 != 0
    }
}

/// Why we stay silent. Every variant reads as a log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ignore {
    #[error("malformed: {0}")]
    Malformed(#[from] Malformed),
    #[error("BOOTREPLY (op 2) from another server")]
    Reply,
    #[error("op {0} is neither BOOTREQUEST nor BOOTREPLY")]
    BadOp(u8),
    #[error("plain BOOTP (no DHCP magic cookie)")]
    NotDhcp,
    #[error("no DHCP message type (option 53)")]
    NoMessageType,
    #[error("hardware type {htype} / length {hlen} is not Ethernet")]
    NotEthernet { htype: u8, hlen: u8 },
    #[error("not a PXE client (vendor class {0})")]
    NotPxe(String),
    #[error("{0} is not for a proxy")]
    Unhandled(Msg),
    #[error("{msg} on port {port}: a proxy answers DISCOVER on 67 and REQUEST/INFORM on 4011")]
    WrongPort { msg: Msg, port: u16 },
    #[error("REQUEST for the lease offered by {0} (not us)")]
    OtherServer(Ipv4Addr),
    #[error("REQUEST on 67 names us as server but a proxy grants no lease")]
    LeaseFromUs,
    #[error("{0} is not in [proxy] allow")]
    NotAllowed(Mac),
    #[error("{0} matches a [[clients]] rule with ignore = true")]
    RuleIgnore(Mac),
    #[error(
        "no boot file for {arch}: set [boot] {key} (the client will show PXE-E53: No boot filename received)"
    )]
    NoBootFile { arch: Arch, key: BootKey },
    #[error(
        "{0} has no [boot] key; set [proxy] unknown_arch to answer it (the client will show PXE-E53)"
    )]
    UnknownArch(Arch),
    #[error("menu item {0:#06x} is not in [[menu.items]]")]
    UnknownBootItem(u16),
    #[error("menu item 0 is local boot: nothing to send")]
    LocalBoot,
    #[error(
        "client already runs iPXE and would get the iPXE binary {0} again (boot loop): set [boot] ipxe to an iPXE script"
    )]
    ChainloadLoop(String),
    #[error("reply of {size} bytes exceeds the client's maximum message size {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("could not encode the reply: {0}")]
    Encode(String),
    #[error("more than {MAX_PER_WINDOW} requests in {WINDOW_MS} ms from {0}: flood, ignoring")]
    RateLimited(Mac),
    #[error(
        "more than {MAX_REPLIES_PER_SECOND} replies in one second from all clients together: flood (rotating MACs?), ignoring"
    )]
    Overloaded,
    #[error(
        "relayed by {relay}, which is not in [proxy] relays (add it there to boot clients behind it)"
    )]
    UnknownRelay { relay: Ipv4Addr, first: bool },
    #[error(
        "4011 request from {0}, which is neither on our subnet nor behind a relay in [proxy] relays: no reply sent off the LAN"
    )]
    OffLink(Ipv4Addr),
}

impl Ignore {
    /// How much a person running the server needs to hear of it: `Warn`
    /// when a PXE client will fail and the config can fix it, or someone
    /// tries what we refuse; `Info` for silences chosen by the config or
    /// a flood; `Debug` for what every LAN is full of (other DHCP clients,
    /// other servers' traffic, the router's lease).
    pub fn level(&self) -> Level {
        match self {
            Ignore::NoBootFile { .. }
            | Ignore::UnknownArch(_)
            | Ignore::ChainloadLoop(_)
            | Ignore::TooLarge { .. }
            | Ignore::UnknownBootItem(_)
            | Ignore::UnknownRelay { first: true, .. }
            | Ignore::OffLink(_) => Level::Warn,
            Ignore::NotAllowed(_)
            | Ignore::RuleIgnore(_)
            | Ignore::RateLimited(_)
            | Ignore::Overloaded
            | Ignore::Malformed(_)
            | Ignore::BadOp(_)
            | Ignore::NotEthernet { .. } => Level::Info,
            _ => Level::Debug,
        }
    }
}

/// What the firmware says it is: `PXEClient:Arch:00007:UNDI:003016, arch 7 EFI BC`,
/// or `Raspberry Pi 4 serial 6aee7243, PXEClient:Arch:00000:UNDI:002001`
/// (its arch 0 is not a BIOS).
pub fn describe_firmware(req: &Request) -> String {
    match &req.pi {
        Some(pi) => format!("{pi}, {}", req.vendor_class),
        None => format!("{}, {}", req.vendor_class, req.arch),
    }
}

/// Reads a datagram that reached port 67 or 4011.
pub fn classify(payload: &[u8], meta: Meta) -> Result<Request, Ignore> {
    let m = Bootp::parse(payload)?;
    match m.op {
        1 => {}
        2 => return Err(Ignore::Reply),
        n => return Err(Ignore::BadOp(n)),
    }
    if !m.has_cookie {
        return Err(Ignore::NotDhcp);
    }
    let msg = Msg::from_code(m.message_type().ok_or(Ignore::NoMessageType)?);
    let vc = m.option(opt::VENDOR_CLASS).unwrap_or_default();
    // RFC 4578 §2.1: option 93 is a list of u16; the first is the one in use.
    let opt93 = m
        .option(opt::ARCH)
        .and_then(|a| a.get(..2))
        .map(|a| u16::from_be_bytes([a[0], a[1]]));
    let kind = ClientKind::from_vendor_class(vc, opt93).ok_or_else(|| {
        Ignore::NotPxe(if vc.is_empty() {
            "absent".into()
        } else {
            format!("`{}`", printable(vc))
        })
    })?;
    if m.htype != 1 || m.hlen != 6 {
        return Err(Ignore::NotEthernet {
            htype: m.htype,
            hlen: m.hlen,
        });
    }
    let mac = Mac(m.chaddr.try_into().map_err(|_| Ignore::NotEthernet {
        htype: m.htype,
        hlen: m.hlen,
    })?);
    // Without option 93, the Arch field of option 60, else BIOS (PXE spec 2.1 default).
    let arch_code = opt93
        .or_else(|| pxe::arch_from_vendor_class(vc))
        .unwrap_or(0);
    let ip = |code| {
        m.option(code)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(Ipv4Addr::from)
    };
    let pi = match kind {
        ClientKind::Pxe => rpi::recognise(mac, arch_code, m.option(opt::UUID)),
        ClientKind::Http => None,
    };
    Ok(Request {
        meta,
        msg,
        mac,
        pi,
        xid: m.xid,
        flags: m.flags,
        ciaddr: m.ciaddr,
        giaddr: m.giaddr,
        hops: m.hops,
        kind,
        arch: Arch::from_code(arch_code),
        vendor_class: printable(vc),
        user_class: m.option(opt::USER_CLASS).map(printable),
        ipxe_options: m.option(opt::IPXE).is_some(),
        // RFC 4578 §2.3: type 0 followed by a 16-byte GUID; echoed verbatim.
        uuid: m.option(opt::UUID).map(<[u8]>::to_vec),
        max_size: m
            .option(opt::MAX_SIZE)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map(u16::from_be_bytes),
        server_id: ip(opt::SERVER_ID),
        requested_ip: ip(opt::REQUESTED_IP),
        boot_item: m.option(opt::VENDOR).and_then(pxe::boot_item),
    })
}

/// Bytes from the wire shown safely in a log line.
pub fn printable(b: &[u8]) -> String {
    let b = &b[..b.len().min(128)];
    b.iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                (c as char).to_string()
            } else {
                format!("\\x{c:02x}")
            }
        })
        .collect()
}

/// Where a reply goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// 255.255.255.255:68, Ethernet broadcast.
    Broadcast,
    /// Unicast to a client on our link: IP and its MAC.
    Unicast(SocketAddrV4, Mac),
    /// To a relay agent (giaddr:67); routed by the kernel.
    Relay(SocketAddrV4),
}

impl Dest {
    /// The Ethernet destination on our link; None for a relay, which is
    /// reached through routing.
    pub fn link_mac(self) -> Option<Mac> {
        match self {
            Dest::Broadcast => Some(Mac::BROADCAST),
            Dest::Unicast(_, m) => Some(m),
            Dest::Relay(_) => None,
        }
    }

    pub fn addr(self) -> SocketAddrV4 {
        match self {
            Dest::Broadcast => SocketAddrV4::new(Ipv4Addr::BROADCAST, DHCP_CLIENT_PORT),
            Dest::Unicast(a, _) | Dest::Relay(a) => a,
        }
    }
}

/// What the client is told to boot, and why that one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    pub file: String,
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub msg: Msg,
    pub dest: Dest,
    /// Our UDP source port: 67 for offers, 4011 for boot-server ACKs.
    pub src_port: u16,
    pub boot: Boot,
    /// The encoded DHCP message (UDP payload).
    pub payload: Vec<u8>,
}

/// Requests per MAC allowed in one window before we call it a flood. Real
/// firmware retries a DISCOVER at 4, 8, 16, 32 s (PXE spec 2.1 §2.2.1).
const MAX_PER_WINDOW: u32 = 20;
const WINDOW_MS: u64 = 10_000;
/// How many clients we remember; the least recently seen is forgotten first.
const MAX_CLIENTS: usize = 4096;
/// Replies a second for all clients together: a 10,000-machine power-on
/// storm spreads over several seconds (firmware retries at 4, 8, 16 s).
const MAX_REPLIES_PER_SECOND: u32 = 5000;

#[derive(Debug, Clone, Copy)]
struct Seen {
    window_start: u64,
    count: u32,
    last: u64,
}

/// The core. Its only state is a bounded per-MAC request counter for flood
/// control; everything else is a function of config, request and time.
#[derive(Debug, Default)]
pub struct Proxy {
    seen: HashMap<Mac, Seen>,
    /// Our link's subnet (address, prefix length), when the shell knows it:
    /// 4011 ACKs go only there or behind a configured relay.
    link: Option<Vec<(Ipv4Addr, u8)>>,
    /// Replies in the current second, for all clients together.
    second: (u64, u32),
    /// Unknown relays already reported (bounded).
    relays_reported: Vec<Ipv4Addr>,
}

impl Proxy {
    pub fn new() -> Proxy {
        Proxy::default()
    }

    /// Sets our link's subnet (the shell reads it off the interface).
    pub fn set_link(&mut self, link: Option<Vec<(Ipv4Addr, u8)>>) {
        self.link = link;
    }

    /// RFC 2131 §4.1 sends a relayed request's answer to `giaddr`: only a
    /// relay the config names may make us send one off the LAN, and a
    /// 4011 ACK (sent to the request's source) goes only to our subnet or
    /// to one behind such a relay.
    fn check_route(
        &mut self,
        cfg: &ProxyConfig,
        req: &Request,
        on_4011: bool,
    ) -> Result<(), Ignore> {
        let giaddr = req.giaddr;
        if !giaddr.is_unspecified() && !cfg.relays.iter().any(|r| r.addr == giaddr) {
            let first = !self.relays_reported.contains(&giaddr);
            if first && self.relays_reported.len() < 256 {
                self.relays_reported.push(giaddr);
            }
            return Err(Ignore::UnknownRelay {
                relay: giaddr,
                first,
            });
        }
        let src = *req.meta.src.ip();
        if on_4011
            && let Some(link) = &self.link
            && !src.is_unspecified()
            && !link
                .iter()
                .any(|&(net, len)| crate::config::in_subnet(src, net, len))
            && !cfg.relays.iter().any(|r| r.serves(src))
        {
            return Err(Ignore::OffLink(src));
        }
        Ok(())
    }

    /// At most [`MAX_REPLIES_PER_SECOND`] replies a second in all: a flood
    /// from rotating MACs passes the per-MAC limit, not this one.
    fn count_all(&mut self, now: u64) -> Result<(), Ignore> {
        let sec = now / 1000;
        if self.second.0 != sec {
            self.second = (sec, 0);
        }
        self.second.1 += 1;
        if self.second.1 > MAX_REPLIES_PER_SECOND {
            return Err(Ignore::Overloaded);
        }
        Ok(())
    }

    /// Decides what to send. `server` is our IPv4 address on the client's
    /// link; `now_ms` is a monotonic time in milliseconds (capture time in replay).
    pub fn decide(
        &mut self,
        cfg: &ProxyConfig,
        server: Ipv4Addr,
        req: &Request,
        now_ms: u64,
    ) -> Result<Reply, Ignore> {
        if !cfg.allowed(req.mac) {
            return Err(Ignore::NotAllowed(req.mac));
        }
        let on_4011 = match req.meta.dst_port {
            PXE_PORT => true,
            DHCP_SERVER_PORT => false,
            port => return Err(Ignore::WrongPort { msg: req.msg, port }),
        };
        let reply_msg = match (req.msg, on_4011) {
            (Msg::Discover, false) => Msg::Offer,
            (Msg::Request | Msg::Inform, true) => Msg::Ack,
            // Boot server discovery by broadcast (PXE spec 2.1 §2.2.5): a
            // REQUEST on 67 carrying a boot item, addressed to nobody or to us.
            (Msg::Request, false)
                if req.boot_item.is_some() && req.server_id.is_none_or(|s| s == server) =>
            {
                Msg::Ack
            }
            (Msg::Request, false) => {
                return Err(match req.server_id {
                    Some(s) if s == server => Ignore::LeaseFromUs,
                    Some(s) => Ignore::OtherServer(s),
                    None => Ignore::Unhandled(req.msg),
                });
            }
            (Msg::Discover, true) | (Msg::Inform, false) => {
                return Err(Ignore::WrongPort {
                    msg: req.msg,
                    port: req.meta.dst_port,
                });
            }
            (m, _) => return Err(Ignore::Unhandled(m)),
        };
        self.check_route(cfg, req, on_4011)?;
        self.count(req.mac, now_ms)?;
        self.count_all(now_ms)?;
        let boot = choose_boot(cfg, req)?;
        let payload = encode(cfg, server, req, reply_msg, &boot)?;
        Ok(Reply {
            msg: reply_msg,
            dest: destination(req, on_4011),
            src_port: if on_4011 { PXE_PORT } else { DHCP_SERVER_PORT },
            boot,
            payload,
        })
    }

    fn count(&mut self, mac: Mac, now: u64) -> Result<(), Ignore> {
        if !self.seen.contains_key(&mac) && self.seen.len() >= MAX_CLIENTS {
            self.make_room(now);
        }
        let s = self.seen.entry(mac).or_insert(Seen {
            window_start: now,
            count: 0,
            last: now,
        });
        if now.saturating_sub(s.window_start) >= WINDOW_MS || now < s.window_start {
            s.window_start = now;
            s.count = 0;
        }
        s.last = now;
        s.count += 1;
        if s.count > MAX_PER_WINDOW {
            return Err(Ignore::RateLimited(mac));
        }
        Ok(())
    }
}

impl Proxy {
    /// Forgets clients whose window has passed (they hold no flood state),
    /// or else the least recently seen sixteenth: one scan buys room for
    /// many new clients, so a storm of distinct MACs costs no scan per
    /// request (a scan per request once full took 16 % of the storm bench's
    /// CPU).
    fn make_room(&mut self, now: u64) {
        self.seen
            .retain(|_, s| now.saturating_sub(s.last) < WINDOW_MS && now >= s.last);
        if self.seen.len() < MAX_CLIENTS {
            return;
        }
        let mut lasts: Vec<u64> = self.seen.values().map(|s| s.last).collect();
        let cut = MAX_CLIENTS / 16;
        let (_, &mut threshold, _) = lasts.select_nth_unstable(cut);
        // cut + 1 entries are at or below the threshold: at least one goes
        let mut left = cut.max(1);
        self.seen.retain(|_, s| {
            let old = s.last <= threshold && left > 0;
            if old {
                left -= 1;
            }
            !old
        });
    }
}

/// An iPXE binary by name: undionly.kpxe, ipxe.pxe, ipxe.efi, snponly.efi …
pub fn looks_like_ipxe(file: &str) -> bool {
    let base = file.rsplit('/').next().unwrap_or(file).to_ascii_lowercase();
    base.contains("ipxe")
        || base.ends_with(".kpxe")
        || base.ends_with(".kkpxe")
        || base.ends_with(".kkkpxe")
        || base.starts_with("snp")
}

fn choose_boot(cfg: &ProxyConfig, req: &Request) -> Result<Boot, Ignore> {
    let rule = cfg.rule_for(req.mac).map(|r| &r.action);
    if rule == Some(&ClientAction::Ignore) {
        return Err(Ignore::RuleIgnore(req.mac));
    }
    // A Pi gets its menu, never a PC's loader: its files come by name.
    if req.pi.is_some() {
        return Ok(Boot {
            file: String::new(),
            reason: "Raspberry Pi",
        });
    }
    if let Some(ClientAction::Boot(f)) = rule {
        return Ok(Boot {
            file: f.clone(),
            reason: "[[clients]] rule",
        });
    }
    // U-Boot's `pxe get` finds pxelinux.cfg/default-arm by itself: the
    // offer only names the server (siaddr), for a U-Boot that reads proxies.
    if req.arch.is_uboot() {
        return Ok(Boot {
            file: String::new(),
            reason: "U-Boot",
        });
    }
    if let Some(item) = req.boot_item {
        if item.item_type == 0 {
            return Err(Ignore::LocalBoot);
        }
        let m = cfg
            .menu
            .iter()
            .find(|m| m.entry.item_type == item.item_type)
            .ok_or(Ignore::UnknownBootItem(item.item_type))?;
        if let Some(f) = &m.file {
            return Ok(Boot {
                file: f.clone(),
                reason: "menu item",
            });
        }
    }
    if req.kind == ClientKind::Pxe
        && req.is_ipxe()
        && let Some(script) = &cfg.boot.ipxe
    {
        return Ok(Boot {
            file: script.clone(),
            reason: "iPXE script",
        });
    }
    let arch = match (req.arch.boot_key(), cfg.unknown_arch) {
        (Some(_), _) => req.arch,
        (None, Some(fallback)) => fallback,
        (None, None) => return Err(Ignore::UnknownArch(req.arch)),
    };
    // An HTTP client asking for an HTTP arch needs a URL; a PXE client that
    // names an HTTP arch code gets nothing useful from a URL either way.
    let file = cfg.boot.for_arch(arch).ok_or(Ignore::NoBootFile {
        arch,
        key: arch.boot_key().unwrap_or(BootKey::Bios),
    })?;
    if req.kind == ClientKind::Pxe && req.is_ipxe() && looks_like_ipxe(file) {
        return Err(Ignore::ChainloadLoop(file.to_string()));
    }
    Ok(Boot {
        file: file.to_string(),
        reason: if arch == req.arch {
            "architecture"
        } else {
            "[proxy] unknown_arch"
        },
    })
}

/// RFC 2131 §4.1: replies go to giaddr when relayed, to ciaddr when the client
/// has an address and did not ask for broadcast, else broadcast (yiaddr is 0
/// in a proxy offer, so the unicast-to-yiaddr case never applies).
/// On 4011 the client has an address: always answer its source address and port.
fn destination(req: &Request, on_4011: bool) -> Dest {
    let src = req.meta.src;
    if on_4011 && !src.ip().is_unspecified() {
        return Dest::Unicast(src, req.mac);
    }
    if !req.giaddr.is_unspecified() {
        return Dest::Relay(SocketAddrV4::new(req.giaddr, DHCP_SERVER_PORT));
    }
    if !req.ciaddr.is_unspecified() && !req.broadcast() {
        return Dest::Unicast(SocketAddrV4::new(req.ciaddr, DHCP_CLIENT_PORT), req.mac);
    }
    Dest::Broadcast
}

fn encode(
    cfg: &ProxyConfig,
    server: Ipv4Addr,
    req: &Request,
    reply: Msg,
    boot: &Boot,
) -> Result<Vec<u8>, Ignore> {
    let mut m = Message::new_with_id(
        req.xid,
        // 4011 ACK: echo ciaddr (PXE spec 2.1 §2.2.6); offers carry none.
        if reply == Msg::Ack {
            req.ciaddr
        } else {
            Ipv4Addr::UNSPECIFIED
        },
        Ipv4Addr::UNSPECIFIED, // never an address: we are a proxy
        server,
        req.giaddr,
        &req.mac.0,
    );
    m.set_opcode(Opcode::BootReply)
        .set_htype(HType::Eth)
        .set_hops(req.hops)
        .set_flags(Flags::new(req.flags));
    let file = boot.file.as_bytes();
    if file.len() < 128 {
        m.set_fname(file);
    }
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(if reply == Msg::Offer {
        MessageType::Offer
    } else {
        MessageType::Ack
    }));
    o.insert(DhcpOption::ServerIdentifier(server));
    o.insert(DhcpOption::ClassIdentifier(req.kind.reply_class().to_vec()));
    if let Some(uuid) = &req.uuid {
        o.insert(DhcpOption::ClientMachineIdentifier(uuid.clone()));
    }
    // A Pi ignores option 67 (and a PC's file would mislead it); U-Boot
    // takes an empty one as "no directory" for its pxelinux.cfg search.
    if !file.is_empty() {
        o.insert(DhcpOption::BootfileName(file.to_vec()));
    }
    if req.kind == ClientKind::Pxe {
        o.insert(DhcpOption::TFTPServerName(server.to_string().into_bytes()));
        // Option 43 is for BIOS ROMs (and iPXE) only: EDK2 treats an offer
        // carrying it as "PXE 1.0" and does multicast discovery instead of
        // asking us on 4011 (observed OVMF behaviour; pcaps/qemu-ovmf-uefi-x64.pcap).
        let vendor = match (reply, req.boot_item) {
            _ if let Some(pi) = &req.pi => Some(pi.vendor_options(server.octets())),
            (Msg::Ack, Some(item)) => Some(pxe::ack_options(item)),
            (Msg::Offer, _) if !req.arch.is_efi() && !req.arch.is_uboot() => {
                let menu: Vec<_> = cfg.menu.iter().map(|m| m.entry.clone()).collect();
                let prompt = cfg.prompt.as_ref().map(|(t, s)| (t.as_str(), *s));
                Some(pxe::offer_options(&menu, prompt, server.octets()))
            }
            _ => None,
        };
        if let Some(v) = vendor {
            o.insert(DhcpOption::VendorExtensions(v));
        }
    }
    let mut buf = Vec::with_capacity(BOOTP_MIN_LEN);
    m.encode(&mut Encoder::new(&mut buf))
        .map_err(|e| Ignore::Encode(e.to_string()))?;
    if buf.len() < BOOTP_MIN_LEN {
        buf.resize(BOOTP_MIN_LEN, 0);
    }
    let limit = req
        .max_size
        .map_or(MIN_MAX_SIZE, |s| (s as usize).max(MIN_MAX_SIZE))
        - IP_UDP_HEADERS;
    if buf.len() > limit {
        return Err(Ignore::TooLarge {
            size: buf.len(),
            limit,
        });
    }
    debug_assert!(bootp::Bootp::parse(&buf).is_ok());
    Ok(buf)
}

/// A best-effort "MAC message-type" for datagrams `classify` refused, so an
/// ignore line still says whose packet it was.
pub fn peek(payload: &[u8], meta: Meta) -> String {
    let port = meta.dst_port;
    match Bootp::parse(payload) {
        Ok(m) if m.hlen == 6 => {
            let mac = Mac(m.chaddr.try_into().unwrap_or([0; 6]));
            let what = m.message_type().map_or_else(
                || format!("BOOTP op {}", m.op),
                |t| Msg::from_code(t).to_string(),
            );
            if m.op == 2 {
                let server = m
                    .option(opt::SERVER_ID)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map_or(meta.src.ip().to_string(), |a| Ipv4Addr::from(a).to_string());
                format!("{what} from server {server} to {mac} port {port}")
            } else {
                format!("{what} from {mac} to port {port}")
            }
        }
        _ => format!("{} bytes from {} to port {port}", payload.len(), meta.src),
    }
}

/// `DHCPDISCOVER from 52:54:00:12:34:56 to port 67 (PXEClient:Arch:00007:UNDI:003016, arch 7 EFI BC)`
pub fn describe_request(req: &Request) -> String {
    let mut extra = String::new();
    if req.is_ipxe() {
        extra.push_str(", iPXE");
    }
    if let Some(item) = req.boot_item {
        extra.push_str(&format!(", menu item {:#06x}", item.item_type));
    }
    if !req.ciaddr.is_unspecified() {
        extra.push_str(&format!(", ciaddr {}", req.ciaddr));
    }
    format!(
        "{} from {} to port {} ({}{extra})",
        req.msg,
        req.mac,
        req.meta.dst_port,
        describe_firmware(req)
    )
}

/// `proxy DHCPOFFER to 52:54:00:12:34:56 at 255.255.255.255:68: boot file syslinux.efi from 10.0.0.2 (architecture)`
pub fn describe_reply(req: &Request, reply: &Reply, server: Ipv4Addr) -> String {
    let what = if reply.msg == Msg::Offer {
        "proxy DHCPOFFER"
    } else {
        "DHCPACK"
    };
    if let Some(pi) = &req.pi {
        let next = match (pi.board, &pi.serial) {
            (rpi::Board::Named(_, fam), Some(s)) => {
                format!("; it asks for {s}/{} next", fam.first_file())
            }
            _ => String::new(),
        };
        let warn = if pi.takes_tftp_from_router() {
            "; but the Pi 3 boot ROM takes its TFTP server from the router's offer, not from a proxy: it will not load files from us (have the router's DHCP name this server as next-server, or boot it from an SD card holding bootcode.bin)"
        } else {
            ""
        };
        return format!(
            "{what} to {} at {}: menu \"{}\", TFTP from {server} ({pi}{next}){warn}",
            req.mac,
            reply.dest.addr(),
            pi.menu_text().trim_end(),
        );
    }
    if req.arch.is_uboot() && reply.boot.file.is_empty() {
        return format!(
            "{what} to {} at {}: TFTP from {server} for `pxe get` ({}) ({}); {}",
            req.mac,
            reply.dest.addr(),
            crate::pxe::UBOOT_CONFIG,
            reply.boot.reason,
            uboot_advice(server)
        );
    }
    let noun = if req.kind == ClientKind::Http {
        "boot URL"
    } else {
        "boot file"
    };
    format!(
        "{what} to {} at {}: {noun} {} from {server} ({})",
        req.mac,
        reply.dest.addr(),
        reply.boot.file,
        reply.boot.reason
    )
}

/// Why a U-Boot board may still not boot from us, and the one line that
/// fixes it on the board. U-Boot's DHCP ignores an offer without an
/// address (net/bootp.c); only a build with CONFIG_SERVERIP_FROM_PROXYDHCP
/// reads a proxy's siaddr. Debian's u-boot-qemu 2023.01 takes the router's
/// offer and TFTPs from the router's siaddr (seen in tests/e2e.rs).
pub fn uboot_advice(server: impl fmt::Display) -> String {
    format!(
        "U-Boot reads a proxy's offer only when built with CONFIG_SERVERIP_FROM_PROXYDHCP; otherwise it takes its TFTP server from the router's offer and `pxe get` fails with \"Retry count exceeded\". On the board, once: setenv autoload no; setenv bootcmd 'dhcp; setenv serverip {server}; pxe get && pxe boot'; saveenv"
    )
}

/// How loud a reply's log line is: a warning where the board is known to
/// ignore what we send.
pub fn reply_level(req: &Request) -> Level {
    let pi3 = req.pi.as_ref().is_some_and(Pi::takes_tftp_from_router);
    if pi3 || req.arch.is_uboot() {
        Level::Warn
    } else {
        Level::Info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A storm of distinct MACs keeps the table bounded, forgets the
    /// longest unseen, and still catches a flooding MAC among them.
    #[test]
    fn the_flood_table_stays_bounded_under_a_storm() {
        let mut p = Proxy::default();
        let mac = |i: u32| Mac([2, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8, 1]);
        for i in 0..20_000u32 {
            assert!(p.count(mac(i), u64::from(i) / 2).is_ok());
            assert!(p.seen.len() <= MAX_CLIENTS);
        }
        assert!(p.seen.contains_key(&mac(19_999)));
        assert!(!p.seen.contains_key(&mac(0)));
        let now = 10_000;
        let flood = (0..=MAX_PER_WINDOW).map(|_| p.count(mac(7), now)).last();
        assert!(matches!(flood, Some(Err(Ignore::RateLimited(_)))));
        // a quiet spell: everyone's window passed, one scan frees them all
        p.make_room(now + WINDOW_MS + 1);
        assert!(p.seen.is_empty());
    }
}
