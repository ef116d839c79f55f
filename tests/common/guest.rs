//! Guests for the end-to-end boots and the boot-time benchmark: a namespace
//! LAN with a router DHCP (dnsmasq, no PXE options), a server, and qemu
//! guests (TCG) on a tap whose serial console is read back; and the cached
//! Debian tree those guests boot as their NFS root.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::netns::{Lan, require, start_dnsmasq, start_server, wait_for_log};

pub const ROUTER: (&str, &str, Option<&str>) =
    ("router", "02:00:00:00:00:01", Some("10.77.0.1/24"));
pub const PXE: (&str, &str, Option<&str>) = ("pxe", "02:00:00:00:00:02", Some("10.77.0.2/24"));
pub const GUEST_MAC: &str = "52:54:00:12:34:56";

/// The console text with terminal escapes removed: sgabios positions every
/// character, so stripping the sequences leaves the words.
pub fn console(path: &Path) -> String {
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
pub enum Firmware {
    /// SeaBIOS + the iPXE option ROM of Debian's ipxe-qemu (e1000).
    Bios,
    /// OVMF (EDK2) with its own PXE stack on virtio-net (no option ROM).
    Uefi,
    /// OVMF with Secure Boot on and Microsoft's keys enrolled (Debian's
    /// OVMF_CODE_4M.ms.fd and a copy of OVMF_VARS_4M.ms.fd), q35 with SMM.
    UefiSecureBoot,
    /// AAVMF (EDK2 for arm64, Debian's qemu-efi-aarch64) on qemu's `virt`
    /// machine: an ARM64 UEFI PXE client (arch 11).
    Arm64Uefi,
    /// Debian's U-Boot for qemu's arm64 `virt` machine (u-boot-qemu,
    /// qemu_arm64/u-boot.bin): distro boot's `dhcp` target (arch 22, then
    /// arch 11 for its EFI step).
    UBootArm64,
}

impl Firmware {
    fn arm64(self) -> bool {
        matches!(self, Firmware::Arm64Uefi | Firmware::UBootArm64)
    }
}

/// The test LAN: a router running dnsmasq as a plain DHCP server, pxe-sidecar
/// beside it, and a tap on the bridge for qemu guests.
pub struct Rig {
    pub lan: Lan,
    pub log: PathBuf,
    guests: usize,
    /// Time from qemu's start to the marker, in the last boot that showed it.
    pub last: Option<Duration>,
    /// When each of `MILESTONES` first showed on the last boot's console.
    pub phases: Vec<(&'static str, Duration)>,
}

/// Console lines that mark the boot's steps, in order: the firmware's PXE
/// start, the loader's banner, the kernel, the initramfs mounting the NFS
/// root, and systemd on the NFS root. The boot bench prints when each
/// appeared, so a slower stack shows which step it loses time in.
pub const MILESTONES: [(&str, &str); 5] = [
    ("firmware PXE", "PXE"),
    ("loader", "LINUX "),
    ("kernel", "Linux version"),
    ("initramfs NFS mount", "Begin: Mounting root file system"),
    ("systemd", "Welcome to Debian"),
];

impl Rig {
    /// `config` gets the LAN (for paths) and returns pxe-sidecar's TOML.
    /// pxe-sidecar as the server; `config` gets the LAN (for paths) and
    /// returns its TOML.
    pub fn new(config: impl FnOnce(&Lan) -> String) -> Rig {
        Rig::with_server(|lan| {
            let text = config(lan);
            start_server(lan, "pxe", &text, &[]).0
        })
    }

    /// Any server, started by `start` on the LAN's "pxe" host; it returns
    /// the log to read back.
    pub fn with_server(start: impl FnOnce(&mut Lan) -> PathBuf) -> Rig {
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
        let log = start(&mut lan);
        Rig::on(lan, log)
    }

    /// Guests on `lan`'s bridge, served by the server whose log is `log`
    /// (it may sit on another LAN, behind a router).
    pub fn on(lan: Lan, log: PathBuf) -> Rig {
        lan.add_tap("tap0");
        Rig {
            lan,
            log,
            guests: 0,
            last: None,
            phases: Vec::new(),
        }
    }

    /// Boots one guest until its console shows `marker` (or `within`
    /// passes), stops it and returns its console text.
    pub fn boot(&mut self, fw: Firmware, mac: &str, marker: &str, within: Duration) -> String {
        self.boot_typing(fw, mac, &[], marker, within)
    }

    /// Like `boot`, with someone at the serial console: for each
    /// `(seen, typed)`, once the console shows `seen` (after what the
    /// previous step saw), `typed` is sent as keystrokes.
    pub fn boot_typing(
        &mut self,
        fw: Firmware,
        mac: &str,
        script: &[(&str, &str)],
        marker: &str,
        within: Duration,
    ) -> String {
        self.guests += 1;
        let label = format!("qemu-{}", self.guests);
        let serial = self.lan.path(&format!("serial-{}.log", self.guests));
        let sock = self.lan.path(&format!("serial-{}.sock", self.guests));
        // A console to type into is a socket; qemu still logs all output.
        let serial_arg = if script.is_empty() {
            format!("file:{}", serial.display())
        } else {
            "chardev:con".to_string()
        };
        let chardev = format!(
            "socket,id=con,path={},server=on,wait=off,logfile={}",
            sock.display(),
            serial.display()
        );
        let qemu = if fw.arm64() {
            "qemu-system-aarch64"
        } else {
            "qemu-system-x86_64"
        };
        require(qemu);
        let mut args = vec![
            qemu,
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
        let nic = match fw {
            Firmware::Bios => format!("e1000,netdev=n0,mac={mac}"),
            _ => format!("virtio-net-pci,netdev=n0,mac={mac},romfile="),
        };
        let owned = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // EDK2 builds with their variable store: a fresh copy per guest
        let flash = |code: &str, vars: &str| {
            let copy = self.lan.path(&format!("vars-{}.fd", self.guests));
            std::fs::copy(vars, &copy).unwrap();
            vec![
                "-drive".to_string(),
                format!("if=pflash,format=raw,unit=0,readonly=on,file={code}"),
                "-drive".to_string(),
                format!("if=pflash,format=raw,unit=1,file={}", copy.display()),
            ]
        };
        let virt = owned(&["-machine", "virt", "-cpu", "cortex-a57"]);
        let machine: Vec<String> = match fw {
            Firmware::Bios => owned(&["-device", "sga"]),
            Firmware::Uefi => owned(&["-bios", "/usr/share/ovmf/OVMF.fd"]),
            Firmware::UefiSecureBoot => [
                owned(&[
                    "-machine",
                    "q35,smm=on",
                    "-global",
                    "driver=cfi.pflash01,property=secure,value=on",
                ]),
                flash(
                    "/usr/share/OVMF/OVMF_CODE_4M.ms.fd",
                    "/usr/share/OVMF/OVMF_VARS_4M.ms.fd",
                ),
            ]
            .concat(),
            Firmware::Arm64Uefi => [
                virt,
                flash(
                    "/usr/share/AAVMF/AAVMF_CODE.fd",
                    "/usr/share/AAVMF/AAVMF_VARS.fd",
                ),
            ]
            .concat(),
            Firmware::UBootArm64 => {
                // a writable second flash bank, where U-Boot keeps its
                // environment: the board line's `saveenv` writes there
                let env = self.lan.path("uboot-env.fd");
                if !env.exists() {
                    let f = std::fs::File::create(&env).unwrap();
                    f.set_len(64 << 20).unwrap();
                }
                let env = format!("if=pflash,format=raw,unit=1,file={}", env.display());
                [
                    virt,
                    owned(&[
                        "-bios",
                        "/usr/lib/u-boot/qemu_arm64/u-boot.bin",
                        "-drive",
                        &env,
                    ]),
                ]
                .concat()
            }
        };
        args.extend(machine.iter().map(String::as_str));
        args.extend_from_slice(&["-device", &nic]);
        if !script.is_empty() {
            args.extend_from_slice(&["-chardev", &chardev]);
        }
        // E2E_KEEP=DIR also keeps a capture of the whole boot (headers only).
        let keep = std::env::var_os("E2E_KEEP").map(PathBuf::from);
        let pcap = self.lan.path(&format!("{label}.pcap"));
        let dump = format!("tcpdump-{label}");
        if keep.is_some() {
            self.capture(&dump, &pcap, &["-s", "256"]);
        }
        self.lan.spawn_on_switch(&label, &args);
        let start = Instant::now();
        self.last = None;
        self.phases.clear();
        let mut typist = None;
        let mut steps = script.iter();
        let mut next = steps.next();
        let mut seen_upto = 0;
        while start.elapsed() < within {
            let text = console(&serial);
            if let Some((seen, typed)) = next {
                if typist.is_none() {
                    typist = std::os::unix::net::UnixStream::connect(&sock).ok();
                    // qemu sends the console to the socket one byte per
                    // write: unread, those fill its buffer after a few
                    // hundred and the guest's output (and the log) stall
                    if let Some(mut r) = typist.as_ref().and_then(|t| t.try_clone().ok()) {
                        std::thread::spawn(move || {
                            std::io::copy(&mut r, &mut std::io::sink()).ok();
                        });
                    }
                }
                if let (Some(t), Some(at)) = (typist.as_mut(), text[seen_upto..].find(seen)) {
                    use std::io::Write;
                    seen_upto += at + seen.len();
                    for b in typed.bytes() {
                        // U-Boot's console drops keys typed faster than it reads
                        t.write_all(&[b]).unwrap();
                        std::thread::sleep(Duration::from_millis(15));
                    }
                    next = steps.next();
                }
            }
            for (name, needle) in MILESTONES {
                if !self.phases.iter().any(|(n, _)| *n == name) && text.contains(needle) {
                    self.phases.push((name, start.elapsed()));
                }
            }
            if text.contains(marker) {
                self.last = Some(start.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        // Give the server a moment to log the last transfer.
        std::thread::sleep(Duration::from_millis(300));
        self.lan.stop(&label);
        // E2E_KEEP=DIR keeps each guest's console, the server log and the capture.
        if let Some(dir) = keep {
            self.lan.stop(&dump);
            let _ = std::fs::create_dir_all(&dir);
            // Numbered across rigs, so a second rig's first guest keeps its own files.
            static KEPT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = KEPT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            let _ = std::fs::copy(&serial, dir.join(format!("{n:02}-{label}.console")));
            let _ = std::fs::copy(&self.log, dir.join(format!("{n:02}-{label}.server.log")));
            let _ = std::fs::copy(&pcap, dir.join(format!("{n:02}-{label}.pcap")));
        }
        console(&serial)
    }

    /// Starts tcpdump (`label`) on the LAN's bridge writing to `pcap`, with
    /// extra arguments (snap length, a filter); returns once it listens.
    /// `lan.stop(label)` ends it.
    pub fn capture(&mut self, label: &str, pcap: &Path, extra: &[&str]) {
        let p = pcap.display().to_string();
        let mut args = vec!["tcpdump", "-i", "br0", "-U", "--immediate-mode", "-w", &p];
        args.extend_from_slice(extra);
        let t = self.lan.spawn_on_switch(label, &args);
        wait_for_log(&t, "listening on", Duration::from_secs(5));
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

pub const OTHER_MAC: &str = "52:54:00:12:34:57";
pub const REPORT: &str = "PXE-SIDECAR-E2E";

/// The cached Debian tree (scripts/e2e-rootfs makes it with `rootfs create`, once per kernel
/// version), seen through an overlay so that boots never change the cache.
/// Declare it before the `Rig`: it must outlive the server that serves it
/// (locals drop in reverse order), and it lives outside the LAN's temp dir.
pub struct DebianRoot {
    pub merged: PathBuf,
    _dir: tempfile::TempDir,
}

impl DebianRoot {
    pub fn new() -> DebianRoot {
        require("debootstrap");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/e2e-rootfs");
        let out = std::process::Command::new(&script)
            .env("PXE_SIDECAR", env!("CARGO_BIN_EXE_pxe-sidecar"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/e2e-rootfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lower = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let dir = tempfile::tempdir().unwrap();
        let (upper, work, merged) = (
            dir.path().join("upper"),
            dir.path().join("work"),
            dir.path().join("nfsroot"),
        );
        for d in [&upper, &work, &merged] {
            std::fs::create_dir_all(d).unwrap();
        }
        // nfs_export: file handles work through the overlay, which
        // nfs-ganesha (the benchmark's classic stack) needs
        let opts = format!(
            "lowerdir={lower},upperdir={},workdir={},index=on,nfs_export=on",
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
        let root = DebianRoot { merged, _dir: dir };
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
# the firmware's SecureBoot variable: 4 bytes of attributes, then 1 or 0
sb=$(od -An -tu1 -j4 -N1 /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c 2>/dev/null | tr -d ' ')
for i in $(seq 60); do [ "$(systemctl is-active multi-user.target)" = active ] && break; sleep 1; done
state=$(systemctl is-active multi-user.target)
echo "PXE-SIDECAR-E2E mac=$mac root=$root etc=$etc usr=$usr tmp=$tmp runtmp=$runtmp var=$var myself=$myself prev=$prev adjtime=$adj sb=${sb:-none} target=$state" > /dev/ttyS0
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
    pub fn prepare(&self) -> String {
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

    /// Debian 13's signed shim and GRUB (`pxe-sidecar loaders fetch`),
    /// fetched once into the test cache; returns the directory for
    /// `[tftp] loaders`.
    pub fn signed_loaders() -> PathBuf {
        static ONCE: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = ONCE.lock().unwrap_or_else(|e| e.into_inner());
        let dir = Path::new("/var/cache/pxe-sidecar-tests/loaders-trixie");
        if !dir.join("FETCHED").exists() {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_pxe-sidecar"))
                .args(["loaders", "fetch", "--dir"])
                .arg(dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "loaders fetch: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        dir.to_path_buf()
    }

    /// Debian 12's arm64 cloud kernel (an uncompressed Image U-Boot's
    /// `booti` starts), downloaded once with apt's state kept private;
    /// returns its path.
    pub fn arm64_kernel() -> PathBuf {
        static ONCE: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = ONCE.lock().unwrap_or_else(|e| e.into_inner());
        let dir = Path::new("/var/cache/pxe-sidecar-tests/arm64-kernel");
        let kernel = dir.join("vmlinuz");
        if kernel.exists() {
            return kernel;
        }
        let script = r#"set -e
d="$1"; rm -rf "$d/apt" "$d/x"; mkdir -p "$d/apt/lists/partial" "$d/apt/cache/archives/partial" "$d/x"
echo "deb http://deb.debian.org/debian bookworm main" > "$d/apt/sources.list"; : > "$d/apt/status"
A="-oDir::Etc::SourceList=$d/apt/sources.list -oDir::Etc::SourceParts=/dev/null -oDir::State::Lists=$d/apt/lists -oDir::State::status=$d/apt/status -oDir::Cache=$d/apt/cache -oAPT::Architectures::= -oAPT::Architectures::=arm64"
apt-get $A -q update >&2
pkg=$(apt-cache $A depends linux-image-cloud-arm64:arm64 | sed -n 's/.*Depends: \(linux-image-[^ ]*\).*/\1/p' | head -1)
cd "$d/apt" && apt-get $A -q download "$pkg" >&2
dpkg-deb -x "$d"/apt/linux-image-*.deb "$d/x"
cp "$d"/x/boot/vmlinuz-* "$d/vmlinuz.part" && mv "$d/vmlinuz.part" "$d/vmlinuz"
rm -rf "$d/apt" "$d/x""#;
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("sh")
            .args(["-c", script, "sh"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success() && kernel.exists(),
            "downloading Debian's arm64 kernel: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        kernel
    }

    /// pxe-sidecar's config serving this tree; `extra` is appended.
    pub fn config(&self, lan: &Lan, extra: &str) -> String {
        format!(
            "[pxelinux]\nappend = \"console=ttyS0\"\n[nfs]\nroot = \"{}\"\nstate_dir = \"{}\"\nroot_squash = \"none\"\n{extra}",
            self.merged.display(),
            lan.path("state").display()
        )
    }
}

impl Drop for DebianRoot {
    fn drop(&mut self) {
        // the server is gone by now: a plain umount, so the temp dir can go
        let ok = std::process::Command::new("umount")
            .arg(&self.merged)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.merged)
                .status();
        }
    }
}

/// The marker line of one boot, split into its key=value words.
pub fn report(con: &str) -> std::collections::HashMap<String, String> {
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
