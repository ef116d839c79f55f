//! Boot storm: 20,000 PXE clients with distinct MACs send a DISCOVER within
//! 10 seconds (`STORM_CLIENTS`, `STORM_SECONDS`). Measured against
//! pxe-sidecar and, in the same run on the same test LAN, dnsmasq in proxy
//! mode, rounds alternating: answered, p50/p99 time to the proxy offer, peak
//! RSS of the server. Needs root (network namespaces) and dnsmasq.
//! Run with `cargo bench --bench storm` (or scripts/bench).

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::Client;
use common::netns::{Lan, require, start_dnsmasq, wait_for_log};
use common::peak_rss_kib;
use pxe_sidecar::frame::{self, Link};

const ROUNDS: usize = 5;

/// How many clients, and over how many seconds (environment overrides).
fn storm_size() -> (usize, u64) {
    let var = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    (
        var("STORM_CLIENTS", 20_000).clamp(1, 65_536) as usize,
        var("STORM_SECONDS", 10).max(1),
    )
}
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

struct Result {
    name: &'static str,
    answered: usize,
    p50: Duration,
    p99: Duration,
    rss_kib: u64,
}

/// Sends the storm from the client host; returns the time to each client's
/// first offer from SERVER (None: never answered within 3 s of the last send).
fn storm() -> Vec<Option<Duration>> {
    let (clients_n, secs) = storm_size();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sock = std::sync::Arc::new(common::raw_eth0());
        sock.set_recv_buffer(16 << 20);
        let clients: Vec<Client> = (0..clients_n)
            .map(|i| {
                let mut c = Client::pxe(if i % 2 == 0 { 0 } else { 7 });
                c.mac = [0x52, 0x56, 0, 0, (i >> 8) as u8, i as u8];
                c.xid = 0x7000_0000 + i as u32;
                c
            })
            .collect();
        let frames: Vec<Vec<u8>> = clients.iter().map(common::discover_frame).collect();
        let sent = std::sync::Arc::new(std::sync::Mutex::new(vec![None::<Instant>; clients_n]));
        let sender = {
            let (sock, sent) = (sock.clone(), sent.clone());
            tokio::spawn(async move {
                // the sends spread evenly over the storm's seconds (the timer
                // ticks in milliseconds: several sends share a tick when
                // they are closer together)
                let gap = Duration::from_secs(secs) / clients_n as u32;
                let mut tick = tokio::time::interval(gap.max(Duration::from_millis(1)));
                let per_tick =
                    (Duration::from_millis(1).as_nanos() / gap.as_nanos().max(1)).max(1) as usize;
                for (i, f) in frames.iter().enumerate() {
                    if i % per_tick == 0 {
                        tick.tick().await;
                    }
                    sent.lock().unwrap()[i] = Some(Instant::now());
                    sock.send(f).await.unwrap();
                }
            })
        };
        let mut got = vec![None; clients_n];
        let mut buf = vec![0u8; 65536];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs + 3);
        while let Ok(r) =
            tokio::time::timeout_at(deadline, sock.recv_incoming(&mut buf, "storm client")).await
        {
            let now = Instant::now();
            let Some(u) = frame::udp(Link::Ethernet, &buf[..r]) else {
                continue;
            };
            if u.dst.port() != 68 || *u.src.ip() != SERVER {
                continue;
            }
            let m = common::decode(u.payload);
            let i = m.xid().wrapping_sub(0x7000_0000) as usize;
            if i < clients_n
                && got[i].is_none()
                && let Some(t) = sent.lock().unwrap()[i]
            {
                got[i] = Some(now - t);
            }
        }
        sender.await.unwrap();
        got
    })
}

fn summarize(name: &'static str, times: Vec<Option<Duration>>, rss_kib: u64) -> Result {
    let mut ok: Vec<Duration> = times.into_iter().flatten().collect();
    ok.sort();
    let pct = |p: f64| {
        ok.get(((ok.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    Result {
        name,
        answered: ok.len(),
        p50: pct(0.50),
        p99: pct(0.99),
        rss_kib,
    }
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("storm: needs root (network namespaces); skipped");
        return;
    }
    // `cargo bench` passes --bench; `cargo test --all-targets` does not, and
    // a test run must not spend half a minute storming.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    require("dnsmasq");
    let mut results = Vec::new();
    let mut lan = Lan::new(&[
        ("server", "02:00:00:00:00:02", Some("10.77.0.2/24")),
        ("client", "52:56:00:00:ff:ff", None),
    ]);

    let cfg = lan.path("pxe.toml");
    std::fs::write(&cfg, "").unwrap();
    let bin = env!("CARGO_BIN_EXE_pxe-sidecar");
    let cfg_s = cfg.display().to_string();
    // Rounds alternate between the servers so drift on the machine hits both;
    // the table reports each server's median round.
    for _ in 0..ROUNDS {
        let log = lan.spawn(
            "server",
            "pxe-sidecar",
            &[bin, "--config", &cfg_s, "serve", "--interface", "eth0"],
        );
        wait_for_log(&log, "proxyDHCP listening", Duration::from_secs(10));
        let pid = lan.pid("pxe-sidecar");
        let times = lan.in_host("client", storm);
        results.push(summarize("pxe-sidecar", times, peak_rss_kib(pid)));
        lan.stop("pxe-sidecar");

        let log = start_dnsmasq(
            &mut lan,
            "server",
            &[
                "--bind-interfaces",
                "--dhcp-range=10.77.0.0,proxy",
                "--pxe-service=x86PC,Boot,pxelinux",
                "--pxe-service=X86-64_EFI,Boot,syslinux.efi",
                "--pxe-service=BC_EFI,Boot,syslinux.efi",
            ],
        );
        wait_for_log(&log, "proxy on subnet", Duration::from_secs(10));
        let pid = lan.pid("dnsmasq-server");
        let times = lan.in_host("client", storm);
        results.push(summarize("dnsmasq (proxy)", times, peak_rss_kib(pid)));
        lan.stop("dnsmasq-server");
    }

    let (clients, secs) = storm_size();
    println!(
        "\nboot storm: {clients} PXE DISCOVERs (half BIOS, half EFI) from distinct MACs within {secs} s"
    );
    println!(
        "{:<18} {:>10} {:>12} {:>12} {:>12}",
        "server", "answered", "p50", "p99", "peak RSS"
    );
    for r in &results {
        println!(
            "{:<18} {:>6}/{clients} {:>10.2?} {:>12.2?} {:>9} KiB",
            r.name, r.answered, r.p50, r.p99, r.rss_kib
        );
    }
    for name in ["pxe-sidecar", "dnsmasq (proxy)"] {
        let rounds: Vec<&Result> = results.iter().filter(|r| r.name == name).collect();
        let median = |f: fn(&Result) -> Duration| {
            let mut v: Vec<Duration> = rounds.iter().map(|r| f(r)).collect();
            v.sort();
            v[v.len() / 2]
        };
        let answered = rounds.iter().map(|r| r.answered).min().unwrap_or(0);
        println!(
            "{:<18} {:>6}/{clients} {:>10.2?} {:>12.2?}   median of {ROUNDS} rounds (answered: worst round)",
            name,
            answered,
            median(|r| r.p50),
            median(|r| r.p99)
        );
    }
}
