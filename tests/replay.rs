//! Captures in, decisions out: golden files for every capture (ours in
//! pcaps/, the public set in pcaps/public), the catalog's promises
//! (no PXE request → no reply), and tshark's reading of the replies we write.
//! Regenerate goldens with `UPDATE_GOLDENS=1 cargo test --test replay`.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use pxe_sidecar::config::{self, Config};
use pxe_sidecar::replay::{self, Outcome, REPLAY_SERVER_IP, REPLAY_SERVER_MAC};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn configs() -> Vec<(&'static str, Config)> {
    vec![
        ("default", config::validate(Default::default()).unwrap()),
        (
            "full",
            config::load(Some(&root().join("tests/golden/full.toml")), &[]).unwrap(),
        ),
    ]
}

fn captures() -> Vec<PathBuf> {
    let mut dirs = vec![root().join("pcaps")];
    dirs.push(common::public_pcaps());
    let mut out = Vec::new();
    for d in dirs {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.ends_with(".pcap") || name.ends_with(".pcapng") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn run(path: &Path, cfg: &Config) -> Outcome {
    let bytes = std::fs::read(path).unwrap();
    let server = cfg.server_ip.unwrap_or(REPLAY_SERVER_IP);
    replay::replay(&bytes, &cfg.proxy, server, REPLAY_SERVER_MAC)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn goldens() {
    let update = std::env::var_os("UPDATE_GOLDENS").is_some();
    let mut failures = Vec::new();
    let caps = captures();
    assert!(!caps.is_empty());
    for (name, cfg) in configs() {
        for cap in &caps {
            let text = run(cap, &cfg).report();
            let golden = root().join("tests/golden").join(name).join(format!(
                "{}.golden",
                cap.file_name().unwrap().to_string_lossy()
            ));
            if update {
                std::fs::write(&golden, &text).unwrap();
                continue;
            }
            match std::fs::read_to_string(&golden) {
                Ok(want) if want == text => {}
                Ok(want) => failures.push(format!(
                    "{}: differs\n--- want\n{want}--- got\n{text}",
                    golden.display()
                )),
                Err(_) => failures.push(format!(
                    "{} missing (run with UPDATE_GOLDENS=1)",
                    golden.display()
                )),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What CATALOG.md promises: files without a PXE request get no reply; every
/// PXE DISCOVER to 67 and REQUEST to 4011 gets one; a REQUEST to 67 (the
/// router's lease) gets none.
#[test]
fn catalog_promises() {
    let dir = common::public_pcaps();
    let catalog: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("catalog.json")).unwrap()).unwrap();
    let cfg = config::validate(Default::default()).unwrap();
    let mut checked = 0;
    for (file, entry) in catalog.as_object().unwrap() {
        let out = run(&dir.join(file), &cfg);
        let replied: BTreeSet<usize> = out
            .records
            .iter()
            .filter(|r| r.reply.is_some())
            .map(|r| r.frame)
            .collect();
        let pxe = entry["pxe_request_frames"].as_array().unwrap();
        if pxe.is_empty() {
            assert!(
                replied.is_empty(),
                "{file}: no PXE request but we replied to frames {replied:?}"
            );
        }
        let mut want = BTreeSet::new();
        for f in pxe {
            let frame = f["frame"].as_u64().unwrap() as usize;
            match (f["type"].as_str().unwrap(), f["dst_port"].as_u64().unwrap()) {
                ("DISCOVER", 67) | ("REQUEST", 4011) => {
                    want.insert(frame);
                }
                _ => {}
            }
        }
        assert_eq!(
            replied, want,
            "{file}: frames answered vs PXE requests that need an answer"
        );
        checked += 1;
    }
    assert_eq!(checked, 54);
}

fn tshark() -> Option<&'static str> {
    if Command::new("tshark").arg("--version").output().is_ok() {
        return Some("tshark");
    }
    assert!(
        !common::in_ci(),
        "tshark is required in CI (the README test command installs it)"
    );
    eprintln!("note: tshark not installed; skipping the dissection test");
    None
}

/// Replies written with --write are dissected by tshark as proxy offers/ACKs.
#[test]
fn tshark_dissects_our_replies() {
    let dir = common::public_pcaps();
    let Some(tshark) = tshark() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config::validate(Default::default()).unwrap();
    let mut total = 0;
    for file in [
        "rspxe-intel-bios-dhcp.pcapng",
        "rspxe-intel-efi-dhcp.pcapng",
        "rspxe-amd-efi-dhcp.pcapng",
        "rspxe-ipxe-dhcp.pcapng",
        "rspxe-ipxe-full-boot.pcapng",
        "rspxe-bios-dhcp-release.pcapng",
        "rspxe-uefi-pixiecore-boot.pcapng",
        "netboot-pixiecore-bios-proxydhcp.pcap",
    ] {
        let out = run(&dir.join(file), &cfg);
        let pcap = tmp.path().join(format!("{file}.replies.pcap"));
        replay::write_pcap(std::fs::File::create(&pcap).unwrap(), &out).unwrap();
        let o = Command::new(tshark)
            .args(["-n", "-r"])
            .arg(&pcap)
            .args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=f"])
            .args(["-e", "dhcp.option.dhcp", "-e", "dhcp.option.dhcp_server_id"])
            .args(["-e", "dhcp.option.vendor_class_id", "-e", "dhcp.ip.your"])
            .args([
                "-e",
                "dhcp.ip.server",
                "-e",
                "dhcp.file",
                "-e",
                "dhcp.option.vendor.pxeclient.discovery_control",
            ])
            .args([
                "-e",
                "ip.checksum.status",
                "-e",
                "udp.checksum.status",
                "-e",
                "_ws.malformed",
            ])
            .args([
                "-o",
                "ip.check_checksum:TRUE",
                "-o",
                "udp.check_checksum:TRUE",
            ])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "tshark failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = String::from_utf8(o.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.len(),
            out.replies().count(),
            "{file}: one dissected frame per reply"
        );
        let answered = out.records.iter().filter(|r| r.reply.is_some());
        for (line, record) in lines.iter().zip(answered) {
            let (reply, _) = record.reply.as_ref().unwrap();
            let f: Vec<&str> = line.split('|').collect();
            let want_type = if reply.msg == pxe_sidecar::proxy::Msg::Offer {
                "2"
            } else {
                "5"
            };
            assert_eq!(f[0], want_type, "{file}: message type in {line}");
            assert_eq!(f[1], "192.0.2.2", "{file}: option 54 in {line}");
            assert_eq!(f[2], "PXEClient", "{file}: option 60 in {line}");
            assert_eq!(f[3], "0.0.0.0", "{file}: yiaddr in {line}");
            assert_eq!(f[4], "192.0.2.2", "{file}: siaddr in {line}");
            assert!(
                ["pxelinux.0", "snponly.efi", "boot.ipxe"].contains(&f[5]),
                "{file}: file in {line}"
            );
            // BIOS offers (pxelinux.0, or the script for a BIOS iPXE ROM)
            // carry option 43 (discovery control 8); EFI offers and ACKs none.
            let bios_offer = record.line.contains("BIOS") && want_type == "2";
            assert_eq!(!f[6].is_empty(), bios_offer, "{file}: option 43 in {line}");
            assert_eq!(f[7], "1", "{file}: IP checksum good (1 = good) in {line}");
            assert_eq!(f[8], "1", "{file}: UDP checksum good (1 = good) in {line}");
            assert_eq!(f[9], "", "{file}: tshark found it malformed: {line}");
            total += 1;
        }
    }
    assert!(total >= 15, "only {total} replies dissected");
}

/// Unreadable input is an error, not a panic or an empty success.
#[test]
fn unreadable_capture_is_an_error() {
    let cfg = config::validate(Default::default()).unwrap();
    assert!(
        replay::replay(
            b"not a capture at all",
            &cfg.proxy,
            REPLAY_SERVER_IP,
            REPLAY_SERVER_MAC
        )
        .is_err()
    );
    assert!(replay::replay(&[], &cfg.proxy, REPLAY_SERVER_IP, REPLAY_SERVER_MAC).is_err());
}

/// A classic pcap of Ethernet frames, one per millisecond.
fn pcap_of(frames: &[Vec<u8>]) -> Vec<u8> {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    let mut w = PcapWriter::with_header(Vec::new(), PcapHeader::default()).unwrap();
    for (i, f) in frames.iter().enumerate() {
        let t = std::time::Duration::from_millis(i as u64);
        w.write_packet(&PcapPacket::new(t, f.len() as u32, f))
            .unwrap();
    }
    w.into_writer()
}

#[test]
fn replay_applies_the_live_rules_around_the_core() {
    let cfg = config::validate(Default::default()).unwrap();
    let mut ours = common::Client::pxe(0);
    ours.mac = REPLAY_SERVER_MAC.0;
    let theirs = common::Client::pxe(0);
    // our own DISCOVER-shaped frame seen again on the tap, then a client's
    let capture = pcap_of(&[
        common::discover_frame(&ours),
        common::discover_frame(&theirs),
    ]);
    let out = replay::replay(&capture, &cfg.proxy, REPLAY_SERVER_IP, REPLAY_SERVER_MAC).unwrap();
    let report = out.report();
    let lines: Vec<&str> = report.lines().collect();
    assert!(
        lines[0].contains("our own frame, seen again: dropped"),
        "{report}"
    );
    assert!(lines[1].contains("proxy DHCPOFFER"), "{report}");
    assert_eq!(out.replies().count(), 1, "{report}");
}

/// The Raspberry Pi captures (pcaps/make-rpi-captures.py, rebuilt from
/// public dissections) and the offers we give them, byte by byte: the
/// menu dnsmasq's `pxe-service=0,"Raspberry Pi Boot"` sends (the vendor's
/// "Network booting" page), `PXEClient` and the GUID echoed, our address
/// as TFTP server, no boot file (the Pi ignores option 67; a PC's loader
/// would be wrong anyway).
#[test]
fn raspberry_pi_offers_carry_the_boot_menu() {
    use pxe_sidecar::bootp::{Bootp, opt};
    let cfg = config::validate(Default::default()).unwrap();
    let cases = [
        ("rpi4-eeprom-discover.pcap", "Raspberry Pi Boot"),
        ("rpi4-eeprom-2019-discover.pcap", "Raspberry Pi Boot"),
        ("rpi5-eeprom-discover.pcap", "Raspberry Pi Boot"),
        // the Pi 3B ROM miscounts the text's length: three spaces more
        ("rpi3-bootrom-discover.pcap", "Raspberry Pi Boot   "),
    ];
    for (name, text) in cases {
        let path = root().join("pcaps").join(name);
        let bytes = std::fs::read(&path).unwrap();
        let frames = replay::frames(&bytes).unwrap();
        let request = Bootp::parse(&frames[0].data[42..]).unwrap();
        let out = run(&path, &cfg);
        let replies: Vec<_> = out.replies().collect();
        assert_eq!(replies.len(), 1, "{name}: {}", out.report());
        let payload = &replies[0].0.payload;
        let offer = Bootp::parse(payload).unwrap();
        let mut menu = vec![6, 1, 3, 9, 3 + text.len() as u8, 0, 0, text.len() as u8];
        menu.extend_from_slice(text.as_bytes());
        menu.extend_from_slice(&[10, 4, 0, b'P', b'X', b'E', 255]);
        assert_eq!(offer.option(opt::VENDOR), Some(&menu[..]), "{name}");
        assert_eq!(offer.option(opt::VENDOR_CLASS), Some(&b"PXEClient"[..]));
        assert_eq!(offer.option(opt::UUID), request.option(opt::UUID), "{name}");
        assert_eq!(
            offer.option(66),
            Some(REPLAY_SERVER_IP.to_string().as_bytes())
        );
        assert_eq!(offer.siaddr, REPLAY_SERVER_IP);
        assert!(offer.yiaddr.is_unspecified());
        assert_eq!(offer.option(67), None, "{name}: no boot file");
        // BOOTP `file`: bytes 108..236 (RFC 2131 §2)
        assert!(
            payload[108..236].iter().all(|&b| b == 0),
            "{name}: no boot file"
        );
    }
}

/// The rebuilt Pi 4 DISCOVER is the published one: its UDP checksum, which
/// covers every byte of the datagram, is the 0x14bc of the Wireshark
/// dissection in rpi-eeprom issue #58.
#[test]
fn the_rebuilt_pi4_discover_has_the_published_checksum() {
    let bytes = std::fs::read(root().join("pcaps/rpi4-eeprom-2019-discover.pcap")).unwrap();
    let frames = replay::frames(&bytes).unwrap();
    let udp = &frames[0].data[34..42];
    assert_eq!(u16::from_be_bytes([udp[4], udp[5]]), 330);
    assert_eq!(u16::from_be_bytes([udp[6], udp[7]]), 0x14bc);
}
