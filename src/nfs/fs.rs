//! The file system an NFS client sees: the client tree read-only, its
//! writable subtrees (`/var`, `/home`), and at `/var/clients/myself` the
//! caller's own area, which lives outside the tree under the state dir.
//!
//! Every LAN peer may be hostile, so nothing here trusts a path:
//! - a handle names an object by (zone, inode, generation), sealed
//!   ([`handle`]); the index only *suggests* where it is, and every use
//!   reopens it beneath its zone's root descriptor (`openat2`
//!   `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`) and checks that the inode
//!   found is the handle's own (a symlink or another object swapped in at
//!   that path gets `NFS3ERR_STALE`);
//! - entries are created, removed and renamed with the `*at` calls relative
//!   to the directory's descriptor, never following a final symlink;
//! - each call runs with the caller's squashed uid, gid and groups as the
//!   thread's file-system identity ([`creds`]), so the kernel checks the
//!   permissions; the pure rules of [`super::policy`] decide the rest
//!   (read-only places, whose area, squashing, ACCESS answers).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use nfs3_server::caller;
use nfs3_server::nfs3_types::nfs3::{
    Nfs3Option, createverf3, fattr3, filename3, ftype3, nfspath3, nfsstat3, nfstime3, sattr3,
    set_atime, set_mtime, specdata3, stable_how,
};
use nfs3_server::nfs3_types::rpc::auth_unix;
use nfs3_server::nfs3_types::xdr_codec::{Pack, Unpack};
use nfs3_server::vfs::{
    DirEntryPlus, NextResult, NfsFileSystem, NfsReadFileSystem, ReadDirPlusIterator,
};
use tracing::{debug, info, warn};

use super::creds::{self, Ident};
use super::handle::{Fh, Id, Sealer, Zone};
use super::perm::{self, Cred, Owner};
use super::policy::{CLIENTS_DIR, Layout, MYSELF, Place, TEMPLATE};
use super::sys::{self, Stat};
use crate::clients::Clients;
use crate::config::{NfsAllow, NfsConfig, Squash};
use crate::event::{Door, Event, Kind, Level, emit};

/// Files kept open between READs.
const OPEN_FILES: usize = 64;
/// Directory descriptors kept (each LOOKUP, CREATE … starts from one).
const DIR_FDS: usize = 256;
/// Largest READ answered (the advertised rtmax).
const MAX_READ: u32 = 1024 * 1024;
/// Objects the handle index remembers; past it, entries are dropped (a
/// client whose handle was dropped gets it back from the next rebuild).
const MAX_INDEX: usize = 1 << 20;
/// At most one index rebuild in this time: a handle we sealed but no
/// longer know (restart, removed object) must not buy a tree walk each time.
const REBUILD_EVERY: Duration = Duration::from_secs(30);
/// How long attributes seen on disk answer GETATTR/ACCESS without a new
/// look: changes made by other programs on the server show within this
/// time. Operations on the object itself always reopen it.
const ATTR_TTL: Duration = Duration::from_secs(1);

/// What the index knows of an object: where it is (relative to its zone's
/// root), and its attributes as last seen.
#[derive(Debug, Clone)]
struct Node {
    rel: PathBuf,
    seen: Option<(Stat, Instant)>,
}

/// An index that knows only the export's root (where every walk starts).
fn index_of_root(root: Id) -> HashMap<Id, Node> {
    HashMap::from([(
        root,
        Node {
            rel: PathBuf::new(),
            seen: None,
        },
    )])
}

/// A handle resolved for one call.
struct Obj {
    id: Id,
    rel: PathBuf,
    st: Stat,
    place: Place,
}

/// Who is calling, resolved once per operation.
struct Who {
    ip: Option<Ipv4Addr>,
    auth: Option<Cred>,
}

/// One export zone: the directory descriptor everything in it is reached from.
struct ZoneRoot {
    fd: File,
    path: PathBuf,
}

pub struct RootFs {
    tree: ZoneRoot,
    areas: ZoneRoot,
    layout: Layout,
    allow: Vec<NfsAllow>,
    clients: Clients,
    sealer: Sealer,
    root_id: Id,
    /// The export's device: the fsid clients see, and the device whose
    /// inode numbers are file ids as they are.
    root_dev: u64,
    index: RwLock<HashMap<Id, Node>>,
    last_rebuild: Mutex<Option<Instant>>,
    refused: Mutex<HashMap<IpAddr, Instant>>,
    open_files: Mutex<HashMap<Id, (Arc<File>, Instant)>>,
    dir_fds: Mutex<HashMap<Id, (Arc<File>, Instant)>>,
}

/// Maps an I/O error to the NFS status a client understands.
pub fn status(e: &io::Error) -> nfsstat3 {
    use nfsstat3::*;
    match e.raw_os_error() {
        Some(libc::ENOENT) => NFS3ERR_NOENT,
        Some(libc::EACCES) => NFS3ERR_ACCES,
        Some(libc::EPERM) => NFS3ERR_PERM,
        Some(libc::EEXIST) => NFS3ERR_EXIST,
        Some(libc::ENOTDIR) => NFS3ERR_NOTDIR,
        Some(libc::EISDIR) => NFS3ERR_ISDIR,
        Some(libc::ENOTEMPTY) => NFS3ERR_NOTEMPTY,
        Some(libc::ENOSPC) => NFS3ERR_NOSPC,
        Some(libc::EROFS) => NFS3ERR_ROFS,
        Some(libc::EXDEV) => NFS3ERR_XDEV,
        Some(libc::ENAMETOOLONG) => NFS3ERR_NAMETOOLONG,
        Some(libc::EINVAL) => NFS3ERR_INVAL,
        Some(libc::EDQUOT) => NFS3ERR_DQUOT,
        Some(libc::EFBIG) => NFS3ERR_FBIG,
        Some(libc::EMLINK) => NFS3ERR_MLINK,
        // a symlink met where none may be followed: the object the handle
        // named is gone from there
        Some(libc::ELOOP) => NFS3ERR_STALE,
        _ => match e.kind() {
            io::ErrorKind::NotFound => NFS3ERR_NOENT,
            io::ErrorKind::PermissionDenied => NFS3ERR_ACCES,
            _ => NFS3ERR_IO,
        },
    }
}

fn io_status(e: io::Error) -> nfsstat3 {
    status(&e)
}

fn opt<T: Copy + Pack + Unpack>(o: &Nfs3Option<T>) -> Option<T> {
    match o {
        Nfs3Option::Some(v) => Some(*v),
        Nfs3Option::None => None,
    }
}

fn time3((sec, nsec): (i64, u32)) -> nfstime3 {
    nfstime3 {
        seconds: u32::try_from(sec).unwrap_or(0),
        nseconds: nsec,
    }
}

fn owner(st: &Stat) -> Owner {
    Owner {
        uid: st.uid,
        gid: st.gid,
        mode: st.perm(),
        is_dir: st.is_dir(),
    }
}

/// One name of a directory entry: not empty, no `/`, no NUL (RFC 1813 §3.3.3).
fn entry_name<'a>(name: &'a filename3<'_>) -> Result<&'a OsStr, nfsstat3> {
    let b: &[u8] = &name.0;
    if b.is_empty() || b.contains(&b'/') || b.contains(&0) {
        return Err(nfsstat3::NFS3ERR_INVAL);
    }
    if b.len() > 255 {
        return Err(nfsstat3::NFS3ERR_NAMETOOLONG);
    }
    Ok(OsStr::from_bytes(b))
}

/// A name that creates or names a removable entry: `.` and `..` are taken.
fn new_name<'a>(name: &'a filename3<'_>) -> Result<&'a OsStr, nfsstat3> {
    let n = entry_name(name)?;
    if n == "." || n == ".." {
        return Err(nfsstat3::NFS3ERR_EXIST);
    }
    Ok(n)
}

fn timespecs(atime: &set_atime, mtime: &set_mtime) -> [libc::timespec; 2] {
    fn spec(server: bool, client: Option<&nfstime3>) -> libc::timespec {
        match (server, client) {
            (true, _) => libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_NOW,
            },
            (false, Some(t)) => libc::timespec {
                tv_sec: libc::time_t::from(t.seconds),
                tv_nsec: libc::c_long::from(t.nseconds.min(999_999_999)),
            },
            (false, None) => libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            },
        }
    }
    let a = match atime {
        set_atime::DONT_CHANGE => spec(false, None),
        set_atime::SET_TO_SERVER_TIME => spec(true, None),
        set_atime::SET_TO_CLIENT_TIME(t) => spec(false, Some(t)),
    };
    let m = match mtime {
        set_mtime::DONT_CHANGE => spec(false, None),
        set_mtime::SET_TO_SERVER_TIME => spec(true, None),
        set_mtime::SET_TO_CLIENT_TIME(t) => spec(false, Some(t)),
    };
    [a, m]
}

fn ident(c: &Cred) -> Ident {
    Ident {
        uid: c.uid,
        gid: c.gid,
        groups: c.gids.clone(),
    }
}

/// Acts as `who` on this thread; a thread that cannot switch serves nothing.
fn act(who: &Ident) -> Result<(), nfsstat3> {
    creds::act_as(who).map_err(|e| {
        warn!("NFS: {e}");
        nfsstat3::NFS3ERR_SERVERFAULT
    })
}

fn lru_insert(map: &mut HashMap<Id, (Arc<File>, Instant)>, cap: usize, id: Id, f: Arc<File>) {
    if map.len() >= cap && !map.contains_key(&id) {
        let oldest = map.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| *k);
        if let Some(k) = oldest {
            map.remove(&k);
        }
    }
    map.insert(id, (f, Instant::now()));
}

/// Copies a template tree into a new area (as the server), keeping modes
/// and owners; symlinks are copied as links, never followed.
fn copy_tree(from: &File, to: &File) -> io::Result<()> {
    let names = sys::list(sys::reopen(from, libc::O_RDONLY | libc::O_DIRECTORY)?)?;
    for name in names {
        let st = sys::stat_at(from, &name)?;
        if st.is_dir() {
            sys::mkdir_at(to, &name, 0o700)?;
            let src = sys::open_at(from, &name, libc::O_PATH | libc::O_DIRECTORY, 0)?;
            let dst = sys::open_at(to, &name, libc::O_PATH | libc::O_DIRECTORY, 0)?;
            copy_tree(&src, &dst)?;
            sys::chown_fd(&dst, Some(st.uid), Some(st.gid))?;
            sys::chmod_fd(&dst, st.perm())?;
        } else if st.is_symlink() {
            let link = sys::open_at(from, &name, libc::O_PATH, 0)?;
            sys::symlink_at(&sys::readlink_fd(&link)?, to, &name)?;
            let made = sys::open_at(to, &name, libc::O_PATH, 0)?;
            sys::chown_fd(&made, Some(st.uid), Some(st.gid))?;
        } else if st.is_file() {
            let src = sys::open_at(from, &name, libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
            let mut dst = sys::open_at(
                to,
                &name,
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                0o600,
            )?;
            io::copy(&mut &src, &mut dst)?;
            sys::chown_fd(&dst, Some(st.uid), Some(st.gid))?;
            sys::chmod_fd(&dst, st.perm())?;
        }
    }
    Ok(())
}

impl RootFs {
    /// Opens the exports named by `[nfs]`; the root must exist.
    pub fn new(cfg: &NfsConfig, clients: Clients) -> io::Result<RootFs> {
        creds::act_as(&Ident::server())?;
        let root = std::fs::canonicalize(&cfg.root)?;
        let tree = File::open(&root)?;
        let st = sys::fstat(&tree)?;
        if !st.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a directory",
            ));
        }
        let tree = sys::reopen(&tree, libc::O_PATH | libc::O_DIRECTORY)?;
        let areas_path = cfg.state_dir.join("clients");
        std::fs::create_dir_all(&areas_path)?;
        let areas_path = std::fs::canonicalize(&areas_path)?;
        let areas = File::open(&areas_path)?;
        // every client walks through it to its own area
        sys::chmod_fd(&areas, 0o711)?;
        let root_id = Id::of(Zone::Tree, &st);
        Ok(RootFs {
            layout: Layout {
                writable: cfg.writable.clone(),
                squash: cfg.root_squash,
                names: cfg.names.clone(),
            },
            allow: cfg.allow.clone(),
            clients,
            sealer: Sealer::load(&cfg.state_dir)?,
            root_id,
            root_dev: st.dev,
            index: RwLock::new(index_of_root(root_id)),
            last_rebuild: Mutex::new(None),
            refused: Mutex::new(HashMap::new()),
            open_files: Mutex::new(HashMap::new()),
            dir_fds: Mutex::new(HashMap::new()),
            tree: ZoneRoot {
                fd: tree,
                path: root,
            },
            areas: ZoneRoot {
                fd: sys::reopen(&areas, libc::O_PATH | libc::O_DIRECTORY)?,
                path: areas_path,
            },
        })
    }

    fn zone(&self, z: Zone) -> &ZoneRoot {
        match z {
            Zone::Tree => &self.tree,
            Zone::Areas => &self.areas,
        }
    }

    fn who(&self) -> Who {
        let c = caller::current().unwrap_or_default();
        let ip = match c.addr.map(|a| a.ip()) {
            Some(IpAddr::V4(v4)) => Some(v4),
            Some(IpAddr::V6(v6)) => v6.to_ipv4_mapped(),
            None => None,
        };
        let auth = c.auth.map(|a: auth_unix| Cred {
            uid: a.uid,
            gid: a.gid,
            gids: a.gids.into_iter().take(16).collect(),
        });
        Who { ip, auth }
    }

    /// Reports an event about the caller (its address, and its MAC if known).
    fn say(&self, who: &Who, kind: Kind, level: Level, text: String) {
        let mac = who.ip.and_then(|ip| self.clients.mac(ip));
        emit(
            Event::new(Door::Nfs, kind, level, text)
                .mac(mac)
                .ip(who.ip.map(IpAddr::V4)),
        );
    }

    /// The caller's address as log lines show it.
    fn from(who: &Who) -> String {
        who.ip.map_or_else(|| "-".to_string(), |ip| ip.to_string())
    }

    /// The id of the caller's per-client area, if we know who it is.
    fn area_of(&self, who: &Who) -> Option<String> {
        self.layout
            .area_id(who.ip.and_then(|ip| self.clients.identify(ip)))
    }

    /// Whether a caller may use the door at all (`[nfs] allow`).
    fn admits(&self, ip: Option<Ipv4Addr>) -> bool {
        let Some(ip) = ip else { return false };
        let via_us = self.allow.contains(&NfsAllow::Pxe) && self.clients.booted_via_us(ip);
        if self.allow.iter().any(|a| a.admits(ip, via_us)) {
            return true;
        }
        // one line per client and minute: a refused client retries a lot
        let mut seen = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if seen.len() >= 1024 {
            seen.retain(|_, t| now.duration_since(*t).as_secs() < 60);
        }
        let last = seen.get(&IpAddr::V4(ip)).copied();
        if last.is_none_or(|t| now.duration_since(t).as_secs() >= 60) && seen.len() < 1024 {
            seen.insert(IpAddr::V4(ip), now);
            drop(seen);
            let who = Who {
                ip: Some(ip),
                auth: None,
            };
            self.say(
                &who,
                Kind::NfsRefused,
                Level::Warn,
                format!("NFS refused {ip}: not allowed by [nfs] allow (it did not PXE-boot through us, or its address and MAC do not match what the LAN shows, and it is on no listed subnet)"),
            );
        }
        false
    }

    fn remember(&self, id: Id, rel: PathBuf, st: &Stat) {
        let node = Node {
            rel,
            seen: Some((*st, Instant::now())),
        };
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        if index.len() >= MAX_INDEX && !index.contains_key(&id) {
            // drop an eighth, keeping the root: bounded whatever a client creates
            let drop: Vec<Id> = index
                .keys()
                .filter(|k| **k != self.root_id)
                .take(MAX_INDEX / 8)
                .copied()
                .collect();
            for k in drop {
                index.remove(&k);
            }
        }
        index.insert(id, node);
    }

    /// Drops the remembered attributes of objects we just changed.
    fn stale(&self, ids: &[Id]) {
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            if let Some(n) = index.get_mut(id) {
                n.seen = None;
            }
        }
    }

    /// Forgets an object that is gone (removed, renamed over, replaced).
    fn forget(&self, id: Id) {
        if id == self.root_id {
            return;
        }
        self.index
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        self.open_files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        self.dir_fds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// Walks both zones once (as the server, never following a symlink),
    /// indexing every object; at most once per [`REBUILD_EVERY`].
    fn rebuild_index(&self) -> bool {
        {
            let mut last = self.last_rebuild.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < REBUILD_EVERY) {
                return false;
            }
            *last = Some(Instant::now());
        }
        if creds::act_as(&Ident::server()).is_err() {
            return false;
        }
        let start = Instant::now();
        let mut found = index_of_root(self.root_id);
        for zone in [Zone::Tree, Zone::Areas] {
            let mut stack = vec![PathBuf::new()];
            while let Some(rel) = stack.pop() {
                let Ok(dir) =
                    sys::open_beneath(&self.zone(zone).fd, &rel, libc::O_PATH | libc::O_DIRECTORY)
                else {
                    continue;
                };
                let Ok(names) =
                    sys::reopen(&dir, libc::O_RDONLY | libc::O_DIRECTORY).and_then(sys::list)
                else {
                    continue;
                };
                for name in names {
                    if found.len() >= MAX_INDEX {
                        break;
                    }
                    let Ok(st) = sys::stat_at(&dir, &name) else {
                        continue;
                    };
                    let child = rel.join(&name);
                    if st.is_dir() {
                        stack.push(child.clone());
                    }
                    found.insert(
                        Id::of(zone, &st),
                        Node {
                            rel: child,
                            seen: None,
                        },
                    );
                }
            }
        }
        let n = found.len();
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = found;
        info!(
            "NFS handle index rebuilt: {n} objects in {} ms",
            start.elapsed().as_millis()
        );
        true
    }

    fn node(&self, id: &Id) -> Option<Node> {
        self.index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Opens the object `id` at `rel` beneath its zone with `flags` and
    /// checks that it is that very object.
    fn open_obj(&self, id: Id, rel: &Path, flags: libc::c_int) -> Result<(File, Stat), nfsstat3> {
        let f = sys::open_beneath(&self.zone(id.zone).fd, rel, flags).map_err(|e| {
            match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ELOOP) | Some(libc::ENOTDIR)
                | Some(libc::EXDEV) => nfsstat3::NFS3ERR_STALE,
                _ => status(&e),
            }
        })?;
        let st = sys::fstat(&f).map_err(io_status)?;
        if Id::of(id.zone, &st) != id {
            return Err(nfsstat3::NFS3ERR_STALE);
        }
        Ok((f, st))
    }

    /// The object a handle names, as the caller, checked against the
    /// caller's area. Attributes may come from the index (≤ [`ATTR_TTL`]).
    fn resolve(&self, fh: &Fh, who: &Who) -> Result<Obj, nfsstat3> {
        let Some(id) = self.sealer.open(fh) else {
            debug!("NFS: a handle we never made (forged or from another server): STALE");
            return Err(nfsstat3::NFS3ERR_STALE);
        };
        let node = match self.node(&id) {
            Some(n) => n,
            None => {
                if !self.rebuild_index() {
                    return Err(nfsstat3::NFS3ERR_STALE);
                }
                self.node(&id).ok_or(nfsstat3::NFS3ERR_STALE)?
            }
        };
        let place = self.layout.place(id.zone, &node.rel);
        self.check_area(&place, who)?;
        let st = match node.seen {
            Some((st, at)) if at.elapsed() < ATTR_TTL => st,
            _ => {
                act(&Ident::server())?;
                match self.open_obj(id, &node.rel, libc::O_PATH) {
                    Ok((_, st)) => {
                        self.remember(id, node.rel.clone(), &st);
                        st
                    }
                    Err(e) => {
                        if e == nfsstat3::NFS3ERR_STALE {
                            self.forget(id);
                        }
                        return Err(e);
                    }
                }
            }
        };
        Ok(Obj {
            id,
            rel: node.rel,
            st,
            place,
        })
    }

    fn check_area(&self, place: &Place, who: &Who) -> Result<(), nfsstat3> {
        if let Place::Area(id) = place {
            let mine = self.area_of(who);
            if mine.as_deref() != Some(id.as_str()) {
                let from = Self::from(who);
                let mine = mine.map_or_else(
                    || "unknown (not identified)".to_string(),
                    |m| format!("{m:?}"),
                );
                self.say(
                    who,
                    Kind::NfsRefused,
                    Level::Warn,
                    format!(
                        "NFS refused {from}: handle of client area {id:?}, caller's area is {mine}"
                    ),
                );
                return Err(nfsstat3::NFS3ERR_ACCES);
            }
        }
        Ok(())
    }

    /// The caller's credential at `place`, now acted as by this thread.
    fn act_for(&self, who: &Who, place: &Place) -> Result<Cred, nfsstat3> {
        let cred = self.layout.cred(who.auth.as_ref(), place);
        act(&ident(&cred))?;
        Ok(cred)
    }

    fn writable(place: &Place) -> Result<(), nfsstat3> {
        match place {
            Place::Tree(false) => Err(nfsstat3::NFS3ERR_ROFS),
            _ => Ok(()),
        }
    }

    fn is_clients_dir(&self, o: &Obj) -> bool {
        o.id.zone == Zone::Tree && o.rel == Path::new(CLIENTS_DIR)
    }

    /// A descriptor (O_PATH) of a directory object, kept across calls.
    fn dir_fd(&self, o: &Obj) -> Result<Arc<File>, nfsstat3> {
        if !o.st.is_dir() {
            return Err(nfsstat3::NFS3ERR_NOTDIR);
        }
        if let Some((f, used)) = self
            .dir_fds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&o.id)
        {
            *used = Instant::now();
            return Ok(f.clone());
        }
        let (f, _) = self.open_obj(o.id, &o.rel, libc::O_PATH | libc::O_DIRECTORY)?;
        let f = Arc::new(f);
        lru_insert(
            &mut self.dir_fds.lock().unwrap_or_else(|e| e.into_inner()),
            DIR_FDS,
            o.id,
            f.clone(),
        );
        Ok(f)
    }

    /// The handle of the caller's own area (remembered in the index),
    /// created from the template, as the server, on first use.
    fn my_area(&self, who: &Who) -> Result<(Fh, Stat), nfsstat3> {
        let Some(area) = self.area_of(who) else {
            let from = Self::from(who);
            self.say(
                who,
                Kind::NfsRefused,
                Level::Warn,
                format!("NFS refused {from} its per-client area: the LAN does not show which machine it is (no neighbour entry matching a PXE client)"),
            );
            return Err(nfsstat3::NFS3ERR_ACCES);
        };
        act(&Ident::server())?;
        let name = OsStr::new(&area);
        let st = match sys::stat_at(&self.areas.fd, name) {
            Ok(st) if st.is_dir() => st,
            _ => self.new_area(who, &area)?,
        };
        let id = Id::of(Zone::Areas, &st);
        self.remember(id, PathBuf::from(&area), &st);
        Ok((self.sealer.seal(id), st))
    }

    /// Makes the caller's area `area` and reports it.
    fn new_area(&self, who: &Who, area: &str) -> Result<Stat, nfsstat3> {
        self.make_area(area).map_err(|e| {
            warn!("NFS: creating per-client area {area:?}: {e}");
            io_status(e)
        })?;
        let from = Self::from(who);
        let made = self.areas.path.join(area);
        self.say(
            who,
            Kind::NfsArea,
            Level::Info,
            format!("NFS new per-client area {} for {from}", made.display()),
        );
        sys::stat_at(&self.areas.fd, OsStr::new(area)).map_err(io_status)
    }

    fn make_area(&self, area: &str) -> io::Result<()> {
        let tmp = OsString::from(format!(".new-{area}"));
        // a half-made area from a crash: remove what we made (only files
        // and directories, never following links)
        if let Ok(old) = sys::open_at(&self.areas.fd, &tmp, libc::O_PATH | libc::O_DIRECTORY, 0) {
            remove_tree(&old)?;
            sys::unlink_at(&self.areas.fd, &tmp, true)?;
        }
        sys::mkdir_at(&self.areas.fd, &tmp, 0o700)?;
        let dir = sys::open_at(&self.areas.fd, &tmp, libc::O_PATH | libc::O_DIRECTORY, 0)?;
        let template = sys::open_beneath(
            &self.tree.fd,
            Path::new(TEMPLATE),
            libc::O_PATH | libc::O_DIRECTORY,
        )
        .ok();
        if let Some(t) = &template {
            copy_tree(t, &dir)?;
        }
        // squashed root writes here as nobody: give it the area then
        let squashed = self.layout.squash != Squash::None;
        let (uid, gid) = if squashed {
            (perm::NOBODY, perm::NOBODY)
        } else {
            template
                .as_ref()
                .and_then(|t| sys::fstat(t).ok())
                .map_or((0, 0), |st| (st.uid, st.gid))
        };
        sys::chown_fd(&dir, Some(uid), Some(gid))?;
        if squashed {
            let names = sys::list(sys::reopen(&dir, libc::O_RDONLY | libc::O_DIRECTORY)?)?;
            for n in names {
                let e = sys::open_at(&dir, &n, libc::O_PATH, 0)?;
                sys::chown_fd(&e, Some(uid), Some(gid))?;
            }
        }
        sys::chmod_fd(&dir, 0o755)?;
        sys::rename_at(&self.areas.fd, &tmp, &self.areas.fd, OsStr::new(area))
    }

    pub fn attr(&self, st: &Stat) -> fattr3 {
        let type_ = match st.kind() {
            libc::S_IFDIR => ftype3::NF3DIR,
            libc::S_IFLNK => ftype3::NF3LNK,
            libc::S_IFBLK => ftype3::NF3BLK,
            libc::S_IFCHR => ftype3::NF3CHR,
            libc::S_IFIFO => ftype3::NF3FIFO,
            libc::S_IFSOCK => ftype3::NF3SOCK,
            _ => ftype3::NF3REG,
        };
        // one file system to the client: file ids from other devices (the
        // state dir) are mixed with their device so they stay unique
        let fileid = if st.dev == self.root_dev {
            st.ino
        } else {
            st.ino ^ st.dev.rotate_left(40) ^ 0x8000_0000_0000_0000
        };
        fattr3 {
            type_,
            mode: st.perm(),
            nlink: st.nlink,
            uid: st.uid,
            gid: st.gid,
            size: st.size,
            used: st.blocks.saturating_mul(512),
            rdev: specdata3 {
                specdata1: st.rdev.0,
                specdata2: st.rdev.1,
            },
            fsid: self.root_dev,
            fileid,
            atime: time3(st.atime),
            mtime: time3(st.mtime),
            ctime: time3(st.ctime),
        }
    }

    /// A directory the caller may change, with its descriptor; as the caller.
    fn changeable_dir(&self, fh: &Fh, who: &Who) -> Result<(Obj, Arc<File>, Cred), nfsstat3> {
        let d = self.resolve(fh, who)?;
        if !d.st.is_dir() {
            return Err(nfsstat3::NFS3ERR_NOTDIR);
        }
        if self.is_clients_dir(&d) {
            return Err(nfsstat3::NFS3ERR_ACCES);
        }
        Self::writable(&d.place)?;
        let fd = self.dir_fd(&d)?;
        let cred = self.act_for(who, &d.place)?;
        Ok((d, fd, cred))
    }

    /// Remembers the entry `name` of directory `d` and returns its handle.
    fn entry(&self, d: &Obj, dir: &File, name: &OsStr) -> Result<(Fh, Stat), nfsstat3> {
        let st = sys::stat_at(dir, name).map_err(io_status)?;
        let id = Id::of(d.id.zone, &st);
        self.remember(id, d.rel.join(name), &st);
        Ok((self.sealer.seal(id), st))
    }

    fn do_lookup(&self, dirfh: &Fh, name: &filename3<'_>) -> Result<Fh, nfsstat3> {
        let who = self.who();
        let d = self.resolve(dirfh, &who)?;
        if !d.st.is_dir() {
            return Err(nfsstat3::NFS3ERR_NOTDIR);
        }
        let name = entry_name(name)?;
        if name == "." {
            return Ok(*dirfh);
        }
        if name == ".." {
            return self.parent(&d, &who);
        }
        if self.is_clients_dir(&d) {
            if name != MYSELF {
                return Err(nfsstat3::NFS3ERR_NOENT);
            }
            return self.my_area(&who).map(|(fh, _)| fh);
        }
        let fd = self.dir_fd(&d)?;
        self.act_for(&who, &d.place)?;
        self.entry(&d, &fd, name).map(|(fh, _)| fh)
    }

    /// `..`: never above the export, and an area's parent is /var/clients.
    fn parent(&self, d: &Obj, who: &Who) -> Result<Fh, nfsstat3> {
        let (zone, rel) = match d.id.zone {
            Zone::Tree if d.rel.as_os_str().is_empty() => return Ok(self.sealer.seal(d.id)),
            Zone::Areas if d.rel.components().count() <= 1 => {
                (Zone::Tree, PathBuf::from(CLIENTS_DIR))
            }
            z => (z, d.rel.parent().map(Path::to_path_buf).unwrap_or_default()),
        };
        self.act_for(who, &self.layout.place(zone, &rel))?;
        let f = sys::open_beneath(&self.zone(zone).fd, &rel, libc::O_PATH | libc::O_DIRECTORY)
            .map_err(io_status)?;
        let st = sys::fstat(&f).map_err(io_status)?;
        let id = Id::of(zone, &st);
        self.remember(id, rel, &st);
        Ok(self.sealer.seal(id))
    }

    /// The directory's names in a stable order, read as the caller.
    fn listing(&self, dirfh: &Fh) -> Result<(Obj, Arc<File>, Vec<OsString>), nfsstat3> {
        let who = self.who();
        let d = self.resolve(dirfh, &who)?;
        let fd = self.dir_fd(&d)?;
        self.act_for(&who, &d.place)?;
        if self.is_clients_dir(&d) {
            return Ok((d, fd, vec![MYSELF.into()]));
        }
        let dir = sys::reopen(&*fd, libc::O_RDONLY | libc::O_DIRECTORY).map_err(io_status)?;
        let mut names = sys::list(dir).map_err(io_status)?;
        names.sort_unstable();
        Ok((d, fd, names))
    }

    /// An open file for reading, kept across READ calls: a client reads a
    /// kernel or a 1 GiB image in 1 MiB pieces. Opened as the caller; a
    /// file whose mode grants only execute is opened as the server (a
    /// client that may run a binary must page it in, as knfsd allows).
    fn open_for_read(&self, o: &Obj, cred: &Cred) -> Result<Arc<File>, nfsstat3> {
        let mut open = self.open_files.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((f, used)) = open.get_mut(&o.id) {
            *used = Instant::now();
            return Ok(f.clone());
        }
        let flags = libc::O_RDONLY | libc::O_NONBLOCK;
        let f = match self.open_obj(o.id, &o.rel, flags) {
            Err(nfsstat3::NFS3ERR_ACCES) if perm::may_read_file(owner(&o.st), cred) => {
                act(&Ident::server())?;
                self.open_obj(o.id, &o.rel, flags)?.0
            }
            r => r?.0,
        };
        let f = Arc::new(f);
        lru_insert(&mut open, OPEN_FILES, o.id, f.clone());
        Ok(f)
    }

    /// The file opened for writing as the caller; its owner may write a
    /// file it made read-only after creating it (knfsd's owner override:
    /// `cp -p`, tar and git create 0444 files and then write them).
    fn open_for_write(
        &self,
        id: Id,
        rel: &Path,
        owner_uid: u32,
        cred: &Cred,
    ) -> Result<File, nfsstat3> {
        let flags = libc::O_WRONLY | libc::O_NONBLOCK;
        match self.open_obj(id, rel, flags) {
            Err(nfsstat3::NFS3ERR_ACCES) if cred.uid == owner_uid => {
                act(&Ident::server())?;
                Ok(self.open_obj(id, rel, flags)?.0)
            }
            r => Ok(r?.0),
        }
    }
}

/// Removes everything inside a directory we made (never following a link).
fn remove_tree(dir: &File) -> io::Result<()> {
    for name in sys::list(sys::reopen(dir, libc::O_RDONLY | libc::O_DIRECTORY)?)? {
        let st = sys::stat_at(dir, &name)?;
        if st.is_dir() {
            let sub = sys::open_at(dir, &name, libc::O_PATH | libc::O_DIRECTORY, 0)?;
            remove_tree(&sub)?;
        }
        sys::unlink_at(dir, &name, st.is_dir())?;
    }
    Ok(())
}

/// READDIR(PLUS) pages: entries in name order, cookie = position + 1, so a
/// client resuming at any cookie gets the rest (RFC 1813 §3.3.16).
pub struct Listing<'a> {
    fs: &'a RootFs,
    dir: Obj,
    fd: Arc<File>,
    names: std::vec::IntoIter<OsString>,
    cookie: u64,
}

impl ReadDirPlusIterator<Fh> for Listing<'_> {
    async fn next(&mut self) -> NextResult<DirEntryPlus<Fh>> {
        let who = self.fs.who();
        loop {
            let Some(name) = self.names.next() else {
                return NextResult::Eof;
            };
            self.cookie += 1;
            let (fh, st) = if self.fs.is_clients_dir(&self.dir) {
                // the one virtual entry: the caller's own area
                match self.fs.my_area(&who) {
                    Ok(x) => x,
                    Err(e) => return NextResult::Err(e),
                }
            } else {
                if let Err(e) = self.fs.act_for(&who, &self.dir.place) {
                    return NextResult::Err(e);
                }
                match self.fs.entry(&self.dir, &self.fd, &name) {
                    Ok(x) => x,
                    // gone since the listing was taken
                    Err(_) => continue,
                }
            };
            let attr = self.fs.attr(&st);
            return NextResult::Ok(DirEntryPlus {
                fileid: attr.fileid,
                name: filename3::from(name.into_vec()),
                cookie: self.cookie,
                name_attributes: Some(attr),
                name_handle: Some(fh),
            });
        }
    }
}

impl NfsReadFileSystem for RootFs {
    type Handle = Fh;

    fn root_dir(&self) -> Fh {
        self.sealer.seal(self.root_id)
    }

    fn authorize(&self, _auth: Option<&auth_unix>) -> bool {
        self.admits(self.who().ip)
    }

    async fn access(&self, id: &Fh, requested: u32) -> u32 {
        let who = self.who();
        let Ok(o) = self.resolve(id, &who) else {
            return 0;
        };
        let cred = self.layout.cred(who.auth.as_ref(), &o.place);
        let writable = o.place != Place::Tree(false) && !self.is_clients_dir(&o);
        perm::access3(owner(&o.st), &cred, writable, requested)
    }

    async fn lookup(&self, dirid: &Fh, filename: &filename3<'_>) -> Result<Fh, nfsstat3> {
        self.do_lookup(dirid, filename)
    }

    async fn lookup_by_path(&self, path: &str) -> Result<Fh, nfsstat3> {
        let who = self.who();
        let mut fh = self.root_dir();
        let mut result = Ok(());
        for part in path.split('/').filter(|c| !c.is_empty()) {
            match self.do_lookup(&fh, &part.as_bytes().into()) {
                Ok(next) => fh = next,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let shown = self.tree.path.join(path.trim_start_matches('/'));
        let from = Self::from(&who);
        match result {
            Ok(()) => {
                if let Some(ip) = who.ip {
                    self.clients.mounted(ip);
                }
                self.say(
                    &who,
                    Kind::Mount,
                    Level::Info,
                    format!("MOUNT {} from {from}", shown.display()),
                );
                Ok(fh)
            }
            Err(e) => {
                self.say(
                    &who,
                    Kind::NfsRefused,
                    Level::Warn,
                    format!("MOUNT {} from {from} refused: {e:?}", shown.display()),
                );
                Err(e)
            }
        }
    }

    async fn getattr(&self, id: &Fh) -> Result<fattr3, nfsstat3> {
        let who = self.who();
        let o = self.resolve(id, &who)?;
        Ok(self.attr(&o.st))
    }

    async fn read(&self, id: &Fh, offset: u64, count: u32) -> Result<(Vec<u8>, bool), nfsstat3> {
        let who = self.who();
        let o = self.resolve(id, &who)?;
        if o.st.is_dir() {
            return Err(nfsstat3::NFS3ERR_ISDIR);
        }
        if !o.st.is_file() {
            return Err(nfsstat3::NFS3ERR_INVAL);
        }
        let cred = self.act_for(&who, &o.place)?;
        if !perm::may_read_file(owner(&o.st), &cred) {
            return Err(nfsstat3::NFS3ERR_ACCES);
        }
        let f = self.open_for_read(&o, &cred)?;
        let size = f.metadata().map_err(io_status)?.len();
        let want = u64::from(count.min(MAX_READ)).min(size.saturating_sub(offset));
        let buf =
            sys::read_at(&f, usize::try_from(want).unwrap_or(0), offset).map_err(|e| status(&e))?;
        let end = offset + buf.len() as u64;
        Ok((buf, end >= size))
    }

    async fn readdirplus(
        &self,
        dirid: &Fh,
        cookie: u64,
    ) -> Result<impl ReadDirPlusIterator<Fh>, nfsstat3> {
        let (dir, fd, names) = self.listing(dirid)?;
        let skip = usize::try_from(cookie).unwrap_or(usize::MAX);
        let names: Vec<OsString> = names.into_iter().skip(skip).collect();
        Ok(Listing {
            fs: self,
            dir,
            fd,
            names: names.into_iter(),
            cookie,
        })
    }

    async fn readlink(&self, id: &Fh) -> Result<nfspath3<'_>, nfsstat3> {
        let who = self.who();
        let o = self.resolve(id, &who)?;
        if !o.st.is_symlink() {
            return Err(nfsstat3::NFS3ERR_INVAL);
        }
        self.act_for(&who, &o.place)?;
        let (f, _) = self.open_obj(o.id, &o.rel, libc::O_PATH)?;
        let target = sys::readlink_fd(&f).map_err(io_status)?;
        Ok(nfspath3::from(target))
    }
}

impl NfsFileSystem for RootFs {
    async fn setattr(&self, id: &Fh, s: sattr3) -> Result<fattr3, nfsstat3> {
        let who = self.who();
        let o = self.resolve(id, &who)?;
        Self::writable(&o.place)?;
        if self.is_clients_dir(&o) {
            return Err(nfsstat3::NFS3ERR_ACCES);
        }
        let cred = self.act_for(&who, &o.place)?;
        let (f, st) = self.open_obj(o.id, &o.rel, libc::O_PATH)?;
        if let Some(size) = opt(&s.size) {
            if st.is_dir() {
                return Err(nfsstat3::NFS3ERR_ISDIR);
            }
            if !st.is_file() {
                return Err(nfsstat3::NFS3ERR_INVAL);
            }
            let w = self.open_for_write(o.id, &o.rel, st.uid, &cred)?;
            w.set_len(size).map_err(io_status)?;
            act(&ident(&cred))?;
        }
        let any_time = !matches!(s.atime, set_atime::DONT_CHANGE)
            || !matches!(s.mtime, set_mtime::DONT_CHANGE);
        if any_time && !st.is_symlink() {
            sys::utimens_fd(&f, &timespecs(&s.atime, &s.mtime)).map_err(io_status)?;
        }
        let (uid, gid) = (opt(&s.uid), opt(&s.gid));
        if uid.is_some() || gid.is_some() {
            sys::chown_fd(&f, uid, gid).map_err(io_status)?;
        }
        if let Some(mode) = opt(&s.mode)
            && !st.is_symlink()
        {
            sys::chmod_fd(&f, mode & 0o7777).map_err(io_status)?;
        }
        let st = sys::fstat(&f).map_err(io_status)?;
        self.remember(o.id, o.rel, &st);
        Ok(self.attr(&st))
    }

    async fn write(
        &self,
        id: &Fh,
        offset: u64,
        data: &[u8],
        stable: stable_how,
    ) -> Result<(fattr3, stable_how), nfsstat3> {
        let who = self.who();
        let o = self.resolve(id, &who)?;
        Self::writable(&o.place)?;
        if o.st.is_dir() {
            return Err(nfsstat3::NFS3ERR_ISDIR);
        }
        if !o.st.is_file() {
            return Err(nfsstat3::NFS3ERR_INVAL);
        }
        let cred = self.act_for(&who, &o.place)?;
        let f = self.open_for_write(o.id, &o.rel, o.st.uid, &cred)?;
        f.write_all_at(data, offset).map_err(io_status)?;
        if stable != stable_how::UNSTABLE {
            f.sync_data().map_err(io_status)?;
        }
        let st = sys::fstat(&f).map_err(io_status)?;
        self.remember(o.id, o.rel, &st);
        Ok((self.attr(&st), stable))
    }

    async fn create(
        &self,
        dirid: &Fh,
        filename: &filename3<'_>,
        attr: sattr3,
    ) -> Result<(Fh, fattr3), nfsstat3> {
        let who = self.who();
        let (d, dir, _) = self.changeable_dir(dirid, &who)?;
        let name = new_name(filename)?;
        let mode = opt(&attr.mode).map_or(0o644, |m| m & 0o7777);
        match sys::open_at(
            &*dir,
            name,
            libc::O_RDONLY | libc::O_CREAT | libc::O_EXCL,
            mode,
        ) {
            // the process umask applied: set the mode asked for
            Ok(f) => sys::chmod_fd(&f, mode).map_err(io_status)?,
            // UNCHECKED: an existing file is fine (GUARDED was refused
            // before we were called), anything else is not
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let st = sys::stat_at(&*dir, name).map_err(io_status)?;
                if !st.is_file() {
                    return Err(nfsstat3::NFS3ERR_EXIST);
                }
            }
            Err(e) => return Err(status(&e)),
        }
        self.stale(&[d.id]);
        let (fh, _) = self.entry(&d, &dir, name)?;
        let rest = sattr3 {
            mode: Nfs3Option::None,
            ..attr
        };
        let a = self.setattr(&fh, rest).await?;
        Ok((fh, a))
    }

    async fn create_exclusive(
        &self,
        dirid: &Fh,
        filename: &filename3<'_>,
        verf: createverf3,
    ) -> Result<Fh, nfsstat3> {
        let who = self.who();
        let (d, dir, _) = self.changeable_dir(dirid, &who)?;
        let name = new_name(filename)?;
        // RFC 1813 §3.3.8: the verifier is kept in the times (as knfsd does)
        // so that a retransmitted EXCLUSIVE CREATE succeeds again
        let (a, b) = verf.0.split_at(4);
        let atime = u32::from_be_bytes(a.try_into().unwrap_or_default());
        let mtime = u32::from_be_bytes(b.try_into().unwrap_or_default());
        match sys::open_at(
            &*dir,
            name,
            libc::O_RDONLY | libc::O_CREAT | libc::O_EXCL,
            0o600,
        ) {
            Ok(f) => {
                let t = |s: u32| libc::timespec {
                    tv_sec: libc::time_t::from(s),
                    tv_nsec: 0,
                };
                sys::utimens_fd(&f, &[t(atime), t(mtime)]).map_err(io_status)?;
            }
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let st = sys::stat_at(&*dir, name).map_err(io_status)?;
                let same = u32::try_from(st.atime.0).ok() == Some(atime)
                    && u32::try_from(st.mtime.0).ok() == Some(mtime);
                if !same || !st.is_file() {
                    return Err(nfsstat3::NFS3ERR_EXIST);
                }
            }
            Err(e) => return Err(status(&e)),
        }
        self.stale(&[d.id]);
        self.entry(&d, &dir, name).map(|(fh, _)| fh)
    }

    async fn mkdir(&self, dirid: &Fh, dirname: &filename3<'_>) -> Result<(Fh, fattr3), nfsstat3> {
        let who = self.who();
        let (d, dir, _) = self.changeable_dir(dirid, &who)?;
        let name = new_name(dirname)?;
        sys::mkdir_at(&*dir, name, 0o755).map_err(io_status)?;
        self.stale(&[d.id]);
        // the process umask applied; the kernel passed a setgid parent's
        // setgid bit on, which stays
        let made =
            sys::open_at(&*dir, name, libc::O_PATH | libc::O_DIRECTORY, 0).map_err(io_status)?;
        let st = sys::fstat(&made).map_err(io_status)?;
        sys::chmod_fd(&made, 0o755 | (st.perm() & 0o2000)).map_err(io_status)?;
        let (fh, st) = self.entry(&d, &dir, name)?;
        Ok((fh, self.attr(&st)))
    }

    async fn remove(&self, dirid: &Fh, filename: &filename3<'_>) -> Result<(), nfsstat3> {
        let who = self.who();
        let (d, dir, _) = self.changeable_dir(dirid, &who)?;
        let name = new_name(filename)?;
        let rel = d.rel.join(name);
        if self.layout.holds_areas(d.id.zone, &rel) {
            return Err(nfsstat3::NFS3ERR_ACCES);
        }
        let st = sys::stat_at(&*dir, name).map_err(io_status)?;
        sys::unlink_at(&*dir, name, st.is_dir()).map_err(io_status)?;
        let id = Id::of(d.id.zone, &st);
        if st.is_dir() || st.nlink <= 1 {
            self.forget(id);
        } else {
            self.stale(&[id]);
        }
        self.stale(&[d.id]);
        Ok(())
    }

    async fn rename<'a>(
        &self,
        from_dirid: &Fh,
        from_filename: &filename3<'a>,
        to_dirid: &Fh,
        to_filename: &filename3<'a>,
    ) -> Result<(), nfsstat3> {
        let who = self.who();
        let (fd, fdir, _) = self.changeable_dir(from_dirid, &who)?;
        let (td, tdir, _) = self.changeable_dir(to_dirid, &who)?;
        if fd.place != td.place || fd.id.zone != td.id.zone {
            return Err(nfsstat3::NFS3ERR_XDEV);
        }
        let (from_name, to_name) = (new_name(from_filename)?, new_name(to_filename)?);
        let (from, to) = (fd.rel.join(from_name), td.rel.join(to_name));
        if self.layout.holds_areas(fd.id.zone, &from) || self.layout.holds_areas(td.id.zone, &to) {
            return Err(nfsstat3::NFS3ERR_ACCES);
        }
        self.act_for(&who, &fd.place)?;
        let moved = sys::stat_at(&*fdir, from_name).map_err(io_status)?;
        let replaced = sys::stat_at(&*tdir, to_name).ok();
        sys::rename_at(&*fdir, from_name, &*tdir, to_name).map_err(io_status)?;
        // the object renamed over is gone from here (or from everywhere)
        if let Some(old) = replaced {
            let old_id = Id::of(td.id.zone, &old);
            if old_id != Id::of(fd.id.zone, &moved) {
                self.forget(old_id);
            }
        }
        // every remembered path under the old name moves with it
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        for (id, n) in index.iter_mut() {
            if id.zone != fd.id.zone {
                continue;
            }
            if let Ok(rest) = n.rel.strip_prefix(&from) {
                n.rel = if rest.as_os_str().is_empty() {
                    to.clone()
                } else {
                    to.join(rest)
                };
                n.seen = None;
            }
        }
        for dir in [fd.id, td.id] {
            if let Some(n) = index.get_mut(&dir) {
                n.seen = None;
            }
        }
        Ok(())
    }

    async fn symlink<'a>(
        &self,
        dirid: &Fh,
        linkname: &filename3<'a>,
        symlink: &nfspath3<'a>,
        _attr: &sattr3,
    ) -> Result<(Fh, fattr3), nfsstat3> {
        let who = self.who();
        let (d, dir, _) = self.changeable_dir(dirid, &who)?;
        let name = new_name(linkname)?;
        let target: &[u8] = &symlink.0;
        if target.is_empty() || target.contains(&0) || target.len() > 4096 {
            return Err(nfsstat3::NFS3ERR_INVAL);
        }
        sys::symlink_at(target, &*dir, name).map_err(io_status)?;
        self.stale(&[d.id]);
        let (fh, st) = self.entry(&d, &dir, name)?;
        Ok((fh, self.attr(&st)))
    }

    async fn commit(&self, id: &Fh, _offset: u64, _count: u32) -> Result<(), nfsstat3> {
        let who = self.who();
        let o = self.resolve(id, &who)?;
        Self::writable(&o.place)?;
        if !o.st.is_file() {
            return Ok(());
        }
        // flushing what the caller wrote needs no access of its own
        act(&Ident::server())?;
        let (f, _) = self.open_obj(o.id, &o.rel, libc::O_RDONLY | libc::O_NONBLOCK)?;
        f.sync_all().map_err(io_status)
    }
}
