//! A bounded, allocation-light reader for BOOTP/DHCPv4 messages (RFC 951,
//! RFC 2131 §2, RFC 2132). It never panics and never trusts a length: every
//! field is read through checked slices, so hostile frames end in a
//! [`Malformed`] reason instead of a crash. We read options ourselves
//! (instead of through dhcproto's decoder) because dhcproto drops every option
//! after the first malformed one and asserts on `hlen > 16`.

use std::net::Ipv4Addr;

/// Fixed BOOTP header up to and including `file` (RFC 951).
pub const HEADER_LEN: usize = 236;
/// RFC 2131 §3: the options field starts with 99.130.83.99.
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];

pub mod opt {
    pub const PAD: u8 = 0;
    pub const VENDOR: u8 = 43;
    pub const REQUESTED_IP: u8 = 50;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const MAX_SIZE: u8 = 57;
    pub const VENDOR_CLASS: u8 = 60;
    pub const USER_CLASS: u8 = 77;
    pub const ARCH: u8 = 93;
    pub const UUID: u8 = 97;
    pub const IPXE: u8 = 175;
    pub const END: u8 = 255;
}

/// Why a datagram could not be read as a DHCP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("{0} bytes is shorter than a BOOTP header (236 bytes + cookie)")]
    Short(usize),
    #[error("hardware address length {0} is more than 16")]
    HwLen(u8),
    #[error("option {code} at offset {offset} claims {len} bytes but only {left} remain")]
    OptionOverrun {
        code: u8,
        offset: usize,
        len: u8,
        left: usize,
    },
    #[error("option 53 (message type) has length {0}, not 1")]
    MessageTypeLen(usize),
}

/// A parsed BOOTP message borrowing the datagram.
#[derive(Debug, Clone)]
pub struct Bootp<'a> {
    pub op: u8,
    pub htype: u8,
    pub hlen: u8,
    pub hops: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: &'a [u8],
    /// False for plain BOOTP (no cookie): there are no DHCP options at all.
    pub has_cookie: bool,
    options: Vec<(u8, &'a [u8])>,
}

impl<'a> Bootp<'a> {
    pub fn parse(b: &'a [u8]) -> Result<Bootp<'a>, Malformed> {
        if b.len() < HEADER_LEN {
            return Err(Malformed::Short(b.len()));
        }
        let ip = |o: usize| Ipv4Addr::new(b[o], b[o + 1], b[o + 2], b[o + 3]);
        let hlen = b[2];
        if hlen > 16 {
            return Err(Malformed::HwLen(hlen));
        }
        let mut m = Bootp {
            op: b[0],
            htype: b[1],
            hlen,
            hops: b[3],
            xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            secs: u16::from_be_bytes([b[8], b[9]]),
            flags: u16::from_be_bytes([b[10], b[11]]),
            ciaddr: ip(12),
            yiaddr: ip(16),
            siaddr: ip(20),
            giaddr: ip(24),
            chaddr: &b[28..28 + hlen as usize],
            has_cookie: b.get(HEADER_LEN..HEADER_LEN + 4) == Some(&MAGIC_COOKIE[..]),
            options: Vec::new(),
        };
        if !m.has_cookie {
            return Ok(m);
        }
        let overload = read_options(&b[HEADER_LEN + 4..], HEADER_LEN + 4, &mut m.options)?;
        // RFC 2131 §4.1: with option 52 the `file` field, then `sname`, hold more options.
        if overload & 1 != 0 {
            read_options(&b[108..236], 108, &mut m.options)?;
        }
        if overload & 2 != 0 {
            read_options(&b[44..108], 44, &mut m.options)?;
        }
        if let Some(t) = m.option(opt::MESSAGE_TYPE)
            && t.len() != 1
        {
            return Err(Malformed::MessageTypeLen(t.len()));
        }
        Ok(m)
    }

    /// The first instance of an option. (RFC 3396 split options are rare on
    /// the client side and none of the ones we read are long enough to need it.)
    pub fn option(&self, code: u8) -> Option<&'a [u8]> {
        self.options
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, body)| *body)
    }

    pub fn message_type(&self) -> Option<u8> {
        self.option(opt::MESSAGE_TYPE).map(|t| t[0])
    }

    pub fn broadcast(&self) -> bool {
        self.flags & 0x8000 != 0
    }
}

/// Walks one options area; returns the overload value (option 52) if present.
fn read_options<'a>(
    area: &'a [u8],
    base: usize,
    out: &mut Vec<(u8, &'a [u8])>,
) -> Result<u8, Malformed> {
    let mut overload = 0;
    let mut i = 0;
    while i < area.len() {
        let code = area[i];
        match code {
            opt::PAD => i += 1,
            opt::END => break,
            _ => {
                let len = match area.get(i + 1) {
                    Some(&l) => l,
                    None => {
                        return Err(Malformed::OptionOverrun {
                            code,
                            offset: base + i,
                            len: 0,
                            left: 0,
                        });
                    }
                };
                let start = i + 2;
                let body =
                    area.get(start..start + len as usize)
                        .ok_or(Malformed::OptionOverrun {
                            code,
                            offset: base + i,
                            len,
                            left: area.len() - start,
                        })?;
                if code == opt::OVERLOAD && len == 1 {
                    overload = body[0];
                }
                out.push((code, body));
                i = start + len as usize;
            }
        }
    }
    Ok(overload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b[0] = 1;
        b[1] = 1;
        b[2] = 6;
        b[28..34].copy_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        b.extend_from_slice(&MAGIC_COOKIE);
        b
    }

    #[test]
    fn reads_options_and_overload() {
        let mut b = base();
        b.extend_from_slice(&[53, 1, 1, 52, 1, 1, 255]);
        // option 60 inside `file`
        b[108..119].copy_from_slice(&[60, 9, b'P', b'X', b'E', b'C', b'l', b'i', b'e', b'n', b't']);
        b[119] = 255;
        let m = Bootp::parse(&b).unwrap();
        assert_eq!(m.message_type(), Some(1));
        assert_eq!(m.option(60), Some(&b"PXEClient"[..]));
        assert_eq!(m.chaddr, &[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    }

    #[test]
    fn rejects_overruns_and_bad_lengths() {
        let mut b = base();
        b.extend_from_slice(&[53, 1, 1, 60, 200, b'P']);
        assert!(matches!(
            Bootp::parse(&b),
            Err(Malformed::OptionOverrun { code: 60, .. })
        ));
        let mut b = base();
        b.push(60);
        assert!(Bootp::parse(&b).is_err());
        let mut b = base();
        b[2] = 17;
        assert_eq!(Bootp::parse(&b).unwrap_err(), Malformed::HwLen(17));
        assert_eq!(Bootp::parse(&[1, 2, 3]).unwrap_err(), Malformed::Short(3));
        let mut b = base();
        b.extend_from_slice(&[53, 0]);
        assert_eq!(Bootp::parse(&b).unwrap_err(), Malformed::MessageTypeLen(0));
    }

    #[test]
    fn bootp_without_cookie_has_no_options() {
        let mut b = base();
        b.truncate(HEADER_LEN);
        let m = Bootp::parse(&b).unwrap();
        assert!(!m.has_cookie);
        assert_eq!(m.message_type(), None);
    }
}
