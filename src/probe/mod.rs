//! `pxe-sidecar probe`: behaves like PXE firmware on the LAN and reports
//! each stage with its timing — DISCOVER, the offers seen (router's and
//! proxies'), the 4011 step, the TFTP fetch of the boot file, and for
//! pxelinux its config search, the files the config names and, for an
//! `nfsroot=` kernel line, the portmapper, MOUNT and a LOOKUP of /sbin/init
//! in the NFS root. When the boot file is iPXE it goes on as iPXE does: a
//! second DISCOVER as an iPXE client, the script that offer names, and the
//! kernel and initrd the script fetches (tftp:// or http://). On failure it
//! says what a real client would show (PXE-E51, PXE-E53, PXE-E32, PXE-T01)
//! and the likely cause. Works against any PXE server, not only ours.

mod report;
mod rpi;
mod tftp;
mod verdict;

pub use report::{Probe, Stage};
use tftp::{IPXE_BLKSIZE, fetch, tftp_failed, tftp_text};

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode, UnknownOption};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

use crate::frame::{self, Link};
use crate::listen::{self, RawSocket};
use crate::mac::Mac;
use crate::pxe::Arch;
use verdict::{Next, Offer, TftpFail};

/// What the probe pretends to be; the IANA processor architecture numbers
/// (RFC 4578 §2.1, option 93) are accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeArch {
    /// Legacy BIOS PXE ROM (arch 0).
    #[value(alias = "0")]
    Bios,
    /// 32-bit UEFI (arch 6).
    #[value(alias = "6")]
    Efi32,
    /// x86-64 UEFI (arch 7; 9 is the same firmware class).
    #[value(aliases = ["7", "9"])]
    Efi64,
    /// ARM64 UEFI (arch 11).
    #[value(alias = "11")]
    Arm64,
    /// x86-64 UEFI HTTP boot (arch 16).
    #[value(alias = "16")]
    Http,
    /// ARM64 UEFI HTTP boot (arch 19).
    #[value(name = "http-arm64", alias = "19")]
    HttpArm64,
    /// U-Boot's `dhcp` and `pxe get` on arm64 (arch 22).
    #[value(alias = "22")]
    Uboot,
    /// Raspberry Pi 4's EEPROM bootloader (arch 0, `Raspberry Pi Boot`).
    Rpi4,
    /// Raspberry Pi 5's EEPROM bootloader.
    Rpi5,
}

impl ProbeArch {
    fn code(self) -> u16 {
        match self {
            ProbeArch::Bios | ProbeArch::Rpi4 | ProbeArch::Rpi5 => 0,
            ProbeArch::Efi32 => 6,
            ProbeArch::Efi64 => 7,
            ProbeArch::Arm64 => 11,
            ProbeArch::Http => 16,
            ProbeArch::HttpArm64 => 19,
            ProbeArch::Uboot => 22,
        }
    }

    fn is_http(self) -> bool {
        matches!(self, ProbeArch::Http | ProbeArch::HttpArm64)
    }

    fn pi(self) -> Option<crate::rpi::Family> {
        match self {
            ProbeArch::Rpi4 => Some(crate::rpi::Family::Pi4),
            ProbeArch::Rpi5 => Some(crate::rpi::Family::Pi5),
            _ => None,
        }
    }

    fn vendor_class(self) -> String {
        if self.pi().is_some() {
            return "PXEClient:Arch:00000:UNDI:002001".into();
        }
        if self == ProbeArch::Uboot {
            // CONFIG_BOOTP_VCI_STRING of arm64 builds
            return "U-Boot.armv8".into();
        }
        let kind = if self.is_http() {
            "HTTPClient"
        } else {
            "PXEClient"
        };
        format!("{kind}:Arch:{:05}:UNDI:003016", self.code())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Listen(#[from] listen::ListenError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn file_of(m: &Message) -> String {
    let from_field = m
        .fname()
        .map(|f| {
            String::from_utf8_lossy(&f[..f.iter().position(|&b| b == 0).unwrap_or(f.len())])
                .to_string()
        })
        .unwrap_or_default();
    if !from_field.is_empty() {
        return from_field;
    }
    match m.opts().get(OptionCode::BootfileName) {
        Some(DhcpOption::BootfileName(v)) => String::from_utf8_lossy(v)
            .trim_end_matches('\0')
            .to_string(),
        _ => String::new(),
    }
}

/// What one request says about the client besides its message type.
#[derive(Clone, Copy)]
struct Asker {
    mac: Mac,
    arch: ProbeArch,
    /// Asks as iPXE does after it was chainloaded (option 77 "iPXE").
    ipxe: bool,
}

fn request(who: Asker, xid: u32, msg: MessageType, ciaddr: Ipv4Addr, item: Option<u16>) -> Vec<u8> {
    let Asker { mac, arch, ipxe } = who;
    if let Some(family) = arch.pi() {
        return rpi::discover(mac, xid, family);
    }
    let mut m = Message::new_with_id(
        xid,
        ciaddr,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &mac.0,
    );
    m.set_opcode(Opcode::BootRequest);
    if ciaddr.is_unspecified() {
        m.set_flags(Flags::default().set_broadcast());
    }
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(msg));
    o.insert(DhcpOption::ClassIdentifier(
        arch.vendor_class().into_bytes(),
    ));
    o.insert(DhcpOption::Unknown(UnknownOption::new(
        OptionCode::from(93),
        arch.code().to_be_bytes().to_vec(),
    )));
    o.insert(DhcpOption::Unknown(UnknownOption::new(
        OptionCode::from(94),
        vec![1, 3, 16],
    )));
    o.insert(DhcpOption::MaxMessageSize(1464));
    if ipxe {
        // iPXE sends its user class as the bare string, not RFC 3004's format
        o.insert(DhcpOption::Unknown(UnknownOption::new(
            OptionCode::from(77),
            b"iPXE".to_vec(),
        )));
    }
    if let Some(t) = item {
        // Boot server discovery (PXE spec 2.1 §2.2.5): the item picked from the menu, layer 0.
        o.insert(DhcpOption::VendorExtensions(crate::pxe::ack_options(
            crate::pxe::BootItem {
                item_type: t,
                layer: 0,
            },
        )));
    }
    let mut buf = Vec::new();
    // Encoding a message we just built from valid parts cannot fail.
    let _ = m.encode(&mut Encoder::new(&mut buf));
    buf
}

/// Runs the probe on `iface`. `mac` defaults to the interface's.
pub fn run(
    iface_name: &str,
    arch: ProbeArch,
    mac: Option<Mac>,
    wait: Duration,
) -> Result<Probe, ProbeError> {
    let iface = listen::lookup(iface_name, Some(Ipv4Addr::UNSPECIFIED))?;
    let own_ip = listen::lookup(iface_name, None).ok().map(|i| i.ipv4);
    let mac = mac.unwrap_or(iface.mac);
    let mut p = Probe {
        stages: Vec::new(),
        start: Instant::now(),
    };
    let xid = u32::from_be_bytes([mac.0[2], mac.0[3], mac.0[4], mac.0[5]]) ^ 0x5058_4500;
    let who = Asker {
        mac,
        arch,
        ipxe: false,
    };
    let offers = discover(&iface, who, xid, wait)?;
    let archname = match arch {
        ProbeArch::Rpi4 => "as a Raspberry Pi 4's EEPROM bootloader".to_string(),
        ProbeArch::Rpi5 => "as a Raspberry Pi 5's EEPROM bootloader".to_string(),
        _ => Arch::from_code(arch.code()).to_string(),
    };
    p.note(
        true,
        format!(
            "DHCPDISCOVER from {mac} via {iface_name} ({}, {archname})",
            arch.vendor_class()
        ),
    );
    if offers.is_empty() {
        p.note(false, verdict::NO_OFFER);
        return Ok(p);
    }
    for o in &offers {
        p.note(true, o.describe());
    }
    if let Some(family) = arch.pi() {
        rpi::follow(&mut p, own_ip, &offers, family, mac);
        return Ok(p);
    }
    if arch == ProbeArch::Uboot {
        match own_ip {
            Some(own_ip) => uboot(&mut p, own_ip, &offers, mac),
            None => p.note(
                false,
                format!(
                    "{iface_name} has no IPv4 address: the probe stops before TFTP (give it one)"
                ),
            ),
        }
        return Ok(p);
    }
    let proxy = offers.iter().find(|o| o.pxe);
    let Some(boot_server) = proxy.map(|o| o.server) else {
        p.note(false, verdict::NO_PXE_OFFER);
        return Ok(p);
    };
    let Some(own_ip) = own_ip else {
        p.note(false, format!("{iface_name} has no IPv4 address: the probe stops before the 4011 and TFTP steps (give it one)"));
        return Ok(p);
    };
    // The boot-server step: EDK2 always asks 4011; PXE ROMs when the offer has no file.
    let mut file = proxy.map(|o| o.file.clone()).unwrap_or_default();
    let mut tftp_server = proxy.map_or(boot_server, Offer::tftp_server);
    let efi = matches!(arch, ProbeArch::Efi32 | ProbeArch::Efi64 | ProbeArch::Arm64);
    if verdict::asks_4011(efi, &file) {
        let s = UdpSocket::bind((own_ip, 0))?;
        s.set_read_timeout(Some(Duration::from_secs(4)))?;
        let item = proxy.and_then(|o| o.menu_item);
        s.send_to(
            &request(who, xid.wrapping_add(1), MessageType::Request, own_ip, item),
            (boot_server, 4011),
        )?;
        let mut buf = [0u8; 2048];
        match s.recv_from(&mut buf) {
            Ok((n, from)) => match Message::decode(&mut Decoder::new(&buf[..n])) {
                Ok(m) if m.opts().msg_type() == Some(MessageType::Ack) => {
                    file = file_of(&m);
                    if !m.siaddr().is_unspecified() {
                        tftp_server = m.siaddr();
                    }
                    p.note(true, format!("DHCPACK on 4011 from {from}: boot file {file}"));
                }
                _ => p.note(false, format!("reply on 4011 from {from} is not a DHCPACK")),
            },
            Err(_) => p.note(false, format!("no DHCPACK from {boot_server}:4011 in 4 s (EFI firmware would stop here: PXE-E16/E53)")),
        }
    }
    if file.is_empty() {
        p.note(false, "PXE-E53: No boot filename received");
        return Ok(p);
    }
    if arch.is_http() {
        p.note(
            true,
            format!("UEFI HTTP boot URL: {file} (fetch it with curl to check it)"),
        );
        return Ok(p);
    }
    if !fetch(&mut p, own_ip, tftp_server, &file) {
        return Ok(p);
    }
    match verdict::next_stage(&file) {
        Next::Pxelinux => pxelinux_search(&mut p, own_ip, tftp_server, &file, mac, false),
        Next::Ipxe => {
            let who = Asker { ipxe: true, ..who };
            let offers = discover(&iface, who, xid.wrapping_add(2), wait)?;
            ipxe_stage(&mut p, own_ip, &offers);
        }
        Next::Shim(grub) => shim_stage(&mut p, own_ip, tftp_server, &file, grub),
        Next::Unknown => {}
    }
    Ok(p)
}

/// Broadcasts a DISCOVER and collects the offers for `wait`.
fn discover(
    iface: &listen::Interface,
    who: Asker,
    xid: u32,
    wait: Duration,
) -> Result<Vec<Offer>, ProbeError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let sock = RawSocket::open(iface)?;
        let f = frame::build(
            who.mac,
            Mac::BROADCAST,
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
            SocketAddrV4::new(Ipv4Addr::BROADCAST, 67),
            &request(who, xid, MessageType::Discover, Ipv4Addr::UNSPECIFIED, None),
        );
        sock.send(&f).await?;
        let mut offers = Vec::new();
        let mut buf = vec![0u8; 65536];
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(got) = tokio::time::timeout_at(deadline, sock.recv_incoming(&mut buf, "probe DHCP")).await {
            let Some(u) = frame::udp(Link::Ethernet, &buf[..got]) else { continue };
            if u.dst.port() != 68 {
                continue;
            }
            let Ok(m) = Message::decode(&mut Decoder::new(u.payload)) else { continue };
            if m.xid() != xid || m.opcode() != Opcode::BootReply || m.opts().msg_type() != Some(MessageType::Offer) {
                continue;
            }
            let server = match m.opts().get(OptionCode::ServerIdentifier) {
                Some(DhcpOption::ServerIdentifier(s)) => *s,
                _ => *u.src.ip(),
            };
            offers.push(Offer {
                server,
                yiaddr: m.yiaddr(),
                siaddr: m.siaddr(),
                file: file_of(&m),
                vendor: match m.opts().get(OptionCode::VendorExtensions) {
                    Some(DhcpOption::VendorExtensions(v)) => v.clone(),
                    _ => Vec::new(),
                },
                menu_item: match m.opts().get(OptionCode::VendorExtensions) {
                    Some(DhcpOption::VendorExtensions(v)) => crate::pxe::first_menu_item(v),
                    _ => None,
                },
                pxe: matches!(m.opts().get(OptionCode::ClassIdentifier),
                    Some(DhcpOption::ClassIdentifier(v)) if v.starts_with(b"PXEClient") || v.starts_with(b"HTTPClient")),
            });
        }
        Ok::<_, ProbeError>(offers)
    })
}

/// shim's step: GRUB from beside shim, then GRUB's config from its prefix
/// (`/grub` on the same server, as Debian's signed netboot image has it)
/// and the kernel and initrd the config's entry loads.
fn shim_stage(p: &mut Probe, own_ip: Ipv4Addr, server: Ipv4Addr, shim: &str, grub: &str) {
    let dir = shim.rsplit_once('/').map_or("", |(d, _)| d);
    let grub = if dir.is_empty() {
        grub.to_string()
    } else {
        format!("{dir}/{grub}")
    };
    if !fetch(p, own_ip, server, &grub) {
        return;
    }
    let Some(cfg) = fetch_text(p, own_ip, server, crate::files::GRUB_CFG) else {
        return;
    };
    let files = verdict::grub_files(&cfg);
    if files.is_empty() {
        p.note(
            false,
            format!(
                "{} loads no kernel (nothing configured yet)",
                crate::files::GRUB_CFG
            ),
        );
        return;
    }
    for f in files {
        fetch_uri(p, own_ip, server, &verdict::grub_uri(&f));
    }
}

/// iPXE's step after it was loaded: it asks DHCP again as iPXE, runs the
/// script the proxy offer names and fetches what the script names.
fn ipxe_stage(p: &mut Probe, own_ip: Ipv4Addr, offers: &[Offer]) {
    let Some(o) = offers.iter().find(|o| o.pxe) else {
        p.note(
            false,
            "iPXE's DISCOVER got no PXE offer: iPXE would retry, then say \"No configuration methods succeeded\"",
        );
        return;
    };
    if o.file.is_empty() {
        p.note(
            false,
            "iPXE's offer has no boot file: iPXE would stop with \"Nothing to boot\"",
        );
        return;
    }
    let server = o.tftp_server();
    p.note(
        true,
        format!("as iPXE: offer from {}: script {}", o.server, o.file),
    );
    let Some(text) = fetch_text(p, own_ip, server, &o.file) else {
        return;
    };
    if !text.starts_with("#!ipxe") {
        // a binary (a loop back to iPXE, or another loader): fetched is all we check
        p.note(
            true,
            format!("{} is not an iPXE script: iPXE would boot it", o.file),
        );
        return;
    }
    let mut kernels = 0;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(cmd @ ("kernel" | "initrd" | "imgfetch" | "module" | "chain" | "chainload")) =
            words.next()
        else {
            continue;
        };
        // the first word that is not an --option (or its value) is the URI
        let mut uri = None;
        let mut args = Vec::new();
        let mut skip_value = false;
        for w in words {
            if uri.is_some() {
                args.push(w);
            } else if skip_value {
                skip_value = false;
            } else if w == "--name" || w == "-n" || w == "--timeout" || w == "-t" {
                skip_value = true;
            } else if !w.starts_with('-') {
                uri = Some(w);
            }
        }
        let Some(uri) = uri else { continue };
        let uri = uri.replace("${next-server}", &server.to_string());
        if cmd == "kernel" || cmd.starts_with("chain") {
            kernels += 1;
        }
        fetch_uri(p, own_ip, server, &uri);
        if let Some(spec) = args.iter().find_map(|a| a.strip_prefix("nfsroot=")) {
            nfs_root(p, spec);
        }
    }
    if kernels == 0 {
        p.note(
            false,
            format!("{} names no kernel: nothing to boot yet", o.file),
        );
    }
}

/// Fetches a script or config: an http:// URL or a TFTP name.
fn fetch_text(p: &mut Probe, own_ip: Ipv4Addr, server: Ipv4Addr, name: &str) -> Option<String> {
    if name.starts_with("http://") {
        return match http_get(name, true) {
            Ok(got) => Some(String::from_utf8_lossy(&got.body).into_owned()),
            Err(why) => {
                p.note(false, format!("HTTP {name}: {why}"));
                None
            }
        };
    }
    match tftp_text(own_ip, server, name, IPXE_BLKSIZE) {
        Ok(text) => Some(text),
        Err(fail) => {
            tftp_failed(p, server, name, fail);
            None
        }
    }
}

/// One file an iPXE script names: tftp://host/path, http://host[:port]/path
/// or a name relative to the script's TFTP server.
fn fetch_uri(p: &mut Probe, own_ip: Ipv4Addr, server: Ipv4Addr, uri: &str) {
    if let Some(rest) = uri.strip_prefix("tftp://") {
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        match host.parse::<Ipv4Addr>() {
            Ok(ip) => {
                fetch(p, own_ip, ip, path);
            }
            Err(_) => p.note(
                false,
                format!("{uri}: the probe only follows numeric addresses"),
            ),
        }
    } else if uri.starts_with("http://") {
        match http_get(uri, false) {
            Ok(got) => p.note(
                true,
                format!(
                    "HTTP {uri}: {} bytes in {} ms",
                    got.bytes,
                    got.took.as_millis()
                ),
            ),
            Err(why) => p.note(false, format!("HTTP {uri}: {why}")),
        }
    } else if uri.contains("://") {
        p.note(
            false,
            format!("{uri}: the probe does not follow this scheme"),
        );
    } else {
        fetch(p, own_ip, server, uri);
    }
}

struct HttpGot {
    bytes: u64,
    took: Duration,
    /// The body, when it was asked for (scripts); else only counted.
    body: Vec<u8>,
}

/// GET of an http:// URL with a numeric host, as iPXE does it. Bodies kept
/// in memory are capped (a script, not a kernel); others are only counted.
fn http_get(url: &str, keep: bool) -> Result<HttpGot, String> {
    const KEEP_MAX: usize = 1 << 20;
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (hostport, path) = rest
        .find('/')
        .map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let addr: SocketAddr = match hostport.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => match hostport.parse::<Ipv4Addr>() {
            Ok(ip) => SocketAddr::from((ip, 80)),
            Err(_) => return Err("the probe only follows numeric addresses".into()),
        },
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let get = async {
        use http_body_util::BodyExt;
        let tcp =
            tokio::time::timeout(Duration::from_secs(4), tokio::net::TcpStream::connect(addr))
                .await
                .map_err(|_| format!("no answer from {addr} in 4 s (HTTP off, or a firewall)"))?
                .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = hyper::Request::get(path)
            .header(hyper::header::HOST, hostport)
            .header(hyper::header::USER_AGENT, "pxe-sidecar probe")
            .body(String::new())
            .map_err(|e| e.to_string())?;
        let mut res = send.send_request(req).await.map_err(|e| e.to_string())?;
        if !res.status().is_success() {
            return Err(format!(
                "{} (the client would fail to fetch it)",
                res.status()
            ));
        }
        let (mut bytes, mut body) = (0u64, Vec::new());
        while let Some(frame) = res.body_mut().frame().await {
            let frame = frame.map_err(|e| e.to_string())?;
            if let Some(data) = frame.data_ref() {
                bytes += data.len() as u64;
                if keep && body.len() + data.len() <= KEEP_MAX {
                    body.extend_from_slice(data);
                }
            }
        }
        Ok(HttpGot {
            bytes,
            took: started.elapsed(),
            body,
        })
    };
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(120), get)
            .await
            .unwrap_or_else(|_| Err("no complete answer in 120 s".into()))
    })
}

/// U-Boot's `dhcp`: the first offer with an address wins and names the TFTP
/// server (siaddr); an offer without one is dropped (net/bootp.c). Then its
/// `pxe get` search, against us once the board is told our address.
fn uboot(p: &mut Probe, own_ip: Ipv4Addr, offers: &[Offer], mac: Mac) {
    let Some(taken) = offers.iter().find(|o| !o.yiaddr.is_unspecified()) else {
        p.note(
            false,
            "no offer with an address: U-Boot's dhcp retries, then fails",
        );
        return;
    };
    let router_tftp = taken.tftp_server();
    p.note(
        true,
        format!(
            "U-Boot takes {}'s offer (address {}); its TFTP server is {router_tftp}",
            taken.server, taken.yiaddr
        ),
    );
    let ours = offers
        .iter()
        .find(|o| o.pxe && o.yiaddr.is_unspecified())
        .map(|o| o.tftp_server());
    let server = match ours {
        Some(ours) if ours != router_tftp => {
            p.note(
                false,
                format!(
                    "the proxy offer from {ours} has no address: {}",
                    crate::proxy::uboot_advice(ours)
                ),
            );
            p.note(
                true,
                format!("with serverip {ours} set on the board, `pxe get` asks {ours}:"),
            );
            ours
        }
        _ => router_tftp,
    };
    pxelinux_search(p, own_ip, server, "", mac, true);
}

/// pxelinux's config search (`verdict::pxelinux_search`), then the files
/// the first config found loads, then its NFS root.
fn pxelinux_search(
    p: &mut Probe,
    own_ip: Ipv4Addr,
    server: Ipv4Addr,
    loader: &str,
    mac: Mac,
    uboot: bool,
) {
    let dir = loader
        .rsplit_once('/')
        .map_or(String::new(), |(d, _)| format!("{d}/"));
    let who = if uboot { "U-Boot" } else { "pxelinux" };
    for path in verdict::pxelinux_search(loader, mac, own_ip, uboot) {
        match tftp_text(own_ip, server, &path, IPXE_BLKSIZE) {
            Ok(text) => {
                p.note(true, format!("{who} would use {path}"));
                let (named, nfsroot) = verdict::pxelinux_loads(&text);
                if named.is_empty() {
                    p.note(
                        false,
                        format!("{path} names no kernel: nothing to boot yet"),
                    );
                }
                for f in &named {
                    fetch(p, own_ip, server, &format!("{dir}{f}"));
                }
                if let Some(spec) = nfsroot {
                    nfs_root(p, &spec);
                }
                return;
            }
            Err(TftpFail::Error(1, _)) => continue,
            Err(_) => {
                p.note(false, format!("TFTP failed on {path}"));
                return;
            }
        }
    }
    p.note(
        false,
        if uboot {
            format!("no pxelinux.cfg file found: U-Boot's `pxe get` fails (set [uboot] kernel to have {dir}pxelinux.cfg/default-arm generated)")
        } else {
            format!("no pxelinux config found: pxelinux stops at the boot: prompt ({dir}pxelinux.cfg/default is missing)")
        },
    );
}

/// The NFS step of an `nfsroot=server:/path[,options]` kernel line, as
/// initramfs-tools' klibc `nfsmount` does it: the portmapper on 111 for the
/// MOUNT and NFS ports, MOUNT of the path, then a LOOKUP of /sbin/init.
fn nfs_root(p: &mut Probe, spec: &str) {
    let target = spec.split(',').next().unwrap_or(spec);
    let Some((host, path)) = target.split_once(':') else {
        p.note(
            false,
            format!("nfsroot={spec} names no server: the initramfs would use the DHCP server's siaddr (the router's, behind a proxy)"),
        );
        return;
    };
    let started = Instant::now();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            p.note(false, format!("NFS step: cannot start a runtime: {e}"));
            return;
        }
    };
    // SAFETY: geteuid has no preconditions.
    let privileged = unsafe { libc::geteuid() } == 0;
    let result = runtime.block_on(async {
        let conn = tokio::time::timeout(
            Duration::from_secs(10),
            nfs3_client::Nfs3ConnectionBuilder::new(nfs3_client::tokio::TokioConnector, host, path)
                .connect_from_privileged_port(privileged)
                .mount(),
        )
        .await
        .map_err(|_| "no answer within 10 s (portmapper on 111, or MOUNT)".to_string())?
        .map_err(|e| e.to_string())?;
        let (mount_port, nfs_port) = (conn.mount_port, conn.nfs3_port);
        let mut fh = Some(conn.root_nfs_fh3());
        let mut nfs = conn.into_nfs3_client();
        let mut found = true;
        for part in ["sbin", "init"] {
            use nfs3_client::nfs3_types::nfs3::{LOOKUP3args, Nfs3Result, diropargs3, filename3};
            use nfs3_client::nfs3_types::xdr_codec::Opaque;
            let Some(dir) = fh.take() else { break };
            let args = LOOKUP3args {
                what: diropargs3 {
                    dir,
                    name: filename3(Opaque::owned(part.as_bytes().to_vec())),
                },
            };
            match nfs.lookup(&args).await.map_err(|e| e.to_string())? {
                Nfs3Result::Ok(ok) => fh = Some(ok.object),
                Nfs3Result::Err((stat, _)) => {
                    found = false;
                    p.note(false, format!("NFS LOOKUP /sbin/init in {target}: {stat:?}: the kernel will stop with \"No working init found\""));
                    break;
                }
            }
        }
        Ok::<_, String>((mount_port, nfs_port, found))
    });
    match result {
        Ok((mport, nport, found)) => {
            p.note(
                true,
                format!(
                    "NFS MOUNT {target}: ok in {} ms (MOUNT on port {mport}, NFS on port {nport}, found via the portmapper)",
                    started.elapsed().as_millis()
                ),
            );
            if found {
                p.note(true, format!("NFS root {target} has /sbin/init"));
            }
        }
        Err(e) => p.note(
            false,
            format!("NFS MOUNT {target} failed: {e} (the initramfs stops at \"Begin: Mounting root file system\"; check [nfs] root and allow, or the server's exports)"),
        ),
    }
}

#[cfg(test)]
mod arch_tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn arch_names_and_iana_numbers() {
        for (word, arch) in [
            ("bios", ProbeArch::Bios),
            ("0", ProbeArch::Bios),
            ("efi64", ProbeArch::Efi64),
            ("7", ProbeArch::Efi64),
            ("9", ProbeArch::Efi64),
            ("11", ProbeArch::Arm64),
            ("16", ProbeArch::Http),
            ("19", ProbeArch::HttpArm64),
            ("http-arm64", ProbeArch::HttpArm64),
        ] {
            assert_eq!(ProbeArch::from_str(word, false), Ok(arch), "{word}");
        }
        assert!(ProbeArch::from_str("12", false).is_err());
        assert_eq!(
            ProbeArch::HttpArm64.vendor_class(),
            "HTTPClient:Arch:00019:UNDI:003016"
        );
    }
}
