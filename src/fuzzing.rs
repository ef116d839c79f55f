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

/// The NFS door's own state for fuzzing: a small tree, a runtime.
struct NfsRig {
    fs: std::sync::Arc<crate::nfs::fs::RootFs>,
    runtime: tokio::runtime::Runtime,
}

/// The export name MOUNT calls in the seeds ask for (the tree's real path
/// varies from run to run).
const EXPORT: &str = "/srv/fuzz";

fn nfs_rig() -> Option<&'static NfsRig> {
    static RIG: std::sync::OnceLock<Option<NfsRig>> = std::sync::OnceLock::new();
    RIG.get_or_init(|| {
        let base =
            std::env::temp_dir().join(format!("pxe-sidecar-fuzz-nfs-{}", std::process::id()));
        let root = base.join("root");
        for d in ["etc", "var/clients/template", "home"] {
            std::fs::create_dir_all(root.join(d)).ok()?;
        }
        std::fs::write(root.join("etc/hostname"), b"fuzz\n").ok()?;
        let _ = std::os::unix::fs::symlink("../etc/hostname", root.join("home/link"));
        let cfg = config::NfsConfig {
            enabled: true,
            root: root.clone(),
            port: 2049,
            portmap: true,
            state_dir: base.join("state"),
            writable: vec!["var".into(), "home".into()],
            allow: vec![config::NfsAllow::Net(std::net::Ipv4Addr::UNSPECIFIED, 0)],
            root_squash: config::Squash::Writable,
            names: Vec::new(),
        };
        let fs = crate::nfs::fs::RootFs::new(&cfg, crate::clients::Clients::default()).ok()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        Some(NfsRig {
            fs: std::sync::Arc::new(fs),
            runtime,
        })
    })
    .as_ref()
}

/// First byte even: the rest is one TCP connection's bytes to the NFS door
/// (record marking, RPC, MOUNT and NFSv3 argument decoding, the file
/// system behind them); odd: one portmapper call.
pub fn nfs(data: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let peer = std::net::SocketAddr::from(([10, 0, 0, 9], 700));
    if sel & 1 == 1 {
        let _ = crate::portmap::answer(&crate::portmap::Map { nfs_port: 2049 }, rest, peer);
        return;
    }
    let Some(rig) = nfs_rig() else {
        return;
    };
    let input = rest.to_vec();
    rig.runtime.block_on(async {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let serve = nfs3_server::tcp::serve_stream(server, rig.fs.clone(), peer, EXPORT, 1);
        let talk = async move {
            let _ = client.write_all(&input).await;
            let _ = client.shutdown().await;
            let mut out = Vec::new();
            let _ = client.read_to_end(&mut out).await;
        };
        let _ = tokio::join!(serve, talk);
    });
}
