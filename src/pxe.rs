//! PXE codecs: client architecture (option 93), vendor class (option 60) and
//! the PXE vendor options carried in option 43 (PXE spec 2.1 §2.2.x).

use std::fmt;

/// Client system architecture, IANA "Processor Architecture Types"
/// (RFC 4578 §2.1 and the IANA registry that extends it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// 0: x86 BIOS (also assumed when a PXE client sends no option 93).
    Bios,
    /// 6: EFI IA32.
    Efi32,
    /// 7 (EFI BC) and 9 (EFI x64): both are x86-64 UEFI in practice.
    EfiX64(u16),
    /// 10: EFI ARM32.
    EfiArm32,
    /// 11: EFI ARM64.
    EfiArm64,
    /// 15: UEFI HTTP boot on x86.
    HttpX86,
    /// 16: UEFI HTTP boot on x64.
    HttpX64,
    /// 19: UEFI HTTP boot on ARM64.
    HttpArm64,
    /// 21: U-Boot on 32-bit ARM.
    UBootArm32,
    /// 22: U-Boot on 64-bit ARM.
    UBootArm64,
    /// Anything else the registry lists (Itanium, MIPS, RISC-V, …) or does not.
    Other(u16),
}

/// A `[boot]` key: which boot file a class of firmware gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootKey {
    Bios,
    Efi32,
    Efi64,
    Arm64,
    HttpX64,
    HttpArm64,
}

impl BootKey {
    /// The PXE keys (HTTP boot keys hold URLs).
    pub const PXE: [BootKey; 4] = [
        BootKey::Bios,
        BootKey::Efi32,
        BootKey::Efi64,
        BootKey::Arm64,
    ];

    /// The key as the config file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            BootKey::Bios => "bios",
            BootKey::Efi32 => "efi32",
            BootKey::Efi64 => "efi64",
            BootKey::Arm64 => "arm64",
            BootKey::HttpX64 => "http_x64",
            BootKey::HttpArm64 => "http_arm64",
        }
    }

    /// A PXE key by its config name.
    pub fn parse_pxe(s: &str) -> Option<BootKey> {
        BootKey::PXE.into_iter().find(|k| k.as_str() == s)
    }

    /// The architecture a fallback to this key answers as.
    pub fn arch(self) -> Arch {
        match self {
            BootKey::Bios => Arch::Bios,
            BootKey::Efi32 => Arch::Efi32,
            BootKey::Efi64 => Arch::EfiX64(7),
            BootKey::Arm64 => Arch::EfiArm64,
            BootKey::HttpX64 => Arch::HttpX64,
            BootKey::HttpArm64 => Arch::HttpArm64,
        }
    }
}

impl std::fmt::Display for BootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The firmware a machine runs, as far as what it shows for a failed TFTP
/// read: PXE ROMs print PXE-T01, EDK2 (UEFI) PXE-E23, iPXE its own text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Bios,
    Uefi,
    Ipxe,
    UBoot,
    /// A Raspberry Pi bootloader: it tests optional files by asking.
    RaspberryPi,
}

impl Family {
    pub fn of(arch: Arch, ipxe: bool, pi: bool) -> Family {
        match arch {
            _ if pi => Family::RaspberryPi,
            _ if ipxe => Family::Ipxe,
            Arch::UBootArm32 | Arch::UBootArm64 => Family::UBoot,
            Arch::Bios | Arch::Other(_) => Family::Bios,
            _ => Family::Uefi,
        }
    }

    /// What the machine's screen shows when a file it reads is missing.
    pub fn shows_not_found(self) -> &'static str {
        match self {
            Family::Bios => "PXE-T01: File not found",
            Family::Uefi => "PXE-E23: Client received TFTP error from server",
            Family::Ipxe => "No such file or directory",
            Family::UBoot => "TFTP error: 'File not found' (1)",
            Family::RaspberryPi => {
                "nothing if the file is optional (the bootloader asks to find out); without start4.elf (Pi 4) or config.txt (Pi 5) it stops"
            }
        }
    }
}

impl Arch {
    pub fn from_code(code: u16) -> Arch {
        match code {
            0 => Arch::Bios,
            6 => Arch::Efi32,
            7 | 9 => Arch::EfiX64(code),
            10 => Arch::EfiArm32,
            11 => Arch::EfiArm64,
            15 => Arch::HttpX86,
            16 => Arch::HttpX64,
            19 => Arch::HttpArm64,
            21 => Arch::UBootArm32,
            22 => Arch::UBootArm64,
            n => Arch::Other(n),
        }
    }

    pub fn code(self) -> u16 {
        match self {
            Arch::Bios => 0,
            Arch::Efi32 => 6,
            Arch::EfiX64(c) => c,
            Arch::EfiArm32 => 10,
            Arch::EfiArm64 => 11,
            Arch::HttpX86 => 15,
            Arch::HttpX64 => 16,
            Arch::HttpArm64 => 19,
            Arch::UBootArm32 => 21,
            Arch::UBootArm64 => 22,
            Arch::Other(n) => n,
        }
    }

    /// The name people know from firmware menus and dnsmasq's `pxe-service` tags.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Bios => "BIOS",
            Arch::Efi32 => "EFI IA32",
            Arch::EfiX64(7) => "EFI BC",
            Arch::EfiX64(_) => "EFI x64",
            Arch::EfiArm32 => "EFI ARM32",
            Arch::EfiArm64 => "EFI ARM64",
            Arch::HttpX86 => "UEFI HTTP x86",
            Arch::HttpX64 => "UEFI HTTP x64",
            Arch::HttpArm64 => "UEFI HTTP ARM64",
            Arch::UBootArm32 => "ARM32 U-Boot",
            Arch::UBootArm64 => "ARM64 U-Boot",
            Arch::Other(_) => "unknown",
        }
    }

    /// The `[boot]` key that holds this architecture's boot file.
    pub fn boot_key(self) -> Option<BootKey> {
        match self {
            Arch::Bios => Some(BootKey::Bios),
            Arch::Efi32 => Some(BootKey::Efi32),
            Arch::EfiX64(_) => Some(BootKey::Efi64),
            Arch::EfiArm64 => Some(BootKey::Arm64),
            Arch::HttpX64 | Arch::HttpX86 => Some(BootKey::HttpX64),
            Arch::HttpArm64 => Some(BootKey::HttpArm64),
            Arch::EfiArm32 | Arch::UBootArm32 | Arch::UBootArm64 | Arch::Other(_) => None,
        }
    }

    pub fn is_efi(self) -> bool {
        !matches!(
            self,
            Arch::Bios | Arch::UBootArm32 | Arch::UBootArm64 | Arch::Other(_)
        )
    }

    /// U-Boot's own DHCP (`dhcp`, then `pxe get`): it reads no PXE menu and
    /// boots from pxelinux.cfg files.
    pub fn is_uboot(self) -> bool {
        matches!(self, Arch::UBootArm32 | Arch::UBootArm64)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "arch {} {}", self.code(), self.name())
    }
}

/// What every ARM U-Boot's `pxe get` asks for after `01-<mac>` and its
/// address in hex, and before the PCs' `default` (its CONFIG_SYS_ARCH is
/// `arm` on arm64 too: boot/pxe_utils.c's default paths).
pub const UBOOT_CONFIG: &str = "pxelinux.cfg/default-arm";

/// Which kind of network-boot client option 60 announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// `PXEClient…` (PXE spec 2.1 §2.2.1): TFTP boot.
    Pxe,
    /// `HTTPClient…` (UEFI 2.5+ §24.7): the reply must echo `HTTPClient` and give a URL.
    Http,
}

impl ClientKind {
    /// Option 60 is case-sensitive; only the prefix matters
    /// (`PXEClient:Arch:00007:UNDI:003016`, or a bare `PXEClient` from iPXE).
    /// U-Boot's `dhcp` says `U-Boot.armv8` (its CONFIG_BOOTP_VCI_STRING)
    /// with arch 21/22 in option 93; its `pxe get` reads TFTP like a PXE
    /// client's, so it counts as one when `arch` is U-Boot's.
    pub fn from_vendor_class(vc: &[u8], arch: Option<u16>) -> Option<ClientKind> {
        if vc.starts_with(b"PXEClient")
            || (vc.starts_with(b"U-Boot") && matches!(arch, Some(21 | 22)))
        {
            Some(ClientKind::Pxe)
        } else if vc.starts_with(b"HTTPClient") {
            Some(ClientKind::Http)
        } else {
            None
        }
    }

    /// The exact option 60 the server must send back.
    pub fn reply_class(self) -> &'static [u8] {
        match self {
            ClientKind::Pxe => b"PXEClient",
            ClientKind::Http => b"HTTPClient",
        }
    }
}

/// The architecture named inside option 60 (`…:Arch:00007:…`), used when a
/// client sends no option 93.
pub fn arch_from_vendor_class(vc: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(vc).ok()?;
    let mut parts = text.split(':');
    while let Some(p) = parts.next() {
        if p == "Arch" {
            return parts.next()?.parse().ok();
        }
    }
    None
}

/// PXE vendor sub-options in option 43 (PXE spec 2.1, table 2-1).
pub mod sub {
    pub const DISCOVERY_CONTROL: u8 = 6;
    pub const BOOT_SERVERS: u8 = 8;
    pub const BOOT_MENU: u8 = 9;
    pub const MENU_PROMPT: u8 = 10;
    pub const BOOT_ITEM: u8 = 71;
    pub const END: u8 = 255;
}

/// A boot item (option 43 sub 71): the server type the client picked from the
/// menu, and the layer of the file it wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootItem {
    pub item_type: u16,
    pub layer: u16,
}

/// The sub-options of an option 43 (code, body), in order. Pads are skipped;
/// the walk ends at END or at the first sub-option that overruns the data,
/// so anything malformed after a good sub-option is simply not seen.
fn sub_options(opt43: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut rest = opt43;
    std::iter::from_fn(move || {
        loop {
            let (&code, tail) = rest.split_first()?;
            match code {
                0 => rest = tail,
                sub::END => return None,
                c => {
                    let (&len, after) = tail.split_first()?;
                    let body = after.get(..len as usize)?;
                    rest = &after[len as usize..];
                    return Some((c, body));
                }
            }
        }
    })
}

/// Reads sub 71 out of a client's option 43.
pub fn boot_item(opt43: &[u8]) -> Option<BootItem> {
    sub_options(opt43).find_map(|(c, b)| {
        (c == sub::BOOT_ITEM && b.len() == 4).then(|| BootItem {
            item_type: u16::from_be_bytes([b[0], b[1]]),
            layer: u16::from_be_bytes([b[2], b[3]]),
        })
    })
}

/// The first network boot item of a server's menu (option 43 sub 9): what
/// a client that does not prompt picks. Item type 0 (local boot) is skipped.
pub fn first_menu_item(opt43: &[u8]) -> Option<u16> {
    let (_, mut items) = sub_options(opt43).find(|(c, _)| *c == sub::BOOT_MENU)?;
    // Each entry: type (2 bytes), description length (1), description.
    while let [a, b, l, more @ ..] = items {
        let t = u16::from_be_bytes([*a, *b]);
        if t != 0 {
            return Some(t);
        }
        items = more.get(*l as usize..)?;
    }
    None
}

/// Every item's text in a server's menu (option 43 sub 9).
pub fn menu_labels(opt43: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let Some((_, mut items)) = sub_options(opt43).find(|(c, _)| *c == sub::BOOT_MENU) else {
        return out;
    };
    while let [_, _, l, more @ ..] = items {
        let Some(text) = more.get(..*l as usize) else {
            break;
        };
        out.push(String::from_utf8_lossy(text).into_owned());
        items = &more[*l as usize..];
    }
    out
}

/// One entry of a PXE boot menu (sub 9) and the server list (sub 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuEntry {
    pub item_type: u16,
    pub label: String,
}

/// Builds option 43 for a proxy offer.
///
/// Without a menu: discovery control bit 3 ("a boot file name is present in
/// the offer: download it, no prompt/menu/discovery"), as Pixiecore does.
/// With a menu: bits 0|1 (no broadcast or multicast discovery) plus a boot
/// server list naming us, so the client asks us on 4011 for the item it picks.
pub fn offer_options(menu: &[MenuEntry], prompt: Option<(&str, u8)>, server: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::new();
    if menu.is_empty() {
        push_sub(&mut out, sub::DISCOVERY_CONTROL, &[8]);
    } else {
        push_sub(&mut out, sub::DISCOVERY_CONTROL, &[3]);
        let mut servers = Vec::new();
        for e in menu.iter().filter(|e| e.item_type != 0) {
            servers.extend_from_slice(&e.item_type.to_be_bytes());
            servers.push(1);
            servers.extend_from_slice(&server);
        }
        if !servers.is_empty() {
            push_sub(&mut out, sub::BOOT_SERVERS, &servers);
        }
        let mut items = Vec::new();
        for e in menu {
            let label = truncate(e.label.as_bytes(), 64);
            items.extend_from_slice(&e.item_type.to_be_bytes());
            items.push(label.len() as u8);
            items.extend_from_slice(label);
        }
        push_sub(&mut out, sub::BOOT_MENU, truncate(&items, 255));
        if let Some((text, timeout)) = prompt {
            let mut p = vec![timeout];
            p.extend_from_slice(truncate(text.as_bytes(), 254));
            push_sub(&mut out, sub::MENU_PROMPT, &p);
        }
    }
    out.push(sub::END);
    out
}

/// Option 43 for a boot-server ACK: echo the item the client asked for
/// (PXE spec 2.1 §2.2.6: the reply carries the same sub 71).
pub fn ack_options(item: BootItem) -> Vec<u8> {
    let mut out = Vec::new();
    let mut body = item.item_type.to_be_bytes().to_vec();
    body.extend_from_slice(&item.layer.to_be_bytes());
    push_sub(&mut out, sub::BOOT_ITEM, &body);
    out.push(sub::END);
    out
}

fn push_sub(out: &mut Vec<u8>, code: u8, body: &[u8]) {
    out.push(code);
    out.push(body.len() as u8);
    out.extend_from_slice(body);
}

fn truncate(b: &[u8], max: usize) -> &[u8] {
    &b[..b.len().min(max)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_firmware_family_names_its_own_error() {
        assert_eq!(
            Family::of(Arch::Bios, false, false).shows_not_found(),
            "PXE-T01: File not found"
        );
        assert_eq!(Family::of(Arch::EfiX64(7), false, false), Family::Uefi);
        assert_eq!(Family::of(Arch::EfiArm64, false, false), Family::Uefi);
        assert_eq!(Family::of(Arch::Bios, true, false), Family::Ipxe);
        assert_eq!(Family::of(Arch::UBootArm64, false, false), Family::UBoot);
        assert_eq!(Family::of(Arch::Bios, false, true), Family::RaspberryPi);
        assert!(Family::Uefi.shows_not_found().starts_with("PXE-E23"));
    }

    #[test]
    fn arch_codes_round_trip() {
        for c in [0u16, 6, 7, 9, 10, 11, 15, 16, 19, 21, 22, 2, 0xffff] {
            assert_eq!(Arch::from_code(c).code(), c);
        }
        assert_eq!(Arch::from_code(9).boot_key(), Some(BootKey::Efi64));
        assert_eq!(Arch::from_code(7).boot_key(), Some(BootKey::Efi64));
        assert_eq!(Arch::from_code(2).boot_key(), None);
        for k in BootKey::PXE {
            assert_eq!(BootKey::parse_pxe(k.as_str()), Some(k));
            assert_eq!(k.arch().boot_key(), Some(k));
        }
    }

    #[test]
    fn vendor_class_parsing() {
        assert_eq!(
            arch_from_vendor_class(b"PXEClient:Arch:00007:UNDI:003016"),
            Some(7)
        );
        assert_eq!(arch_from_vendor_class(b"PXEClient"), None);
        assert_eq!(arch_from_vendor_class(b"PXEClient:Arch:"), None);
        assert_eq!(
            ClientKind::from_vendor_class(b"HTTPClient:Arch:00016:UNDI:003000", None),
            Some(ClientKind::Http)
        );
        assert_eq!(ClientKind::from_vendor_class(b"pxeclient", None), None);
        assert_eq!(ClientKind::from_vendor_class(b"MSFT 5.0", Some(22)), None);
        assert_eq!(
            ClientKind::from_vendor_class(b"U-Boot.armv8", Some(22)),
            Some(ClientKind::Pxe)
        );
        assert_eq!(
            ClientKind::from_vendor_class(b"U-Boot.armv8", Some(0)),
            None
        );
    }

    #[test]
    fn boot_item_walks_and_survives_garbage() {
        let ok = [6, 1, 3, 71, 4, 0x80, 0x01, 0, 0, 255];
        assert_eq!(
            boot_item(&ok),
            Some(BootItem {
                item_type: 0x8001,
                layer: 0
            })
        );
        assert_eq!(boot_item(&[71, 200, 1, 2]), None);
        assert_eq!(boot_item(&[71]), None);
        assert_eq!(boot_item(&[0, 0, 255, 71, 4, 1, 1, 1, 1]), None);
        assert_eq!(boot_item(&[]), None);
    }

    #[test]
    fn menu_encoding() {
        let menu = vec![
            MenuEntry {
                item_type: 0,
                label: "Local disk".into(),
            },
            MenuEntry {
                item_type: 0x8001,
                label: "Debian".into(),
            },
        ];
        let o = offer_options(&menu, Some(("Press F8", 5)), [10, 0, 0, 2]);
        assert_eq!(&o[..3], &[6, 1, 3]);
        assert_eq!(&o[3..12], &[8, 7, 0x80, 0x01, 1, 10, 0, 0, 2]);
        assert_eq!(*o.last().unwrap(), 255);
        assert_eq!(offer_options(&[], None, [0; 4]), vec![6, 1, 8, 255]);
        assert_eq!(first_menu_item(&o), Some(0x8001));
        assert_eq!(first_menu_item(&[9, 3, 0, 0, 9]), None);
        assert_eq!(first_menu_item(&[6, 1, 8, 255]), None);
        let a = ack_options(BootItem {
            item_type: 0x8001,
            layer: 0,
        });
        assert_eq!(a, vec![71, 4, 0x80, 1, 0, 0, 255]);
    }
}
