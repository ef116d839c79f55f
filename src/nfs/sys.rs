//! The system calls the NFS door makes, as small safe wrappers that work on
//! descriptors, never on saved absolute paths: every object is reached from
//! a directory descriptor, one name at a time or with `openat2(2)`
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, so no client-made symlink and no
//! `..` leads out of an export (the attack a path-based server loses to).

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstr(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// What `statx(2)` says of an object (never following a final symlink).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Type and permission bits (`st_mode`).
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub blocks: u64,
    pub ino: u64,
    pub dev: u64,
    pub rdev: (u32, u32),
    pub atime: (i64, u32),
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
    /// Tells this object from a later one that reuses its inode number: a
    /// hash of the kernel's own file handle for it (`name_to_handle_at(2)`,
    /// which carries the inode generation on ext4, xfs, btrfs and tmpfs and
    /// stays the same across an overlayfs copy-up with `nfs_export=on`),
    /// else its birth time, else 0.
    pub generation: u64,
}

impl Stat {
    pub fn kind(&self) -> u32 {
        self.mode & libc::S_IFMT
    }
    pub fn is_dir(&self) -> bool {
        self.kind() == libc::S_IFDIR
    }
    pub fn is_file(&self) -> bool {
        self.kind() == libc::S_IFREG
    }
    pub fn is_symlink(&self) -> bool {
        self.kind() == libc::S_IFLNK
    }
    pub fn perm(&self) -> u32 {
        self.mode & 0o7777
    }
}

fn statx_raw(dir: RawFd, name: &CString, flags: libc::c_int) -> io::Result<Stat> {
    // SAFETY: an all-zero statx is a valid value to be overwritten.
    let mut sx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is a valid C string and `sx` a valid out-pointer.
    check(unsafe {
        libc::statx(
            dir,
            name.as_ptr(),
            flags | libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_SYNC_AS_STAT,
            libc::STATX_BASIC_STATS | libc::STATX_BTIME,
            &mut sx,
        )
    })?;
    let t = |t: libc::statx_timestamp| (t.tv_sec, t.tv_nsec);
    let generation = kernel_handle(dir, name, flags).unwrap_or_else(|| {
        if sx.stx_mask & libc::STATX_BTIME != 0 {
            (sx.stx_btime.tv_sec as u64)
                .wrapping_mul(1_000_000_000)
                .wrapping_add(u64::from(sx.stx_btime.tv_nsec))
        } else {
            0
        }
    });
    Ok(Stat {
        mode: u32::from(sx.stx_mode),
        nlink: sx.stx_nlink,
        uid: sx.stx_uid,
        gid: sx.stx_gid,
        size: sx.stx_size,
        blocks: sx.stx_blocks,
        ino: sx.stx_ino,
        dev: libc::makedev(sx.stx_dev_major, sx.stx_dev_minor),
        rdev: (sx.stx_rdev_major, sx.stx_rdev_minor),
        atime: t(sx.stx_atime),
        mtime: t(sx.stx_mtime),
        ctime: t(sx.stx_ctime),
        generation,
    })
}

/// A hash of the kernel's file handle for the object (`name_to_handle_at`,
/// never following a final symlink); `None` where the file system has none.
fn kernel_handle(dir: RawFd, name: &CString, flags: libc::c_int) -> Option<u64> {
    // struct file_handle: handle_bytes, handle_type, then MAX_HANDLE_SZ bytes
    const MAX: usize = 128;
    let mut buf = [0u8; 8 + MAX];
    buf[..4].copy_from_slice(&(MAX as u32).to_ne_bytes());
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `buf` holds a file_handle with room for MAX bytes; `name` is
    // a valid C string; `mount_id` a valid out-pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            dir,
            name.as_ptr(),
            buf.as_mut_ptr(),
            &mut mount_id as *mut libc::c_int,
            flags & libc::AT_EMPTY_PATH,
        )
    };
    if rc != 0 {
        return None;
    }
    let len = u32::from_ne_bytes(buf[..4].try_into().ok()?) as usize;
    let body = buf.get(4..8 + len.min(MAX))?;
    // FNV-1a: stable across runs (handles must survive a restart)
    Some(body.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    }))
}

/// The object a descriptor refers to (an `O_PATH` one included).
pub fn fstat(fd: &impl AsRawFd) -> io::Result<Stat> {
    statx_raw(fd.as_raw_fd(), &CString::default(), libc::AT_EMPTY_PATH)
}

/// The entry `name` of a directory, without following it.
pub fn stat_at(dir: &impl AsRawFd, name: &OsStr) -> io::Result<Stat> {
    statx_raw(dir.as_raw_fd(), &cstr(name.as_bytes())?, 0)
}

/// Opens `rel` beneath `dir`: no symlink is followed on the way or at the
/// end, no `..` climbs out, no /proc magic link is crossed (openat2(2)).
/// An empty `rel` opens `dir` itself again.
pub fn open_beneath(dir: &impl AsRawFd, rel: &Path, flags: libc::c_int) -> io::Result<File> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let path = cstr(rel.as_os_str().as_bytes())?;
    // SAFETY: open_how is plain integers; all-zero is its "nothing asked" value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    // openat2 refuses O_PATH with any flag beyond these three
    let extra = if flags & libc::O_PATH != 0 {
        libc::O_NOFOLLOW | libc::O_CLOEXEC
    } else {
        libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY
    };
    how.flags = (flags | extra) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    loop {
        // SAFETY: `path` is a valid C string and `how` a valid open_how of the given size.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            // SAFETY: openat2 returned a new descriptor that we own.
            return Ok(unsafe { File::from_raw_fd(fd as RawFd) });
        }
        let e = io::Error::last_os_error();
        // EAGAIN: a concurrent rename raced the resolution (openat2(2)).
        if e.raw_os_error() != Some(libc::EAGAIN) {
            return Err(e);
        }
    }
}

/// Opens the entry `name` of `dir` without following it; `mode` applies
/// when `flags` creates it.
pub fn open_at(
    dir: &impl AsRawFd,
    name: &OsStr,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<File> {
    let c = cstr(name.as_bytes())?;
    // SAFETY: `c` is a valid C string.
    let fd = check(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY,
            mode as libc::c_uint,
        )
    })?;
    // SAFETY: openat returned a new descriptor that we own.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// The /proc path that stands for a descriptor's own inode: calls given it
/// reach that inode without looking any name up again.
fn magic_link(fd: &impl AsRawFd) -> io::Result<CString> {
    cstr(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_bytes())
}

/// The object behind an `O_PATH` descriptor, opened again for I/O. Through
/// /proc/self/fd the kernel reaches the very inode the descriptor holds
/// (no name is looked up again) and checks the caller's access as for any open.
pub fn reopen(fd: &impl AsRawFd, flags: libc::c_int) -> io::Result<File> {
    let p = magic_link(fd)?;
    // SAFETY: `p` is a valid C string.
    let new = check(unsafe {
        libc::open(
            p.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK,
        )
    })?;
    // SAFETY: open returned a new descriptor that we own.
    Ok(unsafe { File::from_raw_fd(new) })
}

/// chmod of the inode behind a descriptor (an `O_PATH` one included; never
/// a symlink, whose mode Linux does not change).
pub fn chmod_fd(fd: &impl AsRawFd, mode: u32) -> io::Result<()> {
    let p = magic_link(fd)?;
    // SAFETY: `p` is a valid C string.
    check(unsafe { libc::chmod(p.as_ptr(), mode as libc::mode_t) }).map(drop)
}

/// chown of the object behind a descriptor, symlinks included.
pub fn chown_fd(fd: &impl AsRawFd, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    let empty = CString::default();
    // SAFETY: valid descriptor and C string; -1 leaves an id unchanged.
    check(unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            empty.as_ptr(),
            uid.unwrap_or(u32::MAX),
            gid.unwrap_or(u32::MAX),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// Sets atime/mtime of the inode behind a descriptor (never a symlink).
pub fn utimens_fd(fd: &impl AsRawFd, times: &[libc::timespec; 2]) -> io::Result<()> {
    let p = magic_link(fd)?;
    // SAFETY: `p` is a valid C string and `times` two timespecs.
    check(unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), times.as_ptr(), 0) }).map(drop)
}

pub fn mkdir_at(dir: &impl AsRawFd, name: &OsStr, mode: u32) -> io::Result<()> {
    let c = cstr(name.as_bytes())?;
    // SAFETY: `c` is a valid C string.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) }).map(drop)
}

pub fn unlink_at(dir: &impl AsRawFd, name: &OsStr, is_dir: bool) -> io::Result<()> {
    let c = cstr(name.as_bytes())?;
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: `c` is a valid C string.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) }).map(drop)
}

pub fn rename_at(
    from: &impl AsRawFd,
    from_name: &OsStr,
    to: &impl AsRawFd,
    to_name: &OsStr,
) -> io::Result<()> {
    let (a, b) = (cstr(from_name.as_bytes())?, cstr(to_name.as_bytes())?);
    // SAFETY: both names are valid C strings.
    check(unsafe { libc::renameat(from.as_raw_fd(), a.as_ptr(), to.as_raw_fd(), b.as_ptr()) })
        .map(drop)
}

pub fn symlink_at(target: &[u8], dir: &impl AsRawFd, name: &OsStr) -> io::Result<()> {
    let (t, n) = (cstr(target)?, cstr(name.as_bytes())?);
    // SAFETY: both are valid C strings.
    check(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), n.as_ptr()) }).map(drop)
}

/// The target of the symlink an `O_PATH | O_NOFOLLOW` descriptor holds.
pub fn readlink_fd(fd: &impl AsRawFd) -> io::Result<Vec<u8>> {
    let empty = CString::default();
    let mut buf = vec![0u8; 4096];
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            empty.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// The names in a directory (without `.` and `..`), read from a descriptor
/// of it opened for reading.
pub fn list(dir: File) -> io::Result<Vec<OsString>> {
    let fd = OwnedFd::from(dir);
    // SAFETY: fdopendir takes ownership of the descriptor on success.
    let d = unsafe { libc::fdopendir(fd.as_raw_fd()) };
    if d.is_null() {
        return Err(io::Error::last_os_error());
    }
    std::mem::forget(fd);
    let mut names = Vec::new();
    loop {
        // SAFETY: `d` is an open DIR stream; errno is reset to tell end from error.
        let ent = unsafe {
            *libc::__errno_location() = 0;
            libc::readdir64(d)
        };
        if ent.is_null() {
            let e = io::Error::last_os_error();
            // SAFETY: `d` is open and closed exactly once.
            unsafe { libc::closedir(d) };
            return match e.raw_os_error() {
                Some(0) | None => Ok(names),
                _ => Err(e),
            };
        }
        // SAFETY: readdir returned a valid entry whose d_name is NUL-terminated.
        let name = unsafe { std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()) };
        let b = name.to_bytes();
        if b != b"." && b != b".." {
            names.push(OsStr::from_bytes(b).to_os_string());
        }
    }
}

/// `count` bytes of a file from `offset` (fewer at its end), read into
/// uninitialised capacity: READ replies carry up to 1 MiB and a zero-fill
/// first would be a pass over memory that pread overwrites anyway.
pub fn read_at(f: &File, len: usize, offset: u64) -> io::Result<Vec<u8>> {
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    while buf.len() < len {
        let done = buf.len();
        let at = i64::try_from(offset + done as u64).map_err(|_| io::ErrorKind::InvalidInput)?;
        let spare = &mut buf.spare_capacity_mut()[..len - done];
        // SAFETY: pread writes at most `spare.len()` bytes into `spare`,
        // which is valid for writes of that length.
        let n = unsafe { libc::pread(f.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len(), at) };
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

/// `len` random bytes from the kernel (getrandom(2)).
pub fn random(len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        // SAFETY: the spare part of `buf` is valid for writes.
        let n = unsafe { libc::getrandom(buf[got..].as_mut_ptr().cast(), len - got, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        } else {
            got += n as usize;
        }
    }
    Ok(buf)
}
