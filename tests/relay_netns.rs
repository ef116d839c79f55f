//! Beyond one segment: clients on other subnets, behind a router running
//! Debian's ISC DHCP relay (`dhcrelay`, what `ip helper-address` is on a
//! Linux router). The site LAN holds the router's DHCP server (dnsmasq,
//! serving the far subnets' ranges) and pxe-sidecar; the router joins it to
//! two far LANs and relays both to both servers. Only the first far
//! subnet's relay address is in `[proxy] relays`.
//!
//! ```text
//!  site 10.84.0.0/24         far 10.85.0.0/24 (named relay)
//!  dhcp .2  pxe .3  ── gw .1 ── gw 10.85.0.1 ── client .50, qemu guest
//!                        └──── gw 10.86.0.1 ── stranger .50 (relay not named)
//! ```

mod common;

use std::time::Duration;

use common::guest::{Firmware, Rig};
use common::netns::{Lan, require, root_or_skip, start_dnsmasq, start_server, wait_for_log};

const DHCP: (&str, &str, Option<&str>) = ("dhcp", "02:00:00:84:00:02", Some("10.84.0.2/24"));
const PXE: (&str, &str, Option<&str>) = ("pxe", "02:00:00:84:00:03", Some("10.84.0.3/24"));
const GW: (&str, &str, Option<&str>) = ("gw", "02:00:00:84:00:01", Some("10.84.0.1/24"));
const CLIENT: (&str, &str, Option<&str>) = ("client", "02:00:00:85:00:50", Some("10.85.0.50/24"));
const STRANGER: (&str, &str, Option<&str>) =
    ("stranger", "02:00:00:86:00:50", Some("10.86.0.50/24"));

/// The three LANs, the router forwarding and relaying, dnsmasq serving the
/// far ranges; returns (site, far, other far).
fn routed_site() -> (Lan, Lan, Lan) {
    require("dhcrelay");
    let mut site = Lan::new(&[GW, DHCP, PXE]);
    let far = Lan::new(&[CLIENT]);
    let other = Lan::new(&[STRANGER]);
    let gw = site.ns("gw");
    far.plug(&gw, "eth1", "02:00:00:85:00:01", "10.85.0.1/24");
    other.plug(&gw, "eth2", "02:00:00:86:00:01", "10.86.0.1/24");
    site.exec_ok("gw", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    for host in ["dhcp", "pxe"] {
        for net in ["10.85.0.0/24", "10.86.0.0/24"] {
            site.exec_ok(host, &["ip", "route", "add", net, "via", "10.84.0.1"]);
        }
    }
    far.exec_ok(
        "client",
        &["ip", "route", "add", "default", "via", "10.85.0.1"],
    );
    other.exec_ok(
        "stranger",
        &["ip", "route", "add", "default", "via", "10.86.0.1"],
    );
    let log = start_dnsmasq(
        &mut site,
        "dhcp",
        &[
            "--bind-interfaces",
            // relayed ranges need their netmask and router spelled out
            "--dhcp-range=set:far,10.85.0.100,10.85.0.200,255.255.255.0,1h",
            "--dhcp-range=set:other,10.86.0.100,10.86.0.200,255.255.255.0,1h",
            "--dhcp-option=tag:far,option:router,10.85.0.1",
            "--dhcp-option=tag:other,option:router,10.86.0.1",
            "--no-ping",
        ],
    );
    wait_for_log(&log, "DHCP, IP range", Duration::from_secs(10));
    let pid = site.path("dhcrelay.pid").display().to_string();
    let relay = site.spawn(
        "gw",
        "dhcrelay",
        &[
            "dhcrelay",
            "-4",
            "-d",
            "-pf",
            &pid,
            "-iu",
            "eth0",
            "-id",
            "eth1",
            "-id",
            "eth2",
            "10.84.0.2",
            "10.84.0.3",
        ],
    );
    wait_for_log(&relay, "Sending on", Duration::from_secs(10));
    (site, far, other)
}

/// Named relay 10.85.0.1, iPXE ROMs treated as any PXE ROM (so a BIOS
/// guest shows pxelinux), and with `kernel` a kernel and initrd to boot.
fn config(site: &Lan, kernel: bool) -> String {
    let relay = "[nfs]\nenabled = false\n[boot]\nipxe = \"\"\nhttp_x64 = \"http://10.84.0.3/snponly.efi\"\n[proxy]\nrelays = [\"10.85.0.1\"]\n";
    if !kernel {
        return relay.into();
    }
    format!("{relay}{}", common::kernel_root(site.dir.path(), ""))
}

#[test]
fn relayed_clients_boot_across_the_router_and_unnamed_relays_get_nothing() {
    if !root_or_skip("relayed_clients_boot_across_the_router_and_unnamed_relays_get_nothing") {
        return;
    }
    let (mut site, far, other) = routed_site();
    let cfg = config(&site, true);
    let (log, _) = start_server(&mut site, "pxe", &cfg, &[]);

    // BIOS: the proxy offer through the relay, then pxelinux.0 by TFTP
    // across the router
    let (ok, out) = common::netns::probe(&far, "client", "bios");
    assert!(ok, "{out}");
    for needle in [
        "proxy offer from 10.84.0.3: boot file pxelinux.0 from 10.84.0.3",
        "offer (address only) from 10.84.0.2: address 10.85.0.",
        "TFTP pxelinux.0 from 10.84.0.3:",
        "pxelinux would use pxelinux.cfg/default",
        "TFTP debian/vmlinuz from 10.84.0.3: 3000 bytes",
        "TFTP debian/initrd.img from 10.84.0.3: 5000 bytes",
    ] {
        assert!(out.contains(needle), "probe lacks {needle:?}:\n{out}");
    }
    // UEFI: the 4011 step to our address across the router, then TFTP
    let (ok, out) = common::netns::probe(&far, "client", "efi64");
    assert!(out.contains("DHCPACK on 4011 from 10.84.0.3:4011"), "{out}");
    assert!(
        out.contains("TFTP snponly.efi from 10.84.0.3:"),
        "{ok} {out}"
    );
    // UEFI HTTP boot: the URL, fetched across the router
    let (ok, out) = common::netns::probe(&far, "client", "http");
    let server = || std::fs::read_to_string(&log).unwrap();
    assert!(ok, "{out}\nserver:\n{}", server());
    let url = "http://10.84.0.3/snponly.efi";
    assert!(out.contains(url), "{out}");
    let o = far.exec(
        "client",
        &[
            "curl",
            "-sf",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
            url,
        ],
    );
    assert!(o.status.success(), "curl {url}: {o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).parse::<u64>().unwrap() > 10_000);

    let text = std::fs::read_to_string(&log).unwrap();
    for needle in [
        "DHCPDISCOVER from 02:00:00:85:00:50 to port 67 (PXEClient:Arch:00000",
        "proxy DHCPOFFER to 02:00:00:85:00:50 at 10.85.0.1:67",
        "DHCPREQUEST from 02:00:00:85:00:50 to port 4011",
        "sent pxelinux.0 to 10.85.0.50",
    ] {
        assert!(text.contains(needle), "log lacks {needle:?}:\n{text}");
    }

    // `check` names each relay and the route to it
    let two = site.path("two-relays.toml");
    std::fs::write(
        &two,
        cfg.replace(
            "relays = [\"10.85.0.1\"]",
            "relays = [\"10.85.0.1\", \"10.99.0.1\"]",
        ),
    )
    .unwrap();
    let o = site.exec(
        "pxe",
        &[
            env!("CARGO_BIN_EXE_pxe-sidecar"),
            "--config",
            two.to_str().unwrap(),
            "check",
        ],
    );
    let report = String::from_utf8_lossy(&o.stdout);
    let line = |needle: &str| {
        report
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("check lacks {needle}:\n{report}"))
            .to_string()
    };
    let good = line("relay 10.85.0.1");
    assert!(
        good.contains("✓") && good.contains("routed via 10.84.0.1 on eth0"),
        "{report}"
    );
    let bad = line("relay 10.99.0.1");
    assert!(bad.contains("✗") && bad.contains("no route"), "{report}");
    assert!(
        report.contains("ip route add 10.99.0.0/24 via ROUTER"),
        "{report}"
    );

    // a relay nobody named: the router's offer reaches the stranger, ours not
    let (ok, out) = common::netns::probe(&other, "stranger", "bios");
    assert!(!ok, "{out}");
    assert!(out.contains("from 10.84.0.2: address 10.86.0."), "{out}");
    assert!(!out.contains("from 10.84.0.3"), "{out}");
    let text = wait_for_log(&log, "10.86.0.1", Duration::from_secs(5));
    assert!(
        text.contains("not in [proxy] relays"),
        "the unnamed relay is not named in the log:\n{text}"
    );
    assert!(!text.contains("DHCPOFFER to 02:00:00:86:00:50"), "{text}");
}

#[test]
fn a_bios_guest_behind_the_relay_reaches_pxelinux() {
    if !root_or_skip("a_bios_guest_behind_the_relay_reaches_pxelinux") {
        return;
    }
    let (mut site, far, _other) = routed_site();
    let cfg = config(&site, false);
    let (log, _) = start_server(&mut site, "pxe", &cfg, &[]);
    let mut rig = Rig::on(far, log);
    let mac = "52:54:00:85:00:99";
    let marker = "pxe-sidecar: this machine loaded pxelinux";
    let con = rig.boot(Firmware::Bios, mac, marker, Duration::from_secs(180));
    let text = rig.log();
    assert!(
        con.contains(marker),
        "the guest never showed our menu; console:\n{con}\nlog:\n{text}"
    );
    assert!(con.contains("Next server: 10.84.0.3"), "{con}");
    for needle in [
        format!("proxy DHCPOFFER to {mac} at 10.85.0.1:67"),
        "sent pxelinux.0 to 10.85.0.".into(),
        "sent pxelinux.cfg/default to 10.85.0.".into(),
    ] {
        assert!(text.contains(&needle), "log lacks {needle:?}:\n{text}");
    }
}
