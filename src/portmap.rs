//! Portmapper (RFC 1833 version 2) on port 111, UDP and TCP: it tells
//! clients where NFS and MOUNT listen. klibc's `nfsmount` in a stock Debian
//! initramfs and the kernel's own mount ask it before anything else. Only
//! our own programs are known; NLM is deliberately absent (clients mount
//! `nolock`).

use std::io::Cursor;
use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{Context, Result};
use nfs3_server::nfs3_types::portmap::{IPPROTO_TCP, PMAP_PROG, PROGRAM, VERSION, mapping};
use nfs3_server::nfs3_types::rpc::{
    accept_stat_data, accepted_reply, msg_body, opaque_auth, reply_body, rpc_msg,
};
use nfs3_server::nfs3_types::xdr_codec::{Pack, Unpack};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tracing::{debug, warn};

/// RPC program numbers we map (RFC 1813 appendix I).
pub const NFS_PROGRAM: u32 = 100_003;
pub const MOUNT_PROGRAM: u32 = 100_005;
/// Largest call accepted; portmap calls are tiny.
const MAX_CALL: usize = 8 * 1024;

/// What the portmapper answers: every registered (program, version) is
/// served over TCP on `port`.
#[derive(Debug, Clone, Copy)]
pub struct Map {
    pub nfs_port: u16,
}

impl Map {
    fn mappings(&self) -> Vec<mapping> {
        let port = u32::from(self.nfs_port);
        [(PROGRAM, VERSION, 111), (NFS_PROGRAM, 3, port)]
            .into_iter()
            .chain((1..=3).map(|v| (MOUNT_PROGRAM, v, port)))
            .map(|(prog, vers, port)| mapping {
                prog,
                vers,
                prot: IPPROTO_TCP,
                port,
            })
            .collect()
    }

    /// GETPORT: the port, or 0 for anything not served (RFC 1833 §3.2).
    fn port_of(&self, m: &mapping) -> u32 {
        self.mappings()
            .iter()
            .find(|r| r.prog == m.prog && r.vers == m.vers && r.prot == m.prot)
            .map_or(0, |r| r.port)
    }
}

fn reply(xid: u32, stat: accept_stat_data, result: &[u8]) -> Vec<u8> {
    let msg = rpc_msg {
        xid,
        body: msg_body::REPLY(reply_body::MSG_ACCEPTED(accepted_reply {
            verf: opaque_auth::default(),
            reply_data: stat,
        })),
    };
    let mut out = Vec::with_capacity(msg.packed_size() + result.len());
    // packing into a Vec cannot fail
    let _ = msg.pack(&mut out);
    out.extend_from_slice(result);
    out
}

/// Answers one call; `None` for garbage that deserves no reply.
pub fn answer(map: &Map, call: &[u8], peer: SocketAddr) -> Option<Vec<u8>> {
    let mut cur = Cursor::new(call);
    let (msg, _) = rpc_msg::unpack(&mut cur).ok()?;
    let msg_body::CALL(body) = msg.body else {
        return None;
    };
    let xid = msg.xid;
    if body.prog != PROGRAM {
        return Some(reply(xid, accept_stat_data::PROG_UNAVAIL, &[]));
    }
    if body.vers != VERSION {
        // rpcbind v3/v4 callers fall back to v2 on PROG_MISMATCH
        let stat = accept_stat_data::PROG_MISMATCH {
            low: VERSION,
            high: VERSION,
        };
        return Some(reply(xid, stat, &[]));
    }
    let args = &call[usize::try_from(cur.position()).ok()?..];
    match PMAP_PROG::try_from(body.proc) {
        Ok(PMAP_PROG::PMAPPROC_NULL) => Some(reply(xid, accept_stat_data::SUCCESS, &[])),
        Ok(PMAP_PROG::PMAPPROC_GETPORT) => {
            let Ok((m, _)) = mapping::unpack(&mut Cursor::new(args)) else {
                return Some(reply(xid, accept_stat_data::GARBAGE_ARGS, &[]));
            };
            let port = map.port_of(&m);
            debug!(
                "portmap GETPORT from {peer}: program {} v{} proto {} -> {port}",
                m.prog, m.vers, m.prot
            );
            Some(reply(xid, accept_stat_data::SUCCESS, &port.to_be_bytes()))
        }
        Ok(PMAP_PROG::PMAPPROC_DUMP) => {
            // pmaplist is an XDR linked list: (TRUE, mapping)* FALSE
            let mut out = Vec::new();
            for m in map.mappings() {
                out.extend_from_slice(&1u32.to_be_bytes());
                let _ = m.pack(&mut out);
            }
            out.extend_from_slice(&0u32.to_be_bytes());
            Some(reply(xid, accept_stat_data::SUCCESS, &out))
        }
        // SET/UNSET (no one registers with us) and CALLIT (an amplifier)
        _ => Some(reply(xid, accept_stat_data::PROC_UNAVAIL, &[])),
    }
}

/// Binds UDP and TCP port `port` on `ip` (before privileges are dropped).
pub async fn bind(ip: Ipv4Addr, port: u16) -> Result<(UdpSocket, TcpListener)> {
    let addr = SocketAddr::from((ip, port));
    let udp = UdpSocket::bind(addr)
        .await
        .with_context(|| format!("portmapper: cannot bind UDP {addr} (another rpcbind running? stop it, or set [nfs] portmap = false)"))?;
    let tcp = TcpListener::bind(addr)
        .await
        .with_context(|| format!("portmapper: cannot bind TCP {addr} (another rpcbind running? stop it, or set [nfs] portmap = false)"))?;
    Ok((udp, tcp))
}

/// Serves both sockets until the task is dropped.
pub async fn serve(map: Map, udp: UdpSocket, tcp: TcpListener) {
    let udp_loop = async {
        let mut buf = vec![0u8; MAX_CALL];
        loop {
            let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                continue;
            };
            if let Some(r) = answer(&map, &buf[..n], peer) {
                let _ = udp.send_to(&r, peer).await;
            }
        }
    };
    let tcp_loop = async {
        loop {
            match tcp.accept().await {
                Ok((s, peer)) => {
                    tokio::spawn(serve_tcp(map, s, peer));
                }
                Err(e) => warn!("portmapper: accept failed: {e}"),
            }
        }
    };
    tokio::join!(udp_loop, tcp_loop);
}

/// One TCP connection: record-marked calls (RFC 5531 §11), one at a time.
async fn serve_tcp(map: Map, mut s: TcpStream, peer: SocketAddr) {
    loop {
        let mut call = Vec::new();
        loop {
            let Ok(header) = s.read_u32().await else {
                return;
            };
            let len = (header & 0x7fff_ffff) as usize;
            if call.len() + len > MAX_CALL {
                warn!("portmapper: {peer} sent a {len}-byte record; closing");
                return;
            }
            let start = call.len();
            call.resize(start + len, 0);
            if s.read_exact(&mut call[start..]).await.is_err() {
                return;
            }
            if header & 0x8000_0000 != 0 {
                break;
            }
        }
        let Some(r) = answer(&map, &call, peer) else {
            return;
        };
        let mut out = Vec::with_capacity(r.len() + 4);
        out.extend_from_slice(&(0x8000_0000 | r.len() as u32).to_be_bytes());
        out.extend_from_slice(&r);
        if s.write_all(&out).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfs3_server::nfs3_types::portmap::IPPROTO_UDP;
    use nfs3_server::nfs3_types::rpc::call_body;

    fn call(prog: u32, vers: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
        let msg = rpc_msg {
            xid: 7,
            body: msg_body::CALL(call_body {
                rpcvers: 2,
                prog,
                vers,
                proc: proc_,
                cred: opaque_auth::default(),
                verf: opaque_auth::default(),
            }),
        };
        let mut out = Vec::new();
        msg.pack(&mut out).unwrap();
        out.extend_from_slice(args);
        out
    }

    fn getport(prog: u32, vers: u32, prot: u32) -> u32 {
        let mut args = Vec::new();
        mapping {
            prog,
            vers,
            prot,
            port: 0,
        }
        .pack(&mut args)
        .unwrap();
        let r = answer(
            &Map { nfs_port: 2049 },
            &call(PROGRAM, 2, 3, &args),
            "127.0.0.1:9".parse().unwrap(),
        )
        .unwrap();
        // xid, REPLY, MSG_ACCEPTED, verf (flavor, len), SUCCESS, port
        assert_eq!(&r[..4], &7u32.to_be_bytes());
        assert_eq!(&r[20..24], &0u32.to_be_bytes(), "accept_stat SUCCESS");
        u32::from_be_bytes(r[24..28].try_into().unwrap())
    }

    #[test]
    fn getport_maps_nfs_and_mount_over_tcp_only() {
        assert_eq!(getport(NFS_PROGRAM, 3, IPPROTO_TCP), 2049);
        assert_eq!(getport(MOUNT_PROGRAM, 3, IPPROTO_TCP), 2049);
        assert_eq!(getport(MOUNT_PROGRAM, 1, IPPROTO_TCP), 2049);
        assert_eq!(getport(NFS_PROGRAM, 3, IPPROTO_UDP), 0);
        assert_eq!(getport(NFS_PROGRAM, 4, IPPROTO_TCP), 0);
        assert_eq!(getport(100_021, 4, IPPROTO_TCP), 0, "no NLM");
    }

    #[test]
    fn other_versions_and_garbage() {
        let peer = "127.0.0.1:9".parse().unwrap();
        let map = Map { nfs_port: 2049 };
        let r = answer(&map, &call(PROGRAM, 4, 3, &[]), peer).unwrap();
        assert_eq!(&r[20..24], &2u32.to_be_bytes(), "PROG_MISMATCH");
        let r = answer(&map, &call(PROGRAM, 2, 5, &[]), peer).unwrap();
        assert_eq!(&r[20..24], &3u32.to_be_bytes(), "CALLIT refused");
        let r = answer(&map, &call(PROGRAM, 2, 3, &[1, 2]), peer).unwrap();
        assert_eq!(&r[20..24], &4u32.to_be_bytes(), "GARBAGE_ARGS");
        for n in 0..40 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37) as u8).collect();
            let _ = answer(&map, &junk, peer);
        }
        assert!(answer(&map, &[0xff; 8], peer).is_none());
    }
}
