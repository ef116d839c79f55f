//! Test helpers: build client requests the way real firmware does, with
//! dhcproto as an independent encoder.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode, UnknownOption};
use dhcproto::{Encodable, Encoder};

pub mod guest;
pub mod netns;
pub mod nfs;
pub mod pxeclient;

#[derive(Clone)]
pub struct Client {
    pub mac: [u8; 6],
    pub xid: u32,
    pub msg: MessageType,
    pub vendor: Option<String>,
    pub arch: Option<u16>,
    pub user_class: Option<&'static [u8]>,
    pub ipxe: bool,
    pub uuid: bool,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub broadcast: bool,
    pub server_id: Option<Ipv4Addr>,
    pub opt43: Option<Vec<u8>>,
    pub max_size: Option<u16>,
}

impl Client {
    pub fn pxe(arch: u16) -> Client {
        Client {
            mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
            xid: 0x1234_5678,
            msg: MessageType::Discover,
            vendor: Some(format!("PXEClient:Arch:{arch:05}:UNDI:003016")),
            arch: Some(arch),
            user_class: None,
            ipxe: false,
            uuid: true,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            broadcast: true,
            server_id: None,
            opt43: None,
            max_size: Some(1464),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut m = Message::new_with_id(
            self.xid,
            self.ciaddr,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            self.giaddr,
            &self.mac,
        );
        m.set_opcode(Opcode::BootRequest);
        m.set_flags(if self.broadcast {
            Flags::default().set_broadcast()
        } else {
            Flags::default()
        });
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(self.msg));
        if let Some(v) = &self.vendor {
            o.insert(DhcpOption::ClassIdentifier(v.as_bytes().to_vec()));
        }
        if let Some(a) = self.arch {
            o.insert(DhcpOption::Unknown(UnknownOption::new(
                OptionCode::from(93),
                a.to_be_bytes().to_vec(),
            )));
        }
        if let Some(u) = self.user_class {
            o.insert(DhcpOption::Unknown(UnknownOption::new(
                OptionCode::from(77),
                u.to_vec(),
            )));
        }
        if self.ipxe {
            o.insert(DhcpOption::Unknown(UnknownOption::new(
                OptionCode::from(175),
                vec![0xb1, 1, 1],
            )));
        }
        if self.uuid {
            let mut u = vec![0u8];
            u.extend(1..=16u8);
            o.insert(DhcpOption::ClientMachineIdentifier(u));
        }
        if let Some(s) = self.server_id {
            o.insert(DhcpOption::ServerIdentifier(s));
        }
        if let Some(v) = &self.opt43 {
            o.insert(DhcpOption::VendorExtensions(v.clone()));
        }
        if let Some(s) = self.max_size {
            o.insert(DhcpOption::MaxMessageSize(s));
        }
        let mut buf = Vec::new();
        m.encode(&mut Encoder::new(&mut buf)).unwrap();
        buf
    }

    pub fn from(&self, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(self.ciaddr, port)
    }
}

pub fn decode(b: &[u8]) -> Message {
    use dhcproto::Decodable;
    Message::decode(&mut dhcproto::Decoder::new(b)).expect("our reply decodes")
}

/// The public captures kept in the repository (pcaps/public, with their
/// sources and licences).
pub fn public_pcaps() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pcaps/public")
}

pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// A TFTP root under `dir` holding a stand-in kernel (3000 bytes) and
/// initrd (5000 bytes), and the config keys that boot them; `tftp`: more
/// `[tftp]` keys.
pub fn kernel_root(dir: &std::path::Path, tftp: &str) -> String {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("debian")).unwrap();
    std::fs::write(root.join("debian/vmlinuz"), pseudo_random(3000, 1)).unwrap();
    std::fs::write(root.join("debian/initrd.img"), pseudo_random(5000, 2)).unwrap();
    format!(
        "[tftp]\nroot = \"{}\"\n{tftp}[pxelinux]\nkernel = \"debian/vmlinuz\"\ninitrd = \"debian/initrd.img\"\n",
        root.display()
    )
}

/// Deterministic pseudo-random bytes (xorshift), so files differ block to block.
pub fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

/// Peak resident set size of a process (VmHWM), in KiB.
pub fn peak_rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system, all threads) a process has used so far.
pub fn cpu_time(pid: i32) -> std::time::Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of stat(5), in clock ticks.
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    std::time::Duration::from_millis(ticks * 1000 / hz)
}

/// The client's request as firmware sends it: from 0.0.0.0:68 to broadcast :67.
pub fn discover_frame(c: &Client) -> Vec<u8> {
    use pxe_sidecar::{frame, mac::Mac};
    frame::build(
        Mac(c.mac),
        Mac::BROADCAST,
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
        SocketAddrV4::new(Ipv4Addr::BROADCAST, 67),
        &c.encode(),
    )
}

/// A raw packet socket on eth0 of the namespace this thread entered, for a
/// client that has no address yet. Call it inside a tokio runtime.
pub fn raw_eth0() -> pxe_sidecar::listen::RawSocket {
    let iface = pxe_sidecar::listen::lookup("eth0", Some(Ipv4Addr::UNSPECIFIED)).unwrap();
    pxe_sidecar::listen::RawSocket::open(&iface).unwrap()
}

/// Sends raw Ethernet frames from eth0 of the namespace this thread entered.
pub fn send_frames(frames: impl IntoIterator<Item = Vec<u8>>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sock = raw_eth0();
        for f in frames {
            sock.send(&f).await.unwrap();
        }
    });
}
