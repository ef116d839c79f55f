//! `pxe-sidecar check`: a preflight that walks the boot steps in order and
//! says, for each, whether it will work and what to do when it will not —
//! the Debian wiki's debugging checklist, run before any client boots.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use crate::config::{self, Config};
use crate::files::{Refusal, Source, Tree};
use crate::pxe::BootKey;

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub step: String,
    pub ok: bool,
    pub detail: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
}

fn pass(step: &str, detail: impl Into<String>) -> Step {
    Step {
        step: step.into(),
        ok: true,
        detail: detail.into(),
        fix: String::new(),
    }
}

fn fail(step: &str, detail: impl Into<String>, fix: impl Into<String>) -> Step {
    Step {
        step: step.into(),
        ok: false,
        detail: detail.into(),
        fix: fix.into(),
    }
}

/// Runs every step. A config that does not load ends the walk there.
pub fn run(file: Option<&Path>, overrides: &[(&str, String)]) -> Vec<Step> {
    let mut steps = Vec::new();
    let cfg = match config::load(file, overrides) {
        Ok(c) => {
            let from = file.map_or_else(
                || {
                    if Path::new(config::DEFAULT_CONFIG).exists() {
                        config::DEFAULT_CONFIG.to_string()
                    } else {
                        "built-in defaults (no config file)".to_string()
                    }
                },
                |p| p.display().to_string(),
            );
            steps.push(pass("config", format!("valid: {from}")));
            c
        }
        Err(e) => {
            steps.push(fail(
                "config",
                e.to_string(),
                "fix the key named above; conf/example.toml documents every key",
            ));
            return steps;
        }
    };
    let mut server = cfg.server_ip;
    match crate::listen::resolve(&cfg) {
        Ok(i) => {
            server = server.or(Some(i.ipv4));
            steps.push(pass(
                "interface",
                format!("{} is up: {} {}", i.name, i.ipv4, i.mac),
            ))
        }
        Err(e) => steps.push(fail(
            "interface",
            e.to_string(),
            "set `interface` (and `server_ip`) in the config or pass --interface",
        )),
    }
    steps.push(privileges(&cfg));
    steps.extend(ports(&cfg));
    let table = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    steps.extend(relays(&cfg, &crate::listen::routes(&table)));
    let mut cfg = cfg;
    let tree = Tree::new(&cfg, server);
    if let Some(ip) = server
        && let Some(chose) = crate::files::settle_auto(&mut cfg, &tree, ip)
    {
        steps.push(pass("UEFI default", chose));
    }
    steps.extend(boot_files(&cfg, &tree));
    steps.extend(pxelinux_config(&tree));
    steps.extend(uboot(&cfg, &tree, server));
    steps.extend(raspberry_pi(&cfg, &tree));
    steps.extend(nfs_root(&cfg, server));
    steps.extend(firewall());
    steps
}

/// Each relay in `[proxy] relays`, and the route our answers to it and to
/// its clients' 4011 requests take: without one they are lost.
fn relays(cfg: &Config, routes: &[crate::listen::Route]) -> Vec<Step> {
    cfg.proxy
        .relays
        .iter()
        .map(|r| {
            let net = r.network();
            let step = format!("relay {}", r.addr);
            let subnet = format!("clients on {net}/{} answered through {}", r.prefix, r.addr);
            match crate::listen::route_to(routes, r.addr) {
                None => fail(
                    &step,
                    format!("{subnet}, but this host has no route there: answers to it are lost"),
                    format!("add one through the router on this LAN: ip route add {net}/{} via ROUTER", r.prefix),
                ),
                Some(rt) if rt.gateway.is_unspecified() => pass(
                    &step,
                    format!("{subnet}; on the link of {} (the relay is a neighbour)", rt.iface),
                ),
                Some(rt) if rt.prefix == 0 => pass(
                    &step,
                    format!("{subnet}; only the default route reaches it (via {} on {}): that router must route to {net}/{}", rt.gateway, rt.iface, r.prefix),
                ),
                Some(rt) => pass(
                    &step,
                    format!("{subnet}; routed via {} on {} ({}/{})", rt.gateway, rt.iface, rt.dest, rt.prefix),
                ),
            }
        })
        .collect()
}

/// The NFS root tree, checked with `rootfs check`'s rules.
fn nfs_root(cfg: &Config, server: Option<std::net::Ipv4Addr>) -> Vec<Step> {
    if !cfg.nfs.enabled {
        return vec![];
    }
    if !cfg.nfs.root.is_dir() {
        // [nfs] is on by default and idle until a tree exists: not a failure
        return vec![pass(
            "NFS root",
            format!(
                "{0} does not exist yet, so NFS stays off; to serve a root: debootstrap --include=linux-image-amd64,systemd-sysv,nfs-common bookworm {0} && pxe-sidecar rootfs prepare {0}",
                cfg.nfs.root.display()
            ),
        )];
    }
    let export = crate::rootfs::Export {
        server: server.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
        path: cfg.nfs.root.clone(),
    };
    crate::rootfs::check(&cfg.nfs.root, &export)
        .into_iter()
        .map(|f| {
            let step = format!("NFS root: {}", f.step);
            if f.ok {
                pass(&step, f.detail)
            } else {
                fail(
                    &step,
                    f.detail,
                    format!("pxe-sidecar rootfs check {}", cfg.nfs.root.display()),
                )
            }
        })
        .collect()
}

/// Effective capabilities of this process (CapEff in /proc/self/status).
fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

fn privileges(cfg: &Config) -> Step {
    const CAP_NET_BIND_SERVICE: u64 = 1 << 10;
    const CAP_NET_RAW: u64 = 1 << 13;
    let caps = effective_caps();
    let low_port =
        (cfg.tftp.enabled && cfg.tftp.port < 1024) || (cfg.http.enabled && cfg.http.port < 1024);
    let mut missing = Vec::new();
    if caps & CAP_NET_RAW == 0 {
        missing.push("CAP_NET_RAW (raw socket for port 67)");
    }
    if low_port && caps & CAP_NET_BIND_SERVICE == 0 {
        missing.push("CAP_NET_BIND_SERVICE (TFTP/HTTP ports below 1024)");
    }
    if missing.is_empty() {
        pass("privileges", "CAP_NET_RAW and CAP_NET_BIND_SERVICE present")
    } else {
        fail(
            "privileges",
            format!("missing {}", missing.join(", ")),
            "run as root, `setcap cap_net_raw,cap_net_bind_service=ep $(which pxe-sidecar)`, or the systemd unit in conf/",
        )
    }
}

/// A process holding a port.
struct Holder {
    /// `dnsmasq (pid 812)`.
    who: String,
    /// It is the pxe-sidecar of the config being checked.
    ours: bool,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.who)?;
        if self.ours {
            f.write_str(", this server")?;
        }
        Ok(())
    }
}

type Holders = HashMap<u16, Vec<Holder>>;

/// Which processes hold which local ports, UDP and TCP listeners, from
/// /proc/net/{udp,tcp}{,6} and one walk of the socket inodes in
/// /proc/*/fd. A pxe-sidecar is "this server" when the status socket of
/// the config being checked answers.
fn port_holders(ours_running: bool) -> (Holders, Holders) {
    let inodes = |proto: &str| {
        let mut inode_port = HashMap::new();
        for file in [format!("/proc/net/{proto}"), format!("/proc/net/{proto}6")] {
            for line in std::fs::read_to_string(file)
                .unwrap_or_default()
                .lines()
                .skip(1)
            {
                let f: Vec<&str> = line.split_whitespace().collect();
                // TCP: only listeners (state 0A).
                if f.len() < 10 || (proto == "tcp" && f[3] != "0A") {
                    continue;
                }
                let port = f[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok());
                if let (Some(port), Ok(inode)) = (port, f[9].parse::<u64>()) {
                    inode_port.insert(inode, port);
                }
            }
        }
        inode_port
    };
    let (udp_inodes, tcp_inodes) = (inodes("udp"), inodes("tcp"));
    let (mut udp, mut tcp) = (Holders::new(), Holders::new());
    for pid in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid_s) = pid.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !pid_s.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(pid.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let t = target.to_string_lossy();
            let Some(inode) = t
                .strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            for (inodes, out) in [(&udp_inodes, &mut udp), (&tcp_inodes, &mut tcp)] {
                let Some(port) = inodes.get(&inode) else {
                    continue;
                };
                let comm = std::fs::read_to_string(pid.path().join("comm")).unwrap_or_default();
                let who = format!("{} (pid {pid_s})", comm.trim());
                let v = out.entry(*port).or_default();
                if !v.iter().any(|h| h.who == who) {
                    let ours = comm.trim() == "pxe-sidecar" && ours_running;
                    v.push(Holder { who, ours });
                }
            }
        }
    }
    (udp, tcp)
}

/// Whether the server this config describes is running: its status
/// socket answers.
fn ours_running(cfg: &Config) -> bool {
    !cfg.status.socket.as_os_str().is_empty() && crate::status::fetch(&cfg.status.socket).is_ok()
}

fn ports(cfg: &Config) -> Vec<Step> {
    let (udp, tcp) = port_holders(ours_running(cfg));
    let mut steps = Vec::new();
    // a port our own running server holds is as it should be: not a holder
    let held = |map: &Holders, p: u16| {
        map.get(&p).filter(|v| v.iter().any(|h| !h.ours)).map(|v| {
            v.iter()
                .map(Holder::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        })
    };
    let ours = |map: &Holders, p: u16| {
        map.get(&p)
            .and_then(|v| v.iter().find(|h| h.ours))
            .map(|h| format!("held by {}, the server this config runs", h.who))
    };
    steps.push(match held(&udp, 67) {
        Some(who) => pass(
            "port 67",
            format!("held by {who}: fine, the raw listener receives DHCP beside another server"),
        ),
        None => pass(
            "port 67",
            "free (pxe-sidecar listens with a raw socket either way)",
        ),
    });
    steps.push(match held(&udp, 4011) {
        Some(who) => fail(
            "port 4011",
            format!("held by {who}"),
            "stop the other PXE boot server (dnsmasq with pxe-service, another pxe-sidecar)",
        ),
        None => pass(
            "port 4011",
            ours(&udp, 4011).unwrap_or_else(|| "free".into()),
        ),
    });
    if cfg.tftp.enabled {
        let p = cfg.tftp.port;
        steps.push(match held(&udp, p) {
            Some(who) => fail(
                &format!("port {p} (TFTP)"),
                format!("held by {who}"),
                "stop it, or set [tftp] enabled = false to let it serve the boot files",
            ),
            None => pass(
                &format!("port {p} (TFTP)"),
                ours(&udp, p).unwrap_or_else(|| "free".into()),
            ),
        });
    }
    if cfg.http.enabled {
        let p = cfg.http.port;
        steps.push(match held(&tcp, p) {
            Some(who) => fail(
                &format!("port {p} (HTTP)"),
                format!("held by {who}"),
                "pick another [http] port",
            ),
            None => pass(
                &format!("port {p} (HTTP)"),
                ours(&tcp, p).unwrap_or_else(|| "free".into()),
            ),
        });
    }
    let nfs_on = cfg.nfs.enabled && cfg.nfs.root.is_dir();
    let mut nfs_ports = vec![(cfg.nfs.port, "NFS")];
    if cfg.nfs.portmap {
        nfs_ports.push((111, "portmapper"));
    }
    for (p, what) in nfs_ports {
        let who = held(&tcp, p).or_else(|| held(&udp, p));
        steps.push(match (who, nfs_on) {
            (Some(who), true) => fail(
                &format!("port {p} ({what})"),
                format!("held by {who}"),
                if what == "NFS" {
                    "stop the other NFS server (nfs-kernel-server, ganesha) or set [nfs] port".to_string()
                } else {
                    "stop rpcbind (systemctl stop rpcbind.socket rpcbind), or set [nfs] portmap = false and boot with nfsroot=…,port=2049,mountport=2049".to_string()
                },
            ),
            (None, true) => pass(
                &format!("port {p} ({what})"),
                ours(&tcp, p).unwrap_or_else(|| "free".into()),
            ),
            (Some(who), false) => pass(
                &format!("port {p} ({what})"),
                format!("held by {who} ([nfs] is off here)"),
            ),
            (None, false) => continue,
        });
    }
    steps
}

fn describe(src: &Source) -> String {
    match src {
        Source::Disk(p) => p.display().to_string(),
        Source::Generated(_) => "generated from the config".into(),
    }
}

fn boot_files(cfg: &Config, tree: &Tree) -> Vec<Step> {
    let b = &cfg.proxy.boot;
    let mut steps = Vec::new();
    let root = tree.configured_root().display().to_string();
    if !cfg.tftp.enabled {
        steps.push(pass(
            "boot files",
            "[tftp] enabled = false: another server must serve them",
        ));
        return steps;
    }
    let entries = BootKey::PXE
        .into_iter()
        .map(|k| (k.as_str(), b.get(k)))
        .chain([("ipxe", b.ipxe.as_deref())]);
    for (key, file) in entries {
        let Some(file) = file else { continue };
        let file = &file.to_string();
        let mut names = vec![file.clone()];
        names.extend(crate::files::companion(file));
        // ARM64 machines get Debian's signed chain by default; on a host
        // without it (not fetched, not packaged) that is a warning for
        // ARM64 machines, not a failure of an x86 setup
        let by_default = key == "arm64" && *file == crate::config::RawBoot::default().arm64;
        for name in names {
            let step = format!("[boot] {key}: {name}");
            let resolved = tree.resolve(&name);
            if by_default && resolved == Err(Refusal::NotFound) {
                steps.push(pass(
                    &step,
                    format!("warning: not available, so ARM64 UEFI machines stop with PXE-E23; run `pxe-sidecar loaders fetch` to serve Debian's signed shim and GRUB, or set [boot] {key} = \"\" to leave them unanswered"),
                ));
                continue;
            }
            steps.push(match resolved {
                Ok((_, src)) => pass(&step, describe(&src)),
                Err(Refusal::NotFound) => fail(
                    &step,
                    format!("not in {root} and not supplied by an installed package"),
                    match crate::files::package_for(name.rsplit('/').next().unwrap_or(&name)) {
                        Some(pkg) if crate::files::by_loaders_fetch(pkg) => format!("run `pxe-sidecar loaders fetch` (Debian 13's signed {pkg}), copy it to {root}/{name}, or change [boot] {key}"),
                        Some(pkg) => format!("install package {pkg} (apt install {pkg}), copy it to {root}/{name}, or change [boot] {key}"),
                        None => format!("copy it to {root}/{name}, or change [boot] {key}"),
                    },
                ),
                Err(Refusal::Denied(why)) => fail(&step, format!("refused: {why}"), "fix the file or its symlink inside the TFTP root"),
            });
        }
        if [BootKey::Efi32, BootKey::Efi64, BootKey::Arm64]
            .iter()
            .any(|k| k.as_str() == key)
        {
            // the file offered, and the GRUB a shim loads next
            for name in std::iter::once(file.clone()).chain(crate::files::companion(file)) {
                if let Ok((_, Source::Disk(path))) = tree.resolve(&name) {
                    steps.extend(efi_binary(key, &name, &path));
                }
            }
        }
    }
    steps
}

/// What an EFI boot file says about itself (`pe.rs`): a GRUB older than
/// 2.12 cannot boot behind a proxyDHCP (it asks the router's address for its
/// config; GRUB 2.12 reads the proxy offer), and an unsigned binary does not
/// start on a machine with Secure Boot on.
fn efi_binary(key: &str, file: &str, path: &std::path::Path) -> Vec<Step> {
    let Some(facts) = crate::pe::read_file(path) else {
        return Vec::new();
    };
    let step = format!("[boot] {key}: {file}");
    let mut out = Vec::new();
    if let Some((major, minor)) = facts.grub_version()
        && (major, minor) < (2, 12)
    {
        out.push(fail(
            &step,
            format!("GRUB {major}.{minor:02} (its SBAT says so): behind a proxyDHCP this GRUB asks the router for its config and never boots"),
            "use GRUB ≥ 2.12: `pxe-sidecar loaders fetch` gets Debian 13's signed shim and GRUB; or offer iPXE (snponly.efi) where Secure Boot is off",
        ));
    }
    if !facts.signed {
        // the signed chain exists for x86-64 and arm64 (not for IA32)
        let fix = match key {
            "efi64" => {
                " (`pxe-sidecar loaders fetch`, and [boot] efi64 = \"auto\" or \"shimx64.efi\": Debian's signed shim and GRUB ≥ 2.12 boot them)"
            }
            "arm64" => " (`pxe-sidecar loaders fetch`, then [boot] arm64 = \"shimaa64.efi\")",
            _ => "",
        };
        out.push(pass(
            &step,
            format!("warning: unsigned, so machines with Secure Boot on refuse to start it{fix}"),
        ));
    }
    out
}

/// Reads pxelinux.cfg/default (on disk or generated) and checks the files it names.
fn pxelinux_config(tree: &Tree) -> Vec<Step> {
    let name = "pxelinux.cfg/default";
    let text = match tree.resolve(name) {
        Ok((_, Source::Disk(p))) => std::fs::read_to_string(&p).unwrap_or_default(),
        Ok((_, Source::Generated(g))) => String::from_utf8_lossy(&g).to_string(),
        Err(_) => {
            return vec![fail(
                name,
                "missing",
                "create it, or set [pxelinux] kernel to have it generated",
            )];
        }
    };
    let mut referenced = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next().map(str::to_ascii_uppercase).as_deref() {
            Some("KERNEL" | "LINUX" | "INITRD") => {
                referenced.extend(words.next().map(str::to_string))
            }
            Some("APPEND") => referenced.extend(
                words
                    .filter_map(|w| w.strip_prefix("initrd="))
                    .flat_map(|v| v.split(','))
                    .map(str::to_string),
            ),
            _ => {}
        }
    }
    if referenced.is_empty() {
        return vec![fail(
            name,
            "nothing to boot: the menu only tells the user to configure pxe-sidecar",
            "set [pxelinux] kernel, initrd and append (or put your own pxelinux.cfg/default in the TFTP root)",
        )];
    }
    referenced
        .into_iter()
        .filter(|f| !f.ends_with(".c32"))
        .map(|f| named_file(tree, name, &f, &format!("fix the path in {name} (a typo?)")))
        .collect()
}

/// A file a boot config names: served from where, or missing.
fn named_file(tree: &Tree, config: &str, file: &str, fix: &str) -> Step {
    let step = format!("{config} names {file}");
    match tree.resolve(file) {
        Ok((_, src)) => pass(&step, describe(&src)),
        Err(_) => fail(
            &step,
            "not found under the TFTP root",
            format!("{fix} or copy the file there"),
        ),
    }
}

/// `[uboot]`: the files default-arm names, and what a stock U-Boot needs
/// on the board to follow us at all.
fn uboot(cfg: &Config, tree: &Tree, server: Option<std::net::Ipv4Addr>) -> Vec<Step> {
    let u = &cfg.uboot;
    if u.kernel.is_empty() {
        return Vec::new();
    }
    let mut steps: Vec<Step> = [&u.kernel, &u.initrd, &u.fdt]
        .into_iter()
        .filter(|f| !f.is_empty())
        .map(|f| {
            named_file(
                tree,
                crate::pxe::UBOOT_CONFIG,
                f,
                "fix the path under [uboot]",
            )
        })
        .collect();
    let ip = server.map_or_else(|| "THIS-SERVER".to_string(), |i| i.to_string());
    steps.push(pass("U-Boot boards", crate::proxy::uboot_advice(ip)));
    steps
}

/// `[rpi]`: the shared and per-serial directories a Pi reads, with what it
/// reads first there.
fn raspberry_pi(cfg: &Config, tree: &Tree) -> Vec<Step> {
    let rpi = &cfg.rpi;
    let mut dirs: Vec<(String, &str)> = vec![("[rpi] dir".into(), rpi.dir.as_str())];
    dirs.extend(
        rpi.serials
            .iter()
            .map(|(k, d)| (format!("[rpi] serial {k}"), d.as_str())),
    );
    let root = tree.configured_root();
    // no Pi files and no serials: this site boots no Pi, say nothing
    if rpi.serials.is_empty() && !root.join(&rpi.dir).is_dir() {
        return Vec::new();
    }
    dirs.into_iter()
        .map(|(step, d)| {
            let dir = root.join(d);
            let has = |f: &str| dir.join(f).is_file();
            if !dir.is_dir() {
                return fail(
                    &step,
                    format!("{} does not exist", dir.display()),
                    "copy a Pi boot partition there (`pxe-sidecar rootfs prepare` on a Raspberry Pi OS tree prints the cmdline.txt to use)",
                );
            }
            let cmdline = std::fs::read_to_string(dir.join("cmdline.txt")).unwrap_or_default();
            let root_arg = cmdline
                .split_whitespace()
                .find(|w| w.starts_with("root="))
                .unwrap_or("no root=");
            let boards = match (has("start4.elf"), has("config.txt")) {
                (true, true) => "Pi 4 (start4.elf) and Pi 5 (config.txt)",
                (false, true) => "Pi 5 (config.txt); a Pi 4 also needs start4.elf and fixup4.dat",
                _ => "",
            };
            if boards.is_empty() || !has("cmdline.txt") {
                return fail(
                    &step,
                    format!("{} lacks config.txt or cmdline.txt", dir.display()),
                    "copy a Pi boot partition there (firmware, config.txt, cmdline.txt, kernel, DTBs)",
                );
            }
            pass(&step, format!("{}: boots {boards}; cmdline.txt {root_arg}", dir.display()))
        })
        .collect()
}

/// Read-only look at nftables/iptables for rules that would drop boot traffic.
fn firewall() -> Vec<Step> {
    let mut rules = String::new();
    for (cmd, args) in [
        ("nft", &["list", "ruleset"][..]),
        ("iptables-save", &[][..]),
    ] {
        if let Ok(o) = std::process::Command::new(cmd).args(args).output() {
            rules.push_str(&String::from_utf8_lossy(&o.stdout));
        }
    }
    let ports = ["67", "68", "69", "4011", "2049"];
    let bad: Vec<&str> = rules
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            (l.contains("drop") || l.contains("reject"))
                && ports.iter().any(|p| {
                    l.contains(&format!("dport {p}"))
                        || l.contains(&format!("--dport {p} "))
                        || l.ends_with(&format!("--dport {p}"))
                })
        })
        .collect();
    if bad.is_empty() {
        vec![pass("firewall", "no rule drops UDP 67/68/69/4011 or 2049")]
    } else {
        vec![fail(
            "firewall",
            format!("rules drop boot traffic: {}", bad.join(" | ")),
            "accept UDP 67, 68, 69, 4011 (and 2049 for NFS) on the serving interface",
        )]
    }
}

/// Human report: one line per step, ✓ or ✗, and the fix under each failure.
pub fn report(steps: &[Step]) -> String {
    let mut s = String::new();
    for st in steps {
        s.push_str(&format!(
            "{} {}: {}\n",
            if st.ok { "✓" } else { "✗" },
            st.step,
            st.detail
        ));
        if !st.ok {
            s.push_str(&format!("    fix: {}\n", st.fix));
        }
    }
    let failed = steps.iter().filter(|s| !s.ok).count();
    s.push_str(&if failed == 0 {
        "all steps pass\n".to_string()
    } else {
        format!("{failed} step(s) fail\n")
    });
    s
}
