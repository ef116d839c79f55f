//! `pxe-sidecar probe` on a namespace LAN: the whole chain against
//! pxe-sidecar and against dnsmasq's proxy mode, and each failure step of the
//! Debian wiki reproduced with the PXE error a real client would show.

mod common;

use std::time::Duration;

use common::netns::{Lan, root_or_skip, start_dnsmasq, start_server, wait_for_log};

const ROUTER: (&str, &str, Option<&str>) = ("router", "02:00:00:00:00:01", Some("10.77.0.1/24"));
const PXE: (&str, &str, Option<&str>) = ("pxe", "02:00:00:00:00:02", Some("10.77.0.2/24"));
const CLIENT: (&str, &str, Option<&str>) = ("client", "02:00:00:00:00:50", Some("10.77.0.50/24"));

fn lan_with_router() -> Lan {
    common::netns::with_router(&[ROUTER, PXE, CLIENT], "10.77.0.100,10.77.0.200")
}

fn root_with_kernel(lan: &Lan) -> String {
    common::kernel_root(lan.dir.path(), "")
}

fn probe(lan: &Lan, arch: &str) -> (bool, String) {
    common::netns::probe(lan, "client", arch)
}

#[test]
fn probe_walks_the_whole_chain_against_pxe_sidecar() {
    if !root_or_skip("probe_walks_the_whole_chain_against_pxe_sidecar") {
        return;
    }
    let mut lan = lan_with_router();
    let cfg = root_with_kernel(&lan);
    start_server(&mut lan, "pxe", &cfg, &[]);
    let (ok, out) = probe(&lan, "bios");
    assert!(ok, "{out}");
    for needle in [
        "DHCPDISCOVER from 02:00:00:00:00:50 via eth0 (PXEClient:Arch:00000:UNDI:003016, arch 0 BIOS)",
        "proxy offer from 10.77.0.2: boot file pxelinux.0 from 10.77.0.2",
        "offer (address only) from 10.77.0.1: address 10.77.0.1",
        "TFTP pxelinux.0 from 10.77.0.2:",
        "pxelinux would use pxelinux.cfg/default",
        "TFTP debian/vmlinuz from 10.77.0.2: 3000 bytes",
        "TFTP debian/initrd.img from 10.77.0.2: 5000 bytes",
    ] {
        assert!(
            out.contains(needle),
            "probe output lacks {needle:?}:\n{out}"
        );
    }
    // UEFI: iPXE on 4011, then as iPXE the generated script and its files over HTTP
    let (ok, out) = probe(&lan, "efi64");
    assert!(ok, "{out}");
    for needle in [
        "DHCPACK on 4011 from 10.77.0.2:4011: boot file snponly.efi",
        "TFTP snponly.efi from 10.77.0.2:",
        "as iPXE: offer from 10.77.0.2: script boot.ipxe",
        "HTTP http://10.77.0.2:80/debian/vmlinuz: 3000 bytes",
        "HTTP http://10.77.0.2:80/debian/initrd.img: 5000 bytes",
    ] {
        assert!(
            out.contains(needle),
            "probe output lacks {needle:?}:\n{out}"
        );
    }
}

/// The Secure Boot chain: shim, the GRUB beside it, GRUB's config, and the
/// kernel and initrd the config loads over HTTP.
#[test]
fn probe_follows_shim_and_grub() {
    if !root_or_skip("probe_follows_shim_and_grub") {
        return;
    }
    let mut lan = lan_with_router();
    let loaders = common::guest::DebianRoot::signed_loaders();
    let tftp = format!("loaders = \"{}\"\n", loaders.display());
    let cfg = common::kernel_root(lan.dir.path(), &tftp) + "[boot]\nefi64 = \"shimx64.efi\"\n";
    start_server(&mut lan, "pxe", &cfg, &[]);
    let (ok, out) = probe(&lan, "efi64");
    assert!(ok, "{out}");
    for needle in [
        "DHCPACK on 4011 from 10.77.0.2:4011: boot file shimx64.efi",
        "TFTP shimx64.efi from 10.77.0.2:",
        "TFTP grubx64.efi from 10.77.0.2:",
        "HTTP http://10.77.0.2/debian/vmlinuz: 3000 bytes",
        "HTTP http://10.77.0.2/debian/initrd.img: 5000 bytes",
    ] {
        assert!(
            out.contains(needle),
            "probe output lacks {needle:?}:\n{out}"
        );
    }
}

#[test]
fn probe_names_each_failure_step() {
    if !root_or_skip("probe_names_each_failure_step") {
        return;
    }
    // Only the router: no PXE answer at all.
    let lan = lan_with_router();
    let (ok, out) = probe(&lan, "bios");
    assert!(
        !ok && out.contains("PXE-E53: No boot filename received"),
        "{out}"
    );
    drop(lan);
    // No DHCP server at all.
    let lan = Lan::new(&[CLIENT]);
    let (ok, out) = probe(&lan, "bios");
    assert!(
        !ok && out.contains("PXE-E51: No DHCP or proxyDHCP offers were received"),
        "{out}"
    );
    drop(lan);
    // TFTP down.
    let mut lan = lan_with_router();
    start_server(&mut lan, "pxe", "[tftp]\nenabled = false\n", &[]);
    let (ok, out) = probe(&lan, "bios");
    assert!(!ok && out.contains("PXE-E32: TFTP open timeout"), "{out}");
    drop(lan);
    // A boot file that does not exist.
    let mut lan = lan_with_router();
    start_server(&mut lan, "pxe", "[boot]\nbios = \"missing.0\"\n", &[]);
    let (ok, out) = probe(&lan, "bios");
    assert!(
        !ok && out.contains("PXE-T01: File not found: missing.0"),
        "{out}"
    );
    // Zero config: the chain works but nothing is configured to boot yet.
    drop(lan);
    let mut lan = lan_with_router();
    start_server(&mut lan, "pxe", "", &[]);
    let (ok, out) = probe(&lan, "bios");
    assert!(
        !ok && out.contains("pxelinux.cfg/default names no kernel: nothing to boot yet"),
        "{out}"
    );
    let (ok, out) = probe(&lan, "efi64");
    assert!(
        !ok && out.contains("boot.ipxe names no kernel: nothing to boot yet"),
        "{out}"
    );
}

#[test]
fn probe_works_against_dnsmasq_proxy_mode() {
    if !root_or_skip("probe_works_against_dnsmasq_proxy_mode") {
        return;
    }
    let mut lan = lan_with_router();
    let root = lan.path("dnsroot");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy("/usr/lib/PXELINUX/pxelinux.0", root.join("pxelinux.0")).unwrap();
    let log = start_dnsmasq(
        &mut lan,
        "pxe",
        &[
            "--bind-interfaces",
            "--dhcp-range=10.77.0.0,proxy",
            "--pxe-service=x86PC,Boot,pxelinux",
            "--enable-tftp",
            &format!("--tftp-root={}", root.display()),
        ],
    );
    wait_for_log(&log, "proxy on subnet", Duration::from_secs(10));
    let (_, out) = probe(&lan, "bios");
    assert!(out.contains("proxy offer from 10.77.0.2"), "{out}");
    assert!(out.contains("TFTP pxelinux.0 from 10.77.0.2:"), "{out}");
    // dnsmasq serves no pxelinux.cfg here: the probe says where pxelinux would stop.
    assert!(out.contains("no pxelinux config found"), "{out}");
}

#[test]
fn probe_mounts_the_nfs_root_the_kernel_line_names() {
    if !root_or_skip("probe_mounts_the_nfs_root_the_kernel_line_names") {
        return;
    }
    let mut lan = lan_with_router();
    let tree = lan.path("nfsroot");
    std::fs::create_dir_all(tree.join("sbin")).unwrap();
    std::fs::write(tree.join("sbin/init"), b"init").unwrap();
    let state = lan.path("state");
    let base = root_with_kernel(&lan);
    let elsewhere = lan.path("elsewhere");
    let cfg = |path: &std::path::Path| {
        format!(
            "{base}append = \"root=/dev/nfs nfsroot=10.77.0.2:{},vers=3,tcp,nolock ip=dhcp rw\"\n[nfs]\nroot = \"{}\"\nstate_dir = \"{}\"\nallow = [\"10.77.0.0/24\"]\n",
            path.display(),
            tree.display(),
            state.display()
        )
    };
    let text = cfg(&tree);
    let (log, _) = start_server(&mut lan, "pxe", &text, &[]);
    wait_for_log(&log, "NFS listening", Duration::from_secs(5));
    let (ok, out) = probe(&lan, "bios");
    assert!(ok, "{out}");
    let target = format!("10.77.0.2:{}", tree.display());
    assert!(
        out.contains(&format!("✓ NFS MOUNT {target}: ok"))
            && out.contains("MOUNT on port 2049, NFS on port 2049, found via the portmapper"),
        "{out}"
    );
    assert!(
        out.contains(&format!("✓ NFS root {target} has /sbin/init")),
        "{out}"
    );
    // the kernel line names a path nobody exports
    lan.stop("pxe-sidecar");
    let text = cfg(&elsewhere);
    start_server(&mut lan, "pxe", &text, &[]);
    let (ok, out) = probe(&lan, "bios");
    assert!(!ok, "{out}");
    assert!(
        out.contains("✗ NFS MOUNT 10.77.0.2:") && out.contains("elsewhere failed"),
        "{out}"
    );
}

/// A plain web server on a LAN host serving `files` (path → bytes); the
/// paths asked for are kept.
fn web_server(
    lan: &Lan,
    host: &str,
    addr: &'static str,
    files: Vec<(&'static str, Vec<u8>)>,
) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    use std::io::{Read, Write};
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = asked.clone();
    lan.in_host(host, move || {
        let l = std::net::TcpListener::bind(addr).unwrap();
        // a thread started here stays in this host's namespace
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req).to_string();
                let mut words = text.split_whitespace();
                let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                seen.lock().unwrap().push(path.to_string());
                let body = files
                    .iter()
                    .find(|(p, _)| *p == path)
                    .map(|(_, b)| b.clone());
                let (status, body) = match body {
                    Some(b) => ("200 OK", b),
                    None => ("404 Not Found", b"not here\n".to_vec()),
                };
                let _ = write!(
                    c,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                if method != "HEAD" {
                    let _ = c.write_all(&body);
                }
            }
        });
    });
    asked
}

#[test]
fn an_external_base_url_serves_kernel_and_initrd() {
    if !root_or_skip("an_external_base_url_serves_kernel_and_initrd") {
        return;
    }
    const CACHE: (&str, &str, Option<&str>) = ("cache", "02:00:00:00:00:03", Some("10.77.0.3/24"));
    let mut lan =
        common::netns::with_router(&[ROUTER, PXE, CLIENT, CACHE], "10.77.0.100,10.77.0.200");
    let cfg = root_with_kernel(&lan) + "[http]\nbase_url = \"http://10.77.0.3:8080/boot\"\n";
    let asked = web_server(
        &lan,
        "cache",
        "10.77.0.3:8080",
        vec![
            ("/boot/debian/vmlinuz", common::pseudo_random(3000, 1)),
            ("/boot/debian/initrd.img", common::pseudo_random(5000, 2)),
        ],
    );
    let (server_log, _) = start_server(&mut lan, "pxe", &cfg, &[]);
    let (ok, out) = probe(&lan, "efi64");
    assert!(ok, "{out}");
    for needle in [
        "HTTP http://10.77.0.3:8080/boot/debian/vmlinuz: 3000 bytes",
        "HTTP http://10.77.0.3:8080/boot/debian/initrd.img: 5000 bytes",
    ] {
        assert!(
            out.contains(needle),
            "probe output lacks {needle:?}:\n{out}"
        );
    }
    let asked = asked.lock().unwrap().clone();
    assert!(
        asked.iter().any(|p| p == "/boot/debian/vmlinuz"),
        "{asked:?}"
    );
    // the sidecar kept the DHCP and script role, not the kernel
    let text = std::fs::read_to_string(&server_log).unwrap();
    assert!(!text.contains("HTTP GET /debian/vmlinuz"), "{text}");
}

/// `probe --arch uboot` plays U-Boot's `dhcp` (arch 22, `U-Boot.armv8`):
/// it takes the router's offer, so the probe fails with the board-side line,
/// then follows `pxe get` against us as the board would once told our
/// address: pxelinux.cfg/default-arm and the files it names.
#[test]
fn probe_as_uboot_names_the_board_setting_and_follows_default_arm() {
    if !root_or_skip("probe_as_uboot_names_the_board_setting_and_follows_default_arm") {
        return;
    }
    let mut lan = lan_with_router();
    let root = lan.path("tftp");
    std::fs::create_dir_all(root.join("arm64")).unwrap();
    std::fs::write(root.join("arm64/Image"), vec![7u8; 4000]).unwrap();
    std::fs::write(root.join("arm64/initrd.img"), vec![8u8; 2000]).unwrap();
    let cfg = format!(
        "[nfs]\nenabled = false\n[tftp]\nroot = \"{}\"\n[uboot]\nkernel = \"arm64/Image\"\ninitrd = \"arm64/initrd.img\"\nappend = \"console=ttyAMA0\"\n",
        root.display()
    );
    let (log, _) = start_server(&mut lan, "pxe", &cfg, &[]);
    let (ok, out) = probe(&lan, "uboot");
    assert!(!ok, "a stock U-Boot cannot follow the proxy:\n{out}");
    for needle in [
        "(U-Boot.armv8, arch 22 ARM64 U-Boot)",
        "U-Boot takes 10.77.0.1's offer (address 10.77.0.",
        "✗ the proxy offer from 10.77.0.2 has no address: U-Boot reads a proxy's offer only when built with CONFIG_SERVERIP_FROM_PROXYDHCP",
        "setenv serverip 10.77.0.2; pxe get && pxe boot'; saveenv",
        "U-Boot would use pxelinux.cfg/default-arm",
        "TFTP arm64/Image from 10.77.0.2: 4000 bytes",
        "TFTP arm64/initrd.img from 10.77.0.2: 2000 bytes",
    ] {
        assert!(out.contains(needle), "probe lacks {needle:?}:\n{out}");
    }
    let text = wait_for_log(&log, "sent arm64/initrd.img", Duration::from_secs(5));
    assert!(
        text.contains(
            "DHCPDISCOVER from 02:00:00:00:00:50 to port 67 (U-Boot.armv8, arch 22 ARM64 U-Boot)"
        ),
        "{text}"
    );
}
