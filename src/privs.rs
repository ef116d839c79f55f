//! Capabilities: `serve` started as root keeps only what its doors need,
//! from before its first thread starts (threads inherit the set), and each
//! thread drops what it no longer needs once its sockets are open.
//!
//! Linux capabilities are per thread (capabilities(7)); the bounding set
//! limits what any later exec could regain. The raw `capset(2)` keeps this
//! free of a C library dependency.

use std::io;

/// Capability numbers (linux/capability.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Cap {
    Chown = 0,
    DacOverride = 1,
    DacReadSearch = 2,
    Fowner = 3,
    Fsetid = 4,
    Setgid = 6,
    Setuid = 7,
    NetBindService = 10,
    NetAdmin = 12,
    NetRaw = 13,
}

/// What opening the sockets needs: a raw packet socket for port 67 beside
/// another DHCP server (NET_RAW, also for SO_BINDTODEVICE), ports 67, 69,
/// 80 and 111 (NET_BIND_SERVICE), a receive queue above rmem_max for boot
/// storms (NET_ADMIN, SO_RCVBUFFORCE), and switching to `user` afterwards
/// (SETUID, SETGID).
pub const SOCKETS: &[Cap] = &[
    Cap::NetRaw,
    Cap::NetBindService,
    Cap::NetAdmin,
    Cap::Setuid,
    Cap::Setgid,
];

/// What the NFS door needs while it serves: acting as each caller
/// (SETUID, SETGID for setfsuid/setfsgid/setgroups), and root's file powers
/// for the callers the config leaves root (`root_squash`) and for its own
/// bookkeeping (per-client areas made from the template with their owners,
/// the handle index walk). The kernel takes the file powers away from a
/// thread while it acts as any other user.
pub const NFS: &[Cap] = &[
    Cap::Setuid,
    Cap::Setgid,
    Cap::Chown,
    Cap::DacOverride,
    Cap::DacReadSearch,
    Cap::Fowner,
    Cap::Fsetid,
];

fn mask(caps: &[Cap]) -> u64 {
    caps.iter().fold(0, |m, c| m | 1 << (*c as u32))
}

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const VERSION_3: u32 = 0x2008_0522;

fn capset(effective: u64, permitted: u64) -> io::Result<()> {
    let mut h = Header {
        version: VERSION_3,
        pid: 0,
    };
    let d = [
        Data {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: 0,
        },
        Data {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: 0,
        },
    ];
    // SAFETY: header and two data structs as capset(2) v3 expects.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn capget() -> io::Result<(u64, u64)> {
    let mut h = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: header and room for two data structs as capget(2) v3 writes.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut Header, d.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let join = |lo: u32, hi: u32| u64::from(lo) | u64::from(hi) << 32;
    Ok((
        join(d[0].effective, d[1].effective),
        join(d[0].permitted, d[1].permitted),
    ))
}

/// This thread's permitted capabilities.
pub fn permitted() -> io::Result<u64> {
    capget().map(|(_, p)| p)
}

/// Limits the process, from this thread on, to `caps`: the bounding set
/// (what an exec could regain) and this thread's sets. Call it before any
/// other thread starts, so that every thread inherits the limit.
pub fn limit_process(caps: &[Cap]) -> io::Result<()> {
    let keep = mask(caps);
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    for cap in 0..=last.min(63) {
        if keep & (1 << cap) == 0 {
            // SAFETY: prctl with integer arguments only.
            let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            if rc != 0 {
                let e = io::Error::last_os_error();
                // EINVAL: a capability this kernel does not know
                if e.raw_os_error() != Some(libc::EINVAL) {
                    return Err(e);
                }
            }
        }
    }
    let (_, permitted) = capget()?;
    capset(keep & permitted, keep & permitted)
}

/// Keeps only `caps` on this thread (permitted and effective).
pub fn keep_on_thread(caps: &[Cap]) -> io::Result<()> {
    let (_, permitted) = capget()?;
    let keep = mask(caps) & permitted;
    capset(keep, keep)
}

/// Names of the capabilities in a mask, for the log.
pub fn names(m: u64) -> String {
    const ALL: &[(Cap, &str)] = &[
        (Cap::Chown, "CAP_CHOWN"),
        (Cap::DacOverride, "CAP_DAC_OVERRIDE"),
        (Cap::DacReadSearch, "CAP_DAC_READ_SEARCH"),
        (Cap::Fowner, "CAP_FOWNER"),
        (Cap::Fsetid, "CAP_FSETID"),
        (Cap::Setgid, "CAP_SETGID"),
        (Cap::Setuid, "CAP_SETUID"),
        (Cap::NetBindService, "CAP_NET_BIND_SERVICE"),
        (Cap::NetAdmin, "CAP_NET_ADMIN"),
        (Cap::NetRaw, "CAP_NET_RAW"),
    ];
    let known: Vec<&str> = ALL
        .iter()
        .filter(|(c, _)| m & mask(&[*c]) != 0)
        .map(|(_, n)| *n)
        .collect();
    let other = m & !mask(&ALL.iter().map(|(c, _)| *c).collect::<Vec<_>>());
    let mut s = known.join(" ");
    if other != 0 {
        s.push_str(&format!(" (+{:#x})", other));
    }
    if s.is_empty() { "none".into() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether this thread may use `cap` now.
    fn has(cap: Cap) -> bool {
        capget().is_ok_and(|(e, _)| e & mask(&[cap]) != 0)
    }

    #[test]
    fn a_thread_keeps_only_what_it_is_given() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root");
            return;
        }
        // on a thread of its own: the test harness's threads keep theirs
        std::thread::spawn(|| {
            keep_on_thread(NFS).unwrap();
            assert!(has(Cap::Setuid) && has(Cap::DacOverride));
            assert!(!has(Cap::NetRaw));
            assert_eq!(permitted().unwrap(), mask(NFS));
            // a raw socket is now refused
            // SAFETY: socket(2) with integer arguments; closed if it opened.
            let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
            assert!(fd < 0, "a raw socket opened without CAP_NET_RAW");
        })
        .join()
        .unwrap();
        assert_eq!(
            names(mask(&[Cap::NetRaw, Cap::Setuid])),
            "CAP_SETUID CAP_NET_RAW"
        );
    }
}
