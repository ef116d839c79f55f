//! The sockets of the proxy door: a raw AF_PACKET socket with a kernel BPF
//! filter for UDP to ports 67/68 on one interface (it receives even when
//! another DHCP server on this host holds *:67, as Pixiecore does), and the
//! interface facts (MAC, IPv4, up) the replies are built from.
//!
//! pnet enumerates interfaces; the packet socket itself is opened here with
//! libc because pnet's datalink channel cannot attach a BPF filter, and
//! without one every frame on a busy LAN would wake us.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::unix::AsyncFd;

use crate::mac::Mac;

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(
        "interface {0} does not exist (see `ip link`; set `interface` in the config or --interface)"
    )]
    NoSuchInterface(String),
    #[error("interface {0} is down (bring it up: ip link set {0} up)")]
    Down(String),
    #[error(
        "interface {0} has no IPv4 address (give it one, or set server_ip if it gets one later)"
    )]
    NoIpv4(String),
    #[error("interface {0} has no MAC address: not an Ethernet interface")]
    NoMac(String),
    #[error(
        "no default route to pick an interface from: set `interface` in the config or --interface"
    )]
    NoDefaultRoute,
    #[error(
        "opening a raw packet socket on {iface} needs CAP_NET_RAW: run as root, or grant it (setcap cap_net_raw,cap_net_bind_service=ep $(which pxe-sidecar), or the systemd unit's AmbientCapabilities)"
    )]
    NeedCapNetRaw { iface: String },
    #[error("{what} on {iface}: {source}")]
    Io {
        what: &'static str,
        iface: String,
        source: io::Error,
    },
}

/// What we know about the serving interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    pub mac: Mac,
    pub ipv4: Ipv4Addr,
    /// Every IPv4 subnet on the interface (address, prefix length).
    pub subnets: Vec<(Ipv4Addr, u8)>,
}

/// One up route of /proc/net/route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub iface: String,
    pub dest: Ipv4Addr,
    pub prefix: u8,
    /// Unspecified for a route on the link.
    pub gateway: Ipv4Addr,
}

/// The up routes of a /proc/net/route text: addresses are hex in host
/// (little-endian) byte order; flag 0x1 is RTF_UP.
pub fn routes(table: &str) -> Vec<Route> {
    let addr = |x: &str| {
        u32::from_str_radix(x, 16)
            .ok()
            .map(|v| Ipv4Addr::from(v.swap_bytes()))
    };
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let flags = u16::from_str_radix(f.get(3)?, 16).ok()?;
            let mask = addr(f.get(7)?)?;
            (flags & 1 != 0).then_some(())?;
            Some(Route {
                iface: f[0].to_string(),
                dest: addr(f[1])?,
                prefix: u32::from(mask).leading_ones() as u8,
                gateway: addr(f[2])?,
            })
        })
        .collect()
}

/// The most specific route to `ip`, as the kernel would pick it.
pub fn route_to(routes: &[Route], ip: Ipv4Addr) -> Option<&Route> {
    routes
        .iter()
        .filter(|r| crate::config::in_subnet(ip, r.dest, r.prefix))
        .max_by_key(|r| r.prefix)
}

/// The interface of the IPv4 default route, from /proc/net/route.
pub fn default_route_interface() -> Result<String, ListenError> {
    let table =
        std::fs::read_to_string("/proc/net/route").map_err(|_| ListenError::NoDefaultRoute)?;
    routes(&table)
        .into_iter()
        .find(|r| r.prefix == 0)
        .map(|r| r.iface)
        .ok_or(ListenError::NoDefaultRoute)
}

/// Resolves the interface the config names, or the default route's.
pub fn resolve(cfg: &crate::config::Config) -> Result<Interface, ListenError> {
    let name = match &cfg.interface {
        Some(n) => n.clone(),
        None => default_route_interface()?,
    };
    lookup(&name, cfg.server_ip)
}

/// Looks the interface up now. `want_ip` pins the address when the config names one.
pub fn lookup(name: &str, want_ip: Option<Ipv4Addr>) -> Result<Interface, ListenError> {
    let i = pnet::datalink::interfaces()
        .into_iter()
        .find(|i| i.name == name)
        .ok_or_else(|| ListenError::NoSuchInterface(name.to_string()))?;
    if !i.is_up() {
        return Err(ListenError::Down(name.to_string()));
    }
    let mac = i.mac.ok_or_else(|| ListenError::NoMac(name.to_string()))?;
    let subnets: Vec<(Ipv4Addr, u8)> = i
        .ips
        .iter()
        .filter_map(|n| match n.ip() {
            std::net::IpAddr::V4(a) => Some((a, n.prefix())),
            _ => None,
        })
        .collect();
    let ipv4 = match want_ip {
        Some(ip) => ip,
        None => {
            subnets
                .first()
                .ok_or_else(|| ListenError::NoIpv4(name.to_string()))?
                .0
        }
    };
    Ok(Interface {
        name: i.name,
        index: i.index,
        mac: Mac(mac.octets()),
        ipv4,
        subnets,
    })
}

/// One classic BPF instruction (Documentation/networking/filter.rst).
const fn op(code: u32, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// Classic BPF (Documentation/networking/filter.rst) accepting IPv4 UDP
/// datagrams to port 67 or 68 that are not later fragments; everything else
/// is dropped in the kernel. Jump offsets count from the next instruction.
fn dhcp_filter() -> [libc::sock_filter; 12] {
    use libc::{
        BPF_ABS, BPF_B, BPF_H, BPF_IND, BPF_JEQ, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_LDX,
        BPF_MSH, BPF_RET,
    };
    [
        /* 0 */ op(BPF_LD | BPF_H | BPF_ABS, 0, 0, 12), // ethertype
        /* 1 */ op(BPF_JMP | BPF_JEQ | BPF_K, 0, 9, 0x0800), // not IPv4: drop
        /* 2 */ op(BPF_LD | BPF_B | BPF_ABS, 0, 0, 23), // IP protocol
        /* 3 */ op(BPF_JMP | BPF_JEQ | BPF_K, 0, 7, 17), // not UDP: drop
        /* 4 */ op(BPF_LD | BPF_H | BPF_ABS, 0, 0, 20), // flags + fragment offset
        /* 5 */ op(BPF_JMP | BPF_JSET | BPF_K, 5, 0, 0x1fff), // later fragment: drop
        /* 6 */ op(BPF_LDX | BPF_B | BPF_MSH, 0, 0, 14), // X = IP header length
        /* 7 */ op(BPF_LD | BPF_H | BPF_IND, 0, 0, 16), // UDP destination port
        /* 8 */ op(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 67),
        /* 9 */ op(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 68),
        /* 10 */ op(BPF_RET | BPF_K, 0, 0, 0x4_0000), // accept the whole frame
        /* 11 */ op(BPF_RET | BPF_K, 0, 0, 0), // drop
    ]
}

/// <linux/if_packet.h>; not exported by the libc crate for this target.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// A non-blocking AF_PACKET socket bound to one interface, with the filter.
pub struct RawSocket {
    fd: AsyncFd<OwnedFd>,
    ifindex: u32,
}

/// A frame as received, with whether the kernel saw it leave this host.
struct Received {
    len: usize,
    outgoing: bool,
}

/// Router solicitations and advertisements (ICMPv6 types 133/134, RFC 4861)
/// directly after the IPv6 header — the NDP door (src/ndp.rs).
fn ndp_filter() -> [libc::sock_filter; 9] {
    use libc::{BPF_ABS, BPF_B, BPF_H, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET};
    [
        /* 0 */ op(BPF_LD | BPF_H | BPF_ABS, 0, 0, 12), // ethertype
        /* 1 */ op(BPF_JMP | BPF_JEQ | BPF_K, 0, 6, 0x86dd), // not IPv6: drop
        /* 2 */ op(BPF_LD | BPF_B | BPF_ABS, 0, 0, 20), // next header
        /* 3 */ op(BPF_JMP | BPF_JEQ | BPF_K, 0, 4, 58), // not ICMPv6: drop
        /* 4 */ op(BPF_LD | BPF_B | BPF_ABS, 0, 0, 54), // ICMPv6 type
        /* 5 */ op(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 133), // router solicitation
        /* 6 */ op(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 134), // router advertisement
        /* 7 */ op(BPF_RET | BPF_K, 0, 0, 0x4_0000), // accept the whole frame
        /* 8 */ op(BPF_RET | BPF_K, 0, 0, 0), // drop
    ]
}

impl RawSocket {
    /// DHCP over IPv4: UDP to ports 67 and 68.
    pub fn open(iface: &Interface) -> Result<RawSocket, ListenError> {
        Self::open_filtered(iface, &dhcp_filter(), libc::ETH_P_ALL)
    }

    /// Router solicitations and advertisements. Joins the all-routers
    /// Ethernet group (33:33:00:00:00:02, RFC 2464 §7) so that a NIC's
    /// multicast filter passes solicitations to us.
    ///
    /// Bound to IPv6 frames only, unlike the DHCP tap: the frames that
    /// matter for speed here are IPv4 (TFTP, NFS), and an all-protocols
    /// tap runs for each of them on the CPU that delivers it (a TFTP ACK
    /// went through two taps). The price is paid by IPv6 frames alone,
    /// which the IPv6 stack then receives shared and clones.
    pub fn open_ndp(iface: &Interface) -> Result<RawSocket, ListenError> {
        let sock = Self::open_filtered(iface, &ndp_filter(), libc::ETH_P_IPV6)?;
        // SAFETY: packet_mreq is plain data; zeroed is a valid value.
        let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
        mreq.mr_ifindex = iface.index as i32;
        mreq.mr_type = libc::PACKET_MR_MULTICAST as u16;
        mreq.mr_alen = 6;
        mreq.mr_address[..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 2]);
        // SAFETY: `mreq` is a valid packet_mreq of the size given.
        let rc = unsafe {
            libc::setsockopt(
                sock.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                &mreq as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::packet_mreq>() as u32,
            )
        };
        if rc < 0 {
            return Err(ListenError::Io {
                what: "joining the all-routers multicast group",
                iface: iface.name.clone(),
                source: io::Error::last_os_error(),
            });
        }
        Ok(sock)
    }

    /// Opens the socket for `ethertype` and lets the filter pick. The DHCP
    /// tap takes every ethertype (ETH_P_ALL), not ETH_P_IP: the kernel hands
    /// a frame to the all-protocols taps first and to the IP stack last, so
    /// a tap whose filter drops the frame leaves the IP stack the sole owner
    /// of it; a socket bound to one ethertype on one device is served
    /// *after* the IP stack (`dev->ptype_specific`, net/core/dev.c), which
    /// then receives every IPv4 datagram of the interface as a shared buffer
    /// and clones it (`skb_share_check` in `ip_rcv_core`). With a busy TFTP
    /// door that was one extra clone per ACK on the CPU that delivers it.
    fn open_filtered(
        iface: &Interface,
        filter: &[libc::sock_filter],
        ethertype: libc::c_int,
    ) -> Result<RawSocket, ListenError> {
        let io_err = |what| {
            let e = io::Error::last_os_error();
            ListenError::Io {
                what,
                iface: iface.name.clone(),
                source: e,
            }
        };
        let proto = (ethertype as u16).to_be();
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw: RawFd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                proto as i32,
            )
        };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::EPERM) {
                ListenError::NeedCapNetRaw {
                    iface: iface.name.clone(),
                }
            } else {
                ListenError::Io {
                    what: "opening a raw packet socket",
                    iface: iface.name.clone(),
                    source: e,
                }
            });
        }
        // SAFETY: `raw` is a fresh, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // Attach the filter before binding so no unfiltered frame is queued.
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at `filter`, which outlives the call.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                &prog as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::sock_fprog>() as u32,
            )
        };
        if rc < 0 {
            return Err(io_err("attaching the BPF filter"));
        }
        // An all-protocols tap also sees every frame the host sends out of the
        // interface, each cloned for it before the filter runs; a TFTP transfer
        // would pay one clone per DATA block. PACKET_IGNORE_OUTGOING (Linux
        // 4.20+) opts out; older kernels refuse it, and `recv` still drops
        // outgoing frames there.
        let one: libc::c_int = 1;
        // SAFETY: an int option on our own socket.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_IGNORE_OUTGOING,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = iface.index as i32;
        // SAFETY: `sll` is a valid sockaddr_ll of the size given.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc < 0 {
            return Err(io_err("binding the raw packet socket"));
        }
        // SAFETY: we own `fd` and move it into the AsyncFd, which closes it.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| ListenError::Io {
            what: "registering the raw socket",
            iface: iface.name.clone(),
            source: e.into(),
        })?;
        Ok(RawSocket {
            fd,
            ifindex: iface.index,
        })
    }

    /// Asks for a larger kernel receive queue so a boot storm is queued, not
    /// dropped. SO_RCVBUFFORCE passes rmem_max with CAP_NET_ADMIN; without it
    /// the plain SO_RCVBUF (capped by the kernel) is the best we get.
    pub fn set_recv_buffer(&self, bytes: i32) {
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
            // SAFETY: an int option on our own socket.
            let rc = unsafe {
                libc::setsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    &bytes as *const i32 as *const libc::c_void,
                    std::mem::size_of::<i32>() as u32,
                )
            };
            if rc == 0 {
                return;
            }
        }
    }

    /// Waits for the next frame another host sent and returns its length. A
    /// failed receive is logged (naming the door, `what`) and retried after a
    /// pause, so a door never stops listening.
    pub async fn recv_incoming(&self, buf: &mut [u8], what: &str) -> usize {
        loop {
            match self.recv(buf).await {
                Ok(got) if got.outgoing => continue,
                Ok(got) => return got.len,
                Err(e) => {
                    tracing::error!("{what} raw socket receive failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Receives one frame. On kernels without PACKET_IGNORE_OUTGOING, frames
    /// we sent ourselves show up too (PACKET_OUTGOING): `outgoing` says so,
    /// and `recv_incoming` drops them.
    async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        loop {
            let mut guard = self.fd.readable().await?;
            let res = guard.try_io(|fd| {
                // SAFETY: sockaddr_ll is plain data.
                let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                // SAFETY: buf and sll are valid for the lengths passed.
                let n = unsafe {
                    libc::recvfrom(
                        fd.as_raw_fd(),
                        buf.as_mut_ptr() as *mut libc::c_void,
                        buf.len(),
                        libc::MSG_TRUNC,
                        &mut sll as *mut _ as *mut libc::sockaddr,
                        &mut len,
                    )
                };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(Received {
                    // MSG_TRUNC returns the real length; never report more than we hold.
                    len: (n as usize).min(buf.len()),
                    outgoing: sll.sll_pkttype == libc::PACKET_OUTGOING,
                })
            });
            match res {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    pub async fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain data.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(frame.get(..6).unwrap_or(&[0xff; 6]));
        send_to(&self.fd, frame, &sll).await
    }
}

/// A raw IPv4 socket (IPPROTO_RAW: we write the IP and UDP headers) for
/// answers to relay agents. They must leave from UDP port 67 (RFC 2131
/// §4.1), which the router's DHCP server may hold on this host; the kernel
/// still routes them. Not bound to the interface: a relay may be reached
/// through any route.
pub struct RawIp {
    fd: AsyncFd<OwnedFd>,
}

impl RawIp {
    pub fn open(iface: &Interface) -> Result<RawIp, ListenError> {
        // SAFETY: plain socket(2) call; the result is checked below.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::IPPROTO_RAW,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => ListenError::NeedCapNetRaw {
                    iface: iface.name.clone(),
                },
                _ => ListenError::Io {
                    what: "opening the raw IP socket for answers to DHCP relays",
                    iface: iface.name.clone(),
                    source: e,
                },
            });
        }
        // SAFETY: fd is a fresh descriptor we own.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: we own `owned` and move it into the AsyncFd, which closes it.
        let fd = unsafe { AsyncFd::register(owned) }.map_err(|e| ListenError::Io {
            what: "registering the raw IP socket",
            iface: iface.name.clone(),
            source: e.into(),
        })?;
        Ok(RawIp { fd })
    }

    /// Sends one IPv4 datagram (built by `frame::build_ip`) to `dst`.
    pub async fn send(&self, datagram: &[u8], dst: Ipv4Addr) -> io::Result<()> {
        // SAFETY: sockaddr_in is plain data.
        let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sin.sin_family = libc::AF_INET as u16;
        sin.sin_addr.s_addr = u32::from_ne_bytes(dst.octets());
        send_to(&self.fd, datagram, &sin).await
    }
}

/// sendto(2) on a non-blocking socket, waiting while it would block; `A`
/// is the socket's address type (sockaddr_ll, sockaddr_in).
async fn send_to<A>(fd: &AsyncFd<OwnedFd>, bytes: &[u8], addr: &A) -> io::Result<()> {
    loop {
        let mut guard = fd.writable().await?;
        let res = guard.try_io(|fd| {
            // SAFETY: bytes and addr are valid for the lengths passed, and A
            // is the sockaddr type of this socket's family.
            let n = unsafe {
                libc::sendto(
                    fd.as_raw_fd(),
                    bytes.as_ptr() as *const libc::c_void,
                    bytes.len(),
                    0,
                    addr as *const A as *const libc::sockaddr,
                    std::mem::size_of::<A>() as u32,
                )
            };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        });
        match res {
            Ok(r) => return r,
            Err(_would_block) => continue,
        }
    }
}

/// SO_BINDTODEVICE: the 4011 socket hears only the serving interface.
pub fn bind_to_device(fd: RawFd, iface: &str) -> io::Result<()> {
    // SAFETY: the name pointer and length describe a valid byte string.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            iface.as_ptr() as *const libc::c_void,
            iface.len() as u32,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_interface_is_named() {
        let e = lookup("nope-does-not-exist0", None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("nope-does-not-exist0") && e.contains("does not exist"),
            "{e}"
        );
    }

    #[test]
    fn routes_read_like_the_kernel_picks_them() {
        // `ip route`: default via 10.84.0.254, 10.84.0.0/24 on eth0,
        // 10.85.0.0/24 via 10.84.0.1, and a down route to 10.86.0.0/24
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\tFE00540A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            eth0\t0000540A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
            eth0\t0000550A\t0100540A\t0003\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
            eth0\t0000560A\t0100540A\t0002\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let r = routes(table);
        assert_eq!(r.len(), 3);
        let via = |ip: [u8; 4]| route_to(&r, Ipv4Addr::from(ip)).map(|r| (r.gateway, r.prefix));
        assert_eq!(via([10, 85, 0, 7]), Some((Ipv4Addr::new(10, 84, 0, 1), 24)));
        assert_eq!(via([10, 84, 0, 7]), Some((Ipv4Addr::UNSPECIFIED, 24)));
        assert_eq!(
            via([10, 86, 0, 7]),
            Some((Ipv4Addr::new(10, 84, 0, 254), 0))
        );
        assert!(route_to(&r[1..], Ipv4Addr::new(10, 86, 0, 7)).is_none());
        assert!(routes("Iface\nbad line\neth0 zz").is_empty());
    }

    #[test]
    fn loopback_has_no_mac() {
        // lo is up, has 127.0.0.1 and an all-zero MAC; either way it must not panic.
        let _ = lookup("lo", None);
    }

    /// A tiny interpreter for the subset of classic BPF the filter uses.
    fn run(f: &[libc::sock_filter], pkt: &[u8]) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let ld = |off: usize, n: usize| -> Option<u32> {
            let b = pkt.get(off..off + n)?;
            Some(b.iter().fold(0, |acc, &v| acc << 8 | v as u32))
        };
        loop {
            let i = f[pc];
            let code = i.code as u32;
            pc += 1;
            match code {
                c if c == libc::BPF_LD | libc::BPF_H | libc::BPF_ABS => match ld(i.k as usize, 2) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == libc::BPF_LD | libc::BPF_B | libc::BPF_ABS => match ld(i.k as usize, 1) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == libc::BPF_LD | libc::BPF_H | libc::BPF_IND => {
                    match ld(x as usize + i.k as usize, 2) {
                        Some(v) => a = v,
                        None => return 0,
                    }
                }
                c if c == libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH => {
                    match ld(i.k as usize, 1) {
                        Some(v) => x = (v & 0xf) * 4,
                        None => return 0,
                    }
                }
                c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => {
                    pc += if a == i.k { i.jt } else { i.jf } as usize
                }
                c if c == libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K => {
                    pc += if a & i.k != 0 { i.jt } else { i.jf } as usize
                }
                c if c == libc::BPF_RET | libc::BPF_K => return i.k,
                other => panic!("unexpected BPF op {other:#x}"),
            }
        }
    }

    #[test]
    fn filter_accepts_dhcp_only() {
        use std::net::SocketAddrV4;
        let f = dhcp_filter();
        let frame = |sport, dport| {
            crate::frame::build(
                Mac([2; 6]),
                Mac::BROADCAST,
                SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, sport),
                SocketAddrV4::new(Ipv4Addr::BROADCAST, dport),
                &[0; 300],
            )
        };
        assert_ne!(run(&f, &frame(68, 67)), 0);
        assert_ne!(run(&f, &frame(67, 68)), 0);
        assert_eq!(run(&f, &frame(68, 69)), 0);
        assert_eq!(run(&f, &frame(1000, 4011)), 0);
        let mut arp = frame(68, 67);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(run(&f, &arp), 0);
        let mut tcp = frame(68, 67);
        tcp[23] = 6;
        assert_eq!(run(&f, &tcp), 0);
        let mut frag = frame(68, 67);
        frag[21] = 0x10;
        assert_eq!(run(&f, &frag), 0);
        assert_eq!(run(&f, &frame(68, 67)[..20]), 0);
    }
}
