//! `pxe-sidecar rootfs check|prepare DIR`: the Debian wiki's read-only NFS
//! root recipe, applied to a client tree (a debootstrap) and checked.
//!
//! The tree is shared read-only by every client (the NFS door refuses
//! writes outside `[nfs] writable`, `/var` and `/home`); `/tmp` and
//! `/run/tmp` are tmpfs;
//! files each machine writes for itself (`/etc/adjtime`, drift files, the
//! random seed) live in its per-client area, reached through
//! `/var/myself -> clients/myself`, which the NFS door resolves per caller.

use std::fmt;
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::nfs::policy::TEMPLATE;

/// Files a booted client writes for itself, moved into its own area.
/// (`true`: create a default when the tree has none.)
const PER_CLIENT: &[(&str, bool)] = &[
    ("etc/adjtime", true),
    ("var/lib/ntp/ntp.drift", false),
    ("var/lib/chrony/chrony.drift", false),
    ("var/lib/systemd/random-seed", false),
];
const ADJTIME: &str = "0.0 0 0.0\n0\nUTC\n";
const FSTAB_MARK: &str = "# pxe-sidecar rootfs prepare:";

/// One change to the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Mkdir(PathBuf),
    Symlink {
        link: PathBuf,
        target: String,
    },
    Move {
        from: PathBuf,
        to: PathBuf,
    },
    Write {
        path: PathBuf,
        text: String,
        why: String,
    },
    Truncate {
        path: PathBuf,
        why: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Mkdir(p) => write!(f, "create directory /{}", p.display()),
            Change::Symlink { link, target } => {
                write!(f, "symlink /{} -> {target}", link.display())
            }
            Change::Move { from, to } => {
                write!(f, "move /{} to /{}", from.display(), to.display())
            }
            Change::Write { path, why, .. } => write!(f, "write /{} ({why})", path.display()),
            Change::Truncate { path, why } => write!(f, "empty /{} ({why})", path.display()),
        }
    }
}

/// Where the clients find their root: our address and the export path.
#[derive(Debug, Clone)]
pub struct Export {
    pub server: Ipv4Addr,
    pub path: PathBuf,
}

impl Export {
    /// The kernel command line for an initramfs-tools NFS boot (klibc's
    /// nfsmount asks the portmapper for the ports; no NLM, hence nolock).
    ///
    /// The client mounts the tree `rw` and the NFS door makes it read-only
    /// outside `[nfs] writable` and the per-client area (writes there fail
    /// with EROFS). The wiki's layout — `/` mounted `ro` plus separate NFS
    /// mounts of `/var` and `/home` — needs a second NFS mount of the same
    /// server from the booted system, which a Debian 12 kernel refused in
    /// our end-to-end boots (mount.nfs: Protocol not supported).
    pub fn kernel_args(&self) -> String {
        format!(
            "root=/dev/nfs nfsroot={}:{},vers=3,tcp,nolock ip=dhcp rw",
            self.server,
            self.path.display()
        )
    }

    fn fstab_lines(&self) -> Vec<String> {
        vec![
            format!(
                "{FSTAB_MARK} / over NFS from {} (read-only but for /var, /home and /var/myself: the server enforces it)",
                self.server
            ),
            "/dev/nfs  /  nfs  rw,vers=3,tcp,nolock  0 0".into(),
            "tmpfs  /tmp  tmpfs  nosuid,nodev,mode=1777  0 0".into(),
            "tmpfs  /run/tmp  tmpfs  nosuid,nodev,mode=1777  0 0".into(),
        ]
    }
}

fn is_link_to(p: &Path, target: &str) -> bool {
    fs::read_link(p).is_ok_and(|t| t == Path::new(target))
}

/// The fstab the recipe wants: the user's other lines kept, ours replacing
/// anything that mounts /, /tmp, /run/tmp, /var or /home.
fn wanted_fstab(current: &str, export: &Export) -> String {
    let ours = ["/", "/tmp", "/run/tmp", "/var", "/home"];
    let mut out: Vec<String> = current
        .lines()
        .filter(|l| {
            let t = l.trim();
            if t.starts_with(FSTAB_MARK) {
                return false;
            }
            let mount = t.split_whitespace().nth(1);
            t.starts_with('#') || mount.is_none_or(|m| !ours.contains(&m))
        })
        .map(str::to_string)
        .collect();
    while out.last().is_some_and(|l| l.trim().is_empty()) {
        out.pop();
    }
    out.extend(export.fstab_lines());
    out.join("\n") + "\n"
}

/// The changes that would make `dir` follow the recipe (empty: it does).
pub fn plan(dir: &Path, export: &Export) -> io::Result<Vec<Change>> {
    let at = |rel: &str| dir.join(rel);
    let mut changes = Vec::new();
    let fstab = fs::read_to_string(at("etc/fstab")).unwrap_or_default();
    let wanted = wanted_fstab(&fstab, export);
    if fstab != wanted {
        changes.push(Change::Write {
            path: "etc/fstab".into(),
            text: wanted,
            why: "/ over NFS, tmpfs on /tmp and /run/tmp".into(),
        });
    }
    if !is_link_to(&at("etc/mtab"), "/proc/self/mounts") {
        changes.push(Change::Symlink {
            link: "etc/mtab".into(),
            target: "/proc/self/mounts".into(),
        });
    }
    if !at(TEMPLATE).is_dir() {
        changes.push(Change::Mkdir(TEMPLATE.into()));
    }
    if !is_link_to(&at("var/myself"), "clients/myself") {
        changes.push(Change::Symlink {
            link: "var/myself".into(),
            target: "clients/myself".into(),
        });
    }
    for (rel, create) in PER_CLIENT {
        let name = Path::new(rel)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let target = format!("/var/myself/{name}");
        let p = at(rel);
        if is_link_to(&p, &target) {
            continue;
        }
        let template = Path::new(TEMPLATE).join(&name);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() => changes.push(Change::Move {
                from: rel.into(),
                to: template,
            }),
            Ok(_) => {}
            Err(_) if *create => changes.push(Change::Write {
                path: template,
                text: ADJTIME.into(),
                why: "a per-client default".into(),
            }),
            // not installed in this tree (no ntp, no chrony): nothing to do
            Err(_) if !p.parent().is_some_and(Path::is_dir) => continue,
            Err(_) => {}
        }
        changes.push(Change::Symlink {
            link: rel.into(),
            target,
        });
    }
    if fs::metadata(at("etc/machine-id")).is_ok_and(|m| m.len() > 0) {
        changes.push(Change::Truncate {
            path: "etc/machine-id".into(),
            why: "shared by every client; empty, systemd gives each boot its own id on a read-only root".into(),
        });
    }
    Ok(changes)
}

/// Applies the changes in order; each is safe to repeat.
pub fn apply(dir: &Path, changes: &[Change]) -> io::Result<()> {
    let ctx = |what: &Change| {
        let what = what.to_string();
        move |e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"))
    };
    for c in changes {
        match c {
            Change::Mkdir(p) => fs::create_dir_all(dir.join(p)).map_err(ctx(c))?,
            Change::Symlink { link, target } => {
                let l = dir.join(link);
                if fs::symlink_metadata(&l).is_ok() {
                    fs::remove_file(&l).map_err(ctx(c))?;
                }
                if let Some(parent) = l.parent() {
                    fs::create_dir_all(parent).map_err(ctx(c))?;
                }
                std::os::unix::fs::symlink(target, &l).map_err(ctx(c))?;
            }
            Change::Move { from, to } => {
                if let Some(parent) = dir.join(to).parent() {
                    fs::create_dir_all(parent).map_err(ctx(c))?;
                }
                fs::rename(dir.join(from), dir.join(to)).map_err(ctx(c))?;
            }
            Change::Write { path, text, .. } => {
                let p = dir.join(path);
                if let Some(parent) = p.parent() {
                    fs::create_dir_all(parent).map_err(ctx(c))?;
                }
                fs::write(&p, text).map_err(ctx(c))?;
            }
            Change::Truncate { path, .. } => fs::write(dir.join(path), b"").map_err(ctx(c))?,
        }
    }
    Ok(())
}

/// A kernel and initrd the clients can boot, relative to `dir`: Debian's
/// `/vmlinuz` and `/initrd.img` links, else the newest pair in `/boot`.
pub fn kernel_pair(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let k = PathBuf::from("vmlinuz");
    let i = PathBuf::from("initrd.img");
    if dir.join(&k).is_file() && dir.join(&i).is_file() {
        return Some((k, i));
    }
    let mut kernels: Vec<String> = fs::read_dir(dir.join("boot"))
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("vmlinuz-"))
        .collect();
    kernels.sort();
    kernels.into_iter().rev().find_map(|k| {
        let version = k.trim_start_matches("vmlinuz-");
        let initrd = format!("boot/initrd.img-{version}");
        dir.join(&initrd)
            .is_file()
            .then(|| (Path::new("boot").join(&k), PathBuf::from(initrd)))
    })
}

/// One line of `rootfs check`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    pub ok: bool,
    pub step: String,
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.ok { "✓" } else { "✗" };
        write!(f, "{mark} {}: {}", self.step, self.detail)
    }
}

fn finding(ok: bool, step: &str, detail: impl Into<String>) -> Finding {
    Finding {
        ok,
        step: step.into(),
        detail: detail.into(),
    }
}

/// Whether the initramfs can mount an NFS root: initramfs-tools picks the
/// NFS boot script from `root=/dev/nfs`, but the modules must be inside.
fn initramfs_ok(dir: &Path) -> Finding {
    let conf =
        fs::read_to_string(dir.join("etc/initramfs-tools/initramfs.conf")).unwrap_or_default();
    let value = |key: &str| {
        conf.lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix(&format!("{key}=")))
            .map(|v| v.trim_matches('"').to_string())
    };
    let modules = value("MODULES").unwrap_or_else(|| "most".into());
    let boot = value("BOOT").unwrap_or_default();
    if matches!(modules.as_str(), "most" | "netboot") || boot == "nfs" {
        finding(
            true,
            "initramfs boots from NFS",
            format!(
                "MODULES={modules} (nfs, nfsv3, sunrpc included; root=/dev/nfs selects the NFS script)"
            ),
        )
    } else {
        finding(
            false,
            "initramfs boots from NFS",
            format!(
                "MODULES={modules} leaves the NFS modules out: set MODULES=netboot (or BOOT=nfs) in etc/initramfs-tools/initramfs.conf and run `chroot {} update-initramfs -u`",
                dir.display()
            ),
        )
    }
}

/// Checks `dir` against the recipe.
pub fn check(dir: &Path, export: &Export) -> Vec<Finding> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        out.push(finding(
            false,
            "client tree",
            format!(
                "{} does not exist: debootstrap a Debian there (debootstrap --include=linux-image-amd64 bookworm {})",
                dir.display(),
                dir.display()
            ),
        ));
        return out;
    }
    let os = fs::read_to_string(dir.join("etc/os-release")).unwrap_or_default();
    let name = os
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string());
    out.push(match name {
        Some(n) => finding(true, "client tree", n),
        None => finding(
            false,
            "client tree",
            "no etc/os-release: not a Debian root tree",
        ),
    });
    let init = [
        "sbin/init",
        "lib/systemd/systemd",
        "usr/lib/systemd/systemd",
    ]
    .iter()
    .any(|p| dir.join(p).exists());
    out.push(finding(
        init,
        "init",
        if init {
            "present"
        } else {
            "no sbin/init: install systemd-sysv in the tree"
        },
    ));
    out.push(match kernel_pair(dir) {
        Some((k, i)) => finding(
            true,
            "kernel and initrd",
            format!("/{} and /{}", k.display(), i.display()),
        ),
        None => finding(
            false,
            "kernel and initrd",
            format!(
                "none in /boot: chroot {} apt-get install linux-image-amd64",
                dir.display()
            ),
        ),
    });
    out.push(initramfs_ok(dir));
    match plan(dir, export) {
        Ok(changes) if changes.is_empty() => out.push(finding(
            true,
            "read-only root recipe",
            "fstab, mtab, per-client files and /var/myself are in place",
        )),
        Ok(changes) => {
            for c in changes {
                out.push(finding(
                    false,
                    "read-only root recipe",
                    format!(
                        "needs: {c} (run `pxe-sidecar rootfs prepare {}`)",
                        dir.display()
                    ),
                ));
            }
        }
        Err(e) => out.push(finding(false, "read-only root recipe", e.to_string())),
    }
    out
}

/// What to put in the config for the clients to boot this tree.
pub fn boot_advice(dir: &Path, export: &Export) -> String {
    let args = export.kernel_args();
    let mut s = format!("kernel command line:\n  {args}\n");
    if let Some((k, i)) = kernel_pair(dir) {
        s.push_str(&format!(
            "pxelinux.cfg (copy /{k} and /{i} into the TFTP root, or leave [pxelinux] empty: the\n\
             generated config then boots them straight from [nfs] root as nfsroot/vmlinuz, nfsroot/initrd.img):\n  \
             KERNEL {k}\n  INITRD {i}\n  APPEND {args}\n",
            k = k.display(),
            i = i.display()
        ));
    }
    if let Some(fw) = pi_firmware(dir) {
        s.push_str(&format!(
            "Raspberry Pi ({fw} is a Pi boot partition): copy its files into the TFTP root's [rpi] dir\n\
             (or a serial's own directory), and make that copy's cmdline.txt this one line:\n  \
             console=serial0,115200 console=tty1 {args} rootwait\n",
            fw = fw.display(),
        ));
    }
    s
}

/// The boot partition of a Raspberry Pi OS or Debian raspi tree: where the
/// Pi's firmware reads config.txt (mounted at /boot/firmware since
/// Raspberry Pi OS 12 and in Debian's raspi-firmware; /boot before).
pub fn pi_firmware(dir: &Path) -> Option<PathBuf> {
    ["boot/firmware", "boot"]
        .into_iter()
        .find(|d| {
            let d = dir.join(d);
            d.join("config.txt").is_file() && d.join("cmdline.txt").is_file()
        })
        .map(|d| Path::new("/").join(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export() -> Export {
        Export {
            server: Ipv4Addr::new(10, 0, 0, 2),
            path: "/srv/nfsroot".into(),
        }
    }

    fn debootstrap_like(dir: &Path) {
        for d in ["etc/initramfs-tools", "var/lib/systemd", "sbin", "boot"] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        fs::write(
            dir.join("etc/os-release"),
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
        )
        .unwrap();
        fs::write(
            dir.join("etc/fstab"),
            "# UNCONFIGURED FSTAB FOR BASE SYSTEM\n",
        )
        .unwrap();
        fs::write(
            dir.join("etc/machine-id"),
            "0123456789abcdef0123456789abcdef\n",
        )
        .unwrap();
        fs::write(dir.join("var/lib/systemd/random-seed"), [7u8; 32]).unwrap();
        fs::write(
            dir.join("etc/initramfs-tools/initramfs.conf"),
            "MODULES=most\n",
        )
        .unwrap();
        fs::write(dir.join("sbin/init"), "").unwrap();
        fs::write(dir.join("boot/vmlinuz-6.1.0-1-amd64"), "k").unwrap();
        fs::write(dir.join("boot/initrd.img-6.1.0-1-amd64"), "i").unwrap();
        std::os::unix::fs::symlink("../proc/mounts", dir.join("etc/mtab")).unwrap_or(());
    }

    #[test]
    fn a_pi_tree_gets_its_cmdline() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!boot_advice(dir.path(), &export()).contains("Raspberry Pi"));
        let fw = dir.path().join("boot/firmware");
        std::fs::create_dir_all(&fw).unwrap();
        std::fs::write(fw.join("config.txt"), "arm_64bit=1\n").unwrap();
        std::fs::write(fw.join("cmdline.txt"), "root=PARTUUID=1234-02\n").unwrap();
        let advice = boot_advice(dir.path(), &export());
        assert!(
            advice.contains("(/boot/firmware is a Pi boot partition)"),
            "{advice}"
        );
        assert!(
            advice.contains("console=tty1 root=/dev/nfs nfsroot=10.0.0.2:"),
            "{advice}"
        );
    }

    #[test]
    fn prepare_then_check_passes_and_prepare_is_idempotent() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        debootstrap_like(dir);
        let e = export();
        assert!(check(dir, &e).iter().any(|f| !f.ok));
        let changes = plan(dir, &e).unwrap();
        apply(dir, &changes).unwrap();
        assert!(plan(dir, &e).unwrap().is_empty(), "second plan not empty");
        let findings = check(dir, &e);
        assert!(findings.iter().all(|f| f.ok), "{findings:?}");

        let fstab = fs::read_to_string(dir.join("etc/fstab")).unwrap();
        assert!(fstab.contains("/dev/nfs  /  nfs  rw"));
        assert!(!fstab.contains("/var  nfs"), "no second NFS mount");
        assert!(fstab.contains("tmpfs  /tmp  tmpfs") && fstab.contains("/run/tmp"));
        assert!(!fstab.contains("/var/tmp"));
        assert!(fstab.contains("UNCONFIGURED"), "the user's lines are kept");
        assert_eq!(
            fs::read_link(dir.join("etc/mtab")).unwrap(),
            Path::new("/proc/self/mounts")
        );
        assert_eq!(
            fs::read_link(dir.join("etc/adjtime")).unwrap(),
            Path::new("/var/myself/adjtime")
        );
        assert_eq!(
            fs::read_to_string(dir.join(TEMPLATE).join("adjtime")).unwrap(),
            ADJTIME
        );
        assert_eq!(
            fs::read(dir.join(TEMPLATE).join("random-seed")).unwrap(),
            [7u8; 32],
            "moved, not recreated"
        );
        assert_eq!(
            fs::read_link(dir.join("var/myself")).unwrap(),
            Path::new("clients/myself")
        );
        assert!(fs::read(dir.join("etc/machine-id")).unwrap().is_empty());
        // no ntp in this tree: no dangling drift link made up
        assert!(fs::symlink_metadata(dir.join("var/lib/ntp")).is_err());
    }

    #[test]
    fn check_names_missing_kernel_and_netboot_modules() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        debootstrap_like(dir);
        fs::remove_file(dir.join("boot/vmlinuz-6.1.0-1-amd64")).unwrap();
        fs::write(
            dir.join("etc/initramfs-tools/initramfs.conf"),
            "MODULES=dep\n",
        )
        .unwrap();
        let f = check(dir, &export());
        let bad: Vec<&str> = f
            .iter()
            .filter(|f| !f.ok)
            .map(|f| f.step.as_str())
            .collect();
        assert!(bad.contains(&"kernel and initrd"), "{f:?}");
        assert!(bad.contains(&"initramfs boots from NFS"), "{f:?}");
        let missing = tempfile::tempdir().unwrap().path().join("nope");
        assert!(!check(&missing, &export())[0].ok);
    }

    #[test]
    fn kernel_line_is_the_wiki_line() {
        assert_eq!(
            export().kernel_args(),
            "root=/dev/nfs nfsroot=10.0.0.2:/srv/nfsroot,vers=3,tcp,nolock ip=dhcp rw"
        );
    }
}
