//! `pxe-sidecar rootfs create DIR`: a Debian tree for the NFS root from
//! nothing — debootstrap with what an NFS root needs, an initramfs with the
//! netboot modules, then the read-only recipe (`rootfs prepare`) and its
//! check. It takes minutes, so each stage is a line with the time so far,
//! and debootstrap's own steps are shown as they change.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::rootfs::{self, Export};

/// Marks a tree this command made; its content says how far it got.
const MARK: &str = ".pxe-sidecar-rootfs";

/// What the boot needs beside debootstrap's minbase: a kernel and an
/// initramfs that mounts NFS (initramfs-tools), systemd as init with udev,
/// and mount.nfs for the booted system.
const PACKAGES: [&str; 7] = [
    "systemd-sysv",
    "initramfs-tools",
    "udev",
    "kmod",
    "nfs-common",
    "util-linux",
    "procps",
];

pub struct Create {
    pub dir: PathBuf,
    pub suite: String,
    pub mirror: String,
    /// Packages beyond `PACKAGES`.
    pub include: Vec<String>,
}

/// The host's Debian codename (/etc/os-release), the suite when none is given.
pub fn host_suite() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim_matches('"').to_string())
    };
    (field("ID=")? == "debian").then_some(())?;
    field("VERSION_CODENAME=").filter(|c| !c.is_empty())
}

/// Why `dir` may not be used: it holds something this command did not make.
fn refuse(dir: &Path) -> Result<Option<String>> {
    let Ok(mut entries) = std::fs::read_dir(dir) else {
        return Ok(None);
    };
    if entries.next().is_none() {
        return Ok(None);
    }
    match std::fs::read_to_string(dir.join(MARK)) {
        Ok(state) => Ok(Some(state.trim().to_string())),
        Err(_) => bail!(
            "{} is not empty and was not made by `rootfs create`: give a new or empty directory (to fit an existing tree, use `rootfs prepare {}`)",
            dir.display(),
            dir.display()
        ),
    }
}

struct Clock(Instant);

impl Clock {
    fn say(&self, what: &str) {
        let s = self.0.elapsed().as_secs();
        println!("[{:>2}:{:02}] {what}", s / 60, s % 60);
    }
}

pub fn run(c: &Create, export: &Export) -> Result<()> {
    let clock = Clock(Instant::now());
    for tool in ["debootstrap", "chroot"] {
        which(tool).with_context(|| {
            format!("{tool} is not installed: apt install debootstrap (it brings what it needs)")
        })?;
    }
    let arch = host_arch()?;
    let dir = &c.dir;
    let state = refuse(dir)?;
    if state.as_deref() == Some("done") {
        clock.say(&format!(
            "{} was made by rootfs create before: debootstrap skipped",
            dir.display()
        ));
    } else {
        if state.is_some() {
            // an earlier run of ours stopped halfway: start again
            clock.say(&format!(
                "{} holds an unfinished tree of ours: removing it",
                dir.display()
            ));
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join(MARK), "debootstrap\n")
            .with_context(|| format!("writing {}", dir.join(MARK).display()))?;
        let mut include: Vec<String> = vec![format!("linux-image-{arch}")];
        include.extend(PACKAGES.iter().map(|p| p.to_string()));
        include.extend(c.include.iter().cloned());
        clock.say(&format!(
            "debootstrap {} ({arch}) from {} into {}, with {} — a few minutes",
            c.suite,
            c.mirror,
            dir.display(),
            include.join(",")
        ));
        debootstrap(c, &include, &clock)?;
        clock.say(
            "initramfs: MODULES=netboot (network and NFS modules only, small to load over TFTP)",
        );
        netboot_initramfs(dir)?;
        std::fs::write(dir.join(MARK), "done\n")?;
    }
    clock.say("prepare: the read-only root recipe");
    let changes =
        rootfs::plan(dir, export).with_context(|| format!("reading {}", dir.display()))?;
    rootfs::apply(dir, &changes).with_context(|| format!("preparing {}", dir.display()))?;
    for ch in &changes {
        println!("        {ch}");
    }
    clock.say("check");
    let findings = rootfs::check(dir, export);
    for f in &findings {
        println!("        {f}");
    }
    // /vmlinuz is a link to boot/vmlinuz-VERSION: its target names the version
    let kernel = rootfs::kernel_pair(dir)
        .map(|(k, _)| std::fs::read_link(&k).unwrap_or(k))
        .and_then(|k| k.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "none found".into());
    println!(
        "\n{}: {:.0} MiB, kernel {}\nkernel command line:\n  {}",
        dir.display(),
        disk_usage(dir) as f64 / (1 << 20) as f64,
        kernel.trim_start_matches("vmlinuz-"),
        export.kernel_args()
    );
    if findings.iter().any(|f| !f.ok) {
        bail!("the tree fails the checks above");
    }
    println!(
        "\nnext: serve it — set [nfs] root = \"{}\" in /etc/pxe-sidecar/pxe-sidecar.toml and run `pxe-sidecar serve` (or systemctl restart pxe-sidecar)",
        dir.display()
    );
    Ok(())
}

/// Runs debootstrap, showing a line each time its step changes.
fn debootstrap(c: &Create, include: &[String], clock: &Clock) -> Result<()> {
    let log_path = c.dir.with_extension("debootstrap.log");
    let mut child = Command::new("debootstrap")
        .arg("--variant=minbase")
        .arg(format!("--include={}", include.join(",")))
        .arg(&c.suite)
        .arg(&c.dir)
        .arg(&c.mirror)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting debootstrap")?;
    let stderr = child.stderr.take();
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
        }
        s
    });
    let mut log = Vec::new();
    let mut step = String::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
            // "I: Retrieving libc6 2.36-9": the step is the verb, shown
            // once per run of it (Validating pairs with each Retrieving)
            let verb = line
                .strip_prefix("I: ")
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or("");
            if !verb.is_empty() && verb != step && verb != "Validating" {
                step = verb.to_string();
                clock.say(&format!("  {}", line.trim_start_matches("I: ")));
            }
            log.push(line);
        }
    }
    let status = child.wait().context("waiting for debootstrap")?;
    let errors = errors.join().unwrap_or_default();
    log.push(errors.clone());
    let _ = std::fs::write(&log_path, log.join("\n"));
    if !status.success() {
        let tail: Vec<&str> = errors.lines().rev().take(5).collect();
        bail!(
            "debootstrap failed ({status}); its output is in {}:\n{}\ncheck the suite ({}) and the mirror ({}), and that this host reaches it",
            log_path.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            c.suite,
            c.mirror
        );
    }
    Ok(())
}

fn netboot_initramfs(dir: &Path) -> Result<()> {
    let conf = dir.join("etc/initramfs-tools/initramfs.conf");
    let text =
        std::fs::read_to_string(&conf).with_context(|| format!("reading {}", conf.display()))?;
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("MODULES=") {
                "MODULES=netboot".into()
            } else {
                l.to_string()
            }
        })
        .collect();
    if !lines.iter().any(|l| l == "MODULES=netboot") {
        lines.push("MODULES=netboot".into());
    }
    std::fs::write(&conf, lines.join("\n") + "\n")
        .with_context(|| format!("writing {}", conf.display()))?;
    let out = Command::new("chroot")
        .arg(dir)
        .args(["update-initramfs", "-u", "-k", "all"])
        .output()
        .context("running update-initramfs in the tree")?;
    if !out.status.success() {
        bail!(
            "update-initramfs in {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn host_arch() -> Result<String> {
    let out = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .context("dpkg --print-architecture (rootfs create needs a Debian host)")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

/// Bytes the tree takes on disk (one filesystem, links not followed).
fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(top) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            total += m.blocks() * 512;
            if m.is_dir() && m.dev() == top.dev() {
                stack.push(e.path());
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_it_did_not_make_is_refused() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(refuse(&t.path().join("new")).unwrap(), None);
        assert_eq!(refuse(t.path()).unwrap(), None);
        std::fs::write(t.path().join("etc"), "").unwrap();
        let e = refuse(t.path()).unwrap_err().to_string();
        assert!(e.contains("not made by `rootfs create`"), "{e}");
        std::fs::write(t.path().join(MARK), "debootstrap\n").unwrap();
        assert_eq!(refuse(t.path()).unwrap().as_deref(), Some("debootstrap"));
    }
}
