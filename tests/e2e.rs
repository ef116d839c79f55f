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

/// The test LAN: a router running dnsmasq as a plain DHCP server, pxe-sidecar
/// beside it, and a tap on the bridge for qemu guests.
struct Rig {
    lan: Lan,
    log: std::path::PathBuf,
    guests: usize,
}

impl Rig {
    /// `config` gets the LAN (for paths) and returns pxe-sidecar's TOML.
    fn new(config: impl FnOnce(&Lan) -> String) -> Rig {
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
        let text = config(&lan);
        let (log, _) = start_server(&mut lan, "pxe", &text, &[]);
        lan.add_tap("tap0");
        Rig {
            lan,
            log,
            guests: 0,
        }
    }

    /// Boots one guest until its console shows `marker` (or `within`
    /// passes), stops it and returns its console text.
    fn boot(&mut self, fw: Firmware, mac: &str, marker: &str, within: Duration) -> String {
        self.guests += 1;
        let label = format!("qemu-{}", self.guests);
        let serial = self.lan.path(&format!("serial-{}.log", self.guests));
        let serial_arg = format!("file:{}", serial.display());
        let mut args = vec![
            "qemu-system-x86_64",
            "-accel",
            "tcg",
            "-m",
            "512",
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
                nic = format!("e1000,netdev=n0,mac={mac}");
                args.extend_from_slice(&["-device", "sga", "-device", &nic]);
            }
            Firmware::Uefi => {
                nic = format!("virtio-net-pci,netdev=n0,mac={mac},romfile=");
                args.extend_from_slice(&["-bios", "/usr/share/ovmf/OVMF.fd", "-device", &nic]);
            }
        }
        self.lan.spawn_on_switch(&label, &args);
        let start = Instant::now();
        while start.elapsed() < within && !console(&serial).contains(marker) {
            std::thread::sleep(Duration::from_millis(250));
        }
        // Give the server a moment to log the last transfer.
        std::thread::sleep(Duration::from_millis(300));
        self.lan.stop(&label);
        console(&serial)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Boots one guest with `config`; returns the console text and
/// pxe-sidecar's log. With E2E_SAVE_PCAPS=DIR the DHCP part of the boot is
/// kept as a capture.
fn boot(fw: Firmware, config: &str, marker: &str, within: Duration) -> (String, String) {
    let mut rig = Rig::new(|_| config.to_string());
    let pcap = rig.lan.path("boot.pcap");
    let save = std::env::var_os("E2E_SAVE_PCAPS");
    if save.is_some() {
        let p = pcap.display().to_string();
        let filter = "udp port 67 or udp port 68 or udp port 4011";
        let t = rig.lan.spawn_on_switch(
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
    let con = rig.boot(fw, GUEST_MAC, marker, within);
    if let Some(dir) = save {
        rig.lan.stop("tcpdump");
        let name = if fw == Firmware::Bios {
            "qemu-seabios-ipxe-bios.pcap"
        } else {
            "qemu-ovmf-uefi-x64.pcap"
        };
        std::fs::copy(&pcap, Path::new(&dir).join(name)).unwrap();
    }
    (con, rig.log())
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

const OTHER_MAC: &str = "52:54:00:12:34:57";
const REPORT: &str = "PXE-SIDECAR-E2E";

/// The cached Debian tree (scripts/e2e-rootfs builds it once per kernel
/// version), seen through an overlay so that boots never change the cache.
struct DebianRoot {
    merged: std::path::PathBuf,
}

impl DebianRoot {
    fn new(lan: &Lan) -> DebianRoot {
        require("debootstrap");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/e2e-rootfs");
        let out = std::process::Command::new(&script).output().unwrap();
        assert!(
            out.status.success(),
            "scripts/e2e-rootfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lower = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let (upper, work, merged) = (lan.path("upper"), lan.path("work"), lan.path("nfsroot"));
        for d in [&upper, &work, &merged] {
            std::fs::create_dir_all(d).unwrap();
        }
        let opts = format!(
            "lowerdir={lower},upperdir={},workdir={}",
            upper.display(),
            work.display()
        );
        let ok = std::process::Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(&merged)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting the overlay over {lower}");
        let root = DebianRoot { merged };
        root.add_report();
        root
    }

    /// A unit that prints, once multi-user.target is reached, what the
    /// guest sees of its root: the test's marker line.
    fn add_report(&self) {
        let script = r#"#!/bin/sh
mac=$(cat /sys/class/net/e*/address 2>/dev/null | head -1)
root=$(findmnt -n -o FSTYPE /)
tmp=$(findmnt -n -o FSTYPE /tmp)
runtmp=$(findmnt -n -o FSTYPE /run/tmp)
if touch /var/.e2e-$$ 2>/dev/null; then var=rw; rm -f /var/.e2e-$$; else var=ro; fi
prev=$(cat /var/myself/who 2>/dev/null || echo none)
if echo "$mac" > /var/myself/who 2>/dev/null; then myself=rw; else myself=ro; fi
if touch /etc/e2e 2>/dev/null; then etc=rw; else etc=ro; fi
if touch /usr/e2e 2>/dev/null; then usr=rw; else usr=ro; fi
adj=$(readlink -f /etc/adjtime)
for i in $(seq 60); do [ "$(systemctl is-active multi-user.target)" = active ] && break; sleep 1; done
state=$(systemctl is-active multi-user.target)
echo "PXE-SIDECAR-E2E mac=$mac root=$root etc=$etc usr=$usr tmp=$tmp runtmp=$runtmp var=$var myself=$myself prev=$prev adjtime=$adj target=$state" > /dev/ttyS0
"#;
        let m = &self.merged;
        std::fs::create_dir_all(m.join("usr/local/sbin")).unwrap();
        let bin = m.join("usr/local/sbin/pxe-e2e-report");
        std::fs::write(&bin, script).unwrap();
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        std::fs::write(
            m.join("etc/systemd/system/pxe-e2e.service"),
            "[Unit]\nDescription=pxe-sidecar e2e report\nAfter=multi-user.target\n\n[Service]\nType=oneshot\nExecStart=/usr/local/sbin/pxe-e2e-report\n\n[Install]\nWantedBy=multi-user.target\n",
        )
        .unwrap();
        let wants = m.join("etc/systemd/system/multi-user.target.wants");
        std::fs::create_dir_all(&wants).unwrap();
        let _ = std::os::unix::fs::symlink(
            "/etc/systemd/system/pxe-e2e.service",
            wants.join("pxe-e2e.service"),
        );
    }

    /// `pxe-sidecar rootfs prepare`, as the README tells the admin; returns
    /// the kernel line it printed.
    fn prepare(&self) -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pxe-sidecar"))
            .args(["rootfs", "prepare"])
            .arg(&self.merged)
            .args(["--server", "10.77.0.2"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "rootfs prepare: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let check = std::process::Command::new(env!("CARGO_BIN_EXE_pxe-sidecar"))
            .args(["rootfs", "check"])
            .arg(&self.merged)
            .args(["--server", "10.77.0.2"])
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "rootfs check after prepare:\n{}",
            String::from_utf8_lossy(&check.stdout)
        );
        text.lines()
            .skip_while(|l| !l.starts_with("kernel command line:"))
            .nth(1)
            .unwrap_or_else(|| panic!("no kernel line in:\n{text}"))
            .trim()
            .to_string()
    }

    /// pxe-sidecar's config serving this tree; `extra` is appended.
    fn config(&self, lan: &Lan, extra: &str) -> String {
        format!(
            "[pxelinux]\nappend = \"console=ttyS0\"\n[nfs]\nroot = \"{}\"\nstate_dir = \"{}\"\nroot_squash = \"none\"\n{extra}",
            self.merged.display(),
            lan.path("state").display()
        )
    }
}

impl Drop for DebianRoot {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.merged)
            .status();
    }
}

/// The marker line of one boot, split into its key=value words.
fn report(con: &str) -> std::collections::HashMap<String, String> {
    // (it may share its line with a getty's login prompt)
    let line = con
        .lines()
        .find_map(|l| l.find(REPORT).map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("no {REPORT} line; console:\n{con}"));
    line.split_whitespace()
        .skip(1)
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn assert_wiki_layout(r: &std::collections::HashMap<String, String>, con: &str) {
    let want = [
        ("root", "nfs"),
        ("etc", "ro"),
        ("usr", "ro"),
        ("tmp", "tmpfs"),
        ("runtmp", "tmpfs"),
        ("var", "rw"),
        ("myself", "rw"),
        ("adjtime", "/var/clients/myself/adjtime"),
        ("target", "active"),
    ];
    for (k, v) in want {
        assert_eq!(
            r.get(k).map(String::as_str),
            Some(v),
            "{k}; console:\n{con}"
        );
    }
}

/// Boots 1 and 5 of the e2e issue, plus 3: a BIOS client through pxelinux
/// and TFTP, then a second client (another MAC) chainloaded by iPXE over
/// HTTP; both come up with the NFS root, each with its own per-client area.
#[test]
fn debian_boots_from_the_nfs_root_bios_and_ipxe_http_two_clients() {
    if !root_or_skip("debian_boots_from_the_nfs_root_bios_and_ipxe_http_two_clients") {
        return;
    }
    let mut root = None;
    let mut rig = Rig::new(|lan| {
        let r = DebianRoot::new(lan);
        let line = r.prepare();
        assert!(
            line.starts_with("root=/dev/nfs nfsroot=10.77.0.2:"),
            "{line}"
        );
        // the first client keeps pxelinux; iPXE clients get the script
        let extra = format!(
            "[boot]\nipxe = \"boot.ipxe\"\n[http]\nenabled = true\n[[clients]]\nmac = \"{GUEST_MAC}\"\nboot = \"pxelinux.0\"\n"
        );
        let text = r.config(lan, &extra);
        root = Some(r);
        text
    });
    let root = root.unwrap();
    let con = rig.boot(Firmware::Bios, GUEST_MAC, REPORT, Duration::from_secs(600));
    let a = report(&con);
    assert_wiki_layout(&a, &con);
    assert_eq!(a["prev"], "none", "first boot of the first client");
    let con = rig.boot(Firmware::Bios, OTHER_MAC, REPORT, Duration::from_secs(600));
    let b = report(&con);
    assert_wiki_layout(&b, &con);
    assert_eq!(
        b["prev"], "none",
        "the second client saw the first one's area"
    );
    let log = rig.log();
    let areas = rig.lan.path("state/clients");
    for mac in [GUEST_MAC, OTHER_MAC] {
        let who = std::fs::read_to_string(areas.join(mac.replace(':', "-")).join("who")).unwrap();
        assert_eq!(who.trim(), mac);
    }
    // one timeline per client: DHCP, the boot files, the NFS mounts
    for needle in [
        format!("DHCPDISCOVER from {GUEST_MAC} to port 67"),
        "sent pxelinux.0 to 10.77.".to_string(),
        "sent nfsroot/vmlinuz to 10.77.".to_string(),
        "sent nfsroot/initrd.img to 10.77.".to_string(),
        format!("DHCPDISCOVER from {OTHER_MAC} to port 67"),
        "boot file boot.ipxe".to_string(),
    ] {
        assert!(log.contains(&needle), "log lacks {needle:?}:\n{log}");
    }
    assert!(
        log.lines()
            .any(|l| l.contains("HTTP GET") && l.contains("nfsroot/vmlinuz from 10.77.")),
        "the iPXE client did not fetch its kernel over HTTP:\n{log}"
    );
    for mac in [GUEST_MAC, OTHER_MAC] {
        assert!(
            log.lines()
                .any(|l| l.contains("MOUNT ") && l.contains(&format!("mac={mac}"))),
            "no NFS MOUNT by {mac}:\n{log}"
        );
    }
    drop(root);
}

/// Boot 2: UEFI (OVMF) through the 4011 step, syslinux.efi, the kernel and
/// the NFS root.
#[test]
fn debian_boots_from_the_nfs_root_uefi() {
    if !root_or_skip("debian_boots_from_the_nfs_root_uefi") {
        return;
    }
    let mut root = None;
    let mut rig = Rig::new(|lan| {
        let r = DebianRoot::new(lan);
        r.prepare();
        let text = r.config(lan, "");
        root = Some(r);
        text
    });
    let con = rig.boot(Firmware::Uefi, GUEST_MAC, REPORT, Duration::from_secs(600));
    assert_wiki_layout(&report(&con), &con);
    let log = rig.log();
    for needle in [
        format!("DHCPREQUEST from {GUEST_MAC} to port 4011"),
        "sent syslinux.efi to 10.77.".to_string(),
        "sent nfsroot/vmlinuz to 10.77.".to_string(),
    ] {
        assert!(log.contains(&needle), "log lacks {needle:?}:\n{log}");
    }
    assert!(
        log.lines()
            .any(|l| l.contains("MOUNT ") && l.contains(&format!("mac={GUEST_MAC}"))),
        "no NFS MOUNT by the guest:\n{log}"
    );
    drop(root);
}

/// The wiki's PXE-E32 step: TFTP unreachable. The client times out or is
/// refused; our log says the boot file needs a TFTP server that is off here.
#[test]
fn tftp_unreachable_is_the_pxe_e32_step_and_the_log_says_why() {
    if !root_or_skip("tftp_unreachable_is_the_pxe_e32_step_and_the_log_says_why") {
        return;
    }
    let marker = "No more network devices";
    let (con, log) = boot_bios(
        "[tftp]\nenabled = false\n",
        marker,
        Duration::from_secs(150),
    );
    assert!(con.contains("Filename: pxelinux.0"), "console:\n{con}");
    assert!(
        con.contains("Connection refused") || con.contains("Connection timed out"),
        "console:\n{con}"
    );
    assert!(
        log.contains("PXE-E32: TFTP open timeout") && log.contains("[tftp] is off here"),
        "{log}"
    );
}
