//! The shell entry points, as a new user meets them.

use std::process::Command;

#[test]
fn serve_without_rust_says_how_to_get_it() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: scripts/serve wants root");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let o = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/serve"))
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("cargo is not installed"), "{err}");
    assert!(err.contains("sh.rustup.rs"), "{err}");
}
