//! Raspberry Pi 4 and 5 against pxe-sidecar on a namespace LAN beside a
//! router's DHCP: `probe --arch rpi4|rpi5` plays the EEPROM bootloader's
//! DISCOVER (as pcaps/make-rpi-captures.py rebuilds it from public
//! dissections) and its TFTP pattern: blksize 1024, the first file tested
//! by aborting after one block, then config.txt, cmdline.txt and a kernel
//! over 65,535 blocks (the block counter rolls over), all under the
//! serial, mapped by `[rpi]` to the shared or the serial's own directory.

mod common;

use std::time::Duration;

use common::netns::{root_or_skip, start_dnsmasq, start_server, status, wait_for_log};

const ROUTER: (&str, &str, Option<&str>) = ("router", "02:00:00:00:00:01", Some("10.77.0.1/24"));
const PXE: (&str, &str, Option<&str>) = ("pxe", "02:00:00:00:00:02", Some("10.77.0.2/24"));
const CLIENT: (&str, &str, Option<&str>) = ("client", "02:00:00:00:00:50", Some("10.77.0.50/24"));

/// More than 65,535 blocks of 1024 bytes.
const BIG: u64 = 70_000_000;

fn probe(lan: &common::netns::Lan, arch: &str, mac: &str) -> (bool, String) {
    common::netns::probe_with(lan, "client", &["--arch", arch, "--mac", mac])
}

#[test]
fn pi4_and_pi5_boot_files_come_from_their_directories() {
    if !root_or_skip("pi4_and_pi5_boot_files_come_from_their_directories") {
        return;
    }
    let mut lan = common::netns::with_router(&[ROUTER, PXE, CLIENT], "10.77.0.100,10.77.0.200");
    let root = lan.path("tftp");
    let shared = root.join("rpi");
    let five = root.join("rpi/five");
    std::fs::create_dir_all(&five).unwrap();
    let write = |p: std::path::PathBuf, bytes: &[u8]| std::fs::write(p, bytes).unwrap();
    write(shared.join("start4.elf"), &[0x11; 3000]);
    write(shared.join("fixup4.dat"), &[0x22; 700]);
    write(
        shared.join("config.txt"),
        b"arm_64bit=1\nkernel=kernel8.img\n",
    );
    let cmdline = "console=serial0,115200 root=/dev/nfs nfsroot=10.77.0.2:/srv/nfsroot,vers=3,tcp ip=dhcp rw rootwait";
    write(shared.join("cmdline.txt"), cmdline.as_bytes());
    let big = std::fs::File::create(shared.join("kernel8.img")).unwrap();
    big.set_len(BIG).unwrap();
    write(five.join("config.txt"), b"kernel=kernel_2712.img\n");
    write(five.join("cmdline.txt"), cmdline.as_bytes());
    write(five.join("kernel_2712.img"), &[0x33; 5000]);
    let cfg = format!(
        "[nfs]\nenabled = false\n[tftp]\nroot = \"{}\"\n[rpi]\ndir = \"rpi\"\n[rpi.serials]\n\"67000051\" = \"rpi/five\"\n",
        root.display()
    );
    let (log, cfg_path) = start_server(&mut lan, "pxe", &cfg, &[]);

    // Pi 4: the serial 32000050 has no entry, so it reads the shared directory
    let (ok, out) = probe(&lan, "rpi4", "dc:a6:32:00:00:50");
    assert!(ok, "{out}");
    for needle in [
        "proxy offer from 10.77.0.2",
        "10.77.0.2: menu \"Raspberry Pi Boot\": the Pi takes TFTP from 10.77.0.2",
        "as serial 32000050 (TFTP_PREFIX=0): 32000050/start4.elf first, blksize 1024",
        "TFTP 32000050/start4.elf: there (3000 bytes by tsize); aborted after the first block",
        "TFTP 32000050/config.txt: 31 bytes",
        "TFTP 32000050/start4.elf: 3000 bytes",
        "TFTP 32000050/fixup4.dat: 700 bytes",
        "cmdline.txt: root=/dev/nfs nfsroot=10.77.0.2:/srv/nfsroot,vers=3,tcp",
        &format!("TFTP 32000050/kernel8.img: {BIG} bytes"),
    ] {
        assert!(out.contains(needle), "probe lacks {needle:?}:\n{out}");
    }
    // Pi 5: its serial has its own directory; it starts from config.txt
    let (ok, out) = probe(&lan, "rpi5", "2c:cf:67:00:00:51");
    assert!(ok, "{out}");
    for needle in [
        "as serial 67000051 (TFTP_PREFIX=0): 67000051/config.txt first, blksize 1024",
        "TFTP 67000051/config.txt: there (23 bytes by tsize)",
        "TFTP 67000051/kernel_2712.img: 5000 bytes",
    ] {
        assert!(out.contains(needle), "probe lacks {needle:?}:\n{out}");
    }
    assert!(
        !out.contains("start4.elf"),
        "a Pi 5 reads no start4.elf:\n{out}"
    );

    // the server logs a transfer once the last ACK is in
    let text = wait_for_log(
        &log,
        "sent 67000051/kernel_2712.img",
        Duration::from_secs(5),
    );
    for needle in [
        "DHCPDISCOVER from dc:a6:32:00:00:50 to port 67 (Raspberry Pi 4 serial 32000050, PXEClient:Arch:00000:UNDI:002001)",
        "menu \"Raspberry Pi Boot\", TFTP from 10.77.0.2 (Raspberry Pi 4 serial 32000050; it asks for 32000050/start4.elf next)",
        "DHCPDISCOVER from 2c:cf:67:00:00:51 to port 67 (Raspberry Pi 5 serial 67000051,",
        // the existence test: one block sent, then the Pi's ERROR
        "32000050/start4.elf to 10.77.0.50: client ended the transfer before acknowledging any data (ERROR 0 \"abort\")",
        // blksize 1024 granted, and the block counter rolled over past 65,535
        &format!("sent 32000050/kernel8.img to 10.77.0.50: {BIG} bytes"),
        "sent 67000051/kernel_2712.img to 10.77.0.50: 5000 bytes",
    ] {
        assert!(text.contains(needle), "log lacks {needle:?}:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.contains("sent 32000050/kernel8.img") && l.contains("blksize 1024")),
        "{text}"
    );
    // never a PC's loader for a Pi
    assert!(!text.contains("pxelinux.0"), "{text}");
    // the timeline names the board, not "arch 0 BIOS"
    let timeline = status(&lan, "pxe", &cfg_path, false);
    assert!(
        timeline.contains("Raspberry Pi 4 serial 32000050")
            && timeline.contains("Raspberry Pi 5 serial 67000051"),
        "{timeline}"
    );
    assert!(!timeline.contains("arch 0 BIOS"), "{timeline}");
}

/// The anchor: dnsmasq in proxy mode set up as the vendor's tutorial says
/// (`pxe-service=0,"Raspberry Pi Boot"`, its TFTP serving the serial's
/// directory). The probe's Pi must boot from it as from us, so the probe
/// plays the Pi and not merely our own answers.
#[test]
fn the_pi_probe_also_boots_from_dnsmasq_as_the_vendor_sets_it_up() {
    if !root_or_skip("the_pi_probe_also_boots_from_dnsmasq_as_the_vendor_sets_it_up") {
        return;
    }
    let mut lan = common::netns::with_router(&[ROUTER, PXE, CLIENT], "10.77.0.100,10.77.0.200");
    let serial = lan.path("tftp/32000050");
    std::fs::create_dir_all(&serial).unwrap();
    for (f, body) in [
        ("start4.elf", &b"fw"[..]),
        ("fixup4.dat", b"fx"),
        ("config.txt", b"arm_64bit=1\n"),
        (
            "cmdline.txt",
            b"root=/dev/nfs nfsroot=10.77.0.2:/srv/pi ip=dhcp\n",
        ),
        ("kernel8.img", &[9; 4321]),
    ] {
        std::fs::write(serial.join(f), body).unwrap();
    }
    let root = format!("--tftp-root={}", lan.path("tftp").display());
    let log = start_dnsmasq(
        &mut lan,
        "pxe",
        &[
            "--bind-interfaces",
            "--dhcp-range=10.77.0.0,proxy",
            "--pxe-service=0,Raspberry Pi Boot",
            "--enable-tftp",
            &root,
        ],
    );
    wait_for_log(&log, "proxy on subnet", Duration::from_secs(10));
    let (ok, out) = probe(&lan, "rpi4", "dc:a6:32:00:00:50");
    assert!(ok, "{out}");
    for needle in [
        "10.77.0.2: menu \"Raspberry Pi Boot\": the Pi takes TFTP from 10.77.0.2",
        "TFTP 32000050/start4.elf: there (2 bytes by tsize)",
        "TFTP 32000050/kernel8.img: 4321 bytes",
    ] {
        assert!(out.contains(needle), "probe lacks {needle:?}:\n{out}");
    }
}
