//! Time from qemu's start to a booted Debian (the e2e marker line, printed
//! once multi-user.target is reached), BIOS and UEFI, with pxe-sidecar and,
//! in the same run, with the classic stack: dnsmasq in proxy mode with its
//! TFTP server, and nfs-ganesha (VFS FSAL, with rpcbind) serving the same
//! root tree; alternating rounds (BOOT_ROUNDS, default 3), medians reported.
//! pxe-sidecar runs with its defaults (UEFI: iPXE, kernel and initrd over
//! HTTP) plus `BOOT_EXTRA`; the classic stack offers pxelinux.0 and
//! syslinux.efi, the Debian wiki's setup. UEFI also boots a third way, with
//! Secure Boot on (OVMF with Microsoft's keys) through pxe-sidecar, shim and
//! Debian 13's GRUB 2.12 (row UEFI-SB; its classic column is the same
//! SB-off syslinux.efi boot, which Secure Boot would refuse).
//! Needs root, qemu, OVMF, dnsmasq, nfs-ganesha, debootstrap (the tree is
//! scripts/e2e-rootfs's cache). `cargo bench --bench boot`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::guest::{DebianRoot, Firmware, GUEST_MAC, REPORT, Rig};
use common::netns::{Lan, require, start_dnsmasq, start_ganesha, wait_for_log};

const WITHIN: Duration = Duration::from_secs(900);

/// A TFTP root for dnsmasq: Debian's loaders, the tree's kernel and initrd,
/// and a pxelinux.cfg/default with the same kernel line pxe-sidecar uses.
fn classic_tftp_root(lan: &Lan, root: &DebianRoot, kernel_line: &str) -> PathBuf {
    let t = lan.path("tftp");
    std::fs::create_dir_all(t.join("pxelinux.cfg")).unwrap();
    for (name, from) in [
        ("pxelinux.0", "/usr/lib/PXELINUX/pxelinux.0"),
        ("ldlinux.c32", "/usr/lib/syslinux/modules/bios/ldlinux.c32"),
        ("syslinux.efi", "/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi"),
        ("ldlinux.e64", "/usr/lib/syslinux/modules/efi64/ldlinux.e64"),
    ] {
        std::fs::copy(from, t.join(name)).unwrap();
    }
    for name in ["vmlinuz", "initrd.img"] {
        std::fs::copy(root.merged.join(name), t.join(name)).unwrap();
    }
    std::fs::write(
        t.join("pxelinux.cfg/default"),
        format!(
            "SERIAL 0 115200\nDEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n  KERNEL vmlinuz\n  INITRD initrd.img\n  APPEND {kernel_line} console=ttyS0\n"
        ),
    )
    .unwrap();
    t
}

fn start_classic(lan: &mut Lan, tftp: &Path, export: &Path) -> PathBuf {
    start_ganesha(lan, "pxe", "classic", export, true, "0-1");
    let root = format!("--tftp-root={}", tftp.display());
    let log = start_dnsmasq(
        lan,
        "pxe",
        &[
            "--bind-interfaces",
            "--log-dhcp",
            "--dhcp-range=10.77.0.0,proxy",
            "--enable-tftp",
            &root,
            "--pxe-service=x86PC,boot,pxelinux",
            "--pxe-service=X86-64_EFI,boot,syslinux.efi",
            "--pxe-service=BC_EFI,boot,syslinux.efi",
        ],
    );
    wait_for_log(&log, "TFTP root is", Duration::from_secs(10));
    log
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// One line per boot: when each console milestone showed, in seconds.
fn print_phases(stack: &str, rig: &Rig) {
    let steps: Vec<String> = rig
        .phases
        .iter()
        .map(|(name, t)| format!("{name} {:.1}", t.as_secs_f64()))
        .collect();
    println!("  {stack:<12} {}", steps.join(", "));
}

/// pxe-sidecar with zero [pxelinux]: the generated config boots the tree.
/// `extra`: TOML appended to its config.
fn boot_ours(fw: Firmware, fw_name: &str, extra: &str) -> Duration {
    let root = DebianRoot::new();
    root.prepare();
    let mut rig = Rig::new(|lan| root.config(lan, extra));
    let con = rig.boot(fw, GUEST_MAC, REPORT, WITHIN);
    let took = rig
        .last
        .unwrap_or_else(|| panic!("pxe-sidecar {fw_name} boot never finished:\n{con}"));
    let label = if fw == Firmware::UefiSecureBoot {
        "shim+GRUB SB"
    } else {
        "pxe-sidecar"
    };
    print_phases(label, &rig);
    drop(rig);
    drop(root);
    took
}

/// dnsmasq proxy + TFTP and nfs-ganesha, the same tree and kernel line.
fn boot_classic(fw: Firmware, fw_name: &str) -> Duration {
    let root = DebianRoot::new();
    let line = root.prepare();
    let mut rig = Rig::with_server(|lan| {
        let t = classic_tftp_root(lan, &root, &line);
        start_classic(lan, &t, &root.merged)
    });
    let con = rig.boot(fw, GUEST_MAC, REPORT, WITHIN);
    let took = rig.last.unwrap_or_else(|| {
        panic!(
            "classic-stack {fw_name} boot never finished:\n{con}\n{}",
            rig.log()
        )
    });
    print_phases("classic", &rig);
    drop(rig);
    drop(root);
    took
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !std::env::args().any(|a| a == "--bench") {
        eprintln!("boot bench: run as root with `cargo bench --bench boot`; skipped");
        return;
    }
    for t in [
        "qemu-system-x86_64",
        "dnsmasq",
        "ganesha.nfsd",
        "rpcbind",
        "debootstrap",
    ] {
        require(t);
    }
    let rounds: usize = std::env::var("BOOT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    println!(
        "boot to multi-user.target over the network (qemu TCG), time from qemu start to the marker, median of {rounds} alternating rounds"
    );
    // BOOT_FIRMWARE=bios or uefi measures one of the two.
    let only = std::env::var("BOOT_FIRMWARE")
        .unwrap_or_default()
        .to_ascii_uppercase();
    let mut rows = Vec::new();
    for fw in [Firmware::Bios, Firmware::Uefi] {
        let fw_name = if fw == Firmware::Bios { "BIOS" } else { "UEFI" };
        if !only.is_empty() && only != fw_name {
            continue;
        }
        println!("{fw_name} (seconds from qemu start to each console milestone):");
        // BOOT_EXTRA: TOML appended to our config (e.g. another [boot] efi64)
        let extra = std::env::var("BOOT_EXTRA").unwrap_or_default();
        // UEFI also boots with Secure Boot on, through Debian's signed shim
        // and GRUB 2.12 (`loaders fetch`): the chain Secure Boot machines need
        let secure = format!(
            "[boot]\nefi64 = \"shimx64.efi\"\n[tftp]\nloaders = \"{}\"\n",
            DebianRoot::signed_loaders().display()
        );
        let (mut ours, mut classic, mut sb) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            ours.push(boot_ours(fw, fw_name, &extra));
            if fw == Firmware::Uefi {
                sb.push(boot_ours(
                    Firmware::UefiSecureBoot,
                    "UEFI Secure Boot",
                    &secure,
                ));
            }
            classic.push(boot_classic(fw, fw_name));
        }
        println!("{fw_name} rounds: pxe-sidecar {ours:.1?}, classic {classic:.1?}");
        if !sb.is_empty() {
            println!(
                "UEFI Secure Boot rounds (shim, GRUB 2.12, kernel and initrd over HTTP): {sb:.1?}"
            );
            rows.push(("UEFI-SB", median(sb), median(classic.clone())));
        }
        rows.push((fw_name, median(ours), median(classic)));
    }
    println!(
        "{:<6} {:>14} {:>26} {:>8}",
        "", "pxe-sidecar", "dnsmasq + nfs-ganesha", "ratio"
    );
    for (fw, ours, classic) in rows {
        println!(
            "{:<6} {:>13.1}s {:>25.1}s {:>8.2}",
            fw,
            ours.as_secs_f64(),
            classic.as_secs_f64(),
            ours.as_secs_f64() / classic.as_secs_f64()
        );
    }
    println!(
        "(ratio = pxe-sidecar / classic; at or below 1.0: pxe-sidecar boots as fast or faster)"
    );
}
