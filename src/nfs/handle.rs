//! NFS file handles: which export zone, inode and generation an object is,
//! sealed with a keyed MAC so a LAN peer can neither guess nor forge one.
//!
//! knfsd puts (inode, generation) in its handles; the generation tells a
//! reused inode number from the object a client once looked up. We take it
//! from the kernel's own file handle for the object (see `sys::Stat`). The seal is SipHash-2-4 (128-bit)
//! under a per-server secret kept in the state dir, so handles stay valid
//! across restarts and a forged one is refused before any lookup.

use std::io;
use std::path::Path;

use nfs3_server::vfs::FileHandle;
use siphasher::sip128::{Hasher128, SipHasher24};

use super::sys::{self, Stat};

const VERSION: u8 = 1;
const LEN: usize = 40;
const SEALED: usize = 24;

/// Where an object lives: the client tree, or the per-client areas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Zone {
    Tree = 0,
    Areas = 1,
}

/// The identity of an object: zone, inode number, generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Id {
    pub zone: Zone,
    pub ino: u64,
    pub generation: u64,
}

impl Id {
    /// The generation (`Stat::generation`) is mixed with the device, so
    /// that two file systems mounted inside one export never share an
    /// identity, and the handle does not show the device number.
    pub fn of(zone: Zone, st: &Stat) -> Id {
        Id {
            zone,
            ino: st.ino,
            generation: st.generation ^ st.dev.rotate_left(29),
        }
    }
}

/// A handle as it goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fh([u8; LEN]);

impl FileHandle for Fh {
    fn len(&self) -> usize {
        LEN
    }
    fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    fn from_bytes(bytes: &[u8]) -> Option<Fh> {
        bytes.try_into().ok().map(Fh)
    }
}

/// Seals and opens handles with the server's secret.
#[derive(Clone)]
pub struct Sealer {
    key: [u8; 16],
}

impl Sealer {
    /// The secret kept in `state_dir` (made on first start, mode 0600).
    pub fn load(state_dir: &Path) -> io::Result<Sealer> {
        let p = state_dir.join("nfs-handle-key");
        if let Ok(b) = std::fs::read(&p)
            && let Ok(key) = <[u8; 16]>::try_from(b.as_slice())
        {
            return Ok(Sealer { key });
        }
        let key: [u8; 16] = sys::random(16)?
            .try_into()
            .map_err(|_| io::Error::other("short random read"))?;
        let tmp = state_dir.join(".nfs-handle-key.new");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&key)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &p)?;
        Ok(Sealer { key })
    }

    #[cfg(test)]
    pub fn with_key(key: [u8; 16]) -> Sealer {
        Sealer { key }
    }

    fn mac(&self, body: &[u8]) -> [u8; 16] {
        let mut h = SipHasher24::new_with_key(&self.key);
        std::hash::Hasher::write(&mut h, body);
        h.finish128().as_bytes()
    }

    pub fn seal(&self, id: Id) -> Fh {
        let mut b = [0u8; LEN];
        b[0] = VERSION;
        b[1] = id.zone as u8;
        b[8..16].copy_from_slice(&id.ino.to_le_bytes());
        b[16..24].copy_from_slice(&id.generation.to_le_bytes());
        let mac = self.mac(&b[..SEALED]);
        b[SEALED..].copy_from_slice(&mac);
        Fh(b)
    }

    /// The identity inside a handle we made; `None` for anything else.
    pub fn open(&self, fh: &Fh) -> Option<Id> {
        let b = &fh.0;
        // compare every byte (no early exit): timing must not reveal a prefix
        let mac = self.mac(&b[..SEALED]);
        let diff = mac
            .iter()
            .zip(&b[SEALED..])
            .fold(0u8, |acc, (x, y)| acc | (x ^ y));
        if diff != 0 || b[0] != VERSION || b[2..8] != [0; 6] {
            return None;
        }
        let zone = match b[1] {
            0 => Zone::Tree,
            1 => Zone::Areas,
            _ => return None,
        };
        let word =
            |r: std::ops::Range<usize>| u64::from_le_bytes(b[r].try_into().unwrap_or_default());
        Some(Id {
            zone,
            ino: word(8..16),
            generation: word(16..24),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_open_only_as_sealed() {
        let s = Sealer::with_key([7; 16]);
        let id = Id {
            zone: Zone::Areas,
            ino: 1234,
            generation: 99,
        };
        let fh = s.seal(id);
        assert_eq!(s.open(&fh), Some(id));
        // any flipped bit, in the body or the seal, is refused
        for i in 0..LEN {
            let mut b = fh.0;
            b[i] ^= 1;
            assert_eq!(s.open(&Fh(b)), None, "byte {i}");
        }
        // another server's secret does not open it
        assert_eq!(Sealer::with_key([8; 16]).open(&fh), None);
        // nor does a handle of another length
        assert!(Fh::from_bytes(&fh.0[..16]).is_none());
    }

    #[test]
    fn the_secret_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let a = Sealer::load(dir.path()).unwrap();
        let b = Sealer::load(dir.path()).unwrap();
        assert_eq!(a.key, b.key);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("nfs-handle-key"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }
}
