//! The NFS door on a namespace LAN, with real userspace clients: Debian's
//! libnfs-utils (`nfs-ls`, `nfs-cp`, via the portmapper on 111) and the
//! `nfs3_client` crate for what needs exact control (credentials, handles).

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::netns::{require, root_or_skip, start_server, wait_for_log};
use common::nfs::*;
use nfs3_client::Nfs3ConnectionBuilder;
use nfs3_client::nfs3_types::nfs3::*;
use nfs3_client::nfs3_types::xdr_codec::Opaque;
use nfs3_client::tokio::TokioConnector;
use sha2::{Digest, Sha256};

fn sha_of(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn libnfs_clients_list_read_and_see_true_modes() {
    if !root_or_skip("libnfs_clients_list_read_and_see_true_modes") {
        return;
    }
    require("nfs-ls");
    let s = setup(true, "allow = [\"10.78.0.0/24\"]");
    let export = s.root.display().to_string();

    // 5,000 entries through libnfs (READDIRPLUS), found via the portmapper
    let out = s
        .lan
        .exec("alice", &["nfs-ls", &format!("nfs://{SRV}{export}/many")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "nfs-ls: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|n| n.starts_with('f'))
        .collect();
    assert_eq!(names.len(), MANY, "nfs-ls listed {} entries", names.len());

    // modes, setuid bits and device nodes as they are on disk
    let out = s
        .lan
        .exec("alice", &["nfs-ls", &format!("nfs://{SRV}{export}/dev")]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = |name: &str| {
        text.lines()
            .find(|l| l.ends_with(&format!(" {name}")))
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
            .to_string()
    };
    assert!(line("null").starts_with('c'), "{text}");
    assert!(line("sda").starts_with('b'), "{text}");
    // (nfs-ls prints no type letter for a FIFO; the typed check is in
    // readdir_permissions_read_only_root_and_bad_handles)
    assert!(line("initctl").contains("rw-r--r--"), "{text}");
    let out = s
        .lan
        .exec("alice", &["nfs-ls", &format!("nfs://{SRV}{export}/bin")]);
    let text = String::from_utf8_lossy(&out.stdout);
    // nfs-ls prints only the rwx bits; the setuid bit itself is checked
    // through GETATTR in readdir_permissions_read_only_root_and_bad_handles
    assert!(
        text.lines()
            .any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with(" su")),
        "{text}"
    );

    // 200 MiB by sha256
    let dst = s.lan.path("big.copy");
    let out = s.lan.exec(
        "alice",
        &[
            "nfs-cp",
            &format!("nfs://{SRV}{export}/big"),
            &dst.display().to_string(),
        ],
    );
    assert!(
        out.status.success(),
        "nfs-cp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        sha_of(&std::fs::read(&dst).unwrap()),
        sha_of(&std::fs::read(s.root.join("big")).unwrap())
    );
    let log = std::fs::read_to_string(&s.log).unwrap();
    assert!(log.contains(&format!("MOUNT {export}/many from")), "{log}");
}

#[test]
fn readdir_permissions_read_only_root_and_bad_handles() {
    if !root_or_skip("readdir_permissions_read_only_root_and_bad_handles") {
        return;
    }
    let s = setup(false, "allow = [\"10.78.0.0/24\"]");
    let export = s.root.display().to_string();
    let e = export.clone();
    client(&s.lan, "alice", async move || {
        let mut c = mount(&e, 1000, 1000).await;
        let many = lookup(&mut c, "many").await.unwrap();
        let plain = readdir_all(&mut c, &many).await;
        assert_eq!(plain.len(), MANY, "READDIR");
        let mut sorted = plain.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), MANY, "READDIR repeated entries");
        assert_eq!(
            readdirplus_all(&mut c, &many).await.len(),
            MANY,
            "READDIRPLUS"
        );

        // a user cannot read /etc/shadow; can read /etc/hostname
        let shadow = lookup(&mut c, "etc/shadow").await.unwrap();
        assert_eq!(read(&mut c, &shadow).await, Err(nfsstat3::NFS3ERR_ACCES));
        let hostname = lookup(&mut c, "etc/hostname").await.unwrap();
        assert_eq!(read(&mut c, &hostname).await.unwrap(), b"client\n");
        let a = c
            .access(&ACCESS3args {
                object: shadow.clone(),
                access: ACCESS3_READ,
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.access, 0, "ACCESS grants READ on shadow to a user");
        let sh = lookup(&mut c, "bin/sh").await.unwrap();
        let a = c
            .access(&ACCESS3args {
                object: sh,
                access: ACCESS3_READ | ACCESS3_EXECUTE | ACCESS3_MODIFY,
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            a.access,
            ACCESS3_READ | ACCESS3_EXECUTE,
            "init must stay executable"
        );

        // device numbers and types as on disk
        for (path, t, rdev) in [
            ("dev/null", ftype3::NF3CHR, (1, 3)),
            ("dev/sda", ftype3::NF3BLK, (8, 0)),
            ("dev/initctl", ftype3::NF3FIFO, (0, 0)),
        ] {
            let fh = lookup(&mut c, path).await.unwrap();
            let a = getattr(&mut c, &fh).await.unwrap();
            assert_eq!(a.type_, t, "{path}");
            assert_eq!((a.rdev.specdata1, a.rdev.specdata2), rdev, "{path}");
        }
        let su = lookup(&mut c, "bin/su").await.unwrap();
        assert_eq!(getattr(&mut c, &su).await.unwrap().mode, 0o4755);

        // the shared tree is read-only, even for writes a mode would allow
        let root = c.root_nfs_fh3();
        assert_eq!(
            create(&mut c, &root, "x").await,
            Err(nfsstat3::NFS3ERR_ROFS)
        );
        assert_eq!(
            write(&mut c, &hostname, b"x").await,
            Err(nfsstat3::NFS3ERR_ROFS)
        );
        // /home is writable: the user writes its own home, not others'
        let home = lookup(&mut c, "home/user").await.unwrap();
        let f = create(&mut c, &home, "notes").await.unwrap();
        write(&mut c, &f, b"mine").await.unwrap();
        let homes = lookup(&mut c, "home").await.unwrap();
        assert_eq!(
            create(&mut c, &homes, "evil").await,
            Err(nfsstat3::NFS3ERR_ACCES)
        );
        let attr = getattr(&mut c, &f).await.unwrap();
        assert_eq!(
            (attr.uid, attr.gid),
            (1000, 1000),
            "created with the caller's ids"
        );

        // `..` at the export root stays at the root
        let up = lookup(&mut c, "..").await.unwrap();
        assert_eq!(up.data.to_vec(), root.data.to_vec());

        // forged and damaged handles
        let mut forged = shadow.data.to_vec();
        let n = forged.len();
        forged[n - 1] ^= 0x55;
        forged[n - 5] ^= 0x33;
        let forged = nfs_fh3 {
            data: Opaque::owned(forged),
        };
        assert!(matches!(
            getattr(&mut c, &forged).await,
            Err(nfsstat3::NFS3ERR_STALE | nfsstat3::NFS3ERR_BADHANDLE)
        ));
        let short = nfs_fh3 {
            data: Opaque::owned(shadow.data[..10].to_vec()),
        };
        assert_eq!(
            getattr(&mut c, &short).await.err(),
            Some(nfsstat3::NFS3ERR_BADHANDLE)
        );
        let mut old = shadow.data.to_vec();
        old[..8].copy_from_slice(&1u64.to_le_bytes());
        let old = nfs_fh3 {
            data: Opaque::owned(old),
        };
        assert_eq!(
            getattr(&mut c, &old).await.err(),
            Some(nfsstat3::NFS3ERR_STALE)
        );
    });
    assert_eq!(
        std::fs::read(s.root.join("home/user/notes")).unwrap(),
        b"mine"
    );

    // root is squashed by default: client root cannot read shadow either
    let e = export.clone();
    client(&s.lan, "alice", async move || {
        let mut c = mount(&e, 0, 0).await;
        let shadow = lookup(&mut c, "etc/shadow").await.unwrap();
        assert_eq!(read(&mut c, &shadow).await, Err(nfsstat3::NFS3ERR_ACCES));
    });
    // a client on no allowed subnet is refused at MOUNT
    drop(s);
    let s = setup(false, "allow = [\"10.99.0.0/24\"]");
    let e = s.root.display().to_string();
    let refused = client(&s.lan, "alice", async move || {
        Nfs3ConnectionBuilder::new(TokioConnector, SRV, e)
            .credential(cred(0, 0))
            .mount()
            .await
            .is_err()
    });
    assert!(refused, "MOUNT from a client outside [nfs] allow succeeded");
    wait_for_log(&s.log, "NFS refused 10.78.0.10", Duration::from_secs(5));
}

#[test]
fn each_client_sees_only_its_own_area() {
    if !root_or_skip("each_client_sees_only_its_own_area") {
        return;
    }
    let s = setup(false, "root_squash = \"none\"");
    let export = s.root.display().to_string();
    // allow = ["pxe"] (the default): first the clients PXE-boot through us
    let e = export.clone();
    let refused = client(&s.lan, "alice", async move || {
        Nfs3ConnectionBuilder::new(TokioConnector, SRV, e)
            .mount()
            .await
            .is_err()
    });
    assert!(refused, "a client that never PXE-booted through us mounted");
    pxe_request(&s.lan, "alice", [2, 0, 0, 0, 0, 0x0a]);
    pxe_request(&s.lan, "bob", [2, 0, 0, 0, 0, 0x0b]);

    let e = export.clone();
    let alice_area = client(&s.lan, "alice", async move || {
        let mut c = mount(&e, 0, 0).await;
        // /etc/adjtime -> /var/myself/adjtime -> clients/myself/adjtime
        let link = lookup(&mut c, "etc/adjtime").await.unwrap();
        let target = c
            .readlink(&READLINK3args { symlink: link })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&target.data.0[..], b"/var/myself/adjtime");
        let adj = lookup(&mut c, "var/clients/myself/adjtime").await.unwrap();
        assert_eq!(
            read(&mut c, &adj).await.unwrap(),
            b"0.0 0 0\n",
            "seeded from the template"
        );
        write(&mut c, &adj, b"alice's clock").await.unwrap();
        let clients = lookup(&mut c, "var/clients").await.unwrap();
        assert_eq!(readdir_all(&mut c, &clients).await, vec!["myself"]);
        assert_eq!(
            lookup(&mut c, "var/clients/template").await,
            Err(nfsstat3::NFS3ERR_NOENT)
        );
        assert_eq!(
            lookup(&mut c, "var/clients/02-00-00-00-00-0b").await,
            Err(nfsstat3::NFS3ERR_NOENT)
        );
        // `..` from the area leads back to /var/clients, not the state dir
        let area = lookup(&mut c, "var/clients/myself").await.unwrap();
        let up = lookup(&mut c, "var/clients/myself/..").await.unwrap();
        assert_eq!(up.data.to_vec(), clients.data.to_vec());
        area.data.to_vec()
    });
    let e = export.clone();
    client(&s.lan, "bob", async move || {
        let mut c = mount(&e, 0, 0).await;
        let adj = lookup(&mut c, "var/myself/adjtime").await;
        // var/myself is a symlink: the client resolves it; do it by hand
        assert!(adj.is_err());
        let adj = lookup(&mut c, "var/clients/myself/adjtime").await.unwrap();
        assert_eq!(
            read(&mut c, &adj).await.unwrap(),
            b"0.0 0 0\n",
            "bob sees alice's file"
        );
        // alice's area handle, replayed by bob
        let stolen = nfs_fh3 {
            data: Opaque::owned(alice_area),
        };
        assert_eq!(
            getattr(&mut c, &stolen).await.err(),
            Some(nfsstat3::NFS3ERR_ACCES)
        );
        assert_eq!(
            create(&mut c, &stolen, "x").await,
            Err(nfsstat3::NFS3ERR_ACCES)
        );
    });
    let areas = s.state.join("clients");
    assert_eq!(
        std::fs::read(areas.join("02-00-00-00-00-0a/adjtime")).unwrap(),
        b"alice's clock"
    );
    assert_eq!(
        std::fs::read(areas.join("02-00-00-00-00-0b/adjtime")).unwrap(),
        b"0.0 0 0\n"
    );
    let log = std::fs::read_to_string(&s.log).unwrap();
    assert!(log.contains("NFS new per-client area"), "{log}");
}

#[test]
fn a_restarted_server_keeps_serving_a_mounted_client() {
    if !root_or_skip("a_restarted_server_keeps_serving_a_mounted_client") {
        return;
    }
    let mut s = setup(false, "allow = [\"10.78.0.0/24\"]");
    let export = s.root.display().to_string();
    let e = export.clone();
    let (fh, port) = client(&s.lan, "alice", async move || {
        let mut c = mount(&e, 1000, 1000).await;
        let fh = lookup(&mut c, "many/f04999").await.unwrap();
        getattr(&mut c, &fh).await.unwrap();
        let host = lookup(&mut c, "etc/hostname").await.unwrap();
        (host.data.to_vec(), c.nfs3_port)
    });
    assert_eq!(port, 2049, "portmapper GETPORT for NFS");
    s.lan.stop("pxe-sidecar");
    let cfg = s.lan.path("pxe.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let (log, _) = start_server(&mut s.lan, "server", &text, &[]);
    wait_for_log(&log, "NFS listening", Duration::from_secs(5));
    let e = export.clone();
    client(&s.lan, "alice", async move || {
        // a fresh connection (as the kernel reconnects), the old handle
        let mut c = mount(&e, 1000, 1000).await;
        let old = nfs_fh3 {
            data: Opaque::owned(fh),
        };
        assert_eq!(read(&mut c, &old).await.unwrap(), b"client\n");
    });
    wait_for_log(&log, "NFS handle index rebuilt", Duration::from_secs(5));
}

#[test]
fn hostile_rpc_records_do_not_hurt_the_server() {
    if !root_or_skip("hostile_rpc_records_do_not_hurt_the_server") {
        return;
    }
    let s = setup(false, "allow = [\"10.78.0.0/24\"]");
    s.lan.in_host("alice", || {
        use std::io::Write;
        // a 2 GiB record header, a call whose gids claim 4 billion entries,
        // and random bytes: each on its own connection
        let mut huge = std::net::TcpStream::connect((SRV, 2049)).unwrap();
        huge.write_all(&0xffff_fff0u32.to_be_bytes()).unwrap();
        let mut call = Vec::new();
        for w in [7u32, 0, 2, 100_003, 3, 1, 1, 24, 1, 0, 0, 0, 0xffff_ffff] {
            call.extend_from_slice(&w.to_be_bytes());
        }
        let mut gids = std::net::TcpStream::connect((SRV, 2049)).unwrap();
        gids.write_all(&((call.len() as u32) | 0x8000_0000).to_be_bytes())
            .unwrap();
        gids.write_all(&call).unwrap();
        for seed in 0..50 {
            let junk = common::pseudo_random(200, seed);
            if let Ok(mut t) = std::net::TcpStream::connect((SRV, 2049)) {
                let _ = t.write_all(&junk);
            }
            let u = UdpSocket::bind("0.0.0.0:0").unwrap();
            let _ = u.send_to(&junk, (SRV, 111));
        }
        std::thread::sleep(Duration::from_millis(500));
    });
    let e = s.root.display().to_string();
    client(&s.lan, "alice", async move || {
        let mut c = mount(&e, 1000, 1000).await;
        lookup(&mut c, "etc/hostname").await.unwrap();
    });
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", s.lan.pid("pxe-sidecar"))).unwrap();
    let rss: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(rss < 200 * 1024, "peak RSS {rss} KiB after hostile records");
}
