//! Entry points shared by the cargo-fuzz targets (fuzz/) and the regression
//! test that replays every crasher they found (tests/fuzz_regressions.rs).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};

use crate::config::{self, RawConfig, RawMenuItem};
use crate::mac::Mac;
use crate::ndp;
use crate::proxy::{self, Meta, Proxy};
use crate::replay;

fn feature_config() -> config::ProxyConfig {
    let mut raw = RawConfig::default();
    raw.boot.arm64 = "arm64.efi".into();
    raw.boot.http_x64 = "http://192.0.2.2/x.efi".into();
    raw.boot.ipxe = "boot.ipxe".into();
    raw.proxy.unknown_arch = Some("bios".into());
    raw.menu.prompt = "F8".into();
    raw.menu.items = vec![
        RawMenuItem {
            label: "local".into(),
            file: String::new(),
        },
        RawMenuItem {
            label: "net".into(),
            file: "pxelinux.0".into(),
        },
    ];
    config::validate(raw)
        .map(|c| c.proxy)
        .expect("the fuzzing config validates")
}

/// First byte picks the port (67 or 4011) and the source; the rest is the datagram.
pub fn proxy(data: &[u8]) {
    let Some((&sel, payload)) = data.split_first() else {
        return;
    };
    let meta = Meta {
        src: SocketAddrV4::new(
            Ipv4Addr::new(10, 0, 0, sel),
            if sel & 1 == 0 { 68 } else { 4011 },
        ),
        dst_port: if sel & 2 == 0 { 67 } else { 4011 },
    };
    let cfg = feature_config();
    let _ = proxy::peek(payload, meta);
    if let Ok(req) = proxy::classify(payload, meta) {
        let _ = proxy::describe_request(&req);
        let mut core = Proxy::new();
        if let Ok(reply) = core.decide(&cfg, Ipv4Addr::new(192, 0, 2, 2), &req, u64::from(sel)) {
            let _ = proxy::describe_reply(&req, &reply, Ipv4Addr::new(192, 0, 2, 2));
        }
    }
}

/// A whole capture file through replay and the reply writer.
pub fn capture(data: &[u8]) {
    let cfg = feature_config();
    if let Ok(out) = replay::replay(
        data,
        &cfg,
        replay::REPLAY_SERVER_IP,
        replay::REPLAY_SERVER_MAC,
    ) {
        let _ = out.report();
        let _ = replay::write_pcap(std::io::sink(), &out);
    }
}

/// A frame through the NDP door: parsed, and for a solicitation the
/// advertisement we would answer with, which must read back as ours.
pub fn ndp(data: &[u8]) {
    if let Ok(ndp::Ndp::Solicitation { mac, src }) = ndp::parse(data) {
        let ours = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
        let f = ndp::no_router_frame(Mac([2, 0, 0, 0, 0, 2]), ours, mac, src);
        assert!(
            matches!(
                ndp::parse(&f),
                Ok(ndp::Ndp::Advertisement { lifetime: 0, .. })
            ),
            "our advertisement does not read back"
        );
    }
}
