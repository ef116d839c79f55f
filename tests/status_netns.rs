//! The live client view: a probe run boots "a client" through pxe-sidecar on
//! a namespace LAN; then `pxe-sidecar status`, `/api/clients`, `/metrics`
//! and the status page (loaded in headless Chromium, screenshot kept under
//! target/test-artifacts/) all show that client's steps.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::netns::{Lan, require, root_or_skip, start_server, wait_for_log};

const ROUTER: (&str, &str, Option<&str>) = ("router", "02:00:00:00:00:01", Some("10.81.0.1/24"));
const PXE: (&str, &str, Option<&str>) = ("pxe", "02:00:00:00:00:02", Some("10.81.0.2/24"));
const CLIENT: (&str, &str, Option<&str>) = ("client", "02:00:00:00:00:50", Some("10.81.0.50/24"));
const CLIENT_MAC: &str = "02:00:00:00:00:50";

fn artifacts() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn status_command_page_api_and_metrics_show_the_client_timeline() {
    if !root_or_skip("status_command_page_api_and_metrics_show_the_client_timeline") {
        return;
    }
    require("chromium");
    require("curl");
    let mut lan = common::netns::with_router(&[ROUTER, PXE, CLIENT], "10.81.0.100,10.81.0.200");
    let (log, cfg) = start_server(&mut lan, "pxe", "", &[]);
    wait_for_log(
        &log,
        "status page on http://127.0.0.1:9090/",
        Duration::from_secs(5),
    );

    // nothing yet
    let status = |json: bool| common::netns::status(&lan, "pxe", &cfg, json);
    let first = status(false);
    assert!(first.contains("no clients seen yet"), "{first}");

    // a client boots (probe acts like UEFI PXE firmware: DHCP, the 4011
    // step from its address, TFTP)
    let o = lan.exec(
        "client",
        &[
            env!("CARGO_BIN_EXE_pxe-sidecar"),
            "probe",
            "--interface",
            "eth0",
            "--arch",
            "efi64",
            "--wait",
            "2",
        ],
    );
    // (snponly.efi, then as iPXE the generated boot.ipxe; it ends with
    // "names no kernel: nothing to boot yet": none is set up)
    let probe = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        probe.contains("✓ TFTP snponly.efi from 10.81.0.2"),
        "probe:\n{probe}"
    );
    wait_for_log(&log, "sent boot.ipxe", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));

    let text = status(false);
    let head = text
        .lines()
        .find(|l| l.starts_with(CLIENT_MAC))
        .unwrap_or_else(|| panic!("no line for the client in:\n{text}"));
    assert!(
        head.contains("arch 7 EFI BC") && head.contains("10.81.0.50"),
        "{head}"
    );
    for step in [
        "dhcp  ✓ DHCPDISCOVER from",
        "dhcp  ✓ proxy DHCPOFFER",
        "pxe   ✓ DHCPREQUEST from 02:00:00:00:00:50 to port 4011",
        "pxe   ✓ DHCPACK to",
        "tftp  ✓ RRQ from",
        "tftp  ✓ sent snponly.efi",
        "tftp  ✓ sent boot.ipxe",
    ] {
        assert!(text.contains(step), "status lacks {step:?}:\n{text}");
    }
    let json: serde_json::Value = serde_json::from_str(&status(true)).unwrap();
    assert_eq!(json["clients"][0]["mac"], CLIENT_MAC);
    assert!(json["counters"]["tftp_files"].as_u64().unwrap() >= 1);

    // the HTTP side, inside the server's namespace (it listens on loopback)
    let get = |path: &str| {
        let o = lan.exec(
            "pxe",
            &["curl", "-sf", &format!("http://127.0.0.1:9090{path}")],
        );
        assert!(o.status.success(), "GET {path}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let api: serde_json::Value = serde_json::from_str(&get("/api/clients")).unwrap();
    assert_eq!(api["clients"][0]["mac"], CLIENT_MAC);
    let metrics = get("/metrics");
    let sent: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("pxe_sidecar_tftp_files_sent_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(sent >= 1, "{metrics}");
    assert!(metrics.contains("# TYPE pxe_sidecar_clients gauge\npxe_sidecar_clients 1\n"));

    // the page in a real browser
    let profile = lan.path("chromium-profile");
    let shot = artifacts().join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let chromium = |extra: &[&str]| {
        let user_dir = format!("--user-data-dir={}", profile.display());
        let mut args = vec![
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &user_dir,
            "--window-size=1280,900",
        ];
        args.extend_from_slice(extra);
        args.push("http://127.0.0.1:9090/");
        lan.exec("pxe", &args)
    };
    let o = chromium(&["--dump-dom"]);
    let dom = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        dom.contains(&format!("<h2 class=\"client\" id=\"{CLIENT_MAC}\">")),
        "DOM lacks the client:\n{dom}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        dom.contains("DHCPDISCOVER from") && dom.contains("sent snponly.efi"),
        "{dom}"
    );
    assert!(dom.matches("class=\"step\"").count() >= 4, "{dom}");
    let arg = format!("--screenshot={}", shot.display());
    chromium(&[&arg]);
    let png = std::fs::read(&shot).expect("chromium wrote no screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
}

#[test]
fn status_page_refuses_a_non_loopback_address_unless_allowed() {
    if !root_or_skip("status_page_refuses_a_non_loopback_address_unless_allowed") {
        return;
    }
    let mut lan = Lan::new(&[PXE]);
    let cfg = lan.path("pxe.toml");
    std::fs::write(&cfg, "[status]\nhttp = \"10.81.0.2:9090\"\n").unwrap();
    let o = lan.exec(
        "pxe",
        &[
            env!("CARGO_BIN_EXE_pxe-sidecar"),
            "--config",
            cfg.to_str().unwrap(),
            "serve",
            "--interface",
            "eth0",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("not a loopback address") && err.contains("allow_remote"),
        "{err}"
    );
    let (log, _) = start_server(
        &mut lan,
        "pxe",
        "[status]\nhttp = \"10.81.0.2:9090\"\nallow_remote = true\n",
        &[],
    );
    wait_for_log(
        &log,
        "status page on http://10.81.0.2:9090/",
        Duration::from_secs(5),
    );
}

#[test]
fn the_timeline_and_metrics_do_not_depend_on_the_log_level() {
    if !root_or_skip("the_timeline_and_metrics_do_not_depend_on_the_log_level") {
        return;
    }
    require("curl");
    let mut lan = common::netns::with_router(&[ROUTER, PXE, CLIENT], "10.81.0.100,10.81.0.200");
    // protocol events at warn only; start-up lines still at info
    let (log, cfg) = common::netns::start_server_env(
        &mut lan,
        "pxe",
        "",
        &[],
        &[("PXE_SIDECAR_LOG", "warn,pxe_sidecar::serve=info")],
    );
    let (_, out) = common::netns::probe(&lan, "client", "efi64");
    assert!(out.contains("✓ TFTP snponly.efi"), "{out}");
    std::thread::sleep(Duration::from_millis(500));
    let json: serde_json::Value =
        serde_json::from_str(&common::netns::status(&lan, "pxe", &cfg, true)).unwrap();
    let steps: Vec<String> = json["clients"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_string())
        .collect();
    for want in [
        "DHCPDISCOVER from",
        "proxy DHCPOFFER",
        "DHCPACK to",
        "RRQ from",
        "sent snponly.efi",
    ] {
        assert!(
            steps.iter().any(|s| s.contains(want)),
            "no {want:?} in {steps:#?}"
        );
    }
    assert!(json["counters"]["tftp_files"].as_u64().unwrap() >= 1);
    assert!(json["counters"]["proxy_replies"].as_u64().unwrap() >= 2);
    let metrics = lan.exec("pxe", &["curl", "-sf", "http://127.0.0.1:9090/metrics"]);
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        !metrics.contains("pxe_sidecar_tftp_files_sent_total 0\n"),
        "{metrics}"
    );
    // and the log itself was quiet about all of it
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("sent snponly.efi"), "{text}");
}
