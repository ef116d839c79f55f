//! Acting as the NFS caller: before touching the file system for a client,
//! the worker thread takes that client's (squashed) uid, gid and groups as
//! its *file-system* identity — `setfsuid(2)`, `setfsgid(2)` and a
//! per-thread `setgroups` — so that the kernel itself checks every open,
//! create, rename and chmod, as nfs-ganesha does. When the fs uid leaves 0
//! the kernel also drops CAP_DAC_OVERRIDE, CAP_FOWNER and the other file
//! capabilities from the thread (capabilities(7), "effect of user ID
//! changes"); they come back only while it acts as root again.
//!
//! The raw system calls matter: glibc's `setgroups` changes every thread of
//! the process, and the door's threads serve different clients at once.

use std::cell::RefCell;
use std::io;

/// A file-system identity: uid, gid and supplementary groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Ident {
    /// The server's own identity, for its own bookkeeping (new per-client
    /// areas, the handle index): root's file powers, as far as the process
    /// has them.
    pub fn server() -> Ident {
        Ident {
            uid: 0,
            gid: 0,
            groups: Vec::new(),
        }
    }
}

thread_local! {
    /// What this thread acts as now; `None` until it first switched.
    static CURRENT: RefCell<Option<Ident>> = const { RefCell::new(None) };
}

fn setfsuid(uid: u32) -> u32 {
    // SAFETY: setfsuid has no memory effects; it returns the previous fsuid.
    unsafe { libc::syscall(libc::SYS_setfsuid, uid) as u32 }
}

fn setfsgid(gid: u32) -> u32 {
    // SAFETY: as setfsuid.
    unsafe { libc::syscall(libc::SYS_setfsgid, gid) as u32 }
}

/// Makes this thread act as `who` for file-system access. Cheap when it
/// already does (the common case: one client's calls in a row).
pub fn act_as(who: &Ident) -> io::Result<()> {
    let same = CURRENT.with(|c| c.borrow().as_ref() == Some(who));
    if same {
        return Ok(());
    }
    // groups and gid first, then the uid: the order nfs-ganesha uses.
    let groups: Vec<libc::gid_t> = who.groups.clone();
    // SAFETY: `groups` is valid for reads of its length.
    let rc = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    if rc != 0 {
        CURRENT.with(|c| *c.borrow_mut() = None);
        return Err(io::Error::last_os_error());
    }
    setfsgid(who.gid);
    setfsuid(who.uid);
    // setfsuid/setfsgid report failure only by not changing: ask again
    // with an invalid id, which changes nothing and returns the current one.
    let (uid, gid) = (setfsuid(u32::MAX), setfsgid(u32::MAX));
    if uid != who.uid || gid != who.gid {
        CURRENT.with(|c| *c.borrow_mut() = None);
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "cannot act as uid {} gid {} (fs ids stay {uid}/{gid}): the NFS door needs CAP_SETUID and CAP_SETGID",
                who.uid, who.gid
            ),
        ));
    }
    CURRENT.with(|c| *c.borrow_mut() = Some(who.clone()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs root (CAP_SETUID/SETGID); runs on its own thread so the
    /// switch cannot leak into other tests.
    #[test]
    fn the_kernel_checks_files_as_the_caller() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"x").unwrap();
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let s = secret.clone();
        std::thread::spawn(move || {
            act_as(&Ident {
                uid: 65534,
                gid: 65534,
                groups: vec![],
            })
            .unwrap();
            let e = std::fs::read(&s).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
            act_as(&Ident::server()).unwrap();
            assert_eq!(std::fs::read(&s).unwrap(), b"x");
        })
        .join()
        .unwrap();
    }
}
