//! The probe's TFTP client: a minimal RFC 1350 reader with the blksize and
//! tsize options (RFC 2348/2349), and its results in the client's words.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::report::Probe;
use super::verdict::{self, TftpFail};

/// RRQ with tsize, then the whole file. True when it arrived.
pub(super) fn fetch(p: &mut Probe, own_ip: Ipv4Addr, server: Ipv4Addr, file: &str) -> bool {
    match tftp_get(own_ip, server, file, IPXE_BLKSIZE) {
        Ok((bytes, t)) => {
            p.note(
                true,
                format!(
                    "TFTP {file} from {server}: {bytes} bytes in {} ms",
                    t.as_millis()
                ),
            );
            true
        }
        Err(fail) => {
            tftp_failed(p, server, file, fail);
            false
        }
    }
}

/// A TFTP failure in the words the client would show.
pub(super) fn tftp_failed(p: &mut Probe, server: Ipv4Addr, file: &str, fail: TftpFail) {
    p.note(false, verdict::tftp_failure(server, file, &fail));
}

/// A config or script, read at `blksize`; past 1 MiB (no boot config is
/// that long) the read stops there.
pub(super) fn tftp_text(
    own_ip: Ipv4Addr,
    server: Ipv4Addr,
    file: &str,
    blksize: u16,
) -> Result<String, TftpFail> {
    let mut out = Vec::new();
    tftp_read(own_ip, server, file, blksize, &mut |b| {
        out.extend_from_slice(b);
        out.len() <= 1 << 20
    })?;
    Ok(String::from_utf8_lossy(&out).to_string())
}

/// A whole file at `blksize`: its size and how long it took.
pub(super) fn tftp_get(
    own_ip: Ipv4Addr,
    server: Ipv4Addr,
    file: &str,
    blksize: u16,
) -> Result<(u64, Duration), TftpFail> {
    let t = Instant::now();
    let mut n = 0u64;
    tftp_read(own_ip, server, file, blksize, &mut |b| {
        n += b.len() as u64;
        true
    })?;
    Ok((n, t.elapsed()))
}

/// What iPXE asks for.
pub(super) const IPXE_BLKSIZE: u16 = 1432;

/// A minimal RFC 1350 reader asking for `blksize` and tsize (RFC 2348/2349).
/// `sink` gets each block in order; when it returns false the reader stops
/// with an ERROR, as a client checking that a file exists does. Returns the
/// tsize the server announced.
pub(super) fn tftp_read(
    own_ip: Ipv4Addr,
    server: Ipv4Addr,
    file: &str,
    blksize_asked: u16,
    sink: &mut dyn FnMut(&[u8]) -> bool,
) -> Result<Option<u64>, TftpFail> {
    let io = |_| TftpFail::Timeout;
    let s = UdpSocket::bind((own_ip, 0)).map_err(io)?;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(io)?;
    let mut rrq = vec![0, 1];
    rrq.extend_from_slice(file.as_bytes());
    rrq.extend_from_slice(format!("\0octet\0blksize\0{blksize_asked}\0tsize\x000\0").as_bytes());
    s.send_to(&rrq, (server, 69)).map_err(io)?;
    let mut buf = vec![0u8; 65536];
    let mut blksize = 512usize;
    let mut expect: u16 = 1;
    let mut peer: Option<SocketAddr> = None;
    let mut tsize = None;
    loop {
        let (n, from) = s.recv_from(&mut buf).map_err(io)?;
        if peer.is_some_and(|p| p != from) {
            continue;
        }
        peer = Some(from);
        let pkt = &buf[..n];
        match pkt.get(..2) {
            Some([0, 6]) => {
                // OACK: take blksize if granted; ACK 0 starts the data.
                let parts: Vec<&[u8]> = pkt[2..].split(|&b| b == 0).collect();
                for kv in parts.chunks(2) {
                    let value = || std::str::from_utf8(kv[1]).ok()?.parse().ok();
                    if kv.len() == 2 && kv[0].eq_ignore_ascii_case(b"blksize") {
                        blksize = value().unwrap_or(512);
                    }
                    if kv.len() == 2 && kv[0].eq_ignore_ascii_case(b"tsize") {
                        tsize = value().map(|v: usize| v as u64);
                    }
                }
                s.send_to(&[0, 4, 0, 0], from).map_err(io)?;
            }
            Some([0, 3]) if n >= 4 => {
                let block = u16::from_be_bytes([pkt[2], pkt[3]]);
                if block == expect && !sink(&pkt[4..]) {
                    // TFTP error 0 ("not defined"): the client's own abort
                    s.send_to(b"\0\x05\0\0abort\0", from).map_err(io)?;
                    return Ok(tsize);
                }
                s.send_to(&[0, 4, pkt[2], pkt[3]], from).map_err(io)?;
                if block == expect {
                    expect = expect.wrapping_add(1);
                    if n - 4 < blksize {
                        return Ok(tsize);
                    }
                }
            }
            Some([0, 5]) if n >= 4 => {
                let code = u16::from_be_bytes([pkt[2], pkt[3]]);
                let msg = String::from_utf8_lossy(&pkt[4..])
                    .trim_end_matches('\0')
                    .to_string();
                return Err(TftpFail::Error(code, msg));
            }
            _ => continue,
        }
    }
}
