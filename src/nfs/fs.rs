//! The file system an NFS client sees: the client tree read-only, its
//! writable subtrees (`/var`, `/home`), and at `/var/clients/myself` the
//! caller's own area, which lives outside the tree under the state dir.
//!
//! File handles are (device, inode) pairs. The server remembers which path
//! each handle names; after a restart it rebuilds that index by walking the
//! exports once, so a client that mounted before the restart keeps working
//! (nfs3_server prefixes a persistent generation, see `nfs::generation`).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use nfs3_server::caller;
use nfs3_server::nfs3_types::nfs3::{
    Nfs3Option, createverf3, fattr3, filename3, ftype3, nfspath3, nfsstat3, nfstime3, sattr3,
    set_atime, set_mtime, specdata3, stable_how,
};
use nfs3_server::nfs3_types::rpc::auth_unix;
use nfs3_server::nfs3_types::xdr_codec::{Pack, Unpack};
use nfs3_server::vfs::{
    DirEntryPlus, FileHandle, NextResult, NfsFileSystem, NfsReadFileSystem, ReadDirPlusIterator,
};
use tracing::{info, warn};

use super::perm::{self, Cred, Owner};
use crate::clients::Clients;
use crate::config::{NfsAllow, NfsConfig, Squash};
use crate::mac::Mac;

/// Name of the caller's own area inside `/var/clients`.
pub const MYSELF: &str = "myself";
/// Where the per-client areas appear in the client's tree.
pub const CLIENTS_DIR: &str = "var/clients";
/// Seed for new per-client areas (hidden from clients), see `rootfs prepare`.
pub const TEMPLATE: &str = "var/clients/template";
/// Files kept open between READs.
const OPEN_FILES: usize = 64;
/// Largest READ answered (the advertised rtmax).
const MAX_READ: u32 = 1024 * 1024;

/// A file handle: device and inode of the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fh([u8; 16]);

impl Fh {
    fn of(m: &Metadata) -> Fh {
        let mut b = [0; 16];
        b[..8].copy_from_slice(&m.dev().to_le_bytes());
        b[8..].copy_from_slice(&m.ino().to_le_bytes());
        Fh(b)
    }
}

impl FileHandle for Fh {
    fn len(&self) -> usize {
        16
    }
    fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    fn from_bytes(bytes: &[u8]) -> Option<Fh> {
        bytes.try_into().ok().map(Fh)
    }
}

/// Where a path lies, which decides what may be done there.
#[derive(Debug, PartialEq, Eq)]
enum Place {
    /// The shared tree; `true` inside a writable subtree.
    Tree(bool),
    /// A per-client area, by owner id.
    Area(String),
}

/// What the index knows of a handle: its path, and its attributes as last
/// seen (trusted for [`ATTR_TTL`]; our own changes drop them at once).
#[derive(Debug, Clone)]
struct Node {
    path: PathBuf,
    seen: Option<(Metadata, Instant)>,
}

/// How long attributes seen on disk are served without a new stat: changes
/// made by other programs on the server show within this time.
const ATTR_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Who is calling, resolved once per operation.
struct Who {
    ip: Option<Ipv4Addr>,
    auth: Option<Cred>,
}

pub struct RootFs {
    root: PathBuf,
    clients_dir: PathBuf,
    template: PathBuf,
    areas: PathBuf,
    writable: Vec<PathBuf>,
    squash: Squash,
    allow: Vec<NfsAllow>,
    names: Vec<(Mac, String)>,
    clients: Clients,
    root_fh: Fh,
    root_dev: u64,
    index: RwLock<HashMap<Fh, Node>>,
    rescan: Mutex<()>,
    refused: Mutex<HashMap<IpAddr, Instant>>,
    open_files: Mutex<HashMap<Fh, (Arc<File>, Instant)>>,
}

/// Maps an I/O error to the NFS status a client understands.
pub fn status(e: &io::Error) -> nfsstat3 {
    use nfsstat3::*;
    match e.raw_os_error() {
        Some(libc::ENOENT) => NFS3ERR_NOENT,
        Some(libc::EACCES) | Some(libc::EPERM) => NFS3ERR_ACCES,
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
        _ => match e.kind() {
            io::ErrorKind::NotFound => NFS3ERR_NOENT,
            io::ErrorKind::PermissionDenied => NFS3ERR_ACCES,
            _ => NFS3ERR_IO,
        },
    }
}

fn opt<T: Copy + Pack + Unpack>(o: &Nfs3Option<T>) -> Option<T> {
    match o {
        Nfs3Option::Some(v) => Some(*v),
        Nfs3Option::None => None,
    }
}

/// What follows `base/` in `p` (empty for `base` itself), compared as bytes:
/// every path here is absolute and built by joining names, so this equals
/// `Path::starts_with` at a fraction of the cost (it runs on every call).
fn under<'a>(p: &'a Path, base: &Path) -> Option<&'a [u8]> {
    let (p, b) = (p.as_os_str().as_bytes(), base.as_os_str().as_bytes());
    let rest = p.strip_prefix(b)?;
    match rest.first() {
        None => Some(rest),
        Some(b'/') => Some(&rest[1..]),
        Some(_) => None,
    }
}

fn io_status(e: io::Error) -> nfsstat3 {
    status(&e)
}

fn time3(sec: i64, nsec: i64) -> nfstime3 {
    nfstime3 {
        seconds: u32::try_from(sec).unwrap_or(0),
        nseconds: u32::try_from(nsec).unwrap_or(0),
    }
}

fn owner(m: &Metadata) -> Owner {
    Owner {
        uid: m.uid(),
        gid: m.gid(),
        mode: m.mode() & 0o7777,
        is_dir: m.is_dir(),
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

/// A name that creates something: `.` and `..` are taken.
fn new_name<'a>(name: &'a filename3<'_>) -> Result<&'a OsStr, nfsstat3> {
    let n = entry_name(name)?;
    if n == "." || n == ".." {
        return Err(nfsstat3::NFS3ERR_EXIST);
    }
    Ok(n)
}

fn cstr(p: &Path) -> Result<std::ffi::CString, nfsstat3> {
    std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(|_| nfsstat3::NFS3ERR_INVAL)
}

fn lchown(p: &Path, uid: Option<u32>, gid: Option<u32>) -> Result<(), nfsstat3> {
    std::os::unix::fs::lchown(p, uid, gid).map_err(io_status)
}

/// Sets atime/mtime without following a final symlink.
fn set_times(p: &Path, atime: &set_atime, mtime: &set_mtime) -> Result<(), nfsstat3> {
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
    let c = cstr(p)?;
    let times = [a, m];
    // SAFETY: `c` is a valid C string and `times` two initialized timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(status(&io::Error::last_os_error()))
    }
}

/// Copies a template tree into a new area, keeping modes and owners.
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    for e in fs::read_dir(from)? {
        let e = e?;
        let m = e.metadata()?;
        let dst = to.join(e.file_name());
        if m.is_dir() {
            fs::create_dir(&dst)?;
            copy_tree(&e.path(), &dst)?;
        } else if m.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(e.path())?, &dst)?;
        } else if m.is_file() {
            fs::copy(e.path(), &dst)?;
        } else {
            continue;
        }
        std::os::unix::fs::lchown(&dst, Some(m.uid()), Some(m.gid()))?;
        if !m.file_type().is_symlink() {
            fs::set_permissions(&dst, fs::Permissions::from_mode(m.mode() & 0o7777))?;
        }
    }
    Ok(())
}

impl RootFs {
    /// Opens the exports named by `[nfs]`; the root must exist.
    pub fn new(cfg: &NfsConfig, clients: Clients) -> io::Result<RootFs> {
        let root = fs::canonicalize(&cfg.root)?;
        let meta = fs::metadata(&root)?;
        if !meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a directory",
            ));
        }
        let areas = cfg.state_dir.join("clients");
        fs::create_dir_all(&areas)?;
        let areas = fs::canonicalize(&areas)?;
        let fs = RootFs {
            clients_dir: root.join(CLIENTS_DIR),
            template: root.join(TEMPLATE),
            writable: cfg.writable.iter().map(|w| root.join(w)).collect(),
            squash: cfg.root_squash,
            allow: cfg.allow.clone(),
            names: cfg.names.clone(),
            clients,
            root_fh: Fh::of(&meta),
            root_dev: meta.dev(),
            index: RwLock::new(HashMap::from([(
                Fh::of(&meta),
                Node {
                    path: root.clone(),
                    seen: None,
                },
            )])),
            rescan: Mutex::new(()),
            refused: Mutex::new(HashMap::new()),
            open_files: Mutex::new(HashMap::new()),
            areas,
            root,
        };
        Ok(fs)
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

    /// The caller's address and MAC as log lines show them ("-" if unknown).
    fn shown(&self, who: &Who) -> (String, String) {
        match who.ip {
            Some(ip) => (ip.to_string(), self.clients.mac_of(IpAddr::V4(ip))),
            None => ("-".into(), "-".into()),
        }
    }

    /// The id of the caller's per-client area.
    fn area_of(&self, who: &Who) -> String {
        who.ip
            .map_or_else(|| "unknown".into(), |ip| self.area_id(ip))
    }

    /// The area id of a client: its `[[clients]] name`, else its MAC
    /// (`52-54-00-12-34-56`, as pxelinux names it), else `ip-<address>`.
    fn area_id(&self, ip: Ipv4Addr) -> String {
        match self.clients.mac(ip) {
            Some(mac) => self
                .names
                .iter()
                .find(|(m, _)| *m == mac)
                .map_or_else(|| mac.to_string().replace(':', "-"), |(_, n)| n.clone()),
            None => format!("ip-{ip}"),
        }
    }

    /// Whether a caller may use the door at all (`[nfs] allow`).
    fn admits(&self, ip: Option<Ipv4Addr>) -> bool {
        let Some(ip) = ip else { return false };
        let via_us = self.clients.booted_via_us(ip);
        if self.allow.iter().any(|a| a.admits(ip, via_us)) {
            return true;
        }
        // one line per client and minute: a refused client retries a lot
        let mut seen = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if seen.len() > 1024 {
            seen.clear();
        }
        let last = seen.insert(IpAddr::V4(ip), now);
        if last.is_none_or(|t| now.duration_since(t).as_secs() >= 60) {
            let mac = self.clients.mac_of(IpAddr::V4(ip));
            warn!(
                ip = %ip, mac = %mac,
                "NFS refused {ip}: not allowed by [nfs] allow (it did not PXE-boot through us and is on no listed subnet)"
            );
        }
        false
    }

    fn place(&self, p: &Path) -> Place {
        if let Some(rest) = under(p, &self.areas) {
            let id = rest.split(|&b| b == b'/').next().unwrap_or_default();
            return Place::Area(String::from_utf8_lossy(id).into_owned());
        }
        let writable = under(p, &self.clients_dir).is_none()
            && self.writable.iter().any(|w| under(p, w).is_some());
        Place::Tree(writable)
    }

    /// The credential that applies at `place`.
    fn cred(&self, who: &Who, place: &Place) -> Cred {
        let Some(c) = &who.auth else {
            return Cred::nobody();
        };
        let squash = match self.squash {
            Squash::All => true,
            Squash::None => false,
            Squash::Writable => *place != Place::Tree(false),
        };
        if squash { c.squashed() } else { c.clone() }
    }

    fn remember(&self, fh: Fh, path: PathBuf, m: &Metadata) {
        let node = Node {
            path,
            seen: Some((m.clone(), Instant::now())),
        };
        self.index
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fh, node);
    }

    /// Drops the remembered attributes of objects we just changed.
    fn stale(&self, fhs: &[&Fh]) {
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        for fh in fhs {
            if let Some(n) = index.get_mut(*fh) {
                n.seen = None;
            }
        }
    }

    fn lookup_index(&self, fh: &Fh) -> Option<Node> {
        self.index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(fh)
            .cloned()
    }

    /// Walks the exports once, indexing every object (after a restart, or
    /// when something moved behind our back).
    fn rebuild_index(&self) {
        let _one = self.rescan.lock().unwrap_or_else(|e| e.into_inner());
        let start = Instant::now();
        let mut found = HashMap::new();
        let mut stack = vec![self.root.clone(), self.areas.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                let Ok(m) = e.metadata() else { continue };
                let p = e.path();
                if m.is_dir() {
                    stack.push(p.clone());
                }
                found.insert(
                    Fh::of(&m),
                    Node {
                        path: p,
                        seen: None,
                    },
                );
            }
        }
        if let Ok(m) = fs::metadata(&self.root) {
            let path = self.root.clone();
            found.insert(Fh::of(&m), Node { path, seen: None });
        }
        let n = found.len();
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = found;
        info!(
            "NFS handle index rebuilt: {n} objects in {} ms",
            start.elapsed().as_millis()
        );
    }

    /// The path and attributes a handle names, checked against the caller.
    fn resolve(&self, fh: &Fh, who: &Who) -> Result<(PathBuf, Metadata), nfsstat3> {
        let current = |n: Node| {
            if let Some((m, at)) = n.seen
                && at.elapsed() < ATTR_TTL
            {
                return Some((n.path, m));
            }
            let m = fs::symlink_metadata(&n.path)
                .ok()
                .filter(|m| Fh::of(m) == *fh)?;
            self.remember(*fh, n.path.clone(), &m);
            Some((n.path, m))
        };
        let found = match self.lookup_index(fh).and_then(current) {
            Some(hit) => hit,
            None => {
                self.rebuild_index();
                self.lookup_index(fh)
                    .and_then(current)
                    .ok_or(nfsstat3::NFS3ERR_STALE)?
            }
        };
        if let Place::Area(id) = self.place(&found.0) {
            let mine = self.area_of(who);
            if id != mine {
                let (from, _) = self.shown(who);
                warn!(
                    ip = %from,
                    "NFS refused {from}: handle of client area {id:?}, caller's area is {mine:?}"
                );
                return Err(nfsstat3::NFS3ERR_ACCES);
            }
        }
        Ok(found)
    }

    fn writable(&self, p: &Path) -> Result<Place, nfsstat3> {
        match self.place(p) {
            Place::Tree(false) => Err(nfsstat3::NFS3ERR_ROFS),
            place => Ok(place),
        }
    }

    /// The caller's own area, created (from the template) on first use.
    fn my_area(&self, who: &Who) -> Result<(PathBuf, Metadata), nfsstat3> {
        let area = self.area_of(who);
        let dir = self.areas.join(&area);
        if let Ok(m) = fs::symlink_metadata(&dir) {
            return Ok((dir, m));
        }
        let tmp = self.areas.join(format!(".new-{area}"));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir(&tmp).map_err(io_status)?;
        if self.template.is_dir() {
            copy_tree(&self.template, &tmp).map_err(io_status)?;
        }
        // squashed root writes here as nobody: give it the area then
        let squashed = self.squash != Squash::None;
        let (uid, gid) = if squashed {
            (perm::NOBODY, perm::NOBODY)
        } else {
            fs::metadata(&self.template).map_or((0, 0), |m| (m.uid(), m.gid()))
        };
        lchown(&tmp, Some(uid), Some(gid))?;
        if squashed {
            for e in fs::read_dir(&tmp).map_err(io_status)?.flatten() {
                lchown(&e.path(), Some(uid), Some(gid))?;
            }
        }
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(io_status)?;
        fs::rename(&tmp, &dir).map_err(io_status)?;
        let (from, mac) = self.shown(who);
        info!(ip = %from, mac = %mac, "NFS new per-client area {} for {from}", dir.display());
        let m = fs::symlink_metadata(&dir).map_err(io_status)?;
        Ok((dir, m))
    }

    pub fn attr(&self, m: &Metadata) -> fattr3 {
        let ft = m.file_type();
        use std::os::unix::fs::FileTypeExt;
        let type_ = if ft.is_dir() {
            ftype3::NF3DIR
        } else if ft.is_symlink() {
            ftype3::NF3LNK
        } else if ft.is_block_device() {
            ftype3::NF3BLK
        } else if ft.is_char_device() {
            ftype3::NF3CHR
        } else if ft.is_fifo() {
            ftype3::NF3FIFO
        } else if ft.is_socket() {
            ftype3::NF3SOCK
        } else {
            ftype3::NF3REG
        };
        let rdev = m.rdev();
        // one file system to the client: file ids from other devices (the
        // state dir) are mixed with their device so they stay unique
        let fileid = if m.dev() == self.root_dev {
            m.ino()
        } else {
            m.ino() ^ m.dev().rotate_left(40) ^ 0x8000_0000_0000_0000
        };
        fattr3 {
            type_,
            mode: m.mode() & 0o7777,
            nlink: u32::try_from(m.nlink()).unwrap_or(u32::MAX),
            uid: m.uid(),
            gid: m.gid(),
            size: m.size(),
            used: m.blocks().saturating_mul(512),
            rdev: specdata3 {
                specdata1: libc::major(rdev),
                specdata2: libc::minor(rdev),
            },
            fsid: self.root_dev,
            fileid,
            atime: time3(m.atime(), m.atime_nsec()),
            mtime: time3(m.mtime(), m.mtime_nsec()),
            ctime: time3(m.ctime(), m.ctime_nsec()),
        }
    }

    /// A directory the caller may search, with its place and credential.
    fn searchable_dir(&self, fh: &Fh, who: &Who) -> Result<(PathBuf, Metadata, Cred), nfsstat3> {
        let (p, m) = self.resolve(fh, who)?;
        if !m.is_dir() {
            return Err(nfsstat3::NFS3ERR_NOTDIR);
        }
        let cred = self.cred(who, &self.place(&p));
        if !perm::allowed(owner(&m), &cred, perm::X) {
            return Err(nfsstat3::NFS3ERR_ACCES);
        }
        Ok((p, m, cred))
    }

    /// A directory the caller may add entries to or remove entries from.
    fn changeable_dir(&self, fh: &Fh, who: &Who) -> Result<(PathBuf, Metadata, Cred), nfsstat3> {
        let (p, m, cred) = self.searchable_dir(fh, who)?;
        if p == self.clients_dir {
            return Err(nfsstat3::NFS3ERR_ACCES);
        }
        self.writable(&p)?;
        if !perm::allowed(owner(&m), &cred, perm::W | perm::X) {
            return Err(nfsstat3::NFS3ERR_ACCES);
        }
        Ok((p, m, cred))
    }

    /// Gives a new object to its creator; the group follows a setgid parent.
    fn adopt(&self, p: &Path, parent: &Metadata, cred: &Cred) -> Result<(), nfsstat3> {
        let gid = if parent.mode() & 0o2000 != 0 {
            parent.gid()
        } else {
            cred.gid
        };
        lchown(p, Some(cred.uid), Some(gid))
    }

    fn entry_at(&self, p: PathBuf) -> Result<(Fh, fattr3), nfsstat3> {
        let m = fs::symlink_metadata(&p).map_err(io_status)?;
        let fh = Fh::of(&m);
        let a = self.attr(&m);
        self.remember(fh, p, &m);
        Ok((fh, a))
    }

    fn do_lookup(&self, dir: &Fh, name: &filename3<'_>) -> Result<Fh, nfsstat3> {
        let who = self.who();
        let (d, _, _) = self.searchable_dir(dir, &who)?;
        let name = entry_name(name)?;
        if name == "." {
            return Ok(*dir);
        }
        if name == ".." {
            // never above the export, and an area's parent is /var/clients
            let up = if d == self.root {
                d
            } else if d.parent() == Some(self.areas.as_path()) {
                self.clients_dir.clone()
            } else {
                d.parent().map_or(d.clone(), Path::to_path_buf)
            };
            return self.entry_at(up).map(|(fh, _)| fh);
        }
        if d == self.clients_dir {
            if name != MYSELF {
                return Err(nfsstat3::NFS3ERR_NOENT);
            }
            let (p, m) = self.my_area(&who)?;
            let fh = Fh::of(&m);
            self.remember(fh, p, &m);
            return Ok(fh);
        }
        self.entry_at(d.join(name)).map(|(fh, _)| fh)
    }

    /// The directory and its names, in a stable order, if the caller may
    /// read it.
    fn listing(&self, dir: &Fh) -> Result<(PathBuf, Vec<OsString>), nfsstat3> {
        let who = self.who();
        let (d, m) = self.resolve(dir, &who)?;
        if !m.is_dir() {
            return Err(nfsstat3::NFS3ERR_NOTDIR);
        }
        let cred = self.cred(&who, &self.place(&d));
        if !perm::allowed(owner(&m), &cred, perm::R) {
            return Err(nfsstat3::NFS3ERR_ACCES);
        }
        if d == self.clients_dir {
            return Ok((d, vec![MYSELF.into()]));
        }
        let mut names: Vec<OsString> = fs::read_dir(&d)
            .map_err(io_status)?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        names.sort_unstable();
        Ok((d, names))
    }

    /// An open file for reading, kept across READ calls: a client reads a
    /// kernel or a 1 GiB image in 1 MiB pieces. A file deleted since (its
    /// inode number may come back) is opened again.
    fn open_for_read(&self, fh: &Fh, p: &Path) -> Result<Arc<File>, nfsstat3> {
        let mut open = self.open_files.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((f, used)) = open.get_mut(fh)
            && f.metadata().is_ok_and(|m| m.nlink() > 0)
        {
            *used = Instant::now();
            return Ok(f.clone());
        }
        let f = Arc::new(File::open(p).map_err(io_status)?);
        if open.len() >= OPEN_FILES {
            let oldest = open.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| *k);
            if let Some(k) = oldest {
                open.remove(&k);
            }
        }
        open.insert(*fh, (f.clone(), Instant::now()));
        Ok(f)
    }

    fn forget_open(&self, fh: &Fh) {
        self.open_files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(fh);
    }
}

/// Up to `len` bytes of `f` from `offset` (fewer at the end of the file),
/// read straight into a fresh buffer: READ replies carry up to 1 MiB, and
/// zero-filling it first is a pass over memory that pread overwrites anyway.
fn read_at(f: &File, len: usize, offset: u64) -> io::Result<Vec<u8>> {
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    while buf.len() < len {
        let done = buf.len();
        let at = i64::try_from(offset + done as u64).map_err(|_| io::ErrorKind::InvalidInput)?;
        let spare = &mut buf.spare_capacity_mut()[..len - done];
        // SAFETY: pread writes at most `spare.len()` bytes into `spare`,
        // which is valid for writes of that length.
        let n = unsafe {
            libc::pread(
                std::os::fd::AsRawFd::as_raw_fd(f),
                spare.as_mut_ptr().cast(),
                spare.len(),
                at,
            )
        };
        match n {
            0 => break,
            n if n > 0 => {
                // SAFETY: pread initialised the first `n` bytes of the spare
                // capacity, and `n` <= spare.len().
                unsafe { buf.set_len(done + n as usize) };
            }
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(buf)
}

/// READDIR(PLUS) pages: entries in name order, cookie = position + 1, so a
/// client resuming at any cookie gets the rest (RFC 1813 §3.3.16).
pub struct Listing<'a> {
    fs: &'a RootFs,
    path: PathBuf,
    names: std::vec::IntoIter<OsString>,
    cookie: u64,
}

impl ReadDirPlusIterator<Fh> for Listing<'_> {
    async fn next(&mut self) -> NextResult<DirEntryPlus<Fh>> {
        loop {
            let Some(name) = self.names.next() else {
                return NextResult::Eof;
            };
            self.cookie += 1;
            let (fh, m) = if self.path == self.fs.clients_dir {
                // the one virtual entry: the caller's own area
                let who = self.fs.who();
                match self.fs.my_area(&who) {
                    Ok((p, m)) => {
                        let fh = Fh::of(&m);
                        self.fs.remember(fh, p, &m);
                        (fh, m)
                    }
                    Err(e) => return NextResult::Err(e),
                }
            } else {
                let p = self.path.join(&name);
                match fs::symlink_metadata(&p) {
                    Ok(m) => {
                        let fh = Fh::of(&m);
                        self.fs.remember(fh, p, &m);
                        (fh, m)
                    }
                    // gone since the listing was taken
                    Err(_) => continue,
                }
            };
            let attr = self.fs.attr(&m);
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
        self.root_fh
    }

    fn authorize(&self, _auth: Option<&auth_unix>) -> bool {
        self.admits(self.who().ip)
    }

    async fn access(&self, id: &Fh, requested: u32) -> u32 {
        let who = self.who();
        let Ok((p, m)) = self.resolve(id, &who) else {
            return 0;
        };
        let place = self.place(&p);
        let cred = self.cred(&who, &place);
        let writable = place != Place::Tree(false) && p != self.clients_dir;
        perm::access3(owner(&m), &cred, writable, requested)
    }

    async fn lookup(&self, dirid: &Fh, filename: &filename3<'_>) -> Result<Fh, nfsstat3> {
        self.do_lookup(dirid, filename)
    }

    async fn lookup_by_path(&self, path: &str) -> Result<Fh, nfsstat3> {
        let who = self.who();
        let mut fh = self.root_fh;
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
        let shown = self.root.join(path);
        let (from, mac) = self.shown(&who);
        match result {
            Ok(()) => {
                info!(ip = %from, mac = %mac, "MOUNT {} from {from}", shown.display());
                Ok(fh)
            }
            Err(e) => {
                warn!(ip = %from, mac = %mac, "MOUNT {} from {from} refused: {e:?}", shown.display());
                Err(e)
            }
        }
    }

    async fn getattr(&self, id: &Fh) -> Result<fattr3, nfsstat3> {
        let who = self.who();
        let (_, m) = self.resolve(id, &who)?;
        Ok(self.attr(&m))
    }

    async fn read(&self, id: &Fh, offset: u64, count: u32) -> Result<(Vec<u8>, bool), nfsstat3> {
        let who = self.who();
        let (p, m) = self.resolve(id, &who)?;
        if m.is_dir() {
            return Err(nfsstat3::NFS3ERR_ISDIR);
        }
        if !m.is_file() {
            return Err(nfsstat3::NFS3ERR_INVAL);
        }
        let cred = self.cred(&who, &self.place(&p));
        if !perm::may_read_file(owner(&m), &cred) {
            return Err(nfsstat3::NFS3ERR_ACCES);
        }
        let f = self.open_for_read(id, &p)?;
        let size = f.metadata().map_err(io_status)?.len();
        let want = u64::from(count.min(MAX_READ)).min(size.saturating_sub(offset));
        let buf =
            read_at(&f, usize::try_from(want).unwrap_or(0), offset).map_err(|e| status(&e))?;
        let end = offset + buf.len() as u64;
        Ok((buf, end >= size))
    }

    async fn readdirplus(
        &self,
        dirid: &Fh,
        cookie: u64,
    ) -> Result<impl ReadDirPlusIterator<Fh>, nfsstat3> {
        let (path, names) = self.listing(dirid)?;
        let skip = usize::try_from(cookie).unwrap_or(usize::MAX);
        let names: Vec<OsString> = names.into_iter().skip(skip).collect();
        Ok(Listing {
            fs: self,
            path,
            names: names.into_iter(),
            cookie,
        })
    }

    async fn readlink(&self, id: &Fh) -> Result<nfspath3<'_>, nfsstat3> {
        let who = self.who();
        let (p, m) = self.resolve(id, &who)?;
        if !m.file_type().is_symlink() {
            return Err(nfsstat3::NFS3ERR_INVAL);
        }
        let target = fs::read_link(&p).map_err(io_status)?;
        Ok(nfspath3::from(target.into_os_string().into_vec()))
    }
}

impl NfsFileSystem for RootFs {
    async fn setattr(&self, id: &Fh, s: sattr3) -> Result<fattr3, nfsstat3> {
        let who = self.who();
        let (p, m) = self.resolve(id, &who)?;
        let place = self.writable(&p)?;
        if p == self.clients_dir {
            return Err(nfsstat3::NFS3ERR_ACCES);
        }
        let cred = self.cred(&who, &place);
        let own = owner(&m);
        let is_owner = cred.is_root() || cred.uid == own.uid;
        let chown_uid = opt(&s.uid);
        let chown_gid = opt(&s.gid);
        // chown(2) rules: only root gives files away; an owner may change the
        // group to one of its own groups
        if let Some(uid) = chown_uid
            && uid != own.uid
            && !cred.is_root()
        {
            return Err(nfsstat3::NFS3ERR_PERM);
        }
        if let Some(gid) = chown_gid
            && gid != own.gid
            && !(cred.is_root() || (is_owner && cred.in_group(gid)))
        {
            return Err(nfsstat3::NFS3ERR_PERM);
        }
        if s.mode.is_some() && !is_owner {
            return Err(nfsstat3::NFS3ERR_PERM);
        }
        if let Some(size) = opt(&s.size) {
            if m.is_dir() {
                return Err(nfsstat3::NFS3ERR_ISDIR);
            }
            if !perm::allowed(own, &cred, perm::W) {
                return Err(nfsstat3::NFS3ERR_ACCES);
            }
            OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&p)
                .and_then(|f| f.set_len(size))
                .map_err(io_status)?;
        }
        let client_time = matches!(s.atime, set_atime::SET_TO_CLIENT_TIME(_))
            || matches!(s.mtime, set_mtime::SET_TO_CLIENT_TIME(_));
        let any_time = !matches!(s.atime, set_atime::DONT_CHANGE)
            || !matches!(s.mtime, set_mtime::DONT_CHANGE);
        if any_time {
            if !(is_owner || (!client_time && perm::allowed(own, &cred, perm::W))) {
                return Err(nfsstat3::NFS3ERR_PERM);
            }
            set_times(&p, &s.atime, &s.mtime)?;
        }
        if chown_uid.is_some() || chown_gid.is_some() {
            lchown(&p, chown_uid, chown_gid)?;
        }
        if let Some(mode) = opt(&s.mode)
            && !m.file_type().is_symlink()
        {
            let mut mode = mode & 0o7777;
            // like chmod(2): setgid is dropped for a group the caller lacks
            if !cred.is_root() && !cred.in_group(chown_gid.unwrap_or(own.gid)) {
                mode &= !0o2000;
            }
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(io_status)?;
        }
        let m = fs::symlink_metadata(&p).map_err(io_status)?;
        self.remember(*id, p, &m);
        Ok(self.attr(&m))
    }

    async fn write(
        &self,
        id: &Fh,
        offset: u64,
        data: &[u8],
        stable: stable_how,
    ) -> Result<(fattr3, stable_how), nfsstat3> {
        let who = self.who();
        let (p, m) = self.resolve(id, &who)?;
        let place = self.writable(&p)?;
        if m.is_dir() {
            return Err(nfsstat3::NFS3ERR_ISDIR);
        }
        if !m.is_file() {
            return Err(nfsstat3::NFS3ERR_INVAL);
        }
        let cred = self.cred(&who, &place);
        // the owner may write a file it opened before making it read-only
        if !(perm::allowed(owner(&m), &cred, perm::W) || cred.uid == m.uid()) {
            return Err(nfsstat3::NFS3ERR_ACCES);
        }
        let f = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&p)
            .map_err(io_status)?;
        f.write_all_at(data, offset).map_err(io_status)?;
        if stable != stable_how::UNSTABLE {
            f.sync_data().map_err(io_status)?;
        }
        let m = f.metadata().map_err(io_status)?;
        self.remember(*id, p, &m);
        Ok((self.attr(&m), stable))
    }

    async fn create(
        &self,
        dirid: &Fh,
        filename: &filename3<'_>,
        attr: sattr3,
    ) -> Result<(Fh, fattr3), nfsstat3> {
        let who = self.who();
        let (d, dm, cred) = self.changeable_dir(dirid, &who)?;
        let p = d.join(new_name(filename)?);
        let mode = opt(&attr.mode).map_or(0o644, |m| m & 0o7777);
        let existed = fs::symlink_metadata(&p).is_ok();
        OpenOptions::new()
            .write(true)
            .create(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&p)
            .map_err(io_status)?;
        self.stale(&[dirid]);
        if !existed {
            self.adopt(&p, &dm, &cred)?;
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(io_status)?;
        }
        let (fh, _) = self.entry_at(p)?;
        let rest = sattr3 {
            mode: Default::default(),
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
        let (d, dm, cred) = self.changeable_dir(dirid, &who)?;
        let p = d.join(new_name(filename)?);
        // RFC 1813 §3.3.8: the verifier is kept in the times (as knfsd does)
        // so that a retransmitted EXCLUSIVE CREATE succeeds again
        let (a, b) = verf.0.split_at(4);
        let atime = u32::from_be_bytes(a.try_into().unwrap_or_default());
        let mtime = u32::from_be_bytes(b.try_into().unwrap_or_default());
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
        {
            Ok(_) => {
                self.stale(&[dirid]);
                self.adopt(&p, &dm, &cred)?;
                set_times(
                    &p,
                    &set_atime::SET_TO_CLIENT_TIME(nfstime3 {
                        seconds: atime,
                        nseconds: 0,
                    }),
                    &set_mtime::SET_TO_CLIENT_TIME(nfstime3 {
                        seconds: mtime,
                        nseconds: 0,
                    }),
                )?;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let m = fs::symlink_metadata(&p).map_err(io_status)?;
                let same = u32::try_from(m.atime()).ok() == Some(atime)
                    && u32::try_from(m.mtime()).ok() == Some(mtime);
                if !same {
                    return Err(nfsstat3::NFS3ERR_EXIST);
                }
            }
            Err(e) => return Err(status(&e)),
        }
        self.entry_at(p).map(|(fh, _)| fh)
    }

    async fn mkdir(&self, dirid: &Fh, dirname: &filename3<'_>) -> Result<(Fh, fattr3), nfsstat3> {
        let who = self.who();
        let (d, dm, cred) = self.changeable_dir(dirid, &who)?;
        let p = d.join(new_name(dirname)?);
        fs::create_dir(&p).map_err(io_status)?;
        self.stale(&[dirid]);
        self.adopt(&p, &dm, &cred)?;
        // a setgid parent passes setgid on to new directories
        let mode = if dm.mode() & 0o2000 != 0 {
            0o2755
        } else {
            0o755
        };
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(io_status)?;
        self.entry_at(p)
    }

    async fn remove(&self, dirid: &Fh, filename: &filename3<'_>) -> Result<(), nfsstat3> {
        let who = self.who();
        let (d, dm, cred) = self.changeable_dir(dirid, &who)?;
        let p = d.join(new_name(filename)?);
        let m = fs::symlink_metadata(&p).map_err(io_status)?;
        if !perm::may_unlink(owner(&dm), owner(&m), &cred) {
            return Err(nfsstat3::NFS3ERR_ACCES);
        }
        if m.is_dir() {
            fs::remove_dir(&p).map_err(io_status)?;
        } else {
            fs::remove_file(&p).map_err(io_status)?;
        }
        self.forget_open(&Fh::of(&m));
        self.stale(&[dirid, &Fh::of(&m)]);
        if m.nlink() <= 1 || m.is_dir() {
            self.index
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&Fh::of(&m));
        }
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
        let (fd, fdm, cred) = self.changeable_dir(from_dirid, &who)?;
        let (td, tdm, _) = self.changeable_dir(to_dirid, &who)?;
        if self.place(&fd) != self.place(&td) {
            return Err(nfsstat3::NFS3ERR_XDEV);
        }
        let from = fd.join(new_name(from_filename)?);
        let to = td.join(new_name(to_filename)?);
        let m = fs::symlink_metadata(&from).map_err(io_status)?;
        if !perm::may_unlink(owner(&fdm), owner(&m), &cred) {
            return Err(nfsstat3::NFS3ERR_ACCES);
        }
        if let Ok(old) = fs::symlink_metadata(&to) {
            if !perm::may_unlink(owner(&tdm), owner(&old), &cred) {
                return Err(nfsstat3::NFS3ERR_ACCES);
            }
            self.forget_open(&Fh::of(&old));
        }
        if m.is_dir() && to.starts_with(&from) {
            return Err(nfsstat3::NFS3ERR_INVAL);
        }
        fs::rename(&from, &to).map_err(io_status)?;
        // every remembered path under the old name moves with it
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        for n in index.values_mut() {
            if let Ok(rest) = n.path.strip_prefix(&from) {
                n.path = if rest.as_os_str().is_empty() {
                    to.clone()
                } else {
                    to.join(rest)
                };
                n.seen = None;
            }
        }
        for dir in [from_dirid, to_dirid] {
            if let Some(n) = index.get_mut(dir) {
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
        let (d, dm, cred) = self.changeable_dir(dirid, &who)?;
        let p = d.join(new_name(linkname)?);
        let target: &[u8] = &symlink.0;
        if target.is_empty() || target.contains(&0) || target.len() > 4096 {
            return Err(nfsstat3::NFS3ERR_INVAL);
        }
        std::os::unix::fs::symlink(OsStr::from_bytes(target), &p).map_err(io_status)?;
        self.stale(&[dirid]);
        self.adopt(&p, &dm, &cred)?;
        self.entry_at(p)
    }

    async fn commit(&self, id: &Fh, _offset: u64, _count: u32) -> Result<(), nfsstat3> {
        let who = self.who();
        let (p, m) = self.resolve(id, &who)?;
        self.writable(&p)?;
        if !m.is_file() {
            return Ok(());
        }
        File::open(&p).and_then(|f| f.sync_all()).map_err(io_status)
    }
}
