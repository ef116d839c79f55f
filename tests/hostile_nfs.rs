//! A hostile peer against the NFS door, on a namespace LAN: the attacks of
//! a client that owns a writable area (symlink swaps under held handles),
//! forged handles, pipelined READs meant to exhaust memory, and a peer
//! that claims another machine's MAC. Each attack must be refused or
//! bounded, and a legitimate client must keep reading the root and
//! writing its own area.

mod common;

use std::io::Write;
use std::time::Duration;

use common::netns::{root_or_skip, start_server, wait_for_log};
use common::nfs::*;
use nfs3_client::Nfs3ConnectionBuilder;
use nfs3_client::nfs3_types::nfs3::*;
use nfs3_client::nfs3_types::xdr_codec::Opaque;
use nfs3_client::tokio::TokioConnector;

const MALLORY: (&str, &str, Option<&str>) = ("mallory", "02:00:00:00:00:0c", Some("10.78.0.12/24"));

fn name(s: &str) -> filename3<'static> {
    filename3(Opaque::owned(s.as_bytes().to_vec()))
}

fn at(dir: &nfs_fh3, n: &str) -> diropargs3<'static> {
    diropargs3 {
        dir: dir.clone(),
        name: name(n),
    }
}

async fn mkdir(c: &mut Conn, dir: &nfs_fh3, n: &str) -> Result<nfs_fh3, nfsstat3> {
    let args = MKDIR3args {
        where_: at(dir, n),
        attributes: sattr3::default(),
    };
    match c.mkdir(&args).await.unwrap() {
        Nfs3Result::Ok(ok) => match ok.obj {
            Nfs3Option::Some(fh) => Ok(fh),
            Nfs3Option::None => Err(nfsstat3::NFS3ERR_SERVERFAULT),
        },
        Nfs3Result::Err((e, _)) => Err(e),
    }
}

async fn symlink(c: &mut Conn, dir: &nfs_fh3, n: &str, target: &str) -> Result<(), nfsstat3> {
    let args = SYMLINK3args {
        where_: at(dir, n),
        symlink: symlinkdata3 {
            symlink_attributes: sattr3::default(),
            symlink_data: nfspath3(Opaque::owned(target.as_bytes().to_vec())),
        },
    };
    match c.symlink(&args).await.unwrap() {
        Nfs3Result::Ok(_) => Ok(()),
        Nfs3Result::Err((e, _)) => Err(e),
    }
}

async fn rename(c: &mut Conn, dir: &nfs_fh3, from: &str, to: &str) -> Result<(), nfsstat3> {
    let args = RENAME3args {
        from: at(dir, from),
        to: at(dir, to),
    };
    match c.rename(&args).await.unwrap() {
        Nfs3Result::Ok(_) => Ok(()),
        Nfs3Result::Err((e, _)) => Err(e),
    }
}

async fn remove(c: &mut Conn, dir: &nfs_fh3, n: &str) -> Result<(), nfsstat3> {
    let args = REMOVE3args { object: at(dir, n) };
    match c.remove(&args).await.unwrap() {
        Nfs3Result::Ok(_) => Ok(()),
        Nfs3Result::Err((e, _)) => Err(e),
    }
}

async fn rmdir(c: &mut Conn, dir: &nfs_fh3, n: &str) -> Result<(), nfsstat3> {
    let args = RMDIR3args { object: at(dir, n) };
    match c.rmdir(&args).await.unwrap() {
        Nfs3Result::Ok(_) => Ok(()),
        Nfs3Result::Err((e, _)) => Err(e),
    }
}

async fn chmod(c: &mut Conn, fh: &nfs_fh3, mode: u32) -> Result<(), nfsstat3> {
    let args = SETATTR3args {
        object: fh.clone(),
        new_attributes: sattr3 {
            mode: Nfs3Option::Some(mode),
            ..Default::default()
        },
        guard: Default::default(),
    };
    match c.setattr(&args).await.unwrap() {
        Nfs3Result::Ok(_) => Ok(()),
        Nfs3Result::Err((e, _)) => Err(e),
    }
}

async fn readdir(c: &mut Conn, dir: &nfs_fh3) -> Result<Vec<String>, nfsstat3> {
    let args = READDIR3args {
        dir: dir.clone(),
        cookie: 0,
        cookieverf: cookieverf3::default(),
        count: 8192,
    };
    match c.readdir(&args).await.unwrap() {
        Nfs3Result::Ok(ok) => Ok(ok
            .reply
            .entries
            .0
            .iter()
            .map(|e| String::from_utf8_lossy(&e.name.0).into_owned())
            .collect()),
        Nfs3Result::Err((e, _)) => Err(e),
    }
}

/// A root-only directory and file on the server, outside every export.
fn plant_secrets(s: &Setup) -> std::path::PathBuf {
    let outside = s.lan.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"the server's secret\n").unwrap();
    sh(&format!(
        "chmod 700 {o} && chmod 600 {o}/secret",
        o = outside.display()
    ));
    outside
}

#[test]
fn symlink_swaps_under_held_handles_never_leave_the_export() {
    if !root_or_skip("symlink_swaps_under_held_handles_never_leave_the_export") {
        return;
    }
    // no squashing: the attacker acts as root in its own area, the most a
    // client ever gets; only the door's confinement stands in the way
    let s = setup(false, "root_squash = \"none\"");
    let outside = plant_secrets(&s);
    pxe_request(&s.lan, "alice", [2, 0, 0, 0, 0, 0x0a]);
    let export = s.root.display().to_string();
    let out = outside.display().to_string();
    client(&s.lan, "alice", async move || {
        let mut c = mount(&export, 0, 0).await;
        let area = lookup(&mut c, "var/clients/myself").await.unwrap();

        // 1. rename a symlink over a file whose handle we hold
        let f = create(&mut c, &area, "f").await.unwrap();
        write(&mut c, &f, b"mine").await.unwrap();
        symlink(&mut c, &area, "s", &format!("{out}/secret"))
            .await
            .unwrap();
        rename(&mut c, &area, "s", "f").await.unwrap();
        assert_eq!(read(&mut c, &f).await, Err(nfsstat3::NFS3ERR_STALE));
        assert!(write(&mut c, &f, b"x").await.is_err());
        assert!(chmod(&mut c, &f, 0o6777).await.is_err());
        // the symlink itself is a symlink to the client, never its target
        let link = lookup(&mut c, "var/clients/myself/f").await.unwrap();
        assert_eq!(read(&mut c, &link).await, Err(nfsstat3::NFS3ERR_INVAL));

        // 2. remove a directory we hold, put a symlink at its path
        let d = mkdir(&mut c, &area, "d").await.unwrap();
        rmdir(&mut c, &area, "d").await.unwrap();
        symlink(&mut c, &area, "d", &out).await.unwrap();
        assert_eq!(
            create(&mut c, &d, "pwn").await,
            Err(nfsstat3::NFS3ERR_STALE)
        );
        assert!(readdir(&mut c, &d).await.is_err());
        assert!(mkdir(&mut c, &d, "pwndir").await.is_err());

        // 3. rename a held directory away and a symlink into its place:
        // the handle follows the directory, not the name
        let e = mkdir(&mut c, &area, "e").await.unwrap();
        rename(&mut c, &area, "e", "e2").await.unwrap();
        symlink(&mut c, &area, "e", &out).await.unwrap();
        create(&mut c, &e, "inside").await.unwrap();
        let moved = lookup(&mut c, "var/clients/myself/e2/inside").await;
        assert!(moved.is_ok(), "the file went elsewhere: {moved:?}");

        // 4. the whole area swapped for a link one level up is still ours
        remove(&mut c, &area, "e").await.unwrap();
        symlink(&mut c, &area, "up", "../../../..").await.unwrap();
        assert_eq!(
            lookup(&mut c, "var/clients/myself/up/etc").await,
            Err(nfsstat3::NFS3ERR_NOTDIR)
        );

        // the legitimate client still reads the root and writes its area
        let host = lookup(&mut c, "etc/hostname").await.unwrap();
        assert_eq!(read(&mut c, &host).await.unwrap(), b"client\n");
        let own = create(&mut c, &area, "still-mine").await.unwrap();
        write(&mut c, &own, b"ok").await.unwrap();
    });
    // nothing outside the export was read, made or changed
    assert!(!outside.join("pwn").exists() && !outside.join("pwndir").exists());
    assert!(!outside.join("inside").exists());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(outside.join("secret"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o7777, 0o600);
    assert_eq!(
        std::fs::read(outside.join("secret")).unwrap(),
        b"the server's secret\n"
    );
    let areas = s.state.join("clients/02-00-00-00-00-0a");
    assert_eq!(std::fs::read(areas.join("still-mine")).unwrap(), b"ok");
}

#[test]
fn forged_handles_are_stale_without_a_rebuild() {
    if !root_or_skip("forged_handles_are_stale_without_a_rebuild") {
        return;
    }
    let s = setup(false, "allow = [\"10.78.0.0/24\"]");
    let export = s.root.display().to_string();
    client(&s.lan, "alice", async move || {
        let mut c = mount(&export, 1000, 1000).await;
        let good = lookup(&mut c, "etc/hostname").await.unwrap();
        let bytes = good.data.to_vec();
        // every bit of a real handle flipped, one at a time, and random ones
        let mut forged: Vec<Vec<u8>> = (0..bytes.len() * 8)
            .map(|bit| {
                let mut b = bytes.clone();
                b[bit / 8] ^= 1 << (bit % 8);
                b
            })
            .collect();
        for seed in 0..200 {
            forged.push(common::pseudo_random(bytes.len(), seed));
            forged.push(common::pseudo_random(16, seed));
        }
        for f in forged {
            let fh = nfs_fh3 {
                data: Opaque::owned(f),
            };
            let got = getattr(&mut c, &fh).await;
            assert!(
                matches!(
                    got,
                    Err(nfsstat3::NFS3ERR_STALE | nfsstat3::NFS3ERR_BADHANDLE)
                ),
                "{got:?}"
            );
        }
        assert!(getattr(&mut c, &good).await.is_ok());
    });
    let log = std::fs::read_to_string(&s.log).unwrap();
    assert!(
        !log.contains("NFS handle index rebuilt"),
        "a forged handle made the server walk the tree:\n{log}"
    );
    // handles do not show the device number
    let dev = std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(&s.root).unwrap());
    let export = s.root.display().to_string();
    let handle = client(&s.lan, "alice", async move || {
        let c = mount(&export, 1000, 1000).await;
        c.root_nfs_fh3().data.to_vec()
    });
    assert!(
        !handle.windows(8).any(|w| w == dev.to_le_bytes()),
        "the root handle carries st_dev"
    );
}

/// One RPC record: an NFSv3 READ call of `count` bytes at `offset`.
fn read_call(xid: u32, fh: &[u8], offset: u64, count: u32) -> Vec<u8> {
    let mut b = Vec::new();
    let w = |b: &mut Vec<u8>, v: u32| b.extend_from_slice(&v.to_be_bytes());
    for v in [xid, 0, 2, 100_003, 3, 6] {
        w(&mut b, v);
    }
    // AUTH_UNIX: stamp, machine name "x", uid, gid, no gids
    w(&mut b, 1);
    w(&mut b, 24);
    for v in [0, 1, u32::from_be_bytes(*b"x\0\0\0"), 1000, 1000, 0] {
        w(&mut b, v);
    }
    w(&mut b, 0);
    w(&mut b, 0);
    w(&mut b, fh.len() as u32);
    b.extend_from_slice(fh);
    b.resize(b.len().next_multiple_of(4), 0);
    b.extend_from_slice(&offset.to_be_bytes());
    w(&mut b, count);
    let mut rec = ((b.len() as u32) | 0x8000_0000).to_be_bytes().to_vec();
    rec.extend(b);
    rec
}

#[test]
fn pipelined_reads_and_connection_floods_stay_bounded() {
    if !root_or_skip("pipelined_reads_and_connection_floods_stay_bounded") {
        return;
    }
    let s = setup(true, "allow = [\"10.78.0.0/24\"]");
    let export = s.root.display().to_string();
    let e = export.clone();
    let fh = client(&s.lan, "alice", async move || {
        let mut c = mount(&e, 1000, 1000).await;
        lookup(&mut c, "big").await.unwrap().data.to_vec()
    });
    let pid = s.lan.pid("pxe-sidecar");
    let before = common::peak_rss_kib(pid);
    s.lan.in_host("alice", move || {
        // 16 connections (twice the per-client limit), 300 READs of 1 MiB
        // each on every one, sent at once and never read
        let batch: Vec<u8> = (0..300u32)
            .flat_map(|i| read_call(i + 1, &fh, u64::from(i % 200) << 20, 1 << 20))
            .collect();
        let mut conns = Vec::new();
        for _ in 0..16 {
            let mut t = std::net::TcpStream::connect((SRV, 2049)).unwrap();
            t.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
            // a refused connection is closed under us: the write may fail
            let _ = t.write_all(&batch);
            conns.push(t);
        }
        std::thread::sleep(Duration::from_secs(3));
        drop(conns);
    });
    let peak = common::peak_rss_kib(pid);
    eprintln!("peak RSS under pipelined READs: {before} KiB before, {peak} KiB after");
    // 8 connections × (4 MiB queued + one 1 MiB READ) is the bound
    assert!(
        peak < before + 64 * 1024,
        "peak RSS went from {before} KiB to {peak} KiB under pipelined READs"
    );
    let log = wait_for_log(&s.log, "connection limit reached", Duration::from_secs(5));
    assert!(log.contains("8 per client"), "{log}");
    // the server still serves a legitimate client
    client(&s.lan, "bob", async move || {
        let mut c = mount(&export, 1000, 1000).await;
        let host = lookup(&mut c, "etc/hostname").await.unwrap();
        assert_eq!(read(&mut c, &host).await.unwrap(), b"client\n");
    });
}

#[test]
fn a_forged_chaddr_takes_neither_mount_rights_nor_an_area() {
    if !root_or_skip("a_forged_chaddr_takes_neither_mount_rights_nor_an_area") {
        return;
    }
    let mut lan = common::netns::Lan::new(&[SERVER, ALICE, BOB, MALLORY]);
    let root = lan.path("nfsroot");
    let state = lan.path("state");
    make_tree(&root, false);
    let config = format!(
        "[tftp]\nenabled = false\n[nfs]\nroot = \"{}\"\nstate_dir = \"{}\"\nroot_squash = \"none\"\n",
        root.display(),
        state.display()
    );
    let (log, _) = start_server(&mut lan, "server", &config, &[]);
    wait_for_log(&log, "NFS listening", Duration::from_secs(5));
    let export = root.display().to_string();

    // mallory sends the 4011 REQUEST with alice's MAC from its own
    // address, naming that address as its ciaddr (as EDK2 does)
    lan.in_host("mallory", || {
        let mut c = common::Client::pxe(7);
        c.mac = [2, 0, 0, 0, 0, 0x0a];
        c.msg = dhcproto::v4::MessageType::Request;
        c.broadcast = false;
        c.ciaddr = "10.78.0.12".parse().unwrap();
        let s = std::net::UdpSocket::bind("0.0.0.0:4011").unwrap();
        s.send_to(&c.encode(), (SRV, 4011)).unwrap();
    });
    wait_for_log(
        &log,
        "but 02:00:00:00:00:0c is known at that address",
        Duration::from_secs(5),
    );
    let e = export.clone();
    let refused = client(&lan, "mallory", async move || {
        Nfs3ConnectionBuilder::new(TokioConnector, SRV, e)
            .mount()
            .await
            .is_err()
    });
    assert!(refused, "a forged chaddr gave mallory mount rights");

    // alice boots for real and writes her area
    pxe_request(&lan, "alice", [2, 0, 0, 0, 0, 0x0a]);
    let e = export.clone();
    client(&lan, "alice", async move || {
        let mut c = mount(&e, 0, 0).await;
        let adj = lookup(&mut c, "var/clients/myself/adjtime").await.unwrap();
        write(&mut c, &adj, b"alice's clock").await.unwrap();
    });
    // mallory boots as itself: it may mount, but its area is its own
    pxe_request(&lan, "mallory", [2, 0, 0, 0, 0, 0x0c]);
    let e = export.clone();
    client(&lan, "mallory", async move || {
        let mut c = mount(&e, 0, 0).await;
        let adj = lookup(&mut c, "var/clients/myself/adjtime").await.unwrap();
        assert_eq!(read(&mut c, &adj).await.unwrap(), b"0.0 0 0\n");
        write(&mut c, &adj, b"mallory was here").await.unwrap();
    });
    let areas = state.join("clients");
    assert_eq!(
        std::fs::read(areas.join("02-00-00-00-00-0a/adjtime")).unwrap(),
        b"alice's clock"
    );
    assert_eq!(
        std::fs::read(areas.join("02-00-00-00-00-0c/adjtime")).unwrap(),
        b"mallory was here"
    );
}

#[test]
fn a_dhcp_flood_does_not_unlearn_booted_clients() {
    if !root_or_skip("a_dhcp_flood_does_not_unlearn_booted_clients") {
        return;
    }
    let mut lan = common::netns::Lan::new(&[SERVER, ALICE, MALLORY]);
    let root = lan.path("nfsroot");
    let state = lan.path("state");
    make_tree(&root, false);
    let config = format!(
        "[tftp]\nenabled = false\n[nfs]\nroot = \"{}\"\nstate_dir = \"{}\"\n",
        root.display(),
        state.display()
    );
    let (log, _) = start_server(&mut lan, "server", &config, &[]);
    wait_for_log(&log, "NFS listening", Duration::from_secs(5));
    let export = root.display().to_string();
    pxe_request(&lan, "alice", [2, 0, 0, 0, 0, 0x0a]);
    let e = export.clone();
    let held = client(&lan, "alice", async move || {
        let mut c = mount(&e, 1000, 1000).await;
        lookup(&mut c, "etc/hostname").await.unwrap()
    });
    // 6,000 DISCOVERs and 4011 REQUESTs from random MACs (the table held
    // 4,096 and was wiped when full)
    let pid = lan.pid("pxe-sidecar");
    lan.in_host("mallory", || {
        common::send_frames((0..6000u32).map(|i| {
            let mut c = common::Client::pxe(0);
            let b = i.to_be_bytes();
            c.mac = [2, 0x66, b[0], b[1], b[2], b[3]];
            c.xid = i;
            common::discover_frame(&c)
        }));
        let u = std::net::UdpSocket::bind("0.0.0.0:4011").unwrap();
        for i in 0..6000u32 {
            let mut c = common::Client::pxe(7);
            let b = i.to_be_bytes();
            c.mac = [2, 0x77, b[0], b[1], b[2], b[3]];
            c.msg = dhcproto::v4::MessageType::Request;
            c.ciaddr = "10.78.0.12".parse().unwrap();
            let _ = u.send_to(&c.encode(), (SRV, 4011));
        }
        std::thread::sleep(Duration::from_secs(1));
    });
    assert!(common::peak_rss_kib(pid) < 64 * 1024);
    let e = export.clone();
    client(&lan, "alice", async move || {
        // the mounted client keeps its handles and mounts again
        let mut c = mount(&e, 1000, 1000).await;
        assert!(getattr(&mut c, &held).await.is_ok());
        let host = lookup(&mut c, "etc/hostname").await.unwrap();
        assert_eq!(read(&mut c, &host).await.unwrap(), b"client\n");
    });
}

/// `CapPrm` and `CapBnd` of every thread of a process, by thread name.
fn thread_caps(pid: i32) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
                .unwrap_or(u64::MAX)
        };
        let name = status
            .lines()
            .find_map(|l| l.strip_prefix("Name:"))
            .unwrap_or("")
            .trim()
            .to_string();
        out.push((name, field("CapPrm:"), field("CapBnd:")));
    }
    out
}

#[test]
fn only_the_nfs_threads_keep_file_powers_and_no_thread_keeps_more() {
    if !root_or_skip("only_the_nfs_threads_keep_file_powers_and_no_thread_keeps_more") {
        return;
    }
    let s = setup(false, "allow = [\"10.78.0.0/24\"]");
    let export = s.root.display().to_string();
    client(&s.lan, "alice", async move || {
        let mut c = mount(&export, 1000, 1000).await;
        lookup(&mut c, "etc/hostname").await.unwrap();
    });
    // capability numbers: CHOWN 0, DAC_OVERRIDE 1, DAC_READ_SEARCH 2,
    // FOWNER 3, FSETID 4, SETGID 6, SETUID 7, NET_BIND_SERVICE 10,
    // NET_ADMIN 12, NET_RAW 13
    let nfs: u64 = 0b1101_1111;
    let all = nfs | 1 << 10 | 1 << 12 | 1 << 13;
    let threads = thread_caps(s.lan.pid("pxe-sidecar"));
    assert!(threads.iter().any(|(n, ..)| n == "nfs"), "{threads:?}");
    for (name, prm, bnd) in &threads {
        assert_eq!(*bnd, all, "{name}: bounding set {bnd:#x}");
        let want = if name == "nfs" { nfs } else { 0 };
        assert_eq!(*prm, want, "{name}: permitted {prm:#x}, expected {want:#x}");
    }
    let log = std::fs::read_to_string(&s.log).unwrap();
    assert!(log.contains("DHCP/TFTP/HTTP: no capabilities"), "{log}");
}
