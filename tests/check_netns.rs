//! `pxe-sidecar check` against deliberately broken setups, each on its own
//! namespace host: the right step fails, with its fix, and the exit status says so.

mod common;

use std::process::Output;
use std::time::Duration;

use common::netns::{Lan, root_or_skip, wait_for_log};

const HOST: (&str, &str, Option<&str>) = ("server", "02:00:00:00:00:02", Some("10.77.0.2/24"));

fn check(lan: &Lan, config: &str, extra: &[&str]) -> (Output, String) {
    let cfg = lan.path("check.toml");
    std::fs::write(&cfg, config).unwrap();
    let cfg_s = cfg.display().to_string();
    let mut args = vec![
        env!("CARGO_BIN_EXE_pxe-sidecar"),
        "--config",
        &cfg_s,
        "check",
    ];
    if !extra.contains(&"--interface") {
        args.extend_from_slice(&["--interface", "eth0"]);
    }
    args.extend_from_slice(extra);
    let o = lan.exec("server", &args);
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    (o, text)
}

/// A TFTP root with a kernel and an initrd, and [pxelinux] pointing at them.
fn good_root(lan: &Lan) -> String {
    let root = lan.path("root");
    std::fs::create_dir_all(root.join("debian")).unwrap();
    std::fs::write(root.join("debian/vmlinuz"), b"kernel").unwrap();
    std::fs::write(root.join("debian/initrd.img"), b"initrd").unwrap();
    format!(
        "[tftp]\nroot = \"{}\"\n[pxelinux]\nkernel = \"debian/vmlinuz\"\ninitrd = \"debian/initrd.img\"\nappend = \"ro\"\n",
        root.display()
    )
}

#[test]
fn a_good_setup_passes_every_step() {
    if !root_or_skip("a_good_setup_passes_every_step") {
        return;
    }
    let lan = Lan::new(&[HOST]);
    let (o, text) = check(&lan, &good_root(&lan), &[]);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("✓ interface: eth0 is up: 10.77.0.2 02:00:00:00:00:02"),
        "{text}"
    );
    assert!(
        text.contains("✓ pxelinux.cfg/default names debian/vmlinuz"),
        "{text}"
    );
    assert!(text.contains("all steps pass"), "{text}");
    // without the signed chain, ARM64 machines and Secure Boot are warnings
    // that name the fix, not failures
    assert!(
        text.contains("✓ [boot] arm64: shimaa64.efi: warning: not available")
            && text.contains("[boot] efi64 = \"auto\" or \"shimx64.efi\"")
            && text.contains("✓ UEFI default: [boot] efi64 = \"auto\": iPXE (snponly.efi)"),
        "{text}"
    );
    let (o, json) = check(&lan, &good_root(&lan), &["--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_str(&String::from_utf8_lossy(&o.stdout))
        .unwrap_or_else(|e| panic!("{e}: {json}"));
    assert!(
        v.as_array().unwrap().iter().all(|s| s["ok"] == true),
        "{json}"
    );
}

#[test]
fn each_broken_setup_names_its_step() {
    if !root_or_skip("each_broken_setup_names_its_step") {
        return;
    }
    let mut lan = Lan::new(&[HOST]);
    let good = good_root(&lan);
    // Missing boot file.
    let (o, text) = check(&lan, &format!("{good}[boot]\nbios = \"nope.0\"\n"), &[]);
    assert!(!o.status.success());
    assert!(text.contains("✗ [boot] bios: nope.0: not in"), "{text}");
    assert!(text.contains("fix: copy it to"), "{text}");
    // Wrong interface.
    let (o, text) = check(&lan, &good, &["--interface", "nope0"]);
    assert!(!o.status.success());
    assert!(
        text.contains("✗ interface: interface nope0 does not exist"),
        "{text}"
    );
    // Kernel path typo in an on-disk pxelinux.cfg/default.
    let root = lan.path("root");
    std::fs::create_dir_all(root.join("pxelinux.cfg")).unwrap();
    std::fs::write(
        root.join("pxelinux.cfg/default"),
        "DEFAULT x\nLABEL x\n  KERNEL debian/vmlinuzz\n  APPEND initrd=debian/initrd.img ro\n",
    )
    .unwrap();
    let (o, text) = check(&lan, &good, &[]);
    assert!(!o.status.success());
    assert!(
        text.contains("✗ pxelinux.cfg/default names debian/vmlinuzz: not found"),
        "{text}"
    );
    assert!(
        text.contains("✓ pxelinux.cfg/default names debian/initrd.img"),
        "{text}"
    );
    std::fs::remove_file(root.join("pxelinux.cfg/default")).unwrap();
    // A port held by another process: named with its PID.
    let hold = lan.spawn(
        "server",
        "holder",
        &["python3", "-c", "import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 4011)); print('bound', flush=True); time.sleep(60)"],
    );
    wait_for_log(&hold, "bound", Duration::from_secs(10));
    let pid = lan.pid("holder");
    let (o, text) = check(&lan, &good, &[]);
    assert!(!o.status.success());
    assert!(
        text.contains(&format!("✗ port 4011: held by python3 (pid {pid})")),
        "{text}"
    );
    lan.stop("holder");
    // A config error stops the walk at the first step, naming the key.
    let (o, text) = check(&lan, "[tftp]\nrooot = \"/x\"\n", &[]);
    assert!(!o.status.success());
    assert!(
        text.contains("✗ config:") && text.contains("rooot"),
        "{text}"
    );
}

#[test]
fn beside_its_own_running_server_check_passes_the_ports() {
    if !root_or_skip("beside_its_own_running_server_check_passes_the_ports") {
        return;
    }
    let mut lan = Lan::new(&[HOST]);
    let config = good_root(&lan) + "[nfs]\nenabled = false\n";
    let (log, _) = common::netns::start_server(&mut lan, "server", &config, &[]);
    wait_for_log(&log, "TFTP listening", Duration::from_secs(5));
    let (o, text) = check(&lan, &config, &[]);
    for port in ["port 4011", "port 69 (TFTP)", "port 80 (HTTP)"] {
        let line = text
            .lines()
            .find(|l| l.contains(port))
            .unwrap_or_else(|| panic!("no {port} line:\n{text}"));
        assert!(
            line.starts_with("✓") && line.contains("the server this config runs"),
            "{line}\n{text}"
        );
    }
    assert!(o.status.success(), "{text}");
}

/// Debian 12's signed GRUB netboot image, unpacked by scripts/deps.
const DEBIAN12_GRUB: &str = "/var/cache/pxe-sidecar-tests/grub-efi-amd64-signed-deb12/root/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed";

#[test]
fn grub_older_than_2_12_is_named_as_the_proxy_trap() {
    if !root_or_skip("grub_older_than_2_12_is_named_as_the_proxy_trap") {
        return;
    }
    if !std::path::Path::new(DEBIAN12_GRUB).is_file() {
        assert!(
            !common::in_ci(),
            "{DEBIAN12_GRUB} is missing: scripts/deps unpacks it"
        );
        eprintln!("skipped: {DEBIAN12_GRUB} missing (run scripts/deps)");
        return;
    }
    let lan = Lan::new(&[HOST]);
    let root = lan.path("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(DEBIAN12_GRUB, root.join("grubnetx64.efi")).unwrap();
    let config = format!(
        "[tftp]\nroot = \"{}\"\n[boot]\nefi64 = \"grubnetx64.efi\"\n",
        root.display()
    );
    let (o, text) = check(&lan, &config, &[]);
    assert!(!o.status.success(), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("✗ [boot] efi64: grubnetx64.efi"))
        .unwrap_or_else(|| panic!("GRUB 2.06 not named:\n{text}"));
    assert!(
        line.contains("GRUB 2.06") && line.contains("asks the router"),
        "{line}"
    );
    assert!(
        text.contains("use GRUB ≥ 2.12: `pxe-sidecar loaders fetch` gets Debian 13's"),
        "{text}"
    );
    // the signed image is not called unsigned; iPXE's snponly.efi is
    assert!(
        !text.contains("grubnetx64.efi: warning: unsigned"),
        "{text}"
    );
    let (_, text) = check(&lan, "[boot]\nefi64 = \"snponly.efi\"\n", &[]);
    assert!(text.contains("snponly.efi: warning: unsigned"), "{text}");
}

/// ARM boards: `[uboot]`'s files and the board-side line a stock U-Boot
/// needs; `[rpi]` directories, a serial's missing one failing with its fix.
#[test]
fn arm_boards_are_checked_with_their_board_side_advice() {
    if !root_or_skip("arm_boards_are_checked_with_their_board_side_advice") {
        return;
    }
    let lan = Lan::new(&[HOST]);
    let root = lan.path("root");
    std::fs::create_dir_all(root.join("arm64")).unwrap();
    std::fs::create_dir_all(root.join("rpi")).unwrap();
    std::fs::write(root.join("arm64/Image"), b"kernel").unwrap();
    for (f, body) in [
        ("config.txt", "arm_64bit=1\n"),
        (
            "cmdline.txt",
            "root=/dev/nfs nfsroot=10.77.0.2:/srv/pi,vers=3 ip=dhcp\n",
        ),
        ("start4.elf", "fw"),
    ] {
        std::fs::write(root.join("rpi").join(f), body).unwrap();
    }
    let base = format!(
        "[tftp]\nroot = \"{}\"\n[uboot]\nkernel = \"arm64/Image\"\nfdt = \"arm64/board.dtb\"\n",
        root.display()
    );
    let (o, text) = check(&lan, &base, &[]);
    assert!(!o.status.success(), "{text}");
    for needle in [
        "✓ pxelinux.cfg/default-arm names arm64/Image",
        "✗ pxelinux.cfg/default-arm names arm64/board.dtb: not found under the TFTP root",
        "✓ U-Boot boards: U-Boot reads a proxy's offer only when built with CONFIG_SERVERIP_FROM_PROXYDHCP",
        "setenv bootcmd 'dhcp; setenv serverip 10.77.0.2; pxe get && pxe boot'; saveenv",
        "boots Pi 4 (start4.elf) and Pi 5 (config.txt); cmdline.txt root=/dev/nfs",
    ] {
        assert!(text.contains(needle), "check lacks {needle:?}:\n{text}");
    }
    let (o, text) = check(
        &lan,
        &format!(
            "[tftp]\nroot = \"{}\"\n[rpi.serials]\n\"6aee7243\" = \"rpi/kitchen\"\n",
            root.display()
        ),
        &[],
    );
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("✗ [rpi] serial 6aee7243: ") && text.contains("rpi/kitchen does not exist"),
        "{text}"
    );
    // a bad serial is a config error naming the key
    let (o, text) = check(
        &lan,
        &format!(
            "[tftp]\nroot = \"{}\"\n[rpi.serials]\n\"kitchen\" = \"rpi/kitchen\"\n",
            root.display()
        ),
        &[],
    );
    assert!(!o.status.success(), "{text}");
    assert!(text.contains("rpi.serials.kitchen"), "{text}");
}
