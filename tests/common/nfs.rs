//! NFS test clients on a namespace LAN: a server with a small client tree,
//! and `nfs3_client` helpers for what needs exact control (credentials,
//! handles). Shared by the NFS door's tests and the hostile-peer tests.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nfs3_client::Nfs3ConnectionBuilder;
use nfs3_client::nfs3_types::nfs3::*;
use nfs3_client::nfs3_types::rpc::{auth_unix, opaque_auth};
use nfs3_client::nfs3_types::xdr_codec::Opaque;
use nfs3_client::tokio::{TokioConnector, TokioIo};

use super::netns::{Lan, start_server, wait_for_log};

pub const SERVER: (&str, &str, Option<&str>) =
    ("server", "02:00:00:00:00:02", Some("10.78.0.2/24"));
pub const ALICE: (&str, &str, Option<&str>) = ("alice", "02:00:00:00:00:0a", Some("10.78.0.10/24"));
pub const BOB: (&str, &str, Option<&str>) = ("bob", "02:00:00:00:00:0b", Some("10.78.0.11/24"));
pub const SRV: &str = "10.78.0.2";
pub const MANY: usize = 5000;

pub type Conn = nfs3_client::Nfs3Connection<TokioIo<tokio::net::TcpStream>>;

pub struct Setup {
    pub lan: Lan,
    pub root: PathBuf,
    pub state: PathBuf,
    pub log: PathBuf,
}

pub fn sh(cmd: &str) {
    let ok = std::process::Command::new("sh")
        .args(["-c", cmd])
        .status()
        .unwrap()
        .success();
    assert!(ok, "{cmd}");
}

/// A small client tree: what a prepared Debian root looks like to NFS.
pub fn make_tree(root: &Path, big: bool) {
    for d in [
        "bin",
        "etc",
        "dev",
        "many",
        "home/user",
        "var/clients/template",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("bin/sh"), b"#!binary").unwrap();
    std::fs::write(root.join("bin/su"), b"setuid binary").unwrap();
    std::fs::write(root.join("etc/shadow"), b"root:*:19000::::::\n").unwrap();
    std::fs::write(root.join("etc/hostname"), b"client\n").unwrap();
    std::fs::write(root.join("var/clients/template/adjtime"), b"0.0 0 0\n").unwrap();
    std::os::unix::fs::symlink("clients/myself", root.join("var/myself")).unwrap();
    std::os::unix::fs::symlink("/var/myself/adjtime", root.join("etc/adjtime")).unwrap();
    let r = root.display();
    sh(&format!(
        "chmod 755 {r}/bin/sh && chmod 4755 {r}/bin/su && chown 0:42 {r}/etc/shadow && chmod 640 {r}/etc/shadow \
         && mknod {r}/dev/null c 1 3 && mknod {r}/dev/sda b 8 0 && mkfifo {r}/dev/initctl \
         && chown 1000:1000 {r}/home/user && chmod 1777 {r}/var/clients/template"
    ));
    for i in 0..MANY {
        std::fs::write(root.join(format!("many/f{i:05}")), b"").unwrap();
    }
    if big {
        // 3 bytes past a MiB boundary: the last READ reply needs XDR padding.
        std::fs::write(root.join("big"), super::pseudo_random((200 << 20) + 3, 11)).unwrap();
    }
}

pub fn setup(big: bool, nfs_extra: &str) -> Setup {
    let mut lan = Lan::new(&[SERVER, ALICE, BOB]);
    let root = lan.path("nfsroot");
    let state = lan.path("state");
    make_tree(&root, big);
    let config = format!(
        "[tftp]\nenabled = false\n[nfs]\nroot = \"{}\"\nstate_dir = \"{}\"\n{nfs_extra}\n",
        root.display(),
        state.display()
    );
    let (log, _) = start_server(&mut lan, "server", &config, &[]);
    wait_for_log(&log, "NFS listening", Duration::from_secs(5));
    Setup {
        lan,
        root,
        state,
        log,
    }
}

/// Makes a client a PXE client of ours: a REQUEST to 4011 from its address
/// (the server learns IP → MAC and answers it).
pub fn pxe_request(lan: &Lan, host: &str, mac: [u8; 6]) {
    lan.in_host(host, move || {
        let mut c = super::Client::pxe(7);
        c.mac = mac;
        c.msg = dhcproto::v4::MessageType::Request;
        c.broadcast = false;
        let s = UdpSocket::bind("0.0.0.0:4011").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.send_to(&c.encode(), (SRV, 4011)).unwrap();
        let mut buf = [0u8; 1500];
        s.recv_from(&mut buf).expect("a 4011 ACK");
    });
}

pub fn cred(uid: u32, gid: u32) -> opaque_auth<'static> {
    opaque_auth::auth_unix(&auth_unix {
        stamp: 1,
        machinename: Opaque::owned(b"client".to_vec()),
        uid,
        gid,
        gids: vec![gid],
    })
}

/// Runs an async client body inside a host's namespace.
pub fn client<T: Send + 'static>(
    lan: &Lan,
    host: &str,
    f: impl AsyncFnOnce() -> T + Send + 'static,
) -> T {
    lan.in_host(host, move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f())
    })
}

pub async fn mount(export: &str, uid: u32, gid: u32) -> Conn {
    Nfs3ConnectionBuilder::new(TokioConnector, SRV, export)
        .credential(cred(uid, gid))
        .mount()
        .await
        .expect("MOUNT")
}

pub async fn lookup(c: &mut Conn, path: &str) -> Result<nfs_fh3, nfsstat3> {
    let mut fh = c.root_nfs_fh3();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        let args = LOOKUP3args {
            what: diropargs3 {
                dir: fh,
                name: filename3(Opaque::owned(part.as_bytes().to_vec())),
            },
        };
        fh = match c.lookup(&args).await.unwrap() {
            Nfs3Result::Ok(ok) => ok.object,
            Nfs3Result::Err((e, _)) => return Err(e),
        };
    }
    Ok(fh)
}

pub async fn getattr(c: &mut Conn, fh: &nfs_fh3) -> Result<fattr3, nfsstat3> {
    match c
        .getattr(&GETATTR3args { object: fh.clone() })
        .await
        .unwrap()
    {
        Nfs3Result::Ok(ok) => Ok(ok.obj_attributes),
        Nfs3Result::Err((e, _)) => Err(e),
    }
}

pub async fn read(c: &mut Conn, fh: &nfs_fh3) -> Result<Vec<u8>, nfsstat3> {
    let args = READ3args {
        file: fh.clone(),
        offset: 0,
        count: 65536,
    };
    match c.read(&args).await.unwrap() {
        Nfs3Result::Ok(ok) => Ok(ok.data.to_vec()),
        Nfs3Result::Err((e, _)) => Err(e),
    }
}

pub async fn create(c: &mut Conn, dir: &nfs_fh3, name: &str) -> Result<nfs_fh3, nfsstat3> {
    let args = CREATE3args {
        where_: diropargs3 {
            dir: dir.clone(),
            name: filename3(Opaque::owned(name.as_bytes().to_vec())),
        },
        how: createhow3::UNCHECKED(sattr3::default()),
    };
    match c.create(&args).await.unwrap() {
        Nfs3Result::Ok(ok) => match ok.obj {
            Nfs3Option::Some(fh) => Ok(fh),
            Nfs3Option::None => Err(nfsstat3::NFS3ERR_SERVERFAULT),
        },
        Nfs3Result::Err((e, _)) => Err(e),
    }
}

pub async fn write(c: &mut Conn, fh: &nfs_fh3, data: &[u8]) -> Result<(), nfsstat3> {
    let args = WRITE3args {
        file: fh.clone(),
        offset: 0,
        count: data.len() as u32,
        stable: stable_how::FILE_SYNC,
        data: Opaque::owned(data.to_vec()),
    };
    match c.write(&args).await.unwrap() {
        Nfs3Result::Ok(_) => Ok(()),
        Nfs3Result::Err((e, _)) => Err(e),
    }
}

/// All names of a directory through plain READDIR, page by page.
pub async fn readdir_all(c: &mut Conn, dir: &nfs_fh3) -> Vec<String> {
    let (mut cookie, mut verf, mut names) = (0, cookieverf3::default(), Vec::new());
    loop {
        let args = READDIR3args {
            dir: dir.clone(),
            cookie,
            cookieverf: verf,
            count: 4096,
        };
        let ok = c.readdir(&args).await.unwrap().unwrap();
        verf = ok.cookieverf;
        for e in &ok.reply.entries.0 {
            names.push(String::from_utf8_lossy(&e.name.0).into_owned());
            cookie = e.cookie;
        }
        if ok.reply.eof {
            return names;
        }
        assert!(names.len() <= MANY + 10, "READDIR does not end");
    }
}

/// All names through READDIRPLUS, checking every entry carries a handle.
pub async fn readdirplus_all(c: &mut Conn, dir: &nfs_fh3) -> Vec<String> {
    let (mut cookie, mut verf, mut names) = (0, cookieverf3::default(), Vec::new());
    loop {
        let args = READDIRPLUS3args {
            dir: dir.clone(),
            cookie,
            cookieverf: verf,
            dircount: 8192,
            maxcount: 32768,
        };
        let ok = c.readdirplus(&args).await.unwrap().unwrap();
        verf = ok.cookieverf;
        for e in &ok.reply.entries.0 {
            assert!(matches!(e.name_handle, Nfs3Option::Some(_)));
            names.push(String::from_utf8_lossy(&e.name.0).into_owned());
            cookie = e.cookie;
        }
        if ok.reply.eof {
            return names;
        }
        assert!(names.len() <= MANY + 10, "READDIRPLUS does not end");
    }
}
