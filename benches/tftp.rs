//! TFTP throughput, measured in one run on one namespace LAN, server pinned
//! to CPU 0 and clients to CPU 1: pxe-sidecar vs dnsmasq's TFTP vs tftpd-hpa.
//! 1. one 100 MiB fetch with atftp, blksize 1468, without and with windowsize 16;
//! 2. 50 atftp clients fetching a 40 MiB initrd at once: total time;
//!
//! and pxe-sidecar's peak RSS. Needs root and dnsmasq, tftpd-hpa, atftp.
//! Run with `cargo bench --bench tftp` (or scripts/bench).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::netns::{Lan, require, wait_for_log};
use common::{cpu_time, peak_rss_kib};

const CLIENTS: usize = 50;

fn write_random(path: &std::path::Path, n: usize) {
    std::fs::write(path, common::pseudo_random(n, 0x2545_f491_4f6c_dd1d)).unwrap();
}

fn atftp(lan: &Lan, file: &str, window: Option<u16>) -> Duration {
    let ns = lan.ns("client");
    let mut args: Vec<String> = vec![
        "netns".into(),
        "exec".into(),
        ns,
        "taskset".into(),
        "-c".into(),
        "1".into(),
        "atftp".into(),
        "--option".into(),
        "blksize 1468".into(),
    ];
    if let Some(w) = window {
        args.extend(["--option".into(), format!("windowsize {w}")]);
    }
    args.extend([
        "-g".into(),
        "-r".into(),
        file.into(),
        "-l".into(),
        "/dev/null".into(),
        "10.77.0.2".into(),
    ]);
    let t = Instant::now();
    let o = Command::new("ip").args(&args).output().unwrap();
    assert!(
        o.status.success(),
        "atftp {file}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    t.elapsed()
}

fn concurrent(lan: &Lan, file: &str) -> Duration {
    let ns = lan.ns("client");
    let t = Instant::now();
    let children: Vec<_> = (0..CLIENTS)
        .map(|_| {
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns,
                    "taskset",
                    "-c",
                    "1",
                    "atftp",
                    "--option",
                    "blksize 1468",
                    "-g",
                    "-r",
                    file,
                    "-l",
                    "/dev/null",
                    "10.77.0.2",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "a concurrent atftp failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    t.elapsed()
}

struct Row {
    name: &'static str,
    plain: Duration,
    window: Duration,
    fifty: Duration,
    rss: Option<u64>,
    /// Server CPU time for the plain 100 MiB fetch and for the 50 clients.
    cpu: Option<(Duration, Duration)>,
}

/// Runs the three measurements against the server `pid` (None: it forks
/// per transfer, so its CPU time is not in one process).
fn measure(lan: &Lan, name: &'static str, pid: Option<i32>) -> Row {
    let cpu = || pid.map_or(Duration::ZERO, cpu_time);
    let c0 = cpu();
    let plain = atftp(lan, "big", None);
    let c1 = cpu();
    let window = atftp(lan, "big", Some(16));
    let c2 = cpu();
    let fifty = concurrent(lan, "initrd");
    let c3 = cpu();
    Row {
        name,
        plain,
        window,
        fifty,
        rss: pid.map(peak_rss_kib),
        cpu: pid.map(|_| (c1 - c0, c3 - c2)),
    }
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !std::env::args().any(|a| a == "--bench") {
        eprintln!("tftp bench: run as root with `cargo bench --bench tftp`; skipped");
        return;
    }
    for t in ["dnsmasq", "atftp", "taskset"] {
        require(t);
    }
    assert!(
        std::path::Path::new("/usr/sbin/in.tftpd").exists(),
        "tftpd-hpa is not installed: run scripts/deps"
    );
    let mut lan = Lan::new(&[
        ("server", "02:00:00:00:00:02", Some("10.77.0.2/24")),
        ("client", "02:00:00:00:00:09", Some("10.77.0.9/24")),
    ]);
    let root = lan.path("root");
    std::fs::create_dir_all(&root).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    write_random(&root.join("big"), 100 << 20);
    write_random(&root.join("initrd"), 40 << 20);
    let root_s = root.display().to_string();
    let mut rows = Vec::new();

    // pxe-sidecar (50 clients share one test IP here, so the per-client cap is raised to 50).
    let cfg = lan.path("pxe.toml");
    std::fs::write(
        &cfg,
        format!("[tftp]\nroot = \"{root_s}\"\nmax_per_client = 50\n"),
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
    wait_for_log(&log, "TFTP listening", Duration::from_secs(10));
    rows.push(measure(&lan, "pxe-sidecar", Some(lan.pid("pxe"))));
    lan.stop("pxe");

    // dnsmasq, TFTP only (no DHCP, no DNS).
    let log = lan.spawn(
        "server",
        "dnsmasq",
        &[
            "taskset",
            "-c",
            "0",
            "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--port=0",
            "--user=root",
            "--enable-tftp",
            "--interface=eth0",
            "--bind-interfaces",
            &format!("--tftp-root={root_s}"),
            "--log-facility=-",
            "--tftp-max=100",
            &format!("--pid-file={}", lan.path("dnsmasq.pid").display()),
        ],
    );
    wait_for_log(&log, "TFTP root is", Duration::from_secs(10));
    rows.push(measure(&lan, "dnsmasq", Some(lan.pid("dnsmasq"))));
    lan.stop("dnsmasq");

    // tftpd-hpa --secure (forks per transfer: its RSS is per process).
    lan.spawn(
        "server",
        "tftpd",
        &[
            "taskset",
            "-c",
            "0",
            "/usr/sbin/in.tftpd",
            "--foreground",
            "--listen",
            "--user",
            "root",
            "--address",
            "10.77.0.2:69",
            "--secure",
            &root_s,
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    rows.push(measure(&lan, "tftpd-hpa", None));
    lan.stop("tftpd");

    println!("\nTFTP, atftp client, blksize 1468, server on CPU 0, clients on CPU 1");
    println!(
        "{:<12} {:>22} {:>26} {:>22} {:>12} {:>22}",
        "server",
        "100 MiB (MB/s)",
        "100 MiB windowsize 16",
        "50 x 40 MiB total",
        "peak RSS",
        "server CPU 100M / 50x"
    );
    for r in &rows {
        println!(
            "{:<12} {:>13.2?} {:>7.1} {:>17.2?} {:>7.1} {:>22.2?} {:>12} {:>22}",
            r.name,
            r.plain,
            mbps(100 << 20, r.plain),
            r.window,
            mbps(100 << 20, r.window),
            r.fifty,
            r.rss.map_or("-".to_string(), |k| format!("{k} KiB")),
            r.cpu.map_or("-".to_string(), |(a, b)| format!(
                "{:.2}s / {:.2}s",
                a.as_secs_f64(),
                b.as_secs_f64()
            ))
        );
    }
}
