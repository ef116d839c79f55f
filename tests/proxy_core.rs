//! The proxy core, exercised with requests shaped like real firmware's.

mod common;

use std::net::Ipv4Addr;

use common::{Client, decode};
use dhcproto::v4::{DhcpOption, MessageType, OptionCode};
use pxe_sidecar::config::{self, ProxyConfig, RawConfig};
use pxe_sidecar::proxy::{Dest, Ignore, Meta, Msg, Proxy, Reply, classify};

const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn cfg(toml: &str) -> ProxyConfig {
    let raw: RawConfig = figment::Figment::from(figment::providers::Serialized::defaults(
        RawConfig::default(),
    ))
    .merge(<figment::providers::Toml as figment::providers::Format>::string(toml))
    .extract()
    .unwrap();
    config::validate(raw).unwrap().proxy
}

/// The client's request as it reaches `port` (from 68, or 4011 for 4011).
fn heard(c: &Client, port: u16) -> pxe_sidecar::proxy::Request {
    let src_port = if port == 4011 { 4011 } else { 68 };
    classify(
        &c.encode(),
        Meta {
            src: c.from(src_port),
            dst_port: port,
        },
    )
    .unwrap()
}

fn run(cfg: &ProxyConfig, c: &Client, port: u16) -> Result<Reply, Ignore> {
    let src_port = if port == 4011 { 4011 } else { 68 };
    let req = classify(
        &c.encode(),
        Meta {
            src: c.from(src_port),
            dst_port: port,
        },
    )?;
    Proxy::new().decide(cfg, US, &req, 0)
}

fn file(r: &Reply) -> String {
    let m = decode(&r.payload);
    let f = m.fname().unwrap_or_default();
    let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
    String::from_utf8(f[..end].to_vec()).unwrap()
}

#[test]
fn offer_is_a_proxy_offer_and_nothing_more() {
    let r = run(&cfg(""), &Client::pxe(0), 67).unwrap();
    assert_eq!(r.msg, Msg::Offer);
    assert_eq!(r.dest, Dest::Broadcast);
    assert_eq!(r.src_port, 67);
    assert!(r.payload.len() >= 300, "BOOTP minimum length");
    let m = decode(&r.payload);
    assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(m.siaddr(), US);
    assert_eq!(m.xid(), 0x1234_5678);
    assert_eq!(m.opts().msg_type(), Some(MessageType::Offer));
    assert_eq!(
        m.opts().get(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(US))
    );
    assert_eq!(
        m.opts().get(OptionCode::ClassIdentifier),
        Some(&DhcpOption::ClassIdentifier(b"PXEClient".to_vec()))
    );
    let mut uuid = vec![0u8];
    uuid.extend(1..=16u8);
    assert_eq!(
        m.opts().get(OptionCode::ClientMachineIdentifier),
        Some(&DhcpOption::ClientMachineIdentifier(uuid))
    );
    for never in [
        OptionCode::AddressLeaseTime,
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::DomainNameServer,
        OptionCode::Renewal,
        OptionCode::Rebinding,
    ] {
        assert!(
            m.opts().get(never).is_none(),
            "{never:?} must never be sent"
        );
    }
    assert_eq!(file(&r), "pxelinux.0");
    // BIOS gets option 43 with discovery control 8 (boot file in the offer).
    assert_eq!(
        m.opts().get(OptionCode::VendorExtensions),
        Some(&DhcpOption::VendorExtensions(vec![6, 1, 8, 255]))
    );
}

#[test]
fn every_arch_gets_its_file_or_a_reason() {
    let c = cfg("[boot]\narm64 = \"arm64/grubaa64.efi\"\n");
    for (arch, want) in [
        (0, Some("pxelinux.0")),
        (6, Some("syslinux32.efi")),
        (7, Some("snponly.efi")),
        (9, Some("snponly.efi")),
        (11, Some("arm64/grubaa64.efi")),
        (10, None),
        (2, None),
    ] {
        let r = run(&c, &Client::pxe(arch), 67);
        match want {
            Some(f) => assert_eq!(file(&r.unwrap()), f, "arch {arch}"),
            None => assert!(
                matches!(r, Err(Ignore::UnknownArch(_))),
                "arch {arch}: {r:?}"
            ),
        }
    }
    // EFI offers carry no option 43 (EDK2 would do PXE 1.0 discovery instead of 4011).
    let m = decode(&run(&c, &Client::pxe(7), 67).unwrap().payload);
    assert!(m.opts().get(OptionCode::VendorExtensions).is_none());
    // arm64 by default: Debian's signed shim, then GRUB
    assert_eq!(
        file(&run(&cfg(""), &Client::pxe(11), 67).unwrap()),
        "shimaa64.efi"
    );
    // Arm64 off: the reason names the key and the client-side symptom.
    let e = run(&cfg("[boot]\narm64 = \"\"\n"), &Client::pxe(11), 67)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[boot] arm64") && e.contains("PXE-E53"), "{e}");
    // unknown_arch falls back to a configured key.
    let c2 = cfg("[proxy]\nunknown_arch = \"bios\"\n");
    assert_eq!(file(&run(&c2, &Client::pxe(2), 67).unwrap()), "pxelinux.0");
}

#[test]
fn missing_option_93_uses_the_vendor_class_arch() {
    let mut c = Client::pxe(7);
    c.arch = None;
    assert_eq!(file(&run(&cfg(""), &c, 67).unwrap()), "snponly.efi");
    c.vendor = Some("PXEClient".into());
    assert_eq!(file(&run(&cfg(""), &c, 67).unwrap()), "pxelinux.0");
}

#[test]
fn uefi_http_boot_gets_a_url_and_httpclient() {
    let mut c = Client::pxe(16);
    c.vendor = Some("HTTPClient:Arch:00016:UNDI:003000".into());
    assert!(matches!(
        run(&cfg(""), &c, 67),
        Err(Ignore::NoBootFile {
            key: pxe_sidecar::pxe::BootKey::HttpX64,
            ..
        })
    ));
    let r = run(
        &cfg("[boot]\nhttp_x64 = \"http://10.0.0.2/boot.efi\"\n"),
        &c,
        67,
    )
    .unwrap();
    let m = decode(&r.payload);
    assert_eq!(
        m.opts().get(OptionCode::ClassIdentifier),
        Some(&DhcpOption::ClassIdentifier(b"HTTPClient".to_vec()))
    );
    assert_eq!(file(&r), "http://10.0.0.2/boot.efi");
    assert!(m.opts().get(OptionCode::VendorExtensions).is_none());
}

#[test]
fn non_pxe_clients_get_nothing() {
    for vendor in [
        None,
        Some("MSFT 5.0"),
        Some("pxeclient"),
        Some("udhcp 1.36.1"),
    ] {
        let mut c = Client::pxe(0);
        c.vendor = vendor.map(String::from);
        assert!(matches!(run(&cfg(""), &c, 67), Err(Ignore::NotPxe(_))));
    }
}

#[test]
fn port_4011_request_gets_a_unicast_ack() {
    let mut c = Client::pxe(7);
    c.msg = MessageType::Request;
    c.ciaddr = Ipv4Addr::new(10, 0, 0, 57);
    let r = run(&cfg(""), &c, 4011).unwrap();
    assert_eq!(r.msg, Msg::Ack);
    assert_eq!(r.src_port, 4011);
    assert_eq!(r.dest.addr().to_string(), "10.0.0.57:4011");
    let m = decode(&r.payload);
    assert_eq!(m.opts().msg_type(), Some(MessageType::Ack));
    assert_eq!(m.ciaddr(), c.ciaddr);
    assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
    // INFORM is answered too; DISCOVER on 4011 is not.
    c.msg = MessageType::Inform;
    assert!(run(&cfg(""), &c, 4011).is_ok());
    c.msg = MessageType::Discover;
    assert!(matches!(
        run(&cfg(""), &c, 4011),
        Err(Ignore::WrongPort { .. })
    ));
}

#[test]
fn request_on_67_for_the_router_is_left_alone() {
    let mut c = Client::pxe(0);
    c.msg = MessageType::Request;
    c.server_id = Some(Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(
        run(&cfg(""), &c, 67).unwrap_err(),
        Ignore::OtherServer(Ipv4Addr::new(10, 0, 0, 1))
    );
    c.server_id = Some(US);
    assert_eq!(run(&cfg(""), &c, 67).unwrap_err(), Ignore::LeaseFromUs);
    // Other message types are never answered.
    for t in [
        MessageType::Release,
        MessageType::Decline,
        MessageType::Offer,
    ] {
        c.msg = t;
        assert!(matches!(run(&cfg(""), &c, 67), Err(Ignore::Unhandled(_))));
    }
}

#[test]
fn ipxe_gets_the_script_or_is_stopped_from_looping() {
    let mut c = Client::pxe(0);
    c.user_class = Some(b"iPXE");
    c.ipxe = true;
    // the default: iPXE (a QEMU NIC ROM, or our snponly.efi) gets the script
    assert_eq!(file(&run(&cfg(""), &c, 67).unwrap()), "boot.ipxe");
    assert_eq!(
        file(&run(&cfg("[boot]\nipxe = \"my.ipxe\"\n"), &c, 67).unwrap()),
        "my.ipxe"
    );
    let looping = cfg("[boot]\nbios = \"undionly.kpxe\"\nipxe = \"\"\n");
    assert!(matches!(
        run(&looping, &c, 67),
        Err(Ignore::ChainloadLoop(_))
    ));
    // The same binary to a plain PXE ROM is the first stage: fine.
    assert_eq!(
        file(&run(&looping, &Client::pxe(0), 67).unwrap()),
        "undionly.kpxe"
    );
    // iPXE with no script and a non-iPXE loader: the loader.
    assert_eq!(
        file(&run(&cfg("[boot]\nipxe = \"\"\n"), &c, 67).unwrap()),
        "pxelinux.0"
    );
}

#[test]
fn allowlist_and_rules() {
    let c = cfg("[proxy]\nallow = [\"52:54:00:aa\"]\n");
    assert!(matches!(
        run(&c, &Client::pxe(0), 67),
        Err(Ignore::NotAllowed(_))
    ));
    let mut listed = Client::pxe(0);
    listed.mac = [0x52, 0x54, 0, 0xaa, 1, 2];
    assert!(run(&c, &listed, 67).is_ok());
    let rules = cfg(
        "[[clients]]\nmac = \"52:54:00:12:34:56\"\nignore = true\n[[clients]]\nmac = \"52:54:00\"\nboot = \"special.0\"\n",
    );
    assert!(matches!(
        run(&rules, &Client::pxe(0), 67),
        Err(Ignore::RuleIgnore(_))
    ));
    assert_eq!(file(&run(&rules, &listed, 67).unwrap()), "special.0");
}

#[test]
fn destinations_follow_rfc2131() {
    let mut c = Client::pxe(0);
    c.broadcast = false;
    c.ciaddr = Ipv4Addr::new(10, 0, 0, 57);
    assert!(
        matches!(run(&cfg(""), &c, 67).unwrap().dest, Dest::Unicast(a, _) if a.to_string() == "10.0.0.57:68")
    );
    c.broadcast = true;
    assert_eq!(run(&cfg(""), &c, 67).unwrap().dest, Dest::Broadcast);
    c.giaddr = Ipv4Addr::new(10, 9, 0, 1);
    // only a relay the config names makes us send off the LAN
    assert!(matches!(
        run(&cfg(""), &c, 67),
        Err(Ignore::UnknownRelay { first: true, .. })
    ));
    let relayed = cfg("[proxy]\nrelays = [\"10.9.0.1\"]\n");
    assert!(
        matches!(run(&relayed, &c, 67).unwrap().dest, Dest::Relay(a) if a.to_string() == "10.9.0.1:67")
    );
}

#[test]
fn unknown_relays_are_reported_once() {
    let mut c = Client::pxe(0);
    c.giaddr = Ipv4Addr::new(10, 9, 0, 1);
    let req = heard(&c, 67);
    let mut core = Proxy::new();
    let cfg = cfg("");
    assert!(matches!(
        core.decide(&cfg, US, &req, 0),
        Err(Ignore::UnknownRelay { first: true, .. })
    ));
    assert!(matches!(
        core.decide(&cfg, US, &req, 1),
        Err(Ignore::UnknownRelay { first: false, .. })
    ));
}

#[test]
fn acks_on_4011_stay_on_the_lan_or_behind_a_named_relay() {
    let mut c = Client::pxe(7);
    c.msg = MessageType::Request;
    let ask = |cfg: &ProxyConfig, ip: Ipv4Addr| {
        let mut c = c.clone();
        c.ciaddr = ip;
        let req = classify(
            &c.encode(),
            Meta {
                src: std::net::SocketAddrV4::new(ip, 4011),
                dst_port: 4011,
            },
        )
        .unwrap();
        let mut core = Proxy::new();
        core.set_link(Some(vec![(Ipv4Addr::new(10, 0, 0, 2), 24)]));
        core.decide(cfg, US, &req, 0)
    };
    let plain = cfg("");
    assert!(ask(&plain, Ipv4Addr::new(10, 0, 0, 57)).is_ok());
    assert_eq!(
        ask(&plain, Ipv4Addr::new(203, 0, 113, 5)),
        Err(Ignore::OffLink(Ipv4Addr::new(203, 0, 113, 5)))
    );
    let relayed = cfg("[proxy]\nrelays = [\"10.9.0.1/24\"]\n");
    assert!(ask(&relayed, Ipv4Addr::new(10, 9, 0, 77)).is_ok());
    assert!(ask(&relayed, Ipv4Addr::new(10, 8, 0, 77)).is_err());
}

#[test]
fn rotating_macs_meet_a_global_cap() {
    let cfg = cfg("");
    let mut core = Proxy::new();
    let mut answered = 0;
    for i in 0..6000u32 {
        let mut c = Client::pxe(0);
        let b = i.to_be_bytes();
        c.mac = [2, 0xaa, b[0], b[1], b[2], b[3]];
        let req = heard(&c, 67);
        match core.decide(&cfg, US, &req, 5_000) {
            Ok(_) => answered += 1,
            Err(Ignore::Overloaded) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(answered, 5000);
    // the next second starts afresh
    let c = Client::pxe(0);
    let req = heard(&c, 67);
    assert!(core.decide(&cfg, US, &req, 6_000).is_ok());
}

#[test]
fn menu_and_boot_server_discovery() {
    let c = cfg(
        "[menu]\nprompt = \"Press F8\"\ntimeout = 5\n[[menu.items]]\nlabel = \"Local disk\"\n[[menu.items]]\nlabel = \"Debian\"\nfile = \"debian/pxelinux.0\"\n",
    );
    let m = decode(&run(&c, &Client::pxe(0), 67).unwrap().payload);
    let Some(DhcpOption::VendorExtensions(v)) = m.opts().get(OptionCode::VendorExtensions) else {
        panic!("menu offer needs option 43")
    };
    assert_eq!(&v[..3], &[6, 1, 3]);
    assert!(v.windows(6).any(|w| w == b"Debian"));
    // iPXE-style discovery: REQUEST to 4011 from port 68, xid 0, sub 71.
    let mut req = Client::pxe(0);
    req.msg = MessageType::Request;
    req.ciaddr = Ipv4Addr::new(10, 0, 0, 57);
    req.opt43 = Some(vec![71, 4, 0x80, 0x02, 0, 0, 255]);
    let r = run(&c, &req, 4011).unwrap();
    assert_eq!(file(&r), "debian/pxelinux.0");
    let m = decode(&r.payload);
    assert_eq!(
        m.opts().get(OptionCode::VendorExtensions),
        Some(&DhcpOption::VendorExtensions(vec![
            71, 4, 0x80, 0x02, 0, 0, 255
        ]))
    );
    req.opt43 = Some(vec![71, 4, 0, 0, 0, 0, 255]);
    assert_eq!(run(&c, &req, 4011).unwrap_err(), Ignore::LocalBoot);
    req.opt43 = Some(vec![71, 4, 0x90, 0, 0, 0, 255]);
    assert!(matches!(
        run(&c, &req, 4011),
        Err(Ignore::UnknownBootItem(0x9000))
    ));
    // Broadcast discovery on 67 with a boot item is answered as well.
    req.opt43 = Some(vec![71, 4, 0x80, 0x02, 0, 0, 255]);
    assert!(run(&c, &req, 67).is_ok());
}

#[test]
fn max_message_size_is_respected() {
    // Below the RFC 2132 minimum of 576 the floor applies: our reply still fits.
    let mut c = Client::pxe(0);
    c.max_size = Some(100);
    assert!(run(&cfg(""), &c, 67).unwrap().payload.len() <= 576 - 28);
    // A menu too large for 576 bytes is refused with a reason, not truncated.
    let mut big = String::new();
    for i in 0..30 {
        big.push_str(&format!(
            "[[menu.items]]\nlabel = \"{}\"\nfile = \"f{i}\"\n",
            "x".repeat(60)
        ));
    }
    let r = run(&cfg(&big), &c, 67);
    assert!(matches!(r, Err(Ignore::TooLarge { .. })) || r.unwrap().payload.len() <= 548);
}

#[test]
fn floods_from_one_mac_are_limited() {
    let cfg = cfg("");
    let mut core = Proxy::new();
    let c = Client::pxe(0);
    let req = heard(&c, 67);
    let answered = (0..100)
        .filter(|_| core.decide(&cfg, US, &req, 1000).is_ok())
        .count();
    assert_eq!(answered, 20);
    // A new window answers again.
    assert!(core.decide(&cfg, US, &req, 20_000).is_ok());
}

#[test]
fn hostile_bytes_never_panic() {
    let good = Client::pxe(7).encode();
    // Every truncation and many single-byte corruptions of a valid request.
    for n in 0..good.len() {
        let _ = classify(
            &good[..n],
            Meta {
                src: "0.0.0.0:68".parse().unwrap(),
                dst_port: 67,
            },
        );
    }
    let mut core = Proxy::new();
    let cfg = cfg("");
    for i in 0..good.len() {
        for v in [0u8, 1, 0x7f, 0xff] {
            let mut b = good.clone();
            b[i] = v;
            if let Ok(req) = classify(
                &b,
                Meta {
                    src: "0.0.0.0:68".parse().unwrap(),
                    dst_port: 67,
                },
            ) {
                let _ = core.decide(&cfg, US, &req, i as u64 * 1000);
            }
        }
    }
}
