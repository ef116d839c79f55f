//! POSIX mode checks for NFS callers (pure, no I/O): the answers to ACCESS
//! (RFC 1813 §3.3.4), and the one exception knfsd makes on top of the
//! kernel's own checks (a file that may be executed may be read, to page it
//! in). Every other check is the kernel's: the door acts as the caller
//! (`creds.rs`).

use nfs3_server::nfs3_types::nfs3::{
    ACCESS3_DELETE, ACCESS3_EXECUTE, ACCESS3_EXTEND, ACCESS3_LOOKUP, ACCESS3_MODIFY, ACCESS3_READ,
};

/// The uid/gid that squashed and anonymous callers get (`nobody`/`nogroup`).
pub const NOBODY: u32 = 65534;

pub const R: u32 = 4;
pub const W: u32 = 2;
pub const X: u32 = 1;

/// A caller's credential after squashing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cred {
    pub uid: u32,
    pub gid: u32,
    pub gids: Vec<u32>,
}

impl Cred {
    pub fn nobody() -> Cred {
        Cred {
            uid: NOBODY,
            gid: NOBODY,
            gids: Vec::new(),
        }
    }

    /// Maps root to nobody (`root_squash`), keeping everyone else.
    pub fn squashed(&self) -> Cred {
        if self.uid != 0 {
            return self.clone();
        }
        let swap = |g: u32| if g == 0 { NOBODY } else { g };
        Cred {
            uid: NOBODY,
            gid: swap(self.gid),
            gids: self.gids.iter().map(|&g| swap(g)).collect(),
        }
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.gids.contains(&gid)
    }
}

/// The owner, group and mode of an object, as far as checks go.
#[derive(Debug, Clone, Copy)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub is_dir: bool,
}

/// Whether `cred` holds every bit of `want` (a mix of R, W, X) on `obj`.
/// Root may do anything except execute a file that no one may execute.
pub fn allowed(obj: Owner, cred: &Cred, want: u32) -> bool {
    if cred.is_root() {
        return want & X == 0 || obj.is_dir || obj.mode & 0o111 != 0;
    }
    let bits = if cred.uid == obj.uid {
        obj.mode >> 6
    } else if cred.in_group(obj.gid) {
        obj.mode >> 3
    } else {
        obj.mode
    } & 7;
    bits & want == want
}

/// Reading a file is allowed with read *or* execute permission: a client
/// that may execute a binary has to page it in (knfsd does the same).
pub fn may_read_file(obj: Owner, cred: &Cred) -> bool {
    allowed(obj, cred, R) || (!obj.is_dir && allowed(obj, cred, X))
}

/// The ACCESS3 bits (RFC 1813 §3.3.4) out of `requested` that `cred` holds;
/// modifying bits only where the object is writable at all.
pub fn access3(obj: Owner, cred: &Cred, writable: bool, requested: u32) -> u32 {
    let mut granted = 0;
    if allowed(obj, cred, R) {
        granted |= ACCESS3_READ;
    }
    if writable && allowed(obj, cred, W) {
        granted |= ACCESS3_MODIFY | ACCESS3_EXTEND;
        if obj.is_dir {
            granted |= ACCESS3_DELETE;
        }
    }
    if allowed(obj, cred, X) {
        granted |= if obj.is_dir {
            ACCESS3_LOOKUP
        } else {
            ACCESS3_EXECUTE
        };
    }
    granted & requested
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(uid: u32, gid: u32) -> Cred {
        Cred {
            uid,
            gid,
            gids: vec![],
        }
    }
    const SHADOW: Owner = Owner {
        uid: 0,
        gid: 42,
        mode: 0o640,
        is_dir: false,
    };

    #[test]
    fn shadow_is_closed_to_users_and_squashed_root() {
        assert!(!allowed(SHADOW, &user(1000, 1000), R));
        assert!(!allowed(SHADOW, &user(0, 0).squashed(), R));
        assert!(allowed(SHADOW, &user(0, 0), R));
        // group shadow may read it
        let mut c = user(1000, 1000);
        c.gids.push(42);
        assert!(allowed(SHADOW, &c, R));
        assert!(!allowed(SHADOW, &c, W));
    }

    #[test]
    fn root_cannot_execute_a_plain_file() {
        let f = Owner {
            uid: 0,
            gid: 0,
            mode: 0o644,
            is_dir: false,
        };
        assert!(!allowed(f, &user(0, 0), X));
        let bin = Owner { mode: 0o755, ..f };
        assert!(allowed(bin, &user(0, 0), X));
        assert!(allowed(bin, &user(5, 5), X));
        // execute-only binaries can be paged in
        let xonly = Owner { mode: 0o711, ..f };
        assert!(may_read_file(xonly, &user(5, 5)));
    }

    #[test]
    fn owner_bits_win_over_group_bits() {
        let f = Owner {
            uid: 7,
            gid: 7,
            mode: 0o070,
            is_dir: false,
        };
        assert!(!allowed(f, &user(7, 7), R));
        assert!(allowed(f, &user(8, 7), R));
    }

    #[test]
    fn access_bits_follow_mode_and_writability() {
        let dir = Owner {
            uid: 0,
            gid: 0,
            mode: 0o755,
            is_dir: true,
        };
        let all = 0x3f;
        assert_eq!(
            access3(dir, &user(0, 0), false, all),
            ACCESS3_READ | ACCESS3_LOOKUP
        );
        assert_eq!(
            access3(dir, &user(0, 0), true, all),
            ACCESS3_READ | ACCESS3_LOOKUP | ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE
        );
        let init = Owner {
            mode: 0o755,
            is_dir: false,
            ..dir
        };
        // EXECUTE is kept on a read-only root, or init cannot run
        assert_eq!(
            access3(init, &user(0, 0), false, all),
            ACCESS3_READ | ACCESS3_EXECUTE
        );
        assert_eq!(
            access3(init, &user(0, 0), false, ACCESS3_READ),
            ACCESS3_READ
        );
    }
}
