//! Raspberry Pi network boot as the boards' boot firmware does it: the Pi 4
//! and 5 EEPROM bootloader and the Pi 3's boot ROM. They send a PXE-looking
//! DISCOVER (`PXEClient:Arch:00000:UNDI:002001`, arch 0) but are no PC: they
//! want a proxy offer whose option 43 menu says `Raspberry Pi Boot` and then
//! fetch `<serial>/start4.elf` (Pi 4) or `<serial>/config.txt` (Pi 5) by TFTP
//! from the proxy. Sources: the vendor's "Network booting" page (the Pi 3
//! ROM's request and dnsmasq's reply, byte for byte), its bootloader
//! configuration page (`DHCP_OPTION97`, `TFTP_PREFIX`, `PXE_OPTION43`), and
//! the captures in rpi-eeprom issues #58 and #376.

use std::fmt;

use crate::mac::Mac;
use crate::pxe::{self, MenuEntry};

/// The menu text the bootloader matches (`PXE_OPTION43`'s default).
pub const BOOT_MENU_TEXT: &str = "Raspberry Pi Boot";

/// Raspberry Pi Ltd's and the Foundation's OUIs (IEEE registry).
pub const OUIS: [[u8; 3]; 6] = [
    [0xb8, 0x27, 0xeb],
    [0xdc, 0xa6, 0x32],
    [0xe4, 0x5f, 0x01],
    [0x28, 0xcd, 0xc1],
    [0xd8, 0x3a, 0xdd],
    [0x2c, 0xcf, 0x67],
];

/// `RPi4` as a little-endian FourCC: the default first four bytes of the
/// EEPROM bootloader's option 97 GUID (`DHCP_OPTION97=0x34695052`), after
/// the type byte 0. Pi 4 and Pi 5 bootloaders both send it.
const GUID_MAGIC: [u8; 4] = *b"RPi4";

/// The Pi 3 boot ROM's constant GUID (the vendor's page, "DHCP UUID constant").
const PI3_ROM_GUID: [u8; 16] = [0x44; 16];

/// Which boot firmware is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Board {
    /// An EEPROM bootloader whose GUID names the board: the revision code's
    /// type field (bits 4–11, the vendor's "revision codes" table).
    Named(&'static str, Family),
    /// A boot ROM in the SoC (Pi 3B, 3B+; Pi 2 with bootcode.bin): the
    /// Foundation's first OUI, b8:27:eb, which no EEPROM board carries.
    /// `spaces`: the 3B's constant GUID, and its menu-text length bug.
    Pi3Rom { spaces: bool },
    /// A Pi by its OUI only (old GUID format or `DHCP_OPTION97` changed).
    Unnamed,
}

/// What the board fetches first over TFTP, and so what `probe` plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Pi 4, 400, CM4: `start4.elf` first.
    Pi4,
    /// Pi 5, 500, CM5: `config.txt` first (its firmware is in the EEPROM).
    Pi5,
}

impl Family {
    pub fn first_file(self) -> &'static str {
        match self {
            Family::Pi4 => "start4.elf",
            Family::Pi5 => "config.txt",
        }
    }
}

/// A Raspberry Pi recognised from its DISCOVER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pi {
    pub board: Board,
    /// The serial as the board prefixes its TFTP paths (`TFTP_PREFIX=0`):
    /// eight lowercase hex digits.
    pub serial: Option<String>,
}

impl Pi {
    /// The Pi 3B ROM miscounts the menu text's length and needs three
    /// trailing spaces (the vendor's page, "Raspberry Pi Boot string";
    /// fixed in the 3B+).
    pub fn menu_text(&self) -> String {
        match self.board {
            Board::Pi3Rom { spaces: true } => format!("{BOOT_MENU_TEXT}   "),
            _ => BOOT_MENU_TEXT.to_string(),
        }
    }

    /// The SoC boot ROMs read the TFTP server from the DHCP server's offer
    /// and ignore a proxy's (raspberrypi/firmware issue #1265): say so.
    pub fn takes_tftp_from_router(&self) -> bool {
        matches!(self.board, Board::Pi3Rom { .. })
    }

    /// Option 43 as dnsmasq's `pxe-service=0,"Raspberry Pi Boot"` sends it:
    /// discovery control 3, one local-boot menu item with the text, a
    /// prompt `PXE` with timeout 0.
    pub fn vendor_options(&self, server: [u8; 4]) -> Vec<u8> {
        let menu = [MenuEntry {
            item_type: 0,
            label: self.menu_text(),
        }];
        pxe::offer_options(&menu, Some(("PXE", 0)), server)
    }
}

impl fmt::Display for Pi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.board {
            Board::Named(name, _) => f.write_str(name)?,
            Board::Pi3Rom { .. } => f.write_str("Raspberry Pi 3 boot ROM")?,
            Board::Unnamed => f.write_str("Raspberry Pi")?,
        }
        if let Some(s) = &self.serial {
            write!(f, " serial {s}")?;
        }
        Ok(())
    }
}

/// The board name and family for a revision code's type field.
fn board_of(revision: u32) -> Option<(&'static str, Family)> {
    // New-style revision codes set bit 23; the type is bits 4–11.
    if revision & (1 << 23) == 0 {
        return None;
    }
    Some(match (revision >> 4) & 0xff {
        0x11 => ("Raspberry Pi 4", Family::Pi4),
        0x13 => ("Raspberry Pi 400", Family::Pi4),
        0x14 => ("Compute Module 4", Family::Pi4),
        0x15 => ("Compute Module 4S", Family::Pi4),
        0x17 => ("Raspberry Pi 5", Family::Pi5),
        0x18 => ("Compute Module 5", Family::Pi5),
        0x19 => ("Raspberry Pi 500", Family::Pi5),
        0x1a => ("Compute Module 5 Lite", Family::Pi5),
        _ => return None,
    })
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Recognises a Pi from a PXE DISCOVER: arch 0 and either the bootloader's
/// GUID (option 97, type 0 + 16 bytes) or a Raspberry Pi OUI. Any other
/// arch-0 client stays a BIOS PC.
pub fn recognise(mac: Mac, arch: u16, guid: Option<&[u8]>) -> Option<Pi> {
    if arch != 0 {
        return None;
    }
    let body = guid.filter(|g| g.len() == 17 && g[0] == 0).map(|g| &g[1..]);
    let oui = OUIS.iter().any(|o| mac.0[..3] == o[..]);
    // without a telling GUID, the OUI says ROM (b8:27:eb) or some EEPROM board
    let by_oui = if mac.0[..3] == OUIS[0] {
        Board::Pi3Rom { spaces: false }
    } else {
        Board::Unnamed
    };
    match body {
        // RPi4 + board revision + MAC's low 4 bytes + serial (all LE)
        Some(b) if b[..4] == GUID_MAGIC => {
            let board =
                board_of(le32(&b[4..8])).map_or(Board::Unnamed, |(n, fam)| Board::Named(n, fam));
            Some(Pi {
                board,
                serial: Some(format!("{:08x}", le32(&b[12..16]))),
            })
        }
        Some(b) if oui && b == PI3_ROM_GUID => Some(Pi {
            board: Board::Pi3Rom { spaces: true },
            serial: None,
        }),
        // the serial four times: the 3B+ ROM, and the EEPROM bootloader
        // with DHCP_OPTION97=0
        Some(b) if oui && b[..4] == b[4..8] && b[..8] == b[8..16] => Some(Pi {
            board: by_oui,
            serial: Some(format!("{:08x}", le32(b))),
        }),
        _ if oui => Some(Pi {
            board: by_oui,
            serial: None,
        }),
        _ => None,
    }
}

/// A TFTP path prefix a Pi puts before its files: the serial (eight hex
/// digits, `TFTP_PREFIX=0`) or the MAC with dashes (`TFTP_PREFIX=2`).
pub fn is_prefix(component: &str) -> bool {
    let hex = |s: &str| s.bytes().all(|c| c.is_ascii_hexdigit());
    (component.len() == 8 && hex(component))
        || (component.len() == 17
            && component.split('-').all(|p| p.len() == 2 && hex(p))
            && component.split('-').count() == 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PI4_MAC: Mac = Mac([0xdc, 0xa6, 0x32, 0x27, 0x76, 0xbc]);

    fn guid(magic: [u8; 4], rev: u32, mac_lsb: [u8; 4], serial: u32) -> Vec<u8> {
        let mut g = vec![0];
        g.extend_from_slice(&magic);
        g.extend_from_slice(&rev.to_le_bytes());
        g.extend_from_slice(&mac_lsb);
        g.extend_from_slice(&serial.to_le_bytes());
        g
    }

    #[test]
    fn the_bootloader_guid_names_board_and_serial() {
        let g = guid(GUID_MAGIC, 0x00c03111, [0x32, 0x27, 0x76, 0xbc], 0x6aee7243);
        let pi = recognise(PI4_MAC, 0, Some(&g)).unwrap();
        assert_eq!(pi.to_string(), "Raspberry Pi 4 serial 6aee7243");
        assert_eq!(pi.board, Board::Named("Raspberry Pi 4", Family::Pi4));
        // the GUID alone is enough: a Pi 5 with a MAC we do not list
        let g = guid(GUID_MAGIC, 0x00d04170, [0; 4], 0x1234abcd);
        let pi = recognise(Mac([2, 0, 0, 0, 0, 1]), 0, Some(&g)).unwrap();
        assert_eq!(pi.to_string(), "Raspberry Pi 5 serial 1234abcd");
        // but only at arch 0
        assert_eq!(recognise(PI4_MAC, 7, Some(&g)), None);
    }

    #[test]
    fn older_formats_and_the_oui() {
        // rpi-eeprom issue #58: the serial 6aee7243 four times
        let mut g = vec![0];
        for _ in 0..4 {
            g.extend_from_slice(&[0x43, 0x72, 0xee, 0x6a]);
        }
        let pi = recognise(PI4_MAC, 0, Some(&g)).unwrap();
        assert_eq!(pi.to_string(), "Raspberry Pi serial 6aee7243");
        // the Pi 3 ROM's constant GUID (the vendor's page)
        let mut g = vec![0];
        g.extend_from_slice(&[0x44; 16]);
        let pi3 = recognise(Mac([0xb8, 0x27, 0xeb, 0x28, 0xf6, 0x6d]), 0, Some(&g)).unwrap();
        assert_eq!(pi3.menu_text(), "Raspberry Pi Boot   ");
        assert!(pi3.takes_tftp_from_router());
        // a 3B+ (serial GUID, the ROM's OUI): exact text, same warning
        let mut g = vec![0];
        for _ in 0..4 {
            g.extend_from_slice(&[0x61, 0x9c, 0xaf, 0x2c]);
        }
        let pi3p = recognise(Mac([0xb8, 0x27, 0xeb, 1, 2, 3]), 0, Some(&g)).unwrap();
        assert_eq!(pi3p.to_string(), "Raspberry Pi 3 boot ROM serial 2caf9c61");
        assert_eq!(pi3p.menu_text(), "Raspberry Pi Boot");
        assert!(pi3p.takes_tftp_from_router());
        assert!(!pi.takes_tftp_from_router());
        // a PC's GUID at arch 0 stays a PC
        let pc = Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        assert_eq!(recognise(pc, 0, Some(&g)), None);
        assert_eq!(recognise(pc, 0, None), None);
        assert!(recognise(PI4_MAC, 0, None).is_some());
    }

    #[test]
    fn vendor_options_match_dnsmasqs_reply() {
        // The vendor's page: option 43 of dnsmasq's reply, in its sub-option
        // order 6, 10, 9; ours puts 9 before 10 (the bootloader reads them by
        // code: rpi-eeprom issue #376 shows it booting from 6, 9, 10).
        let pi = recognise(PI4_MAC, 0, None).unwrap();
        let o = pi.vendor_options([10, 0, 0, 2]);
        let mut want = vec![6, 1, 3, 9, 20, 0, 0, 17];
        want.extend_from_slice(b"Raspberry Pi Boot");
        want.extend_from_slice(&[10, 4, 0, b'P', b'X', b'E', 255]);
        assert_eq!(o, want);
    }

    #[test]
    fn tftp_prefixes() {
        assert!(is_prefix("6aee7243"));
        assert!(is_prefix("dc-a6-32-01-36-c2"));
        assert!(!is_prefix("pxelinux.cfg"));
        assert!(!is_prefix("6aee724"));
        assert!(!is_prefix("dc-a6-32-01-36-c2-"));
        assert!(!is_prefix("dc:a6:32:01:36:c2"));
    }
}
