//! TFTP throughput, measured in one run on one namespace LAN, servers pinned
//! to CPU 0 and clients to CPU 1: pxe-sidecar vs dnsmasq's TFTP vs tftpd-hpa.
//! 1. one 100 MiB fetch with atftp, blksize 1468, without and with windowsize 16;
//! 2. 50 atftp clients fetching a 40 MiB initrd at once (TFTP_FIFTY_MIB
//!    sets another size: more, shorter rounds): total time, and
//!    when the first of them finished (a wide gap: unfair service);
//! 3. the same 100 MiB as a Raspberry Pi 4 reads its kernel: blksize 1024,
//!    one block per ACK, 102,400 blocks (the counter rolls over past 65,535);
//!
//! and pxe-sidecar's peak RSS. The three servers run side by side (one LAN
//! host each) and the rounds (TFTP_ROUNDS, default 3) rotate through them,
//! so a drift of this machine's speed hits all alike; medians are reported.
//! Needs root and dnsmasq, tftpd-hpa, atftp.
//! Run with `cargo bench --bench tftp` (or scripts/bench).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::netns::{Lan, require, start_dnsmasq_tftp, wait_for_log};
use common::{cpu_time, peak_rss_kib};

const CLIENTS: usize = 50;

fn write_random(path: &std::path::Path, n: usize) {
    std::fs::write(path, common::pseudo_random(n, 0x2545_f491_4f6c_dd1d)).unwrap();
}

fn atftp(lan: &Lan, server: &str, file: &str, blksize: u16, window: Option<u16>) -> Duration {
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
        format!("blksize {blksize}"),
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
        server.into(),
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

/// Starts `CLIENTS` fetches of `file` at once; returns when the first and
/// when the last finished.
fn concurrent(lan: &Lan, server: &str, file: &str) -> (Duration, Duration) {
    let ns = lan.ns("client");
    let t = Instant::now();
    let mut children: Vec<_> = (0..CLIENTS)
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
                    server,
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut first = None;
    while !children.is_empty() {
        std::thread::sleep(Duration::from_millis(5));
        children.retain_mut(|c| match c.try_wait().unwrap() {
            None => true,
            Some(status) => {
                assert!(status.success(), "a concurrent atftp failed: {status}");
                first.get_or_insert(t.elapsed());
                false
            }
        });
    }
    (first.unwrap_or_default(), t.elapsed())
}

/// Busy and total jiffies of CPUs 0 and 1 so far (/proc/stat; busy is all
/// but idle and iowait).
fn cpu_jiffies() -> [(u64, u64); 2] {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let mut out = [(0, 0); 2];
    for (i, slot) in out.iter_mut().enumerate() {
        let name = format!("cpu{i} ");
        if let Some(line) = stat.lines().find(|l| l.starts_with(&name)) {
            let v: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            *slot = (total - idle, total);
        }
    }
    out
}

/// Wakeup interrupts (rescheduling + function-call IPIs) CPUs 0 and 1 took
/// so far (/proc/interrupts RES and CAL): a thread woken on an idle CPU
/// costs one, and in a VM each is an exit on both sides.
fn wakeup_irqs() -> [u64; 2] {
    let text = std::fs::read_to_string("/proc/interrupts").unwrap_or_default();
    let mut out = [0; 2];
    for line in text.lines() {
        let mut w = line.split_whitespace();
        if matches!(w.next(), Some("RES:" | "CAL:")) {
            for slot in &mut out {
                *slot += w.next().and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
            }
        }
    }
    out
}

/// One server of the comparison, running on its own LAN host.
struct Server {
    name: &'static str,
    ip: &'static str,
    /// Its process, when one process serves every transfer (for CPU and RSS).
    pid: Option<i32>,
    plain: Vec<Duration>,
    window: Vec<Duration>,
    /// The Raspberry Pi pattern: blksize 1024, lockstep.
    pi: Vec<Duration>,
    fifty: Vec<Duration>,
    first: Vec<Duration>,
    /// Server CPU time of each round's plain fetch and 50-client run.
    cpu: Vec<(Duration, Duration)>,
    /// How busy CPU 0 (servers) and CPU 1 (clients) were in each 50-client run, in %.
    busy: Vec<(f64, f64)>,
    /// Wakeup IPIs CPU 0 and CPU 1 took in each 50-client run.
    irqs: Vec<[u64; 2]>,
}

impl Server {
    fn new(name: &'static str, ip: &'static str, pid: Option<i32>) -> Server {
        Server {
            name,
            ip,
            pid,
            plain: Vec::new(),
            window: Vec::new(),
            pi: Vec::new(),
            fifty: Vec::new(),
            first: Vec::new(),
            cpu: Vec::new(),
            busy: Vec::new(),
            irqs: Vec::new(),
        }
    }

    /// One round: the plain fetch, the windowed fetch, the Pi's, the 50 clients.
    fn round(&mut self, lan: &Lan) {
        let cpu = || self.pid.map_or(Duration::ZERO, cpu_time);
        let c0 = cpu();
        self.plain.push(atftp(lan, self.ip, "big", 1468, None));
        let c1 = cpu();
        self.window.push(atftp(lan, self.ip, "big", 1468, Some(16)));
        self.pi.push(atftp(lan, self.ip, "big", 1024, None));
        let c2 = cpu();
        let (j0, i0) = (cpu_jiffies(), wakeup_irqs());
        let (first, all) = concurrent(lan, self.ip, "initrd");
        let (j1, i1) = (cpu_jiffies(), wakeup_irqs());
        self.irqs.push([i1[0] - i0[0], i1[1] - i0[1]]);
        let c3 = cpu();
        let pct = |k: usize| 100.0 * (j1[k].0 - j0[k].0) as f64 / (j1[k].1 - j0[k].1).max(1) as f64;
        self.busy.push((pct(0), pct(1)));
        self.first.push(first);
        self.fifty.push(all);
        self.cpu.push((c1 - c0, c3 - c2));
    }
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
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
    let rounds: usize = std::env::var("TFTP_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(3);
    let mut lan = Lan::new(&[
        ("server", "02:00:00:00:00:02", Some("10.77.0.2/24")),
        ("dnsmasq", "02:00:00:00:00:03", Some("10.77.0.3/24")),
        ("tftpd", "02:00:00:00:00:04", Some("10.77.0.4/24")),
        ("client", "02:00:00:00:00:09", Some("10.77.0.9/24")),
    ]);
    let root = lan.path("root");
    std::fs::create_dir_all(&root).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    write_random(&root.join("big"), 100 << 20);
    let fifty_mib: usize = std::env::var("TFTP_FIFTY_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(40);
    write_random(&root.join("initrd"), fifty_mib << 20);
    let root_s = root.display().to_string();

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

    // dnsmasq, TFTP only (no DHCP, no DNS).
    start_dnsmasq_tftp(&mut lan, "dnsmasq", &root, 100);

    // tftpd-hpa --secure (forks per transfer: its RSS is per process).
    lan.spawn(
        "tftpd",
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
            "10.77.0.4:69",
            "--secure",
            &root_s,
        ],
    );
    std::thread::sleep(Duration::from_millis(300));

    let mut servers = [
        Server::new("pxe-sidecar", "10.77.0.2", Some(lan.pid("pxe"))),
        Server::new("dnsmasq", "10.77.0.3", Some(lan.pid("dnsmasq"))),
        Server::new("tftpd-hpa", "10.77.0.4", None),
    ];
    for round in 0..rounds {
        for k in 0..servers.len() {
            servers[(round + k) % servers.len()].round(&lan);
        }
    }
    let rss = peak_rss_kib(lan.pid("pxe"));
    for l in ["pxe", "dnsmasq", "tftpd"] {
        lan.stop(l);
    }

    println!(
        "\nTFTP, atftp client, blksize 1468 (the Pi column 1024), servers on CPU 0, clients on CPU 1, median of {rounds} rotating rounds"
    );
    println!(
        "{:<12} {:>22} {:>26} {:>24} {:>22} {:>12} {:>12} {:>22}",
        "server",
        "100 MiB (MB/s)",
        "100 MiB windowsize 16",
        "Pi: blksize 1024",
        format!("50 x {fifty_mib} MiB total"),
        "first done",
        "peak RSS",
        "server CPU 100M / 50x"
    );
    for s in &servers {
        let (plain, window, pi) = (median(&s.plain), median(&s.window), median(&s.pi));
        let cpu = |f: fn(&(Duration, Duration)) -> Duration| {
            median(&s.cpu.iter().map(f).collect::<Vec<_>>()).as_secs_f64()
        };
        println!(
            "{:<12} {:>13.2?} {:>7.1} {:>17.2?} {:>7.1} {:>15.2?} {:>7.1} {:>22.2?} {:>12.2?} {:>12} {:>22}",
            s.name,
            plain,
            mbps(100 << 20, plain),
            window,
            mbps(100 << 20, window),
            pi,
            mbps(100 << 20, pi),
            median(&s.fifty),
            median(&s.first),
            if s.name == "pxe-sidecar" {
                format!("{rss} KiB")
            } else {
                "-".into()
            },
            if s.pid.is_some() {
                format!("{:.2}s / {:.2}s", cpu(|c| c.0), cpu(|c| c.1))
            } else {
                "-".into()
            }
        );
    }
    for s in &servers {
        let secs = |v: &[Duration]| {
            v.iter()
                .map(|d| format!("{:.1}", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let busy: Vec<String> = s
            .busy
            .iter()
            .map(|(a, b)| format!("{a:.0}/{b:.0}"))
            .collect();
        let irqs: Vec<String> = s
            .irqs
            .iter()
            .map(|[a, b]| format!("{}k/{}k", a / 1000, b / 1000))
            .collect();
        println!(
            "{:<12} 50-client rounds (s): [{}], CPU 0 (servers) / CPU 1 (clients) busy %: [{}], wakeup IPIs: [{}]",
            s.name,
            secs(&s.fifty),
            busy.join(" "),
            irqs.join(" ")
        );
    }
    let (o, d) = (&servers[0], &servers[1]);
    // Runs of one round are minutes apart at most: the pairs see the same
    // machine speed, which drifts by ±20 % over a run on a shared VM.
    let faster = o.fifty.iter().zip(&d.fifty).filter(|(a, b)| a < b).count();
    println!(
        "pxe-sidecar / dnsmasq: plain {:.2}x, windowsize 16 {:.2}x, Pi blksize 1024 {:.2}x, 50 clients {:.2}x (above 1.0: pxe-sidecar faster; 50 clients faster in {faster} of {rounds} rounds)",
        median(&d.plain).as_secs_f64() / median(&o.plain).as_secs_f64(),
        median(&d.window).as_secs_f64() / median(&o.window).as_secs_f64(),
        median(&d.pi).as_secs_f64() / median(&o.pi).as_secs_f64(),
        median(&d.fifty).as_secs_f64() / median(&o.fifty).as_secs_f64(),
    );
}
