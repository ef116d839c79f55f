//! The Debian package as an admin meets it: `scripts/package` builds it
//! (cargo-deb); its contents, conffile, man page and completions are read
//! back; then it is installed into a Debian tree (the e2e's cached
//! bookworm, seen through an overlay) with that tree's own dpkg, run from
//! there, its unit verified with systemd-analyze, and purged — after which
//! nothing of it may be left but dpkg's own records.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::guest::DebianRoot;
use common::netns::{require, root_or_skip};

fn ok(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn run(cmd: &[&str]) -> Output {
    Command::new(cmd[0]).args(&cmd[1..]).output().unwrap()
}

/// Builds the package (debug profile: the tests' binary) and returns it.
fn build() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = Command::new(repo.join("scripts/package"))
        .env("PACKAGE_PROFILE", "dev")
        .output()
        .unwrap();
    let text = ok(o, "scripts/package");
    let deb = text
        .lines()
        .rev()
        .find(|l| l.trim().ends_with(".deb"))
        .unwrap_or_else(|| panic!("scripts/package named no .deb:\n{text}"));
    PathBuf::from(deb.trim())
}

/// Every path under `root` (one filesystem), relative.
fn tree(root: &Path) -> BTreeSet<String> {
    let o = run(&["find", root.to_str().unwrap(), "-xdev", "-mindepth", "1"]);
    ok(o, "find")
        .lines()
        .map(|l| {
            l.strip_prefix(root.to_str().unwrap())
                .unwrap_or(l)
                .to_string()
        })
        .collect()
}

#[test]
fn the_debian_package_installs_runs_and_purges_cleanly() {
    if !root_or_skip("the_debian_package_installs_runs_and_purges_cleanly") {
        return;
    }
    for tool in ["dpkg-deb", "man", "systemd-analyze", "debootstrap"] {
        require(tool);
    }
    let deb = build();
    let deb_s = deb.to_str().unwrap();

    // contents
    let list = ok(run(&["dpkg-deb", "-c", deb_s]), "dpkg-deb -c");
    for file in [
        "./usr/sbin/pxe-sidecar",
        "./etc/pxe-sidecar/pxe-sidecar.toml",
        "/systemd/system/pxe-sidecar.service",
        "./usr/share/man/man8/pxe-sidecar.8.gz",
        "./usr/share/bash-completion/completions/pxe-sidecar",
        "./usr/share/zsh/vendor-completions/_pxe-sidecar",
        "./usr/share/doc/pxe-sidecar/copyright",
    ] {
        assert!(list.contains(file), "the package lacks {file}:\n{list}");
    }
    let control = ok(run(&["dpkg-deb", "-f", deb_s]), "dpkg-deb -f");
    for field in [
        "Package: pxe-sidecar",
        "Recommends: pxelinux, syslinux-common, syslinux-efi, ipxe",
        "Suggests: debootstrap",
        "Section: net",
    ] {
        assert!(control.contains(field), "control lacks {field}:\n{control}");
    }
    let x = tempfile::tempdir().unwrap();
    let xs = x.path().to_str().unwrap();
    ok(run(&["dpkg-deb", "-R", deb_s, xs]), "dpkg-deb -R");
    let conffiles = std::fs::read_to_string(x.path().join("DEBIAN/conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/pxe-sidecar/pxe-sidecar.toml");
    let postrm = std::fs::read_to_string(x.path().join("DEBIAN/postrm")).unwrap();
    assert!(postrm.contains("/var/lib/private/pxe-sidecar"), "{postrm}");
    // the conffile is the documented example, all defaults
    assert_eq!(
        std::fs::read(x.path().join("etc/pxe-sidecar/pxe-sidecar.toml")).unwrap(),
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/example.toml")).unwrap()
    );
    let unit = std::fs::read_dir(x.path().join("lib/systemd/system"))
        .or_else(|_| std::fs::read_dir(x.path().join("usr/lib/systemd/system")))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    assert!(
        unit.contains("ExecStart=/usr/sbin/pxe-sidecar ") && !unit.contains("/usr/local"),
        "{unit}"
    );
    for needle in ["StateDirectory=pxe-sidecar", "RuntimeDirectory=pxe-sidecar"] {
        assert!(unit.contains(needle), "unit lacks {needle}");
    }

    // the man page renders, with a section per subcommand
    let page = x.path().join("usr/share/man/man8/pxe-sidecar.8.gz");
    let o = Command::new("man")
        .args(["-l", page.to_str().unwrap()])
        .env("MANWIDTH", "100")
        .env("MAN_KEEP_FORMATTING", "0")
        .output()
        .unwrap();
    // man formats for a terminal when it writes to a pipe: overstrike
    // (c BACKSPACE c) for bold, _ BACKSPACE c for underline
    let raw: Vec<char> = ok(o, "man -l").chars().collect();
    let mut text = String::new();
    let mut i = 0;
    while i < raw.len() {
        if raw.get(i + 1) == Some(&'\u{8}') {
            i += 2;
            continue;
        }
        text.push(raw[i]);
        i += 1;
    }
    for section in [
        "NAME",
        "SYNOPSIS",
        "PXE-SIDECAR SERVE",
        "PXE-SIDECAR CHECK",
        "PXE-SIDECAR PROBE",
        "PXE-SIDECAR STATUS",
        "PXE-SIDECAR ROOTFS CREATE",
        "PXE-SIDECAR REPLAY",
        "FILES",
        "ENVIRONMENT",
    ] {
        assert!(
            text.lines().any(|l| l.trim() == section),
            "man page lacks {section}:\n{text}"
        );
    }
    // completions: bash loads it and completes the subcommands
    let bash = x
        .path()
        .join("usr/share/bash-completion/completions/pxe-sidecar");
    let o = run(&[
        "bash",
        "-c",
        &format!(
            "source {}; f=$(complete -p pxe-sidecar | sed -n 's/.*-F \\([^ ]*\\).*/\\1/p'); COMP_WORDS=(pxe-sidecar ro); COMP_CWORD=1; $f pxe-sidecar ro pxe-sidecar; echo ${{COMPREPLY[@]}}",
            bash.display()
        ),
    ]);
    assert_eq!(ok(o, "bash completion").trim(), "rootfs");
    let zsh = std::fs::read_to_string(
        x.path()
            .join("usr/share/zsh/vendor-completions/_pxe-sidecar"),
    )
    .unwrap();
    assert!(zsh.starts_with("#compdef pxe-sidecar"), "{zsh}");

    // install into a Debian tree with its own dpkg
    let root = DebianRoot::new();
    let m = root.merged.clone();
    let ms = m.to_str().unwrap();
    let before = tree(&m);
    std::fs::copy(&deb, m.join("tmp/pxe-sidecar.deb")).unwrap();
    let chroot = |args: &[&str]| {
        let mut full = vec!["chroot", ms];
        full.extend_from_slice(args);
        run(&full)
    };
    ok(chroot(&["dpkg", "-i", "/tmp/pxe-sidecar.deb"]), "dpkg -i");
    let version = ok(
        chroot(&["pxe-sidecar", "--version"]),
        "pxe-sidecar --version",
    );
    assert!(version.starts_with("pxe-sidecar "), "{version}");
    assert!(
        !m.join("etc/systemd/system/multi-user.target.wants/pxe-sidecar.service")
            .exists(),
        "installing enabled the service"
    );
    let unit_path = ["lib/systemd/system", "usr/lib/systemd/system"]
        .iter()
        .map(|d| format!("/{d}/pxe-sidecar.service"))
        .find(|p| m.join(&p[1..]).exists())
        .expect("the unit is installed");
    // --man=no: the host's man cannot see the tree's page (checked above)
    let o = run(&[
        "systemd-analyze",
        "verify",
        "--man=no",
        &format!("--root={ms}"),
        &unit_path,
    ]);
    let said = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "systemd-analyze verify:\n{said}");
    assert!(
        !said.contains("pxe-sidecar.service:"),
        "systemd-analyze has remarks on the unit:\n{said}"
    );
    // what the service itself would have made (StateDirectory= with DynamicUser=)
    std::fs::create_dir_all(m.join("var/lib/private/pxe-sidecar/clients")).unwrap();
    std::fs::write(
        m.join("var/lib/private/pxe-sidecar/nfs-handle-key"),
        [7u8; 16],
    )
    .unwrap();
    std::os::unix::fs::symlink("private/pxe-sidecar", m.join("var/lib/pxe-sidecar")).unwrap();

    ok(chroot(&["dpkg", "--purge", "pxe-sidecar"]), "dpkg --purge");
    std::fs::remove_file(m.join("tmp/pxe-sidecar.deb")).unwrap();
    let after = tree(&m);
    // dpkg's own records of what happened are all that may stay (Debian
    // policy §10.7.3 and dpkg's log)
    let dpkg_records = |p: &&String| {
        p.starts_with("/var/lib/dpkg/")
            || p.starts_with("/var/log/")
            || p.starts_with("/var/cache/")
    };
    let left: Vec<&String> = after
        .difference(&before)
        .filter(|p| !dpkg_records(p))
        .collect();
    assert!(left.is_empty(), "purge left behind: {left:?}");
    let gone: Vec<&String> = before
        .difference(&after)
        .filter(|p| !dpkg_records(p))
        .collect();
    assert!(
        gone.is_empty(),
        "purge removed what was there before: {gone:?}"
    );
}
