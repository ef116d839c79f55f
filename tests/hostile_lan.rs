//! A hostile peer against the DHCP, TFTP, HTTP and status doors: control
//! characters meant for the operator's terminal and log, a DNS-rebinding
//! `Host:`, relayed requests from a relay nobody named, and a 4011 request
//! from off the LAN. Each must be refused or made harmless, and the server
//! keeps serving.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::netns::{Lan, require, root_or_skip, start_server, wait_for_log};
use dhcproto::v4::MessageType;

const SERVER: (&str, &str, Option<&str>) = ("server", "02:00:00:00:00:02", Some("10.79.0.2/24"));
const MALLORY: (&str, &str, Option<&str>) = ("mallory", "02:00:00:00:00:0c", Some("10.79.0.12/24"));
const SRV: &str = "10.79.0.2";

/// A TFTP read request for `name`, octet mode.
fn rrq(name: &[u8]) -> Vec<u8> {
    let mut p = vec![0, 1];
    p.extend_from_slice(name);
    p.push(0);
    p.extend_from_slice(b"octet\0");
    p
}

/// No raw escape byte, and no line that a peer's text started.
fn assert_clean(what: &str, text: &str) {
    assert!(!text.contains('\x1b'), "{what} holds a raw ESC:\n{text}");
    assert!(
        !text
            .lines()
            .any(|l| l.trim_start().starts_with("INFO forged")),
        "{what} holds a forged line:\n{text}"
    );
}

#[test]
fn control_characters_reach_neither_the_log_nor_the_status_raw() {
    if !root_or_skip("control_characters_reach_neither_the_log_nor_the_status_raw") {
        return;
    }
    require("curl");
    let mut lan = Lan::new(&[SERVER, MALLORY]);
    let tftp_root = lan.path("tftp");
    std::fs::create_dir_all(&tftp_root).unwrap();
    let config = format!(
        "[tftp]\nroot = \"{}\"\n[nfs]\nenabled = false\n",
        tftp_root.display()
    );
    let (log, cfg) = start_server(&mut lan, "server", &config, &[]);
    wait_for_log(&log, "status page on", Duration::from_secs(5));
    // the HTTP door: a path that clears the screen and starts a new line
    let o = lan.exec(
        "mallory",
        &[
            "curl",
            "-s",
            "-g",
            "-o",
            "/dev/null",
            &format!("http://{SRV}/x%1b[2J%0aINFO%20forged%20line"),
        ],
    );
    assert!(o.status.success());
    lan.in_host("mallory", || {
        // the TFTP door
        let u = UdpSocket::bind("0.0.0.0:0").unwrap();
        u.send_to(&rrq(b"y\x1b[2J\nINFO forged tftp"), (SRV, 69))
            .unwrap();
        // the DHCP door: a vendor class that starts like PXE firmware's
        let mut c = common::Client::pxe(0);
        c.mac = [2, 0, 0, 0, 0, 0x0c];
        c.vendor = Some("PXEClient:Arch:00000:UNDI:002001\x1b[31m\nINFO forged dhcp".into());
        common::send_frames([common::discover_frame(&c)]);
        std::thread::sleep(Duration::from_millis(500));
    });
    let text = wait_for_log(&log, "forged dhcp", Duration::from_secs(5));
    wait_for_log(&log, "forged tftp", Duration::from_secs(5));
    assert_clean("the log", &text);
    assert!(text.contains("\\x1b[2J"), "{text}");
    let status = |json: bool| common::netns::status(&lan, "server", &cfg, json);
    let shown = status(false);
    assert!(shown.contains("forged"), "{shown}");
    assert_clean("`status`", &shown);
    assert_clean("`status --json`", &status(true));
    let page = lan.exec("server", &["curl", "-s", "http://127.0.0.1:9090/"]);
    assert_clean("the page", &String::from_utf8_lossy(&page.stdout));
}

#[test]
fn the_status_page_refuses_a_rebound_host_name() {
    if !root_or_skip("the_status_page_refuses_a_rebound_host_name") {
        return;
    }
    require("curl");
    let mut lan = Lan::new(&[SERVER]);
    let (log, _) = start_server(&mut lan, "server", "[nfs]\nenabled = false\n", &[]);
    wait_for_log(&log, "status page on", Duration::from_secs(5));
    let code = |host: &str| {
        let o = lan.exec(
            "server",
            &[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                &format!("Host: {host}"),
                "http://127.0.0.1:9090/api/clients",
            ],
        );
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(code("evil.example:9090"), "421");
    assert_eq!(code("127.0.0.1.nip.io:9090"), "421");
    assert_eq!(code("127.0.0.1:9090"), "200");
    assert_eq!(code("localhost:9090"), "200");
}

/// A relayed DISCOVER as a relay sends it: from its address, port 67, to us.
fn relay_discover(lan: &Lan, giaddr: &'static str) -> Option<Vec<u8>> {
    lan.in_host("mallory", move || {
        let u = UdpSocket::bind("0.0.0.0:67").unwrap();
        u.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut c = common::Client::pxe(0);
        c.giaddr = giaddr.parse().unwrap();
        c.mac = [2, 0x10, 0, 0, 0, 1];
        c.broadcast = false;
        u.send_to(&c.encode(), (SRV, 67)).unwrap();
        let mut buf = [0u8; 1500];
        let (n, from) = u.recv_from(&mut buf).ok()?;
        // RFC 2131 §4.1: servers answer relay agents from port 67, the
        // only port router filters in front of a relay let through
        assert_eq!(from.port(), 67, "the answer to the relay left from {from}");
        Some(buf[..n].to_vec())
    })
}

#[test]
fn only_named_relays_get_answers() {
    if !root_or_skip("only_named_relays_get_answers") {
        return;
    }
    let mut lan = Lan::new(&[SERVER, MALLORY]);
    let (log, cfg) = start_server(&mut lan, "server", "[nfs]\nenabled = false\n", &[]);
    assert_eq!(relay_discover(&lan, "10.79.0.12"), None);
    assert_eq!(relay_discover(&lan, "10.79.0.12"), None);
    let text = wait_for_log(&log, "not in [proxy] relays", Duration::from_secs(5));
    assert_eq!(
        text.matches("not in [proxy] relays").count(),
        1,
        "reported once per relay:\n{text}"
    );
    // named, the same relay is answered at giaddr:67
    std::fs::write(
        &cfg,
        "[nfs]\nenabled = false\n[proxy]\nrelays = [\"10.79.0.12\"]\n",
    )
    .unwrap();
    // SAFETY: a signal to the server we started.
    unsafe { libc::kill(lan.pid("pxe-sidecar"), libc::SIGHUP) };
    wait_for_log(&log, "configuration reloaded", Duration::from_secs(5));
    let offer = relay_discover(&lan, "10.79.0.12").expect("an offer to the named relay");
    let m = common::decode(&offer);
    assert_eq!(m.giaddr().to_string(), "10.79.0.12");
}

#[test]
fn a_4011_request_from_off_the_lan_gets_no_ack() {
    if !root_or_skip("a_4011_request_from_off_the_lan_gets_no_ack") {
        return;
    }
    let mut lan = Lan::new(&[SERVER, MALLORY]);
    let (log, _) = start_server(&mut lan, "server", "[nfs]\nenabled = false\n", &[]);
    // mallory also claims 10.99.0.5, and the server has a route there
    // through mallory: before, the ACK went wherever the request said
    lan.exec_ok(
        "mallory",
        &["ip", "addr", "add", "10.99.0.5/32", "dev", "eth0"],
    );
    lan.exec_ok(
        "server",
        &["ip", "route", "add", "10.99.0.0/24", "via", "10.79.0.12"],
    );
    let ask = |src: &'static str| {
        lan.in_host("mallory", move || {
            let u = UdpSocket::bind((src, 4011)).unwrap();
            u.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut c = common::Client::pxe(7);
            c.msg = MessageType::Request;
            c.ciaddr = src.parse().unwrap();
            c.broadcast = false;
            u.send_to(&c.encode(), (SRV, 4011)).unwrap();
            let mut buf = [0u8; 1500];
            u.recv_from(&mut buf).is_ok()
        })
    };
    assert!(!ask("10.99.0.5"), "an ACK left the LAN");
    wait_for_log(&log, "neither on our subnet", Duration::from_secs(5));
    assert!(ask("10.79.0.12"), "the on-link request was not answered");
}
