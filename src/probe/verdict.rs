//! What a probe's findings mean, in the words the firmware would show
//! (PXE spec 2.1 error codes, syslinux's config search): pure functions of
//! what was received, tested without sockets.

use std::net::Ipv4Addr;

use crate::mac::Mac;

/// One offer as the probe received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub server: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub file: String,
    /// It carries option 60 `PXEClient` (or `HTTPClient`).
    pub pxe: bool,
    /// The menu item a non-prompting client would ask for on 4011.
    pub menu_item: Option<u16>,
    /// Its option 43, as sent.
    pub vendor: Vec<u8>,
}

impl Offer {
    /// Where a client fetches the offer's file: siaddr (next-server), or
    /// the offering server when siaddr is empty.
    pub fn tftp_server(&self) -> Ipv4Addr {
        if self.siaddr.is_unspecified() {
            self.server
        } else {
            self.siaddr
        }
    }

    /// `proxy offer from 10.0.0.2: boot file pxelinux.0 from 10.0.0.2`.
    pub fn describe(&self) -> String {
        let what = match (self.yiaddr.is_unspecified(), self.pxe) {
            (true, true) => "proxy offer",
            (false, true) => "offer with address and PXE options",
            (false, false) => "offer (address only)",
            (true, false) => "offer with no address",
        };
        let boot = if self.file.is_empty() {
            "no boot file".to_string()
        } else {
            format!("boot file {} from {}", self.file, self.siaddr)
        };
        let addr = if self.yiaddr.is_unspecified() {
            String::new()
        } else {
            format!("address {}, ", self.yiaddr)
        };
        let menu = self
            .menu_item
            .map(|t| format!(", menu item {t:#06x}"))
            .unwrap_or_default();
        format!("{what} from {}: {addr}{boot}{menu}", self.server)
    }
}

/// What the client shows when no offer came at all.
pub const NO_OFFER: &str = "PXE-E51: No DHCP or proxyDHCP offers were received (no DHCP server answered: is the cable/VLAN right, is a DHCP server up?)";

/// What the client shows when offers came but none for PXE.
pub const NO_PXE_OFFER: &str = "PXE-E53: No boot filename received (no offer carried PXE options: is the PXE server running on this LAN, and does it answer this MAC?)";

/// Whether the firmware asks the boot server on port 4011 before fetching:
/// EDK2 (every EFI class) always does; a BIOS ROM when the offer named no file.
pub fn asks_4011(efi: bool, offered_file: &str) -> bool {
    efi || offered_file.is_empty()
}

/// How a TFTP fetch failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TftpFail {
    Timeout,
    Error(u16, String),
}

/// A TFTP failure in the words the client would show.
pub fn tftp_failure(server: Ipv4Addr, file: &str, fail: &TftpFail) -> String {
    match fail {
        TftpFail::Timeout => format!(
            "PXE-E32: TFTP open timeout: {server}:69 did not answer the RRQ for {file} (TFTP server down, or a firewall drops UDP 69)"
        ),
        TftpFail::Error(1, msg) => format!(
            "PXE-T01: File not found: {file} ({server} says {msg:?}; check the name and the TFTP root)"
        ),
        TftpFail::Error(code, msg) => format!("PXE-T0{code}: TFTP error {code} for {file}: {msg}"),
    }
}

/// What runs after the boot file, as far as the probe follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// pxelinux or syslinux.efi: the config search.
    Pxelinux,
    /// iPXE: it asks DHCP again, as iPXE, and loads a script.
    Ipxe,
    /// shim: it loads GRUB (`grubx64.efi`/`grubaa64.efi`) from beside
    /// itself, which reads `grub/grub.cfg`.
    Shim(&'static str),
    /// Anything else: the probe stops after fetching it.
    Unknown,
}

pub fn next_stage(file: &str) -> Next {
    let base = file.rsplit('/').next().unwrap_or(file);
    if base == "pxelinux.0" || base == "lpxelinux.0" || base.starts_with("syslinux") {
        Next::Pxelinux
    } else if base.starts_with("shimx64") {
        Next::Shim("grubx64.efi")
    } else if base.starts_with("shimaa64") {
        Next::Shim("grubaa64.efi")
    } else if crate::proxy::looks_like_ipxe(file) {
        Next::Ipxe
    } else {
        Next::Unknown
    }
}

/// What a GRUB config loads: the `linux` and `initrd` paths of its first
/// entry, as written (`/path` on GRUB's `$root`, or `(http,HOST[:PORT])/path`).
pub fn grub_files(cfg: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in cfg.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("linux") | Some("linuxefi") | Some("initrd") | Some("initrdefi") => {
                out.extend(words.next().map(str::to_string));
            }
            Some("}") if !out.is_empty() => break,
            _ => {}
        }
    }
    out
}

/// A GRUB path as a URL the probe can follow: `(http,HOST)/p` is
/// `http://HOST/p`, `(tftp,HOST)/p` is `tftp://HOST/p`; a bare `/p` is on
/// the TFTP server GRUB came from, returned as the name there.
pub fn grub_uri(path: &str) -> String {
    if let Some(rest) = path.strip_prefix('(')
        && let Some((dev, p)) = rest.split_once(')')
        && let Some((proto, host)) = dev.split_once(',')
    {
        return format!("{proto}://{host}{p}");
    }
    path.trim_start_matches('/').to_string()
}

/// The names pxelinux tries, in order (syslinux doc/pxelinux.txt): 01-MAC,
/// the client's IP in hex shortened one digit at a time, then `default`;
/// in `pxelinux.cfg/` beside the loader. U-Boot's `pxe get` tries the same,
/// with `default-arm` (its CONFIG_SYS_ARCH) before `default`.
pub fn pxelinux_search(loader: &str, mac: Mac, ip: Ipv4Addr, uboot: bool) -> Vec<String> {
    let dir = loader
        .rsplit_once('/')
        .map_or(String::new(), |(d, _)| format!("{d}/"));
    let mut names = vec![format!("01-{}", mac.to_string().replace(':', "-"))];
    let hex = format!("{:08X}", u32::from(ip));
    for n in (1..=8).rev() {
        names.push(hex[..n].to_string());
    }
    if uboot {
        names.push("default-arm".into());
    }
    names.push("default".into());
    names
        .into_iter()
        .map(|n| format!("{dir}pxelinux.cfg/{n}"))
        .collect()
}

/// What a pxelinux config loads: the files its KERNEL/LINUX/INITRD lines
/// name (modules, `.c32`, left out), and the `nfsroot=` of its APPEND line.
pub fn pxelinux_loads(config: &str) -> (Vec<String>, Option<String>) {
    let mut named = Vec::new();
    let mut nfsroot = None;
    for line in config.lines() {
        let mut w = line.split_whitespace();
        match w.next().map(str::to_ascii_uppercase).as_deref() {
            Some("KERNEL" | "LINUX" | "INITRD" | "FDT") => named.extend(
                w.next()
                    .filter(|f| !f.ends_with(".c32"))
                    .map(str::to_string),
            ),
            Some("APPEND") => {
                nfsroot = nfsroot.or(w.find_map(|a| a.strip_prefix("nfsroot=").map(str::to_string)))
            }
            _ => {}
        }
    }
    (named, nfsroot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_configs_are_followed() {
        let cfg = "set timeout=0\nmenuentry \"linux\" {\n  echo \"x\"\n  linux (http,10.0.0.2)/nfsroot/vmlinuz root=/dev/nfs\n  initrd /nfsroot/initrd.img\n}\nmenuentry b {\n linux /other\n}\n";
        let files = grub_files(cfg);
        assert_eq!(
            files,
            ["(http,10.0.0.2)/nfsroot/vmlinuz", "/nfsroot/initrd.img"]
        );
        assert_eq!(grub_uri(&files[0]), "http://10.0.0.2/nfsroot/vmlinuz");
        assert_eq!(grub_uri(&files[1]), "nfsroot/initrd.img");
        assert_eq!(grub_uri("(tftp,10.0.0.3)/k"), "tftp://10.0.0.3/k");
        assert_eq!(next_stage("shimx64.efi"), Next::Shim("grubx64.efi"));
        assert!(grub_files("echo nothing\nsleep 30\nexit\n").is_empty());
    }

    fn offer(yiaddr: [u8; 4], pxe: bool, file: &str) -> Offer {
        Offer {
            server: Ipv4Addr::new(10, 0, 0, 2),
            yiaddr: yiaddr.into(),
            siaddr: Ipv4Addr::UNSPECIFIED,
            file: file.into(),
            pxe,
            menu_item: None,
            vendor: Vec::new(),
        }
    }

    #[test]
    fn offers_read_as_the_firmware_sees_them() {
        let router = offer([10, 0, 0, 50], false, "");
        assert_eq!(
            router.describe(),
            "offer (address only) from 10.0.0.2: address 10.0.0.50, no boot file"
        );
        let proxy = offer([0; 4], true, "pxelinux.0");
        assert!(
            proxy
                .describe()
                .starts_with("proxy offer from 10.0.0.2: boot file pxelinux.0")
        );
        // no next-server: the offering server serves the file
        assert_eq!(proxy.tftp_server(), Ipv4Addr::new(10, 0, 0, 2));
        assert!(asks_4011(true, "syslinux.efi"));
        assert!(asks_4011(false, ""));
        assert!(!asks_4011(false, "pxelinux.0"));
    }

    #[test]
    fn tftp_failures_carry_the_clients_codes() {
        let s = Ipv4Addr::new(10, 0, 0, 2);
        assert!(tftp_failure(s, "x", &TftpFail::Timeout).starts_with("PXE-E32"));
        assert!(
            tftp_failure(s, "x", &TftpFail::Error(1, "File not found".into()))
                .starts_with("PXE-T01: File not found: x")
        );
        assert!(
            tftp_failure(s, "x", &TftpFail::Error(2, "Access violation".into()))
                .starts_with("PXE-T02")
        );
        assert!(NO_OFFER.starts_with("PXE-E51") && NO_PXE_OFFER.starts_with("PXE-E53"));
    }

    #[test]
    fn the_loader_decides_what_comes_next() {
        assert_eq!(next_stage("pxelinux.0"), Next::Pxelinux);
        assert_eq!(next_stage("efi64/syslinux.efi"), Next::Pxelinux);
        assert_eq!(next_stage("snponly.efi"), Next::Ipxe);
        assert_eq!(next_stage("undionly.kpxe"), Next::Ipxe);
        assert_eq!(next_stage("grubnetx64.efi"), Next::Unknown);
    }

    #[test]
    fn pxelinux_searches_mac_then_ip_prefixes_then_default() {
        let names = pxelinux_search(
            "bios/pxelinux.0",
            Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            Ipv4Addr::new(192, 0, 2, 91),
            false,
        );
        assert_eq!(
            names.first().unwrap(),
            "bios/pxelinux.cfg/01-52-54-00-12-34-56"
        );
        assert_eq!(names[1], "bios/pxelinux.cfg/C000025B");
        assert_eq!(names[8], "bios/pxelinux.cfg/C");
        assert_eq!(names.last().unwrap(), "bios/pxelinux.cfg/default");
        assert_eq!(names.len(), 10);
        assert_eq!(
            pxelinux_search("pxelinux.0", Mac([0; 6]), Ipv4Addr::UNSPECIFIED, false)[9],
            "pxelinux.cfg/default"
        );
        // U-Boot's `pxe get`: its architecture's default first
        let u = pxelinux_search("", Mac([0; 6]), Ipv4Addr::UNSPECIFIED, true);
        assert_eq!(u[9..], ["pxelinux.cfg/default-arm", "pxelinux.cfg/default"]);
    }

    #[test]
    fn a_config_names_kernel_initrd_and_nfsroot() {
        let cfg = "DEFAULT linux\nUI menu.c32\nLABEL linux\n  KERNEL vmlinuz\n  INITRD initrd.img\n  APPEND root=/dev/nfs nfsroot=10.0.0.2:/srv/nfsroot,vers=3 ip=dhcp\n";
        let (files, nfs) = pxelinux_loads(cfg);
        assert_eq!(files, ["vmlinuz", "initrd.img"]);
        assert_eq!(nfs.as_deref(), Some("10.0.0.2:/srv/nfsroot,vers=3"));
        assert_eq!(
            pxelinux_loads("DEFAULT menu.c32\nKERNEL menu.c32\n"),
            (vec![], None)
        );
    }
}
