//! The file doors under a crowd, as when a lab powers on at once:
//! 1. 200 clients, each from its own address, fetch the UEFI loader
//!    (`snponly.efi` from Debian's ipxe) by TFTP at the same moment, the way
//!    EDK2 asks (blksize 1468, tsize; no windowsize);
//! 2. 50 clients fetch a kernel (8 MiB) and an initrd (32 MiB) over HTTP at
//!    the same moment, one connection per file, as iPXE does.
//!
//! Each against its anchor in the same run on the same LAN: dnsmasq's TFTP
//! and python's `http.server`. Servers are pinned to CPU 0, the clients (one
//! thread, async) to CPU 1; rounds alternate (CROWD_ROUNDS, default 3) and
//! medians are reported: total time, p50/p99 per client, done/started, and
//! each server's peak RSS. pxe-sidecar runs with its default limits.
//! Needs root and dnsmasq. Run with `cargo bench --bench crowd`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::netns::{Lan, require, start_dnsmasq_tftp, wait_for_log};
use common::peak_rss_kib;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TFTP_CLIENTS: usize = 200;
const HTTP_CLIENTS: usize = 50;
const OURS: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const ANCHOR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 3);
const LOADER: &str = "/usr/lib/ipxe/snponly.efi";

/// The address of client `i` (each client its own, as distinct machines).
fn client_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 1 + (i / 250) as u8, 1 + (i % 250) as u8)
}

/// One TFTP read as EDK2 does it: RRQ with blksize 1468 and tsize, ACK each
/// block; a lost packet is asked for again after 1 s (at most 8 times).
async fn tftp_get(src: Ipv4Addr, server: Ipv4Addr, file: &str) -> Result<usize, String> {
    let sock = tokio::net::UdpSocket::bind((src, 0))
        .await
        .map_err(|e| e.to_string())?;
    let mut last = vec![0, 1];
    for part in [file, "octet", "blksize", "1468", "tsize", "0"] {
        last.extend_from_slice(part.as_bytes());
        last.push(0);
    }
    let mut to = SocketAddr::from((server, 69));
    let (mut got, mut next, mut blksize, mut tries) = (0usize, 1u16, 512usize, 0);
    let mut buf = vec![0u8; 2048];
    loop {
        sock.send_to(&last, to).await.map_err(|e| e.to_string())?;
        let (n, from) =
            match tokio::time::timeout(Duration::from_secs(1), sock.recv_from(&mut buf)).await {
                Ok(r) => r.map_err(|e| e.to_string())?,
                Err(_) => {
                    tries += 1;
                    if tries > 8 {
                        return Err(format!("timed out after block {}", next.wrapping_sub(1)));
                    }
                    continue;
                }
            };
        to = from;
        let p = &buf[..n];
        match p.get(..2) {
            Some([0, 6]) => {
                // OACK: the granted block size, then ACK 0
                let fields: Vec<&[u8]> = p[2..].split(|&b| b == 0).collect();
                if let Some(i) = fields
                    .iter()
                    .position(|f| f.eq_ignore_ascii_case(b"blksize"))
                {
                    blksize = std::str::from_utf8(fields.get(i + 1).unwrap_or(&&b""[..]))
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(512);
                }
                last = vec![0, 4, 0, 0];
            }
            Some([0, 3]) if n >= 4 => {
                let block = u16::from_be_bytes([p[2], p[3]]);
                last = vec![0, 4, p[2], p[3]];
                if block == next {
                    got += n - 4;
                    next = next.wrapping_add(1);
                    tries = 0;
                    if n - 4 < blksize {
                        sock.send_to(&last, to).await.map_err(|e| e.to_string())?;
                        return Ok(got);
                    }
                }
            }
            Some([0, 5]) => {
                return Err(String::from_utf8_lossy(&p[4..])
                    .trim_end_matches('\0')
                    .to_string());
            }
            _ => return Err("not a TFTP packet".into()),
        }
    }
}

/// One HTTP GET on its own connection; the body's length.
async fn http_get(src: Ipv4Addr, server: Ipv4Addr, path: &str) -> Result<usize, String> {
    let e = |e: std::io::Error| e.to_string();
    let sock = tokio::net::TcpSocket::new_v4().map_err(e)?;
    sock.bind(SocketAddr::from((src, 0))).map_err(e)?;
    let mut s = sock
        .connect(SocketAddr::from((server, 80)))
        .await
        .map_err(e)?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {server}\r\nUser-Agent: iPXE/1.21.1\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .map_err(e)?;
    let mut head = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0usize;
    let mut body_at = None;
    loop {
        let n = s.read(&mut buf).await.map_err(e)?;
        if n == 0 {
            break;
        }
        total += n;
        if body_at.is_none() {
            head.extend_from_slice(&buf[..n]);
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                if !head.starts_with(b"HTTP/1.1 200") && !head.starts_with(b"HTTP/1.0 200") {
                    return Err(String::from_utf8_lossy(&head[..i]).into_owned());
                }
                body_at = Some(i + 4);
            }
        }
    }
    body_at
        .map(|b| total - b)
        .ok_or_else(|| "no HTTP header".into())
}

/// Each client's time, or why it failed.
type Outcome = Vec<Result<Duration, String>>;

/// The crowd from the client host, on CPU 1: all start at once.
fn tftp_crowd(lan: &Lan, server: Ipv4Addr, size: usize) -> (Duration, Outcome) {
    crowd(lan, TFTP_CLIENTS, move |i| async move {
        let n = tftp_get(client_ip(i), server, "snponly.efi").await?;
        (n == size)
            .then_some(())
            .ok_or(format!("{n} bytes of {size}"))
    })
}

fn http_crowd(lan: &Lan, server: Ipv4Addr, size: usize) -> (Duration, Outcome) {
    crowd(lan, HTTP_CLIENTS, move |i| async move {
        let k = http_get(client_ip(i), server, "/vmlinuz").await?;
        let r = http_get(client_ip(i), server, "/initrd.img").await?;
        (k + r == size)
            .then_some(())
            .ok_or(format!("{} bytes of {size}", k + r))
    })
}

fn crowd<F, Fut>(lan: &Lan, n: usize, client: F) -> (Duration, Outcome)
where
    F: Fn(usize) -> Fut + Send + Copy + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + 'static,
{
    lan.in_host("client", move || {
        pin_to_cpu(1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async move {
            let t = Instant::now();
            let tasks: Vec<_> = (0..n)
                .map(|i| {
                    tokio::task::spawn_local(async move {
                        let start = Instant::now();
                        let r = tokio::time::timeout(Duration::from_secs(120), client(i)).await;
                        match r {
                            Ok(Ok(())) => Ok(start.elapsed()),
                            Ok(Err(e)) => Err(e),
                            Err(_) => Err("no end in 120 s".into()),
                        }
                    })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap_or_else(|e| Err(e.to_string())));
            }
            (t.elapsed(), out)
        })
    })
}

fn pin_to_cpu(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; the calls affect this thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

#[derive(Default)]
struct Rounds {
    total: Vec<Duration>,
    p50: Vec<Duration>,
    p99: Vec<Duration>,
    done: Vec<usize>,
    errors: Vec<String>,
}

impl Rounds {
    fn add(&mut self, (total, out): (Duration, Outcome)) {
        let mut times: Vec<Duration> = out
            .iter()
            .filter_map(|r| r.as_ref().ok().copied())
            .collect();
        times.sort();
        let at = |q: f64| {
            times
                .get(((times.len() as f64 * q) as usize).min(times.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        self.total.push(total);
        self.p50.push(at(0.5));
        self.p99.push(at(0.99));
        self.done.push(times.len());
        if let Some(Err(e)) = out.iter().find(|r| r.is_err()) {
            self.errors.push(e.clone());
        }
    }
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !std::env::args().any(|a| a == "--bench") {
        eprintln!("crowd bench: run as root with `cargo bench --bench crowd`; skipped");
        return;
    }
    for t in ["dnsmasq", "python3", "taskset"] {
        require(t);
    }
    assert!(
        std::path::Path::new(LOADER).exists(),
        "{LOADER}: install ipxe (scripts/deps)"
    );
    let rounds: usize = std::env::var("CROWD_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(3);
    // CROWD_HTTP=0: the TFTP crowd alone (more rounds in the same time)
    let http = std::env::var("CROWD_HTTP").map_or(true, |v| v != "0");
    let mut lan = Lan::new(&[
        ("server", "02:00:00:00:00:02", Some("10.77.0.2/16")),
        ("anchor", "02:00:00:00:00:03", Some("10.77.0.3/16")),
        ("client", "02:00:00:00:00:09", Some("10.77.0.9/16")),
    ]);
    let batch = lan.path("addrs");
    let lines: String = (0..TFTP_CLIENTS.max(HTTP_CLIENTS))
        .map(|i| format!("addr add {}/16 dev eth0\n", client_ip(i)))
        .collect();
    std::fs::write(&batch, lines).unwrap();
    let o = lan.exec("client", &["ip", "-batch", batch.to_str().unwrap()]);
    assert!(o.status.success(), "{o:?}");

    let root = lan.path("root");
    std::fs::create_dir_all(&root).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::copy(LOADER, root.join("snponly.efi")).unwrap();
    let loader = std::fs::metadata(LOADER).unwrap().len() as usize;
    std::fs::write(root.join("vmlinuz"), common::pseudo_random(8 << 20, 11)).unwrap();
    std::fs::write(root.join("initrd.img"), common::pseudo_random(32 << 20, 12)).unwrap();
    let pair = 40 << 20;
    let root_s = root.display().to_string();

    let cfg = lan.path("pxe.toml");
    std::fs::write(
        &cfg,
        format!("[tftp]\nroot = \"{root_s}\"\n[nfs]\nenabled = false\n"),
    )
    .unwrap();
    let cfg_s = cfg.display().to_string();
    let bin = env!("CARGO_BIN_EXE_pxe-sidecar");
    let log = lan.spawn(
        "server",
        "pxe",
        &[
            "taskset",
            "-c",
            "0",
            bin,
            "--config",
            &cfg_s,
            "serve",
            "--interface",
            "eth0",
        ],
    );
    wait_for_log(&log, "HTTP listening", Duration::from_secs(10));
    start_dnsmasq_tftp(&mut lan, "anchor", &root, 1000);
    let log = lan.spawn(
        "anchor",
        "python",
        &[
            "taskset",
            "-c",
            "0",
            "python3",
            "-u",
            "-m",
            "http.server",
            "--bind",
            "10.77.0.3",
            "--directory",
            &root_s,
            "80",
        ],
    );
    wait_for_log(&log, "Serving HTTP", Duration::from_secs(10));

    let (mut tftp_ours, mut tftp_anchor) = (Rounds::default(), Rounds::default());
    let (mut http_ours, mut http_anchor) = (Rounds::default(), Rounds::default());
    for round in 0..rounds {
        // A B, then B A: each goes first as often
        if round % 2 == 0 {
            tftp_ours.add(tftp_crowd(&lan, OURS, loader));
            tftp_anchor.add(tftp_crowd(&lan, ANCHOR, loader));
        } else {
            tftp_anchor.add(tftp_crowd(&lan, ANCHOR, loader));
            tftp_ours.add(tftp_crowd(&lan, OURS, loader));
        }
        if http {
            if round % 2 == 0 {
                http_ours.add(http_crowd(&lan, OURS, pair));
                http_anchor.add(http_crowd(&lan, ANCHOR, pair));
            } else {
                http_anchor.add(http_crowd(&lan, ANCHOR, pair));
                http_ours.add(http_crowd(&lan, OURS, pair));
            }
        }
    }
    let rss = |label: &str| peak_rss_kib(lan.pid(label));
    let (ours_rss, dnsmasq_rss, python_rss) = (rss("pxe"), rss("dnsmasq"), rss("python"));
    for l in ["pxe", "dnsmasq", "python"] {
        lan.stop(l);
    }

    println!(
        "\nfile doors under a crowd: servers on CPU 0, clients on CPU 1, median of {rounds} alternating rounds"
    );
    println!(
        "{:<46} {:>10} {:>10} {:>10} {:>9} {:>12}",
        "", "total", "p50", "p99", "done", "peak RSS"
    );
    let row = |name: &str, r: &Rounds, n: usize, rss: u64| {
        println!(
            "{:<46} {:>10.2?} {:>10.2?} {:>10.2?} {:>5}/{n} {:>8} KiB",
            name,
            median(&r.total),
            median(&r.p50),
            median(&r.p99),
            r.done.iter().min().unwrap_or(&0),
            rss
        );
        let each: Vec<String> = r
            .total
            .iter()
            .map(|d| format!("{:.0}", d.as_secs_f64() * 1e3))
            .collect();
        println!("    rounds (ms): [{}]", each.join(" "));
        for e in r.errors.iter().take(1) {
            println!("    first failure: {e}");
        }
    };
    let t = format!("{TFTP_CLIENTS} x TFTP snponly.efi ({} KiB)", loader / 1024);
    row(
        &format!("{t}: pxe-sidecar"),
        &tftp_ours,
        TFTP_CLIENTS,
        ours_rss,
    );
    row(
        &format!("{t}: dnsmasq"),
        &tftp_anchor,
        TFTP_CLIENTS,
        dnsmasq_rss,
    );
    if http {
        let h = format!("{HTTP_CLIENTS} x HTTP kernel + initrd (40 MiB)");
        row(
            &format!("{h}: pxe-sidecar"),
            &http_ours,
            HTTP_CLIENTS,
            ours_rss,
        );
        row(
            &format!("{h}: python http.server"),
            &http_anchor,
            HTTP_CLIENTS,
            python_rss,
        );
    }
    let ratio = |a: &Rounds, o: &Rounds| {
        if o.total.is_empty() {
            return "-".to_string();
        }
        let faster = o.total.iter().zip(&a.total).filter(|(o, a)| o < a).count();
        format!(
            "{:.2}x (faster in {faster} of {rounds} rounds)",
            median(&a.total).as_secs_f64() / median(&o.total).as_secs_f64()
        )
    };
    println!(
        "anchor / pxe-sidecar total time: TFTP {}, HTTP {} (above 1.0: pxe-sidecar faster); pxe-sidecar peak RSS {ours_rss} KiB (whole run)",
        ratio(&tftp_anchor, &tftp_ours),
        ratio(&http_anchor, &http_ours),
    );
}
