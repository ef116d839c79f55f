//! `pxe-sidecar serve` on a test LAN of network namespaces, beside a real
//! router DHCP server (dnsmasq, no PXE options). What clients get is read
//! off the wire (raw-socket captures and tcpdump), not off our own logs.

mod common;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use common::Client;
use common::netns::{Lan, require, root_or_skip, start_dnsmasq, start_server, wait_for_log};
use common::pxeclient::{discover, discover_all, request_4011};

const ROUTER: (&str, &str, Option<&str>) = ("router", "02:00:00:00:00:01", Some("10.77.0.1/24"));
const PXE: (&str, &str, Option<&str>) = ("pxe", "02:00:00:00:00:02", Some("10.77.0.2/24"));
const CLIENT: (&str, &str, Option<&str>) = ("client", "52:54:00:00:00:ff", None);
const US: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pxe-sidecar")
}

/// dnsmasq as a plain DHCP server: no PXE options, no DNS.
fn start_router(lan: &mut Lan, host: &str, bind_interfaces: bool) {
    let mut extra = vec![
        "--dhcp-range=10.77.0.100,10.77.0.200,255.255.255.0,1h",
        "--no-ping",
        "--log-dhcp",
    ];
    if bind_interfaces {
        extra.push("--bind-interfaces");
    }
    let log = start_dnsmasq(lan, host, &extra);
    wait_for_log(&log, "DHCP, IP range", Duration::from_secs(10));
}

fn start_pxe(lan: &mut Lan, config: &str, extra: &[&str]) -> (PathBuf, PathBuf) {
    start_server(lan, "pxe", config, extra)
}

fn pxe_client(mac_last: u8, arch: u16) -> Client {
    let mut c = Client::pxe(arch);
    c.mac = [0x52, 0x54, 0, 0, 0, mac_last];
    c.xid = 0x5000_0000 + mac_last as u32;
    c
}

#[test]
fn non_pxe_client_gets_nothing_from_us() {
    if !root_or_skip("non_pxe_client_gets_nothing_from_us") {
        return;
    }
    require("tcpdump");
    require("busybox");
    let mut lan = Lan::new(&[ROUTER, PXE, CLIENT]);
    start_router(&mut lan, "router", true);
    let cap = lan.path("pxe-side.pcap");
    let cap_s = cap.display().to_string();
    let tlog = lan.spawn(
        "pxe",
        "tcpdump",
        &[
            "tcpdump",
            "-i",
            "eth0",
            "-n",
            "-U",
            "--immediate-mode",
            "-w",
            &cap_s,
            "udp",
        ],
    );
    wait_for_log(&tlog, "listening on", Duration::from_secs(10));
    let (log, _) = {
        // Debug logs so the "why not" line is there to check.
        let cfg = lan.path("pxe.toml");
        std::fs::write(&cfg, "").unwrap();
        let cfg_s = cfg.display().to_string();
        let log = lan.spawn(
            "pxe",
            "pxe-sidecar",
            &[
                "env",
                "PXE_SIDECAR_LOG=debug",
                bin(),
                "--config",
                &cfg_s,
                "serve",
                "--interface",
                "eth0",
            ],
        );
        wait_for_log(&log, "proxyDHCP listening", Duration::from_secs(10));
        (log, cfg)
    };
    let o = lan.exec(
        "client",
        &[
            "busybox",
            "udhcpc",
            "-i",
            "eth0",
            "-f",
            "-q",
            "-n",
            "-t",
            "5",
            "-T",
            "1",
            "-s",
            "/bin/true",
        ],
    );
    let text = String::from_utf8_lossy(&o.stderr).to_string() + &String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && text.contains("obtained"),
        "udhcpc got no lease from the router:\n{text}"
    );
    std::thread::sleep(Duration::from_millis(500));
    lan.stop("tcpdump");
    let bytes = std::fs::read(&cap).unwrap();
    let frames = pxe_sidecar::replay::frames(&bytes).unwrap();
    let src_mac = |f: &pxe_sidecar::replay::Frame| f.data.get(6..12).map(|m| m.to_vec());
    let ours = frames
        .iter()
        .filter(|f| src_mac(f).as_deref() == Some(&[2, 0, 0, 0, 0, 2][..]))
        .count();
    let client = frames
        .iter()
        .filter(|f| src_mac(f).as_deref() == Some(&[0x52, 0x54, 0, 0, 0, 0xff][..]))
        .count();
    assert!(
        client >= 1,
        "the capture never saw the client's DISCOVER: it proves nothing ({} frames, {} bytes)",
        frames.len(),
        bytes.len()
    );
    assert_eq!(
        ours, 0,
        "pxe-sidecar sent {ours} UDP frames to a non-PXE client"
    );
    let text = wait_for_log(&log, "not a PXE client", Duration::from_secs(2));
    assert!(text.contains("52:54:00:00:00:ff"), "{text}");
}

#[test]
fn pxe_clients_get_proxy_offer_and_4011_ack_per_arch() {
    if !root_or_skip("pxe_clients_get_proxy_offer_and_4011_ack_per_arch") {
        return;
    }
    let mut lan = Lan::new(&[ROUTER, PXE, CLIENT]);
    start_router(&mut lan, "router", true);
    let (log, _) = start_pxe(
        &mut lan,
        "[boot]\narm64 = \"arm64/grubnetaa64.efi\"\nipxe = \"boot.ipxe\"\n",
        &[],
    );
    let mut ipxe = pxe_client(4, 0);
    ipxe.user_class = Some(b"iPXE");
    ipxe.ipxe = true;
    let clients = [pxe_client(1, 0), pxe_client(2, 7), pxe_client(3, 11), ipxe];
    let want = [
        "pxelinux.0",
        "snponly.efi",
        "arm64/grubnetaa64.efi",
        "boot.ipxe",
    ];
    let seen = lan.in_host("client", {
        let clients: Vec<Client> = clients.to_vec();
        move || discover_all(&clients, Duration::from_secs(2))
    });
    for ((c, got), file) in clients.iter().zip(&seen).zip(want) {
        let proxy: Vec<_> = got.iter().filter(|s| s.server_id == Some(US)).collect();
        assert_eq!(
            proxy.len(),
            1,
            "{:02x?}: one proxy offer expected, saw {got:#?}",
            c.mac
        );
        let p = proxy[0];
        assert!(p.is_proxy_offer(), "{p:?}");
        assert_eq!(p.file, file);
        assert_eq!(p.siaddr, US);
        assert!(
            got.iter()
                .any(|s| s.server_id == Some(Ipv4Addr::new(10, 77, 0, 1))
                    && !s.yiaddr.is_unspecified()),
            "the router's offer is missing: {got:#?}"
        );
    }
    // The client takes the router's lease, then asks the boot server on 4011:
    // EDK2 from port 4011, PXE ROMs and iPXE from 68.
    let o = lan.exec(
        "client",
        &["ip", "addr", "add", "10.77.0.150/24", "dev", "eth0"],
    );
    assert!(o.status.success());
    for (c, file) in clients.iter().zip(want) {
        let mut r = c.clone();
        r.msg = dhcproto::v4::MessageType::Request;
        r.ciaddr = Ipv4Addr::new(10, 77, 0, 150);
        r.broadcast = false;
        let port = if r.arch == Some(7) { 4011 } else { 68 };
        let ack = lan
            .in_host("client", move || {
                request_4011(&r, US, port, Duration::from_secs(2))
            })
            .unwrap_or_else(|| panic!("{:02x?}: no 4011 ACK", c.mac));
        assert_eq!(ack.msg, Some(dhcproto::v4::MessageType::Ack));
        assert_eq!(ack.file, file);
        assert_eq!(ack.src.port(), 4011);
    }
    // Log lines are written by a writer thread, after the reply: wait for them.
    for needle in [
        "DHCPDISCOVER from 52:54:00:00:00:02 to port 67 (PXEClient:Arch:00007:UNDI:003016, arch 7 EFI BC) via eth0",
        "proxy DHCPOFFER to 52:54:00:00:00:02 at 255.255.255.255:68: boot file snponly.efi from 10.77.0.2",
        "DHCPREQUEST from 52:54:00:00:00:02 to port 4011",
        "DHCPACK to 52:54:00:00:00:02 at 10.77.0.150:4011",
    ] {
        wait_for_log(&log, needle, Duration::from_secs(2));
    }
}

#[test]
fn answers_beside_a_dhcp_server_holding_port_67_on_the_same_host() {
    if !root_or_skip("answers_beside_a_dhcp_server_holding_port_67_on_the_same_host") {
        return;
    }
    let mut lan = Lan::new(&[PXE, CLIENT]);
    // dnsmasq without --bind-interfaces binds the wildcard *:67.
    start_router(&mut lan, "pxe", false);
    let ss = lan.exec("pxe", &["ss", "-ulpn", "sport = :67"]);
    let ss = String::from_utf8_lossy(&ss.stdout);
    assert!(
        ss.contains("0.0.0.0:67") && ss.contains("dnsmasq"),
        "dnsmasq does not hold *:67:\n{ss}"
    );
    start_pxe(&mut lan, "", &[]);
    let c = pxe_client(9, 0);
    let got = lan.in_host("client", move || discover(&c, Duration::from_secs(2)));
    assert!(
        got.iter()
            .any(|s| s.is_proxy_offer() && s.file == "pxelinux.0"),
        "no proxy offer: {got:#?}"
    );
    assert!(
        got.iter().any(|s| !s.yiaddr.is_unspecified()),
        "no lease offer from dnsmasq: {got:#?}"
    );
}

/// Our packet sockets must not stand between the interface and the IPv4
/// stack: a socket for one ethertype on one device is served after IP,
/// which then clones every datagram it receives (see `listen.rs`); and an
/// IPv4 frame should meet one tap of ours, not two.
#[test]
fn packet_sockets_tap_before_the_ip_stack() {
    if !root_or_skip("packet_sockets_tap_before_the_ip_stack") {
        return;
    }
    let mut lan = Lan::new(&[PXE, CLIENT]);
    let (log, _) = start_pxe(&mut lan, "", &[]);
    wait_for_log(&log, "proxyDHCP listening", Duration::from_secs(10));
    // `ss -f link` lists packet sockets as "<ethertype>:<device>" ("*" for
    // all); /proc/net/ptype does not show device-bound ones on every kernel.
    let out = lan.exec("pxe", &["ss", "-H", "-f", "link", "-p"]);
    let table = String::from_utf8_lossy(&out.stdout);
    let mut ours: Vec<&str> = table
        .lines()
        .filter(|l| l.contains("pxe-sidecar"))
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    ours.sort_unstable();
    // The DHCP tap sees every frame before the IP stacks (IPv4 never gets a
    // shared buffer); the NDP tap is bound to IPv6, so an IPv4 frame (a TFTP
    // ACK) runs through one tap, not two.
    assert_eq!(
        ours,
        ["*:eth0", "ipv6:eth0"],
        "expected the DHCP tap on every ethertype and the NDP tap on IPv6 only:\n{table}"
    );
}

#[test]
fn allowlist_leaves_unlisted_clients_alone() {
    if !root_or_skip("allowlist_leaves_unlisted_clients_alone") {
        return;
    }
    let mut lan = Lan::new(&[ROUTER, PXE, CLIENT]);
    start_router(&mut lan, "router", true);
    let (log, _) = start_pxe(
        &mut lan,
        "[proxy]\nallow = [\"52:54:00:00:00:0a\"]\n",
        &["--log-format", "json"],
    );
    let listed = pxe_client(0x0a, 0);
    let unlisted = pxe_client(0x0b, 0);
    let seen = lan.in_host("client", move || {
        discover_all(&[listed, unlisted], Duration::from_secs(2))
    });
    assert!(
        seen[0].iter().any(|s| s.is_proxy_offer()),
        "listed client got no proxy offer: {:#?}",
        seen[0]
    );
    assert!(
        !seen[1].iter().any(|s| s.server_id == Some(US)),
        "unlisted client was answered: {:#?}",
        seen[1]
    );
    assert!(
        seen[1].iter().any(|s| !s.yiaddr.is_unspecified()),
        "the router should still answer it"
    );
    let text = wait_for_log(&log, "not in [proxy] allow", Duration::from_secs(2));
    let line = text
        .lines()
        .find(|l| l.contains("not in [proxy] allow"))
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
    assert_eq!(v["mac"], "52:54:00:00:00:0b", "{line}");
}

#[test]
fn hostile_frames_never_stop_the_server() {
    if !root_or_skip("hostile_frames_never_stop_the_server") {
        return;
    }
    let mut lan = Lan::new(&[PXE, CLIENT]);
    let (log, _) = start_pxe(&mut lan, "", &[]);
    lan.in_host("client", || {
        use pxe_sidecar::frame;
        use pxe_sidecar::mac::Mac;
        use std::net::SocketAddrV4;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let sock = common::raw_eth0();
            let src = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68);
            let dst = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
            let mac = Mac([0x52, 0x54, 0, 0, 0, 0xee]);
            let good = pxe_client(0xee, 7).encode();
            let mut frames = Vec::new();
            // Truncations at every length of a valid PXE DISCOVER.
            for n in 0..good.len() {
                frames.push(frame::build(mac, Mac::BROADCAST, src, dst, &good[..n]));
            }
            // An option claiming 255 bytes at the very end; a giant option 60.
            let mut giant = good.clone();
            giant.truncate(giant.len() - 1);
            giant.extend_from_slice(&[60, 255, b'P']);
            frames.push(frame::build(mac, Mac::BROADCAST, src, dst, &giant));
            let mut huge = good[..240].to_vec();
            huge.extend_from_slice(&[53, 1, 1]);
            for _ in 0..4 {
                huge.extend_from_slice(&[60, 255]);
                huge.extend_from_slice(&[b'P'; 255]);
            }
            frames.push(frame::build(mac, Mac::BROADCAST, src, dst, &huge));
            // hlen 200, a lying IP total length, a lying UDP length.
            let mut bad_hlen = good.clone();
            bad_hlen[2] = 200;
            frames.push(frame::build(mac, Mac::BROADCAST, src, dst, &bad_hlen));
            let mut lying_ip = frame::build(mac, Mac::BROADCAST, src, dst, &good);
            lying_ip[16..18].copy_from_slice(&0xffffu16.to_be_bytes());
            frames.push(lying_ip);
            let mut lying_udp = frame::build(mac, Mac::BROADCAST, src, dst, &good);
            lying_udp[38..40].copy_from_slice(&9u16.to_be_bytes());
            frames.push(lying_udp);
            // A spoofed REQUEST naming us as server with no boot item.
            let mut spoof = pxe_client(0xed, 0);
            spoof.msg = dhcproto::v4::MessageType::Request;
            spoof.server_id = Some(US);
            frames.push(frame::build(mac, Mac::BROADCAST, src, dst, &spoof.encode()));
            // A flood: 3000 DISCOVERs from one MAC, then 2000 from distinct MACs.
            for _ in 0..3000 {
                frames.push(frame::build(mac, Mac::BROADCAST, src, dst, &good));
            }
            for i in 0..2000u32 {
                let mut c = pxe_client(0, 0);
                c.mac = [0x52, 0x55, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8];
                frames.push(frame::build(
                    Mac(c.mac),
                    Mac::BROADCAST,
                    src,
                    dst,
                    &c.encode(),
                ));
            }
            for f in &frames {
                sock.send(f).await.unwrap();
            }
        });
    });
    // Long enough for the once-a-second report of suppressed log lines.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        lan.alive("pxe-sidecar"),
        "the server died:\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    let c = pxe_client(0x42, 0);
    let got = lan.in_host("client", move || discover(&c, Duration::from_secs(2)));
    assert!(
        got.iter().any(|s| s.is_proxy_offer()),
        "no answer after the hostile frames: {got:#?}"
    );
    wait_for_log(&log, "flood", Duration::from_secs(2));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("malformed"),
        "malformed frames should be logged:\n{}",
        &text[..text.len().min(3000)]
    );
    assert!(
        text.contains("flood"),
        "the flood should be named in the log"
    );
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn sighup_reloads_and_keeps_the_old_config_when_the_new_one_is_bad() {
    if !root_or_skip("sighup_reloads_and_keeps_the_old_config_when_the_new_one_is_bad") {
        return;
    }
    let mut lan = Lan::new(&[PXE, CLIENT]);
    let (log, cfg) = start_pxe(&mut lan, "[boot]\nbios = \"first.0\"\n", &[]);
    let offer_file = |lan: &Lan, last: u8| {
        let c = pxe_client(last, 0);
        let got = lan.in_host("client", move || discover(&c, Duration::from_secs(1)));
        got.iter()
            .find(|s| s.is_proxy_offer())
            .map(|s| s.file.clone())
    };
    assert_eq!(offer_file(&lan, 1).as_deref(), Some("first.0"));
    let pid = lan.pid("pxe-sidecar");
    std::fs::write(&cfg, "[boot]\nbios = \"second.0\"\n").unwrap();
    // SAFETY: a signal to the PID of the child this test started.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    wait_for_log(&log, "configuration reloaded", Duration::from_secs(5));
    assert_eq!(offer_file(&lan, 2).as_deref(), Some("second.0"));
    std::fs::write(&cfg, "[boot]\nbois = \"typo.0\"\n").unwrap();
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let text = wait_for_log(&log, "new configuration rejected", Duration::from_secs(5));
    assert!(
        text.contains("bois"),
        "the rejection should name the key:\n{text}"
    );
    assert_eq!(offer_file(&lan, 3).as_deref(), Some("second.0"));
    // Started as root, it runs as `nobody` once its sockets are open.
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("running as user nobody")
    );
    // The interface's address changes (a laptop's new lease): followed without a restart.
    assert!(
        lan.exec("pxe", &["ip", "addr", "flush", "dev", "eth0"])
            .status
            .success()
    );
    assert!(
        lan.exec("pxe", &["ip", "addr", "add", "10.77.0.3/24", "dev", "eth0"])
            .status
            .success()
    );
    wait_for_log(
        &log,
        "address of eth0 changed: 10.77.0.2 -> 10.77.0.3",
        Duration::from_secs(6),
    );
    let c = pxe_client(4, 0);
    let got = lan.in_host("client", move || discover(&c, Duration::from_secs(1)));
    let offer = got
        .iter()
        .find(|s| s.is_proxy_offer())
        .expect("an offer after the address change");
    assert_eq!(offer.server_id, Some(Ipv4Addr::new(10, 77, 0, 3)));
    assert_eq!(offer.siaddr, Ipv4Addr::new(10, 77, 0, 3));
    // SIGTERM stops it cleanly.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    wait_for_log(&log, "SIGTERM: stopping", Duration::from_secs(5));
    // …and the process is gone (with its TFTP thread), not just saying so.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while lan.alive("pxe-sidecar") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!lan.alive("pxe-sidecar"), "still running 3 s after SIGTERM");
}

#[test]
fn bad_interface_is_one_clear_error() {
    if !root_or_skip("bad_interface_is_one_clear_error") {
        return;
    }
    let lan = Lan::new(&[CLIENT, PXE]);
    // Without CAP_NET_RAW: the error names the capability and how to grant it.
    let o = lan.exec(
        "pxe",
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            bin(),
            "--config",
            "/dev/null",
            "serve",
            "--interface",
            "eth0",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("CAP_NET_RAW") && err.contains("setcap"),
        "{err}"
    );
    for (iface, want) in [
        ("nope0", "interface nope0 does not exist"),
        ("eth0", "interface eth0 has no IPv4 address"),
    ] {
        let o = lan.exec(
            "client",
            &[
                bin(),
                "--config",
                "/dev/null",
                "serve",
                "--interface",
                iface,
            ],
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(err.contains(want), "{iface}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "one line expected: {err}");
    }
    let o = Command::new(bin())
        .args(["--config", "/nonexistent.toml", "serve"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("/nonexistent.toml"),
        "{err}"
    );
}

use std::process::Command;

/// A router solicitation (RFC 4861 §4.1) as iPXE sends it, from `mac` and
/// its EUI-64 link-local address.
fn solicitation(mac: [u8; 6]) -> Vec<u8> {
    use etherparse::{Icmpv6Type, PacketBuilder};
    let b = PacketBuilder::ethernet2(mac, [0x33, 0x33, 0, 0, 0, 2])
        .ipv6(
            eui64(mac).octets(),
            [0xff02, 0, 0, 0, 0, 0, 0, 2]
                .map(u16::to_be_bytes)
                .concat()
                .try_into()
                .unwrap(),
            255,
        )
        .icmpv6(Icmpv6Type::RouterSolicitation);
    let mut payload = vec![0, 0, 0, 0, 1, 1];
    payload.extend_from_slice(&mac);
    let mut v = Vec::new();
    b.write(&mut v, &payload).unwrap();
    v
}

fn eui64(m: [u8; 6]) -> std::net::Ipv6Addr {
    std::net::Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 2,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

/// Sends `frames` from this host's eth0 and returns, for `wait`, the router
/// advertisements seen on the wire, each with its Ethernet destination and
/// when it came (after the last frame was sent).
fn solicit(
    frames: Vec<Vec<u8>>,
    wait: Duration,
) -> Vec<([u8; 6], pxe_sidecar::ndp::Ndp, Duration)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let iface = pxe_sidecar::listen::lookup("eth0", Some(Ipv4Addr::UNSPECIFIED)).unwrap();
        let sock = pxe_sidecar::listen::RawSocket::open_ndp(&iface).unwrap();
        for f in &frames {
            sock.send(f).await.unwrap();
        }
        let start = std::time::Instant::now();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 2048];
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(got) =
            tokio::time::timeout_at(deadline, sock.recv_incoming(&mut buf, "test")).await
        {
            let f = &buf[..got];
            if let Ok(ra @ pxe_sidecar::ndp::Ndp::Advertisement { .. }) = pxe_sidecar::ndp::parse(f)
            {
                out.push((f[..6].try_into().unwrap(), ra, start.elapsed()));
            }
        }
        out
    })
}

#[test]
fn a_pxe_clients_router_solicitation_gets_no_router_here_only_when_no_router_answers() {
    if !root_or_skip(
        "a_pxe_clients_router_solicitation_gets_no_router_here_only_when_no_router_answers",
    ) {
        return;
    }
    use pxe_sidecar::ndp::Ndp;
    let mut lan = Lan::new(&[ROUTER, PXE, CLIENT]);
    let (log, _) = start_pxe(&mut lan, "", &[]);
    let pxe = pxe_client(1, 0);
    let mac = pxe.mac;
    let got = lan.in_host("client", move || discover(&pxe, Duration::from_secs(1)));
    assert!(got.iter().any(|s| s.is_proxy_offer()), "{got:#?}");

    // The PXE client (three times, as firmware retries) and a machine we
    // never answered solicit routers.
    let stranger = [0x52, 0x54, 0, 0, 0, 0x77];
    let frames = vec![
        solicitation(mac),
        solicitation(mac),
        solicitation(mac),
        solicitation(stranger),
    ];
    let seen = lan.in_host("client", move || solicit(frames, Duration::from_secs(2)));
    assert_eq!(seen.len(), 1, "one advertisement expected: {seen:#?}");
    let (dst, ra, at) = &seen[0];
    assert_eq!(*dst, mac, "Ethernet-unicast to the PXE client only");
    let Ndp::Advertisement { src, lifetime, .. } = ra else {
        unreachable!()
    };
    assert_eq!(*lifetime, 0, "router lifetime 0: not a default router");
    assert!(src.is_unicast_link_local(), "{src}");
    // it waited for a real router's answer (MAX_RA_DELAY_TIME 0.5 s)
    assert!(*at >= Duration::from_millis(500), "answered after {at:?}");
    wait_for_log(
        &log,
        "RS from 52:54:00:00:00:01 (fe80::5054:ff:fe00:1) via eth0: no IPv6 router answered",
        Duration::from_secs(2),
    );
    assert!(
        !std::fs::read_to_string(&log)
            .unwrap()
            .contains("52:54:00:00:00:77")
    );

    // A real router advertises on the LAN: a new PXE client's solicitation
    // is left to it.
    lan.in_host("router", || {
        use etherparse::{Icmpv6Type, PacketBuilder, icmpv6::RouterAdvertisementHeader};
        let ra = RouterAdvertisementHeader {
            cur_hop_limit: 64,
            managed_address_config: false,
            other_config: false,
            router_lifetime: 1800,
        };
        let all_nodes: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [0x33, 0x33, 0, 0, 0, 1])
            .ipv6(eui64([2, 0, 0, 0, 0, 1]).octets(), all_nodes, 255)
            .icmpv6(Icmpv6Type::RouterAdvertisement(ra));
        let mut f = Vec::new();
        b.write(&mut f, &[0; 8]).unwrap();
        solicit(vec![f], Duration::from_millis(100));
    });
    wait_for_log(
        &log,
        "RA from IPv6 router fe80::ff:fe00:1",
        Duration::from_secs(2),
    );
    let second = pxe_client(2, 0);
    let mac = second.mac;
    let got = lan.in_host("client", move || discover(&second, Duration::from_secs(1)));
    assert!(got.iter().any(|s| s.is_proxy_offer()), "{got:#?}");
    let frames = vec![solicitation(mac)];
    let seen = lan.in_host("client", move || solicit(frames, Duration::from_secs(2)));
    assert!(seen.is_empty(), "answered beside a real router: {seen:#?}");
    wait_for_log(
        &log,
        "RS from 52:54:00:00:00:02 (fe80::5054:ff:fe00:2) via eth0: not answered: the IPv6 router fe80::ff:fe00:1 advertises on this LAN",
        Duration::from_secs(2),
    );
}

#[test]
fn a_boot_file_nobody_can_serve_is_named_at_start_and_on_sighup() {
    if !root_or_skip("a_boot_file_nobody_can_serve_is_named_at_start_and_on_sighup") {
        return;
    }
    let mut lan = Lan::new(&[PXE]);
    let (log, cfg) = start_pxe(
        &mut lan,
        "[boot]\nefi64 = \"nothere.efi\"\n[nfs]\nenabled = false\n",
        &[],
    );
    let text = wait_for_log(
        &log,
        "[boot] efi64: nothere.efi is not in the TFTP root",
        Duration::from_secs(5),
    );
    assert!(
        text.contains("put it in the TFTP root or change [boot] efi64"),
        "{text}"
    );
    // the packaged loaders of the other keys are installed here: not named
    assert!(!text.contains("[boot] bios:"), "{text}");
    // a config that fixes it, then one that breaks bios
    std::fs::write(&cfg, "[boot]\nbios = \"gone.0\"\n[nfs]\nenabled = false\n").unwrap();
    // SAFETY: a signal to the server we started.
    unsafe { libc::kill(lan.pid("pxe-sidecar"), libc::SIGHUP) };
    wait_for_log(
        &log,
        "[boot] bios: gone.0 is not in the TFTP root",
        Duration::from_secs(5),
    );
}
