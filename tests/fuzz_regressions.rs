//! Every input the fuzzers (fuzz/) ever crashed on, replayed through the same
//! entry points, plus the hostile public captures. A crasher is added by
//! copying it from fuzz/artifacts/<target>/ into tests/fuzz_regressions/<target>/.

use std::path::Path;

use pxe_sidecar::fuzzing;

fn each(dir: &str, f: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(dir);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            f(&std::fs::read(&p).unwrap());
            n += 1;
        }
    }
    n
}

#[test]
fn proxy_crashers() {
    assert!(each("proxy", fuzzing::proxy) > 0);
}

#[test]
fn capture_crashers() {
    assert!(each("capture", fuzzing::capture) > 0);
}

#[test]
fn ndp_crashers() {
    assert!(each("ndp", fuzzing::ndp) > 0);
}

#[test]
fn nfs_crashers() {
    assert!(each("nfs", fuzzing::nfs) > 0);
}
