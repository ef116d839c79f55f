//! End to end with real firmware: a qemu guest (TCG) whose SeaBIOS runs the
//! iPXE option ROM from Debian's ipxe-qemu, on a namespace LAN beside a router
//! DHCP server (dnsmasq, no PXE options), boots through pxe-sidecar's proxy
//! offer and TFTP into pxelinux and our generated menu. The guest's console
//! is read from its serial port (sgabios mirrors the VGA text there).
//! Also the Debian wiki's failure steps: no boot file (PXE-E53) and a missing
//! file (PXE-T01), each checked on the console and in our log.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::netns::{Lan, require, root_or_skip, start_dnsmasq, start_server, wait_for_log};

const ROUTER: (&str, &str, Option<&str>) = ("router", "02:00:00:00:00:01", Some("10.77.0.1/24"));
const PXE: (&str, &str, Option<&str>) = ("pxe", "02:00:00:00:00:02", Some("10.77.0.2/24"));
const GUEST_MAC: &str = "52:54:00:12:34:56";

/// The console text with terminal escapes removed: sgabios positions every
/// character, so stripping the sequences leaves the words.
fn console(path: &Path) -> String {
    let raw = std::fs::read(path).unwrap_or_default();
    let mut out = String::new();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == 0x1b && raw.get(i + 1) == Some(&b'[') {
            i += 2;
            while i < raw.len() && !(raw[i] as char).is_ascii_alphabetic() {
                i += 1;
            }
            i += 1;
            continue;
        }
        match raw[i] {
            b'\r' | 8 => {}
            c => out.push(c as char),
        }
        i += 1;
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Firmware {
    /// SeaBIOS + the iPXE option ROM of Debian's ipxe-qemu (e1000).
    Bios,
    /// OVMF (EDK2) with its own PXE stack on virtio-net (no option ROM).
    Uefi,
}

fn boot_bios(config: &str, marker: &str, within: Duration) -> (String, String) {
    boot(Firmware::Bios, config, marker, within)
}

/// Boots a guest until its console shows `marker` (or `within` passes);
/// returns the console text and pxe-sidecar's log. With
/// E2E_SAVE_PCAPS=DIR the DHCP part of the boot is kept as a capture.
fn boot(fw: Firmware, config: &str, marker: &str, within: Duration) -> (String, String) {
    require("qemu-system-x86_64");
    let mut lan = Lan::new(&[ROUTER, PXE]);
    let dlog = start_dnsmasq(
        &mut lan,
        "router",
        &[
            "--bind-interfaces",
            "--dhcp-range=10.77.0.100,10.77.0.200,1h",
            "--no-ping",
        ],
    );
    wait_for_log(&dlog, "DHCP, IP range", Duration::from_secs(10));
    let (log, _) = start_server(&mut lan, "pxe", config, &[]);
    lan.add_tap("tap0");
    let pcap = lan.path("boot.pcap");
    let save = std::env::var_os("E2E_SAVE_PCAPS");
    if save.is_some() {
        let p = pcap.display().to_string();
        let filter = "udp port 67 or udp port 68 or udp port 4011";
        let t = lan.spawn_on_switch(
            "tcpdump",
            &[
                "tcpdump",
                "-i",
                "br0",
                "-U",
                "--immediate-mode",
                "-w",
                &p,
                filter,
            ],
        );
        wait_for_log(&t, "listening on", Duration::from_secs(5));
    }
    let serial = lan.path("serial.log");
    let serial_arg = format!("file:{}", serial.display());
    let mut args = vec![
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-m",
        "256",
        "-display",
        "none",
        "-monitor",
        "none",
        "-no-reboot",
        "-boot",
        "n",
        "-serial",
        &serial_arg,
        "-netdev",
        "tap,id=n0,ifname=tap0,script=no,downscript=no",
    ];
    let nic;
    match fw {
        Firmware::Bios => {
            nic = format!("e1000,netdev=n0,mac={GUEST_MAC}");
            args.extend_from_slice(&["-device", "sga", "-device", &nic]);
        }
        Firmware::Uefi => {
            nic = format!("virtio-net-pci,netdev=n0,mac={GUEST_MAC},romfile=");
            args.extend_from_slice(&["-bios", "/usr/share/ovmf/OVMF.fd", "-device", &nic]);
        }
    }
    lan.spawn_on_switch("qemu", &args);
    let start = Instant::now();
    while start.elapsed() < within && !console(&serial).contains(marker) {
        std::thread::sleep(Duration::from_millis(250));
    }
    // Give the server a moment to log the last transfer.
    std::thread::sleep(Duration::from_millis(300));
    lan.stop("qemu");
    if let Some(dir) = save {
        lan.stop("tcpdump");
        let name = if fw == Firmware::Bios {
            "qemu-seabios-ipxe-bios.pcap"
        } else {
            "qemu-ovmf-uefi-x64.pcap"
        };
        std::fs::copy(&pcap, Path::new(&dir).join(name)).unwrap();
    }
    (console(&serial), std::fs::read_to_string(&log).unwrap())
}

#[test]
fn uefi_firmware_boots_through_the_4011_step() {
    if !root_or_skip("uefi_firmware_boots_through_the_4011_step") {
        return;
    }
    assert!(
        Path::new("/usr/share/ovmf/OVMF.fd").exists(),
        "ovmf is not installed: run scripts/deps"
    );
    let marker = "pxe-sidecar: this machine loaded pxelinux";
    let (con, log) = boot(Firmware::Uefi, "", marker, Duration::from_secs(240));
    assert!(
        con.contains(marker),
        "the guest never showed our menu; console:\n{con}\nlog:\n{log}"
    );
    let needles: [String; 5] = [
        format!(
            "DHCPDISCOVER from {GUEST_MAC} to port 67 (PXEClient:Arch:00007:UNDI:003000, arch 7 EFI BC) via eth0"
        ),
        format!("DHCPREQUEST from {GUEST_MAC} to port 4011"),
        format!("DHCPACK to {GUEST_MAC} at 10.77."),
        "sent syslinux.efi to 10.77.".into(),
        "sent ldlinux.e64 to 10.77.".into(),
    ];
    for needle in &needles {
        assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
    }
}

#[test]
fn bios_firmware_boots_pxelinux_and_the_generated_menu() {
    if !root_or_skip("bios_firmware_boots_pxelinux_and_the_generated_menu") {
        return;
    }
    let marker = "pxe-sidecar: this machine loaded pxelinux";
    let (con, log) = boot_bios("", marker, Duration::from_secs(150));
    assert!(
        con.contains(marker),
        "the guest never showed our menu; console:\n{con}\nlog:\n{log}"
    );
    assert!(
        con.contains("Next server: 10.77.0.2") && con.contains("Filename: pxelinux.0"),
        "{con}"
    );
    let needles: [String; 6] = [
        format!(
            "DHCPDISCOVER from {GUEST_MAC} to port 67 (PXEClient:Arch:00000:UNDI:002001, arch 0 BIOS, iPXE) via eth0"
        ),
        format!(
            "proxy DHCPOFFER to {GUEST_MAC} at 255.255.255.255:68: boot file pxelinux.0 from 10.77.0.2"
        ),
        "sent pxelinux.0 to 10.77.".into(),
        "sent ldlinux.c32 to 10.77.".into(),
        "sent pxelinux.cfg/default to 10.77.".into(),
        // The TFTP lines name the machine, learned from its DHCPREQUEST.
        format!("mac={GUEST_MAC}"),
    ];
    for needle in &needles {
        assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
    }
    let rrq = log
        .lines()
        .find(|l| l.contains("RRQ from") && l.contains("pxelinux.0"))
        .unwrap();
    assert!(rrq.contains(&format!("mac={GUEST_MAC}")), "{rrq}");
}

#[test]
fn no_boot_file_is_the_pxe_e53_step_and_the_log_says_why() {
    if !root_or_skip("no_boot_file_is_the_pxe_e53_step_and_the_log_says_why") {
        return;
    }
    let marker = "No more network devices";
    let (con, log) = boot_bios("[boot]\nbios = \"\"\n", marker, Duration::from_secs(150));
    assert!(con.contains(marker), "console:\n{con}");
    assert!(
        log.contains(&format!("{GUEST_MAC} not answered: no boot file for arch 0 BIOS: set [boot] bios (the client will show PXE-E53: No boot filename received)")),
        "{log}"
    );
    assert!(!log.contains("proxy DHCPOFFER"), "{log}");
}

#[test]
fn missing_boot_file_is_the_pxe_t01_step_and_the_log_names_it() {
    if !root_or_skip("missing_boot_file_is_the_pxe_t01_step_and_the_log_names_it") {
        return;
    }
    let marker = "No more network devices";
    let (con, log) = boot_bios(
        "[boot]\nbios = \"missing.0\"\n",
        marker,
        Duration::from_secs(150),
    );
    assert!(con.contains("Filename: missing.0"), "console:\n{con}");
    assert!(con.contains("No such file or directory"), "console:\n{con}");
    assert!(
        log.contains("NAK File not found: missing.0 (RRQ from 10.77."),
        "{log}"
    );
    assert!(
        log.contains("the client shows PXE-T01: File not found"),
        "{log}"
    );
}
