//! What a UEFI boot file says about itself: whether it carries an
//! Authenticode signature (the PE certificate table, which Secure Boot
//! firmware checks), and its SBAT entries (the `.sbat` section, CSV lines
//! `component,generation,vendor,package,version,url` of shim's SBAT spec),
//! which name the GRUB version inside. Pure and bounded: any bytes in, no
//! panic, `None` for what is not a PE image.

/// What `check` needs to know of an EFI binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// A certificate table is present (PE data directory 4).
    pub signed: bool,
    /// SBAT entries: (component, version).
    pub sbat: Vec<(String, String)>,
}

impl Facts {
    /// GRUB's upstream version from SBAT (`grub,…,2.06,…`), as (major, minor).
    pub fn grub_version(&self) -> Option<(u32, u32)> {
        let (_, v) = self.sbat.iter().find(|(c, _)| c == "grub")?;
        let mut parts = v.split(|c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, minor))
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Reads a boot file from disk (at most 64 MiB: loaders are a few MiB)
/// and what it says of itself.
pub fn read_file(path: &std::path::Path) -> Option<Facts> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(64 << 20).read_to_end(&mut bytes))
        .ok()?;
    read(&bytes)
}

/// Reads a PE image's signature presence and SBAT section.
pub fn read(b: &[u8]) -> Option<Facts> {
    if b.get(..2)? != b"MZ" {
        return None;
    }
    let pe = u32_at(b, 0x3c)? as usize;
    if b.get(pe..pe + 4)? != b"PE\0\0" {
        return None;
    }
    let coff = pe + 4;
    let sections = u16_at(b, coff + 2)? as usize;
    let opt_size = u16_at(b, coff + 16)? as usize;
    let opt = coff + 20;
    // PE32 or PE32+: where the data directories start
    let (count_at, dirs_at) = match u16_at(b, opt)? {
        0x10b => (opt + 92, opt + 96),
        0x20b => (opt + 108, opt + 112),
        _ => return None,
    };
    let dirs = u32_at(b, count_at)? as usize;
    let signed = dirs > 4 && u32_at(b, dirs_at + 4 * 8 + 4).is_some_and(|size| size > 0);
    let mut sbat = Vec::new();
    let table = opt.checked_add(opt_size)?;
    for i in 0..sections.min(96) {
        let s = table + i * 40;
        let name = b.get(s..s + 8)?;
        if !name.starts_with(b".sbat") {
            continue;
        }
        let vsize = u32_at(b, s + 8)? as usize;
        let raw_size = u32_at(b, s + 16)? as usize;
        let raw_at = u32_at(b, s + 20)? as usize;
        let len = if vsize == 0 {
            raw_size
        } else {
            vsize.min(raw_size)
        };
        let data = b.get(raw_at..raw_at.checked_add(len.min(64 * 1024))?)?;
        let text = String::from_utf8_lossy(data);
        for line in text.trim_end_matches('\0').lines() {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() >= 5 {
                sbat.push((f[0].trim().to_string(), f[4].trim().to_string()));
            }
        }
    }
    Some(Facts { signed, sbat })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal PE32+ image with an `.sbat` section and, if asked, a
    /// certificate table entry.
    pub fn image(sbat: &str, signed: bool) -> Vec<u8> {
        let mut b = vec![0u8; 0x400];
        b[..2].copy_from_slice(b"MZ");
        let pe = 0x80usize;
        b[0x3c..0x40].copy_from_slice(&(pe as u32).to_le_bytes());
        b[pe..pe + 4].copy_from_slice(b"PE\0\0");
        let coff = pe + 4;
        b[coff + 2..coff + 4].copy_from_slice(&1u16.to_le_bytes());
        let opt_size = 112 + 16 * 8;
        b[coff + 16..coff + 18].copy_from_slice(&(opt_size as u16).to_le_bytes());
        let opt = coff + 20;
        b[opt..opt + 2].copy_from_slice(&0x20bu16.to_le_bytes());
        b[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
        if signed {
            let cert = opt + 112 + 4 * 8;
            b[cert..cert + 4].copy_from_slice(&0x300u32.to_le_bytes());
            b[cert + 4..cert + 8].copy_from_slice(&0x10u32.to_le_bytes());
        }
        let sec = opt + opt_size;
        b[sec..sec + 5].copy_from_slice(b".sbat");
        let data_at = 0x200usize;
        b[sec + 8..sec + 12].copy_from_slice(&(sbat.len() as u32).to_le_bytes());
        b[sec + 16..sec + 20].copy_from_slice(&0x100u32.to_le_bytes());
        b[sec + 20..sec + 24].copy_from_slice(&(data_at as u32).to_le_bytes());
        b[data_at..data_at + sbat.len()].copy_from_slice(sbat.as_bytes());
        b
    }

    const GRUB_206: &str = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\ngrub,3,Free Software Foundation,grub,2.06,https://www.gnu.org/software/grub/\ngrub.debian,4,Debian,grub2,2.06-13+deb12u2,https://tracker.debian.org/pkg/grub2\n";

    #[test]
    fn sbat_names_grub_and_its_version() {
        let f = read(&image(GRUB_206, true)).unwrap();
        assert!(f.signed);
        assert_eq!(f.grub_version(), Some((2, 6)));
        let f = read(&image(&GRUB_206.replace("2.06", "2.12"), false)).unwrap();
        assert!(!f.signed);
        assert_eq!(f.grub_version(), Some((2, 12)));
        assert_eq!(
            read(&image("shim,4,UEFI shim,shim,16.1,https://x\n", true))
                .unwrap()
                .grub_version(),
            None
        );
    }

    #[test]
    fn anything_else_is_none_and_never_panics() {
        assert_eq!(read(b""), None);
        assert_eq!(read(b"MZ"), None);
        assert_eq!(read(b"\x7fELF"), None);
        let good = image(GRUB_206, true);
        for cut in 0..good.len() {
            let _ = read(&good[..cut]);
        }
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0xff;
            let _ = read(&b);
        }
    }
}
