//! Ethernet addresses and the MAC / MAC-prefix patterns used in config.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub const BROADCAST: Mac = Mac([0xff; 6]);
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

fn octets(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty MAC address".into());
    }
    s.split([':', '-'])
        .map(|p| {
            if p.len() == 2 {
                u8::from_str_radix(p, 16).map_err(|_| format!("`{p}` is not a hex octet"))
            } else {
                Err(format!(
                    "`{p}` is not a two-digit hex octet (use 52:54:00:12:34:56)"
                ))
            }
        })
        .collect()
}

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let o = octets(s)?;
        <[u8; 6]>::try_from(o.as_slice())
            .map(Mac)
            .map_err(|_| format!("a MAC address has 6 octets, `{s}` has {}", o.len()))
    }
}

/// A full MAC or a prefix of 1–5 octets (`52:54:00` matches every qemu NIC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacPattern(Vec<u8>);

impl MacPattern {
    pub fn matches(&self, mac: Mac) -> bool {
        mac.0.starts_with(&self.0)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for MacPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let o = octets(s)?;
        if o.len() > 6 {
            return Err(format!("`{s}` has more than 6 octets"));
        }
        Ok(MacPattern(o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_match() {
        let m: Mac = "52-54-00-AB-cd-01".parse().unwrap();
        assert_eq!(m.to_string(), "52:54:00:ab:cd:01");
        let p: MacPattern = "52:54:00".parse().unwrap();
        assert!(p.matches(m));
        assert!(!"52:54:01".parse::<MacPattern>().unwrap().matches(m));
        assert!("52:54:0".parse::<Mac>().is_err());
        assert!("52:54:00".parse::<Mac>().is_err());
        assert!("1:2:3:4:5:6:7".parse::<MacPattern>().is_err());
        assert!("".parse::<MacPattern>().is_err());
    }
}
