//! NFS read and metadata speed, measured in one run on one namespace LAN,
//! servers pinned to CPU 0 and the libnfs client to CPU 1: pxe-sidecar vs
//! nfs-ganesha (VFS FSAL, userspace, same trees). Both servers run side by
//! side (two hosts on the LAN) and the rounds alternate between them, the
//! order flipping every round, so a drift of this machine's speed during
//! the run (it moved results by ±20 % when each server had its own block
//! of rounds) hits both alike; medians are reported.
//! 1. `nfs-cat` of a 1 GiB file;
//! 2. `nfs-ls -R` of a Debian root tree (READDIRPLUS: the attributes of
//!    every file) — the debootstrap the e2e tests cache, or a generated
//!    tree of 20,000 files when there is none;
//!
//! and pxe-sidecar's peak RSS. Needs root, nfs-ganesha, nfs-ganesha-vfs,
//! libnfs-utils. Run with `cargo bench --bench nfs` (or scripts/bench).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::netns::{Lan, require, start_ganesha, wait_for_log};
use common::peak_rss_kib;

const BIG: usize = 1 << 30;
const ROUNDS: usize = 5;

fn client(lan: &Lan, args: &[&str]) -> (Duration, String) {
    let ns = lan.ns("client");
    let t = Instant::now();
    let o = Command::new("ip")
        .args(["netns", "exec", &ns, "taskset", "-c", "1"])
        .args(args)
        .output()
        .unwrap();
    let took = t.elapsed();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (took, String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The tree to walk: a cached debootstrap, else a generated one.
fn walk_tree(scratch: &Path) -> PathBuf {
    if let Ok(p) = std::env::var("NFS_BENCH_TREE") {
        return PathBuf::from(p);
    }
    let cached = std::fs::read_dir("/var/cache/pxe-sidecar-tests")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("rootfs"))
        .find(|p| p.join("etc/os-release").is_file());
    if let Some(p) = cached {
        return p;
    }
    let t = scratch.join("tree");
    for d in 0..200 {
        let dir = t.join(format!("usr/share/d{d:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            std::fs::write(dir.join(format!("f{f:03}")), [d as u8; 64]).unwrap();
        }
    }
    t
}

struct Server {
    name: &'static str,
    /// The LAN host it runs on, and that host's address.
    host: &'static str,
    ip: &'static str,
    /// libnfs URL query selecting the ports (no portmapper needed).
    query: &'static str,
}

const OURS: Server = Server {
    name: "pxe-sidecar",
    host: "server",
    ip: "10.79.0.2",
    query: "?nfsport=2049&mountport=2049",
};
const GANESHA: Server = Server {
    name: "nfs-ganesha",
    host: "ganesha",
    ip: "10.79.0.3",
    query: "?nfsport=2049&mountport=20048",
};

/// Starts a server exporting `root`; returns the labels to stop (the
/// server's first).
fn start(lan: &mut Lan, s: &Server, root: &Path, n: usize) -> Vec<String> {
    let label = format!("{}-{n}", s.name);
    let mut labels = vec![label.clone()];
    if s.name == "pxe-sidecar" {
        let cfg = lan.path(&format!("pxe-{n}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[tftp]\nenabled = false\n[nfs]\nroot = \"{}\"\nstate_dir = \"{}\"\nallow = [\"10.79.0.0/24\"]\nroot_squash = \"none\"\nportmap = false\n",
                root.display(),
                lan.path(&format!("state-{n}")).display()
            ),
        )
        .unwrap();
        let log = lan.spawn(
            s.host,
            &label,
            &[
                "taskset",
                "-c",
                "0",
                env!("CARGO_BIN_EXE_pxe-sidecar"),
                "--config",
                &cfg.display().to_string(),
                "serve",
                "--interface",
                "eth0",
            ],
        );
        wait_for_log(&log, "NFS listening", Duration::from_secs(10));
    } else {
        // (ganesha will not start unless it can register with a portmapper)
        labels = start_ganesha(lan, s.host, &n.to_string(), root, false, "0");
        // ganesha listens after its grace-period setup; wait for the port
        let ns = lan.ns("client");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ok = Command::new("ip")
                .args(["netns", "exec", &ns, "nfs-ls"])
                .arg(format!("nfs://{}{}{}", s.ip, root.display(), s.query))
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    labels
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !std::env::args().any(|a| a == "--bench") {
        eprintln!("nfs bench: run as root with `cargo bench --bench nfs`; skipped");
        return;
    }
    for t in ["ganesha.nfsd", "rpcbind", "nfs-cat", "nfs-ls", "taskset"] {
        require(t);
    }
    let mut lan = Lan::new(&[
        ("server", "02:00:00:00:00:02", Some("10.79.0.2/24")),
        ("ganesha", "02:00:00:00:00:03", Some("10.79.0.3/24")),
        ("client", "02:00:00:00:00:09", Some("10.79.0.9/24")),
    ]);
    let readroot = lan.path("readroot");
    std::fs::create_dir_all(&readroot).unwrap();
    std::fs::write(readroot.join("big"), common::pseudo_random(BIG, 5)).unwrap();
    let tree = walk_tree(lan.dir.path());
    let listing = walkdir_count(&tree);
    println!(
        "NFS, libnfs client on CPU 1, servers on CPU 0, {ROUNDS} alternating rounds, medians\n\
         read: nfs-cat of 1 GiB; walk: nfs-ls -R of {} ({listing} entries)",
        tree.display()
    );
    let servers = [&OURS, &GANESHA];
    // [server][phase]: the times of each round
    let mut times = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
    let mut entries = [0; 2];
    let mut rss = None;
    let mut n = 0;
    for (phase, root) in [&readroot, &tree].into_iter().enumerate() {
        let mut labels = Vec::new();
        for s in servers {
            n += 1;
            labels.push(start(&mut lan, s, root, n));
        }
        for round in 0..ROUNDS {
            for k in [round % 2, 1 - round % 2] {
                let s = servers[k];
                let url = format!("nfs://{}{}", s.ip, root.display());
                let (t, out) = if phase == 0 {
                    let cmd = format!("nfs-cat '{url}/big{}' >/dev/null", s.query);
                    client(&lan, &["sh", "-c", &cmd])
                } else {
                    client(&lan, &["nfs-ls", "-R", &format!("{url}{}", s.query)])
                };
                if phase == 1 {
                    entries[k] = out.lines().count();
                }
                times[k][phase].push(t);
            }
        }
        rss = rss.max(Some(peak_rss_kib(lan.pid(&labels[0][0]))));
        labels.iter().flatten().for_each(|l| drop(lan.stop(l)));
    }
    for (s, [reads, walks]) in servers.iter().zip(&times) {
        let secs = |v: &Vec<Duration>| {
            v.iter()
                .map(|d| format!("{:.2}", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "{:<12} rounds (s): read [{}], walk [{}]",
            s.name,
            secs(reads),
            secs(walks)
        );
    }
    let rows: Vec<_> = servers
        .iter()
        .zip(times)
        .zip(entries)
        .map(|((s, [reads, walks]), entries)| {
            let rss = (s.name == "pxe-sidecar").then_some(rss).flatten();
            (s.name, median(reads), median(walks), entries, rss)
        })
        .collect();
    println!(
        "{:<12} {:>12} {:>14} {:>10} {:>14}",
        "server", "read MB/s", "walk entries/s", "entries", "peak RSS MiB"
    );
    for (name, read, walk, entries, rss) in &rows {
        println!(
            "{:<12} {:>12.1} {:>14.0} {:>10} {:>14}",
            name,
            BIG as f64 / read.as_secs_f64() / 1e6,
            *entries as f64 / walk.as_secs_f64(),
            entries,
            rss.map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0))
        );
    }
    let (o, g) = (&rows[0], &rows[1]);
    println!(
        "pxe-sidecar / nfs-ganesha: read {:.2}x, walk {:.2}x (above 1.0: pxe-sidecar faster)",
        g.1.as_secs_f64() / o.1.as_secs_f64(),
        g.2.as_secs_f64() / o.2.as_secs_f64()
    );
}

fn walkdir_count(p: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            n += 1;
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    n
}
