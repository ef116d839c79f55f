//! The TFTP and HTTP doors with real clients (tftp-hpa, curl, atftp) on a namespace
//! LAN: sizes at block boundaries, block-number rollover, 100 MiB by sha256,
//! every `--secure` rule attacked, option negotiation, client aborts, and a
//! lossy link made by a userspace relay.

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::netns::{Lan, require, root_or_skip, start_server, wait_for_log};
use sha2::{Digest, Sha256};

const SERVER: (&str, &str, Option<&str>) = ("server", "02:00:00:00:00:02", Some("10.77.0.2/24"));
const CLIENT: (&str, &str, Option<&str>) = ("client", "02:00:00:00:00:09", Some("10.77.0.9/24"));
const SRV: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

fn bytes(n: usize, seed: u64) -> Vec<u8> {
    common::pseudo_random(n, seed)
}

fn sha(p: &Path) -> String {
    Sha256::digest(std::fs::read(p).unwrap_or_default())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Setup {
    lan: Lan,
    root: PathBuf,
    log: PathBuf,
}

const SIZES: &[(&str, usize)] = &[
    ("empty", 0),
    ("b511", 511),
    ("b512", 512),
    ("b513", 513),
    // 65536 blocks of 512 bytes + 1: the block number wraps past 65535.
    ("rollover", 512 * 65536 + 1),
];

fn setup(extra_config: &str) -> Setup {
    let mut lan = Lan::new(&[SERVER, CLIENT]);
    let root = lan.path("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    for (i, (name, n)) in SIZES.iter().enumerate() {
        std::fs::write(root.join(name), bytes(*n, i as u64 + 7)).unwrap();
    }
    std::fs::write(root.join("sub/inner"), b"inside").unwrap();
    std::os::unix::fs::symlink("/etc/shadow", root.join("shadow")).unwrap();
    std::os::unix::fs::symlink("sub/inner", root.join("link-in")).unwrap();
    let config = format!("[tftp]\nroot = \"{}\"\n{extra_config}", root.display());
    let (log, _) = start_server(&mut lan, "server", &config, &[]);
    wait_for_log(&log, "TFTP listening", Duration::from_secs(5));
    Setup { lan, root, log }
}

fn curl(lan: &Lan, name: &str, out: &Path, blksize: Option<u32>) -> std::process::Output {
    let url = format!("tftp://{SRV}/{name}");
    let o = out.display().to_string();
    let mut args = vec!["curl", "-s", "-S", "--max-time", "60", "-o", &o];
    let b;
    if let Some(bs) = blksize {
        b = bs.to_string();
        args.extend_from_slice(&["--tftp-blksize", &b]);
    }
    args.push(&url);
    lan.exec("client", &args)
}

#[test]
fn real_clients_fetch_every_size_intact() {
    if !root_or_skip("real_clients_fetch_every_size_intact") {
        return;
    }
    for t in ["tftp", "curl", "atftp"] {
        require(t);
    }
    let s = setup("");
    for (name, size) in SIZES {
        let want = sha(&s.root.join(name));
        // tftp-hpa: plain RFC 1350, 512-byte blocks.
        let out = s.lan.path(&format!("{name}.hpa"));
        let o = s.lan.exec(
            "client",
            &[
                "tftp",
                "-m",
                "binary",
                &SRV.to_string(),
                "-c",
                "get",
                name,
                &out.display().to_string(),
            ],
        );
        assert!(
            o.status.success(),
            "tftp-hpa {name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(sha(&out), want, "tftp-hpa {name}");
        // curl: blksize 1468 + tsize. curl 7.88 times out on 0-byte files
        // against any server (tftpd-hpa too), so it skips the empty one.
        if *size > 0 {
            let out = s.lan.path(&format!("{name}.curl"));
            let o = curl(&s.lan, name, &out, Some(1468));
            assert!(
                o.status.success(),
                "curl {name}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert_eq!(sha(&out), want, "curl {name}");
        }
        // atftp: blksize and windowsize (RFC 7440).
        let out = s.lan.path(&format!("{name}.atftp"));
        let o = s.lan.exec(
            "client",
            &[
                "atftp",
                "--option",
                "blksize 1468",
                "--option",
                "windowsize 16",
                "-g",
                "-r",
                name,
                "-l",
                &out.display().to_string(),
                &SRV.to_string(),
            ],
        );
        assert!(
            o.status.success(),
            "atftp {name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(sha(&out), want, "atftp {name}");
    }
    // The wiki's log lines: RRQ with options, then sent.
    for needle in [
        "RRQ from 10.77.0.9 b513 (tsize, blksize 1468, timeout 5)",
        "RRQ from 10.77.0.9 b513 (blksize 1468, windowsize 16)",
        "sent b513 to 10.77.0.9: 513 bytes",
    ] {
        wait_for_log(&s.log, needle, Duration::from_secs(2));
    }
}

#[test]
fn hundred_mib_by_sha256() {
    if !root_or_skip("hundred_mib_by_sha256") {
        return;
    }
    require("curl");
    let s = setup("");
    std::fs::write(s.root.join("big"), bytes(100 << 20, 99)).unwrap();
    let out = s.lan.path("big.out");
    let o = curl(&s.lan, "big", &out, Some(1468));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(sha(&out), sha(&s.root.join("big")));
}

/// A raw TFTP exchange from the client host: send `pkt` to port 69, return
/// the first reply and the port it came from.
fn raw_request(lan: &Lan, pkt: Vec<u8>) -> Option<(Vec<u8>, SocketAddr)> {
    lan.in_host("client", move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.send_to(&pkt, (SRV, 69)).unwrap();
        let mut buf = vec![0u8; 70000];
        let (n, from) = s.recv_from(&mut buf).ok()?;
        buf.truncate(n);
        Some((buf, from))
    })
}

fn rrq(name: &str, opts: &[(&str, &str)]) -> Vec<u8> {
    let mut p = vec![0, 1];
    p.extend_from_slice(name.as_bytes());
    p.push(0);
    p.extend_from_slice(b"octet\0");
    for (k, v) in opts {
        p.extend_from_slice(k.as_bytes());
        p.push(0);
        p.extend_from_slice(v.as_bytes());
        p.push(0);
    }
    p
}

fn error_code(reply: &[u8]) -> Option<u16> {
    (reply.get(..2) == Some(&[0, 5])).then(|| u16::from_be_bytes([reply[2], reply[3]]))
}

#[test]
fn secure_rules_hold_under_attack() {
    if !root_or_skip("secure_rules_hold_under_attack") {
        return;
    }
    let s = setup("");
    for (name, code) in [
        ("../etc/passwd", 2),
        ("/../etc/passwd", 2),
        ("sub/../../etc/passwd", 2),
        ("..\\..\\etc\\passwd", 2),
        ("/etc/passwd", 1), // leading / stripped: etc/passwd is not in the root
        ("shadow", 2),      // symlink to /etc/shadow
        ("sub", 2),         // a directory
        ("", 2),
        ("nope.0", 1),
    ] {
        let (reply, _) =
            raw_request(&s.lan, rrq(name, &[])).unwrap_or_else(|| panic!("{name:?}: no reply"));
        assert_eq!(error_code(&reply), Some(code), "{name:?}: {reply:?}");
    }
    // Symlinks that stay inside are followed; absolute-looking names resolve inside.
    let (reply, _) = raw_request(&s.lan, rrq("/link-in", &[])).unwrap();
    assert_eq!(&reply[..4], &[0, 3, 0, 1]);
    assert_eq!(&reply[4..], b"inside");
    // WRQ is refused with an access violation, and nothing is written.
    let mut wrq = rrq("upload", &[]);
    wrq[1] = 2;
    let (reply, _) = raw_request(&s.lan, wrq).unwrap();
    assert_eq!(error_code(&reply), Some(2));
    assert!(!s.root.join("upload").exists());
    let o = s.lan.exec(
        "client",
        &["tftp", &SRV.to_string(), "-c", "put", "/etc/hostname", "x"],
    );
    assert!(!s.root.join("x").exists(), "{o:?}");
    // Malformed requests get a log line and the server keeps serving.
    for junk in [
        vec![0, 1],
        vec![0, 1, b'a'],
        vec![0, 1, b'a', 0, b'z', b'z', 0],
        vec![9, 9, 9],
    ] {
        let _ = raw_request(&s.lan, junk);
    }
    let (reply, _) = raw_request(&s.lan, rrq("b511", &[])).unwrap();
    assert_eq!(&reply[..4], &[0, 3, 0, 1]);
    // Log lines are written by a writer thread, after the reply: wait for them.
    for needle in [
        "NAK File not found: nope.0",
        "NAK Access violation: ../etc/passwd",
        "NAK Access violation: shadow from 10.77.0.9: symlink leads outside the root",
        "refused: malformed request",
        "WRQ upload from 10.77.0.9 refused",
    ] {
        wait_for_log(&s.log, needle, Duration::from_secs(2));
    }
}

fn oack(reply: &[u8]) -> Vec<(String, String)> {
    assert_eq!(&reply[..2], &[0, 6], "expected OACK, got {reply:?}");
    let parts: Vec<String> = reply[2..]
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).to_string())
        .collect();
    parts
        .chunks(2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect()
}

#[test]
fn options_are_negotiated_and_absurd_ones_refused() {
    if !root_or_skip("options_are_negotiated_and_absurd_ones_refused") {
        return;
    }
    let s = setup("");
    let (r, _) = raw_request(
        &s.lan,
        rrq(
            "b513",
            &[
                ("blksize", "1468"),
                ("tsize", "0"),
                ("timeout", "3"),
                ("windowsize", "16"),
            ],
        ),
    )
    .unwrap();
    let o = oack(&r);
    for want in [
        ("blksize", "1468"),
        ("timeout", "3"),
        ("tsize", "513"),
        ("windowsize", "16"),
    ] {
        assert!(
            o.contains(&(want.0.into(), want.1.into())),
            "{o:?} lacks {want:?}"
        );
    }
    // Unknown and absurd options: never echoed; oversized windows are capped.
    let (r, _) = raw_request(
        &s.lan,
        rrq(
            "b513",
            &[
                ("foo", "bar"),
                ("blksize", "99999"),
                ("windowsize", "1000"),
                ("timeout", "0"),
            ],
        ),
    )
    .unwrap();
    let o = oack(&r);
    assert_eq!(
        o,
        vec![("windowsize".to_string(), "64".to_string())],
        "{o:?}"
    );
    let (r, _) = raw_request(
        &s.lan,
        rrq("b513", &[("blksize", "7"), ("tsize", "banana")]),
    )
    .unwrap();
    assert_eq!(
        &r[..4],
        &[0, 3, 0, 1],
        "no acceptable option: plain DATA 1, got {r:?}"
    );
}

#[test]
fn client_error_aborts_at_once_and_frees_the_slot() {
    if !root_or_skip("client_error_aborts_at_once_and_frees_the_slot") {
        return;
    }
    let s = setup("max_per_client = 1\n");
    std::fs::write(s.root.join("big"), bytes(4 << 20, 5)).unwrap();
    let log = s.log.clone();
    s.lan.in_host("client", move || {
        let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        // EDK2's tsize probe: RRQ with tsize, then ERROR 8 on the OACK.
        sock.send_to(
            &rrq("big", &[("tsize", "0"), ("blksize", "1468")]),
            (SRV, 69),
        )
        .unwrap();
        let mut buf = [0u8; 2048];
        let (n, tid) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..2], &[0, 6], "{:?}", &buf[..n]);
        let mut err = vec![0, 5, 0, 8];
        err.extend_from_slice(b"User aborted the transfer\0");
        sock.send_to(&err, tid).unwrap();
        // Nothing more may arrive from that transfer (before the fix the OACK was re-sent).
        sock.set_read_timeout(Some(Duration::from_millis(2500)))
            .unwrap();
        assert!(
            sock.recv_from(&mut buf).is_err(),
            "the server kept sending after the client's ERROR"
        );
        // The one per-client slot is free again: a new transfer starts at once.
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        sock.send_to(&rrq("big", &[]), (SRV, 69)).unwrap();
        let (_, _) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..4], &[0, 3, 0, 1], "expected DATA 1, not busy");
        // Abort mid-transfer, after a few blocks.
        let mut err = vec![0, 5, 0, 0];
        err.extend_from_slice(b"TFTP Aborted\0");
        let mut ack = vec![0, 4, 0, 1];
        for block in 1..=3u16 {
            ack[2..4].copy_from_slice(&block.to_be_bytes());
            let (_, from) = sock
                .recv_from(&mut buf)
                .unwrap_or((0, SocketAddr::from((SRV, 69))));
            sock.send_to(&ack, from).unwrap();
            if block == 3 {
                sock.send_to(&err, from).unwrap();
            }
        }
    });
    wait_for_log(&log, "client aborted after", Duration::from_secs(5));
    let text = wait_for_log(&log, "usual after a tsize query", Duration::from_secs(1));
    assert!(text.contains("big to 10.77.0.9"), "{text}");
    // The code as the client sent it (RFC 2347 option refusal), not folded into 0.
    assert!(text.contains("(ERROR 8 "), "{text}");
}

#[test]
fn a_vanished_client_frees_its_slot_without_the_retry_rounds() {
    if !root_or_skip("a_vanished_client_frees_its_slot_without_the_retry_rounds") {
        return;
    }
    let s = setup("max_per_client = 1\n");
    std::fs::write(s.root.join("big"), bytes(1 << 20, 6)).unwrap();
    let log = s.log.clone();
    let t0 = std::time::Instant::now();
    s.lan.in_host("client", move || {
        // Takes DATA 1 and goes away (a firmware reset mid-transfer): the
        // server's re-send after its 2 s timeout meets a closed port.
        let gone = UdpSocket::bind("0.0.0.0:0").unwrap();
        gone.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        gone.send_to(&rrq("big", &[]), (SRV, 69)).unwrap();
        let mut buf = [0u8; 2048];
        let (_, _) = gone.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..4], &[0, 3, 0, 1]);
    });
    let text = wait_for_log(&log, "port is closed", Duration::from_secs(6));
    assert!(
        text.contains("big to 10.77.0.9: failed after 0 bytes"),
        "{text}"
    );
    // Without the ICMP check this took the 5 retry rounds of 2 s each.
    assert!(t0.elapsed() < Duration::from_secs(6), "{:?}", t0.elapsed());
    s.lan.in_host("client", move || {
        let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        sock.send_to(&rrq("big", &[]), (SRV, 69)).unwrap();
        let mut buf = [0u8; 2048];
        let (_, _) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..4], &[0, 3, 0, 1], "expected DATA 1, not busy");
    });
}

#[test]
fn lossy_link_still_yields_correct_files() {
    if !root_or_skip("lossy_link_still_yields_correct_files") {
        return;
    }
    require("atftp");
    let s = setup("");
    std::fs::write(s.root.join("medium"), bytes(256 << 10, 11)).unwrap();
    // The relay listens on the client's loopback at 127.0.0.1:6969 and drops
    // 5% of datagrams in each direction (deterministic pseudo-random).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let relay = {
        let (stop, dropped) = (stop.clone(), dropped.clone());
        let ns = s.lan.ns("client");
        std::thread::spawn(move || {
            let f = std::fs::File::open(format!("/var/run/netns/{ns}")).unwrap();
            use std::os::fd::AsRawFd;
            // SAFETY: setns on this thread only.
            assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
            let front = UdpSocket::bind("127.0.0.1:6969").unwrap();
            let back = UdpSocket::bind("0.0.0.0:0").unwrap();
            front.set_nonblocking(true).unwrap();
            back.set_nonblocking(true).unwrap();
            let (mut client, mut server_tid): (Option<SocketAddr>, Option<SocketAddr>) =
                (None, None);
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            let mut lose = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % 100 < 5
            };
            let mut buf = vec![0u8; 70000];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut idle = true;
                if let Ok((n, from)) = front.recv_from(&mut buf) {
                    idle = false;
                    client = Some(from);
                    // A new RRQ goes to port 69; the rest to the transfer's port.
                    let to = if buf[..2] == [0, 1] {
                        SocketAddr::from((SRV, 69))
                    } else {
                        server_tid.unwrap_or(SocketAddr::from((SRV, 69)))
                    };
                    if lose() {
                        dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    } else {
                        let _ = back.send_to(&buf[..n], to);
                    }
                }
                if let Ok((n, from)) = back.recv_from(&mut buf) {
                    idle = false;
                    server_tid = Some(from);
                    if lose() {
                        dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    } else if let Some(c) = client {
                        let _ = front.send_to(&buf[..n], c);
                    }
                }
                if idle {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        })
    };
    let out = s.lan.path("medium.out");
    // atftp asks for a 1 s retransmission timeout (RFC 2349) and retries after 1 s itself.
    let o = s.lan.exec(
        "client",
        &[
            "timeout",
            "120",
            "atftp",
            "--tftp-timeout",
            "1",
            "--option",
            "timeout 1",
            "--option",
            "blksize 1024",
            "-g",
            "-r",
            "medium",
            "-l",
            &out.display().to_string(),
            "127.0.0.1",
            "6969",
        ],
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    relay.join().unwrap();
    assert!(
        o.status.success(),
        "{}\nserver log:\n{}",
        String::from_utf8_lossy(&o.stderr),
        std::fs::read_to_string(&s.log).unwrap_or_default()
    );
    assert_eq!(sha(&out), sha(&s.root.join("medium")));
    let d = dropped.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        d > 5,
        "the relay dropped only {d} datagrams: the test proves little"
    );
}

#[test]
fn zero_config_serves_debian_loaders_and_a_helpful_menu() {
    if !root_or_skip("zero_config_serves_debian_loaders_and_a_helpful_menu") {
        return;
    }
    require("curl");
    let mut lan = Lan::new(&[SERVER, CLIENT]);
    let (log, _) = start_server(
        &mut lan,
        "server",
        "[tftp]\nroot = \"/nonexistent-tftp-root\"\n",
        &[],
    );
    let text = wait_for_log(&log, "does not exist: serving only", Duration::from_secs(5));
    assert!(text.contains("pxelinux.0"), "{text}");
    for (name, pkg) in [
        ("pxelinux.0", "/usr/lib/PXELINUX/pxelinux.0"),
        ("ldlinux.c32", "/usr/lib/syslinux/modules/bios/ldlinux.c32"),
        ("syslinux.efi", "/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi"),
    ] {
        let out = lan.path(name);
        let o = curl(&lan, name, &out, Some(1468));
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(sha(&out), sha(Path::new(pkg)), "{name}");
    }
    let out = lan.path("default");
    assert!(
        curl(&lan, "pxelinux.cfg/default", &out, None)
            .status
            .success()
    );
    let menu = std::fs::read_to_string(&out).unwrap();
    assert!(
        menu.contains("pxe-sidecar check") && menu.contains("[pxelinux]"),
        "{menu}"
    );
    // pxelinux's config search: a per-MAC file is missing, logged with its exact name.
    let o = curl(
        &lan,
        "pxelinux.cfg/01-52-54-00-12-34-56",
        &lan.path("x"),
        None,
    );
    assert!(!o.status.success());
    wait_for_log(
        &log,
        "NAK File not found: pxelinux.cfg/01-52-54-00-12-34-56",
        Duration::from_secs(2),
    );
}

fn http(lan: &Lan, args: &[&str]) -> (String, Vec<u8>) {
    let mut full = vec![
        "curl",
        "-s",
        "-S",
        "--max-time",
        "30",
        "-D",
        "-",
        "-o",
        "/dev/stdout",
    ];
    full.extend_from_slice(args);
    let o = lan.exec("client", &full);
    let out = o.stdout;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(out.len(), |p| p + 4);
    (
        String::from_utf8_lossy(&out[..split]).to_string(),
        out[split..].to_vec(),
    )
}

#[test]
fn http_serves_the_same_tree_read_only() {
    if !root_or_skip("http_serves_the_same_tree_read_only") {
        return;
    }
    require("curl");
    let s = setup("[http]\nenabled = true\nport = 8080\n");
    wait_for_log(
        &s.log,
        "HTTP listening on 10.77.0.2:8080",
        Duration::from_secs(5),
    );
    let base = format!("http://{SRV}:8080");
    let want = std::fs::read(s.root.join("rollover")).unwrap();
    let (h, body) = http(&s.lan, &[&format!("{base}/rollover")]);
    assert!(h.starts_with("HTTP/1.1 200"), "{h}");
    // exactly this case: GRUB 2.12 matches "Content-Length: " byte for
    // byte, and without it refuses kernels under Secure Boot
    assert!(
        h.contains(&format!("Content-Length: {}", want.len())),
        "{h}"
    );
    assert!(body == want, "body differs");
    // Range request.
    let (h, body) = http(&s.lan, &["-r", "10-19", &format!("{base}/b513")]);
    assert!(h.starts_with("HTTP/1.1 206"), "{h}");
    assert_eq!(
        body,
        std::fs::read(s.root.join("b513")).unwrap()[10..20].to_vec()
    );
    // HEAD: length, no body.
    let o = s
        .lan
        .exec("client", &["curl", "-s", "-I", &format!("{base}/b512")]);
    let h = String::from_utf8_lossy(&o.stdout).to_ascii_lowercase();
    assert!(
        h.contains("content-length: 512") && h.len() < 400,
        "HEAD must send headers only: {h}"
    );
    // Generated config over HTTP too.
    let (h, body) = http(&s.lan, &[&format!("{base}/pxelinux.cfg/default")]);
    assert!(
        h.starts_with("HTTP/1.1 200") && String::from_utf8_lossy(&body).contains("pxe-sidecar"),
        "{h}"
    );
    // No listings, no escape, no writes.
    for (path, code) in [
        ("/", "404"),
        ("/sub/", "404"),
        ("/../etc/passwd", "403"),
        ("/%2e%2e/etc/passwd", "403"),
        ("/shadow", "403"),
        ("/nope", "404"),
    ] {
        let (h, _) = http(&s.lan, &["--path-as-is", &format!("{base}{path}")]);
        assert!(h.starts_with(&format!("HTTP/1.1 {code}")), "{path}: {h}");
    }
    let (h, _) = http(
        &s.lan,
        &["-X", "PUT", "--data", "x", &format!("{base}/upload")],
    );
    assert!(h.starts_with("HTTP/1.1 405"), "{h}");
    assert!(!s.root.join("upload").exists());
    // Log lines are written by a writer thread, after the reply: wait for them.
    for needle in [
        "HTTP GET /rollover from 10.77.0.9: 200 (33554433 bytes)",
        "HTTP GET /b513 from 10.77.0.9: 206 (10 bytes, bytes=10-19)",
        "HTTP GET /nope from 10.77.0.9: 404 File not found",
        "403 Access violation: symlink leads outside the root",
    ] {
        wait_for_log(&s.log, needle, Duration::from_secs(2));
    }
}

#[test]
fn duplicate_acks_do_not_cause_resend_storms() {
    if !root_or_skip("duplicate_acks_do_not_cause_resend_storms") {
        return;
    }
    let s = setup("");
    s.lan.in_host("client", || {
        let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(700)))
            .unwrap();
        sock.send_to(&rrq("b513", &[]), (SRV, 69)).unwrap();
        let mut buf = [0u8; 2048];
        let (_, tid) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..4], &[0, 3, 0, 1]);
        // The Sorcerer's Apprentice: ACK 1 three times. DATA 2 must come once.
        for _ in 0..3 {
            sock.send_to(&[0, 4, 0, 1], tid).unwrap();
        }
        let mut data2 = 0;
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            if buf[..4] == [0, 3, 0, 2] {
                data2 += 1;
                assert_eq!(n, 4 + 1);
            }
        }
        assert_eq!(
            data2, 1,
            "DATA 2 was sent {data2} times for 3 identical ACKs"
        );
        sock.send_to(&[0, 4, 0, 2], tid).unwrap();
    });
}

#[test]
fn tftp_can_be_turned_off_for_another_server() {
    if !root_or_skip("tftp_can_be_turned_off_for_another_server") {
        return;
    }
    let mut lan = Lan::new(&[SERVER, CLIENT]);
    let (log, _) = start_server(&mut lan, "server", "[tftp]\nenabled = false\n", &[]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !std::fs::read_to_string(&log)
            .unwrap()
            .contains("TFTP listening")
    );
    // Port 69 is free for the other server.
    let free = lan.in_host("server", || UdpSocket::bind((SRV, 69)).is_ok());
    assert!(free, "port 69 should be free with [tftp] enabled = false");
}

#[test]
fn uploads_only_into_a_separate_dir_when_enabled() {
    if !root_or_skip("uploads_only_into_a_separate_dir_when_enabled") {
        return;
    }
    require("tftp");
    let mut lan = Lan::new(&[SERVER, CLIENT]);
    let up = lan.path("uploads");
    std::fs::create_dir(&up).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&up, std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = format!(
        "[tftp]\nroot = \"{}\"\nupload_dir = \"{}\"\nupload_max_bytes = 100000\n",
        lan.path("root").display(),
        up.display()
    );
    std::fs::create_dir_all(lan.path("root")).unwrap();
    let (log, _) = start_server(&mut lan, "server", &config, &[]);
    let src = lan.path("report.txt");
    std::fs::write(&src, bytes(5000, 3)).unwrap();
    let put = |name: &str, file: &Path| {
        lan.exec(
            "client",
            &[
                "tftp",
                "-m",
                "binary",
                &SRV.to_string(),
                "-c",
                "put",
                &file.display().to_string(),
                name,
            ],
        )
    };
    let o = put("report.txt", &src);
    assert!(
        o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("Error"),
        "{o:?}"
    );
    assert_eq!(sha(&up.join("report.txt")), sha(&src));
    // Never overwrite, never leave the directory, never exceed the cap.
    let o = put("report.txt", &src);
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        out.contains("Error code 6") || out.contains("exists"),
        "{out}"
    );
    let o = put("../escape.txt", &src);
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(out.contains("Error code 2"), "{out}");
    assert!(!lan.path("escape.txt").exists());
    let big = lan.path("big.bin");
    std::fs::write(&big, bytes(200_000, 4)).unwrap();
    let o = put("big.bin", &big);
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(out.contains("Error code 3"), "{out}");
    // Uploads are not served back: the upload dir is not the root.
    let (r, _) = raw_request(&lan, rrq("report.txt", &[])).unwrap();
    assert_eq!(error_code(&r), Some(1));
    wait_for_log(
        &log,
        "WRQ from 10.77.0.9 report.txt: writing",
        Duration::from_secs(2),
    );
    wait_for_log(
        &log,
        "NAK File already exists: WRQ report.txt",
        Duration::from_secs(2),
    );
}
