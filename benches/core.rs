//! classify + decide per packet, on real firmware requests taken from the
//! public captures (BIOS DISCOVER, EFI 4011 REQUEST) and on a non-PXE DISCOVER.

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pxe_sidecar::config;
use pxe_sidecar::frame::{self, Link};
use pxe_sidecar::proxy::{Meta, Proxy, classify};
use pxe_sidecar::replay;

fn requests() -> Vec<(String, Vec<u8>, Meta)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/public");
    let mut out = Vec::new();
    for (file, frame_no, name) in [
        ("rspxe-intel-bios-dhcp.pcapng", 1, "bios DISCOVER"),
        ("rspxe-intel-efi-dhcp.pcapng", 6, "efi 4011 REQUEST"),
        ("zeek-dhcp-discover-client-id.pcap", 1, "non-PXE DISCOVER"),
    ] {
        let Ok(bytes) = std::fs::read(dir.join(file)) else {
            eprintln!("note: {file} not found; benchmarking the others");
            continue;
        };
        let frames = replay::frames(&bytes).expect("readable capture");
        let f = frames
            .iter()
            .find(|f| f.number == frame_no)
            .expect("frame exists");
        let u = frame::udp(Link::Ethernet, &f.data).expect("UDP");
        out.push((
            name.to_string(),
            u.payload.to_vec(),
            Meta {
                src: u.src,
                dst_port: u.dst.port(),
            },
        ));
    }
    out
}

fn bench(c: &mut Criterion) {
    let cfg = config::validate(Default::default()).unwrap().proxy;
    let server = Ipv4Addr::new(192, 0, 2, 2);
    let mut g = c.benchmark_group("classify+decide");
    g.throughput(Throughput::Elements(1));
    for (name, payload, meta) in requests() {
        let mut core = Proxy::new();
        let mut t = 0u64;
        g.bench_function(&name, |b| {
            b.iter(|| {
                // Advance the clock so the per-MAC flood limit never engages.
                t += 1_000;
                if let Ok(req) = classify(black_box(&payload), meta) {
                    let _ = black_box(core.decide(&cfg, server, &req, t));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
