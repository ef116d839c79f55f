//! Configuration: figment layers (built-in defaults → TOML file → environment
//! `PXE_SIDECAR_*` → command line), deserialized with unknown keys refused,
//! then validated once into the typed [`Config`] the rest of the program reads.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::mac::{Mac, MacPattern};
use crate::pxe::{Arch, BootKey, MenuEntry};

/// Where `serve` looks for a config file when none is named.
pub const DEFAULT_CONFIG: &str = "/etc/pxe-sidecar/pxe-sidecar.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "config file {0} does not exist (named with --config or PXE_SIDECAR_CONFIG); create it or drop the option to run with defaults"
    )]
    Missing(PathBuf),
    #[error("{0}")]
    Figment(Box<figment::Error>),
    #[error("config key `{key}` = {value:?}: {why}")]
    Invalid {
        key: String,
        value: String,
        why: String,
    },
}

impl From<figment::Error> for ConfigError {
    fn from(e: figment::Error) -> Self {
        ConfigError::Figment(Box::new(e))
    }
}

fn invalid(
    key: impl Into<String>,
    value: impl Into<String>,
    why: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        why: why.into(),
    }
}

/// The file format, key by key. Every key is documented in conf/example.toml.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub interface: Option<String>,
    pub server_ip: Option<Ipv4Addr>,
    pub log_format: LogFormat,
    pub user: String,
    pub proxy: RawProxy,
    pub boot: RawBoot,
    pub menu: RawMenu,
    pub clients: Vec<RawClient>,
    pub tftp: Tftp,
    pub http: Http,
    pub pxelinux: Pxelinux,
    pub uboot: UBoot,
    pub rpi: Rpi,
    pub nfs: Nfs,
    pub status: Status,
}

/// Where the live client timeline is shown (`pxe-sidecar status`, the page).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Status {
    /// Unix socket `pxe-sidecar status` reads; "" turns it off.
    pub socket: PathBuf,
    /// Address of the status page, /api/clients and /metrics; "" turns it off.
    pub http: String,
    /// Serve the page on a non-loopback address.
    pub allow_remote: bool,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            socket: PathBuf::from("/run/pxe-sidecar/status.sock"),
            http: "127.0.0.1:9090".into(),
            allow_remote: false,
        }
    }
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            interface: None,
            server_ip: None,
            log_format: LogFormat::Human,
            user: "nobody".into(),
            proxy: RawProxy::default(),
            boot: RawBoot::default(),
            menu: RawMenu::default(),
            clients: Vec::new(),
            tftp: Tftp::default(),
            http: Http::default(),
            pxelinux: Pxelinux::default(),
            uboot: UBoot::default(),
            rpi: Rpi::default(),
            nfs: Nfs::default(),
            status: Status::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawProxy {
    /// Answer only these MACs or MAC prefixes (the borrowed-LAN mode). Empty: all PXE clients.
    pub allow: Vec<String>,
    /// What to do with an architecture we have no key for: "ignore", or a `[boot]` key.
    pub unknown_arch: Option<String>,
    /// Tell a PXE client we just answered that there is no IPv6 router, when
    /// none answers its router solicitation (src/ndp.rs): iPXE waits ~15 s otherwise.
    pub router_hint: bool,
    /// DHCP relay agents whose relayed requests we answer (their address on
    /// the clients' subnet, as they put it in `giaddr`; `/len` gives that
    /// subnet, default /24). Empty: relayed requests are ignored.
    pub relays: Vec<String>,
}

impl Default for RawProxy {
    fn default() -> Self {
        RawProxy {
            allow: Vec::new(),
            unknown_arch: None,
            router_hint: true,
            relays: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBoot {
    pub bios: String,
    pub efi32: String,
    pub efi64: String,
    pub arm64: String,
    pub http_x64: String,
    pub http_arm64: String,
    pub ipxe: String,
}

impl Default for RawBoot {
    /// The loaders Debian's pxelinux, syslinux-efi and ipxe packages install,
    /// which the TFTP server offers under these names when the root lacks
    /// them. x86-64 UEFI gets iPXE (snponly.efi: it drives the NIC through
    /// the firmware's own SNP driver, so it runs wherever PXE ran) and iPXE
    /// clients the generated script, which loads kernel and initrd over
    /// HTTP: lock-step TFTP at ~1.4 KB per round trip is the slowest part of
    /// a UEFI boot, and syslinux.efi has no faster way (e2e boot bench).
    fn default() -> Self {
        RawBoot {
            bios: "pxelinux.0".into(),
            efi32: "syslinux32.efi".into(),
            efi64: AUTO.into(),
            arm64: "shimaa64.efi".into(),
            http_x64: AUTO.into(),
            http_arm64: String::new(),
            ipxe: "boot.ipxe".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMenu {
    pub prompt: String,
    pub timeout: u8,
    pub items: Vec<RawMenuItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMenuItem {
    pub label: String,
    /// Boot file for this item; empty means "boot from local disk" (type 0).
    #[serde(default)]
    pub file: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    pub mac: String,
    #[serde(default)]
    pub boot: Option<String>,
    #[serde(default)]
    pub ignore: bool,
    /// Names the machine's NFS per-client area (instead of its MAC).
    #[serde(default)]
    pub name: Option<String>,
}

/// Where `loaders fetch` unpacks by default.
pub const LOADER_CACHE: &str = "/var/cache/pxe-sidecar/loaders";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tftp {
    pub enabled: bool,
    pub root: PathBuf,
    pub port: u16,
    /// Transfers at once, in total and from one client IP.
    pub max_transfers: usize,
    pub max_per_client: usize,
    /// Largest RFC 7440 window we grant.
    pub max_windowsize: u16,
    /// Where WRQ may create new files; empty refuses every WRQ.
    pub upload_dir: PathBuf,
    /// Largest upload accepted, in bytes.
    pub upload_max_bytes: u64,
    /// Signed loaders unpacked by `pxe-sidecar loaders fetch`; searched
    /// before the host's packages.
    pub loaders: PathBuf,
}

impl Default for Tftp {
    fn default() -> Self {
        Tftp {
            enabled: true,
            root: PathBuf::from("/srv/tftp"),
            port: 69,
            max_transfers: 512,
            max_per_client: 8,
            max_windowsize: 64,
            upload_dir: PathBuf::new(),
            upload_max_bytes: 64 << 20,
            loaders: PathBuf::from(LOADER_CACHE),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    pub enabled: bool,
    pub port: u16,
    /// Where the generated iPXE script fetches kernel and initrd instead of
    /// this server (a cache or CDN serving the same paths); empty: here.
    pub base_url: String,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            enabled: true,
            port: 80,
            base_url: String::new(),
        }
    }
}

/// What the generated `pxelinux.cfg/default` and iPXE script boot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pxelinux {
    pub kernel: String,
    pub initrd: String,
    pub append: String,
}

/// What the generated `pxelinux.cfg/default-arm` boots: every ARM U-Boot's
/// `pxe get` asks for it after `01-<mac>` and its address in hex, before
/// `default` (which is the PCs').
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UBoot {
    pub kernel: String,
    pub initrd: String,
    pub append: String,
    /// A device tree to load (`fdt`); empty: the board's own.
    pub fdt: String,
}

/// Where Raspberry Pi boards' files are, in the TFTP tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rpi {
    /// The directory (under `[tftp] root`) a Pi reads when it asks for
    /// `<serial>/file` and its serial has no entry in `serials`.
    pub dir: String,
    /// Serial (8 hex digits) or MAC with dashes → its own directory
    /// (lowercased once validated).
    pub serials: std::collections::BTreeMap<String, String>,
}

impl Default for Rpi {
    fn default() -> Self {
        Rpi {
            dir: "rpi".into(),
            serials: Default::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Nfs {
    pub enabled: bool,
    pub root: PathBuf,
    pub port: u16,
    pub portmap: bool,
    pub state_dir: PathBuf,
    pub writable: Vec<String>,
    pub allow: Vec<String>,
    pub root_squash: Squash,
}

impl Default for Nfs {
    fn default() -> Self {
        Nfs {
            enabled: true,
            root: PathBuf::from("/srv/nfsroot"),
            port: 2049,
            portmap: true,
            state_dir: PathBuf::from("/var/lib/pxe-sidecar"),
            writable: vec!["/var".into(), "/home".into()],
            allow: vec!["pxe".into()],
            root_squash: Squash::All,
        }
    }
}

/// Whose root is mapped to nobody (`root_squash` in exports(5) terms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Squash {
    /// Client root is nobody everywhere.
    All,
    /// Client root is root on the read-only tree, nobody where it can write.
    Writable,
    /// Client root is root everywhere (`no_root_squash`).
    None,
}

/// A DHCP relay agent we answer: its `giaddr` and the subnet behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relay {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Relay {
    fn parse(s: &str) -> Option<Relay> {
        let (ip, len) = s.trim().split_once('/').unwrap_or((s.trim(), "24"));
        let prefix: u8 = len.parse().ok().filter(|l| *l <= 32)?;
        let addr: Ipv4Addr = ip.parse().ok()?;
        (!addr.is_unspecified() && !addr.is_broadcast()).then_some(Relay { addr, prefix })
    }

    /// The network address of the subnet behind this relay.
    pub fn network(&self) -> Ipv4Addr {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        Ipv4Addr::from(u32::from(self.addr) & mask)
    }

    /// Whether `ip` is on the subnet behind this relay.
    pub fn serves(&self, ip: Ipv4Addr) -> bool {
        in_subnet(ip, self.addr, self.prefix)
    }
}

/// Whether `ip` is in `net/prefix`.
pub fn in_subnet(ip: Ipv4Addr, net: Ipv4Addr, prefix: u8) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix.min(32))
    };
    u32::from(ip) & mask == u32::from(net) & mask
}

/// Which clients may use the NFS door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NfsAllow {
    /// Clients whose address we learned from their PXE/DHCP exchange with us.
    Pxe,
    /// An IPv4 subnet.
    Net(Ipv4Addr, u8),
}

impl NfsAllow {
    pub fn admits(&self, ip: Ipv4Addr, booted_via_us: bool) -> bool {
        match *self {
            NfsAllow::Pxe => booted_via_us,
            NfsAllow::Net(net, len) => in_subnet(ip, net, len),
        }
    }
}

/// Validated `[nfs]`.
#[derive(Debug, Clone, PartialEq)]
pub struct NfsConfig {
    pub enabled: bool,
    pub root: PathBuf,
    pub port: u16,
    pub portmap: bool,
    pub state_dir: PathBuf,
    /// Writable subtrees, relative to `root` (e.g. "var").
    pub writable: Vec<PathBuf>,
    pub allow: Vec<NfsAllow>,
    pub root_squash: Squash,
    /// `[[clients]]` names for per-client areas, by MAC.
    pub names: Vec<(Mac, String)>,
}

fn nfs_config(raw: Nfs, names: Vec<(Mac, String)>) -> Result<NfsConfig, ConfigError> {
    if !raw.root.is_absolute() {
        return Err(invalid(
            "nfs.root",
            raw.root.display().to_string(),
            "must be an absolute path",
        ));
    }
    if !raw.state_dir.is_absolute() || raw.state_dir.starts_with(&raw.root) {
        return Err(invalid(
            "nfs.state_dir",
            raw.state_dir.display().to_string(),
            "must be an absolute directory outside [nfs] root (per-client areas live there)",
        ));
    }
    let writable = raw
        .writable
        .iter()
        .map(|w| {
            let rel = Path::new(w.trim_start_matches('/'));
            let plain = rel
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !w.starts_with('/') || !plain || rel.as_os_str().is_empty() {
                return Err(invalid(
                    "nfs.writable",
                    w,
                    "each entry is an absolute path inside the client's tree, like \"/var\" (not \"/\", no \"..\")",
                ));
            }
            Ok(rel.to_path_buf())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let allow = raw
        .allow
        .iter()
        .map(|a| parse_nfs_allow(a).ok_or_else(|| {
            invalid(
                "nfs.allow",
                a,
                "each entry is \"pxe\" (clients that PXE-booted through us) or an IPv4 subnet like \"10.0.0.0/24\"",
            )
        }))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NfsConfig {
        enabled: raw.enabled,
        root: raw.root,
        port: raw.port,
        portmap: raw.portmap,
        state_dir: raw.state_dir,
        writable,
        allow,
        root_squash: raw.root_squash,
        names,
    })
}

fn parse_nfs_allow(s: &str) -> Option<NfsAllow> {
    if s == "pxe" {
        return Some(NfsAllow::Pxe);
    }
    let (ip, len) = s.split_once('/').unwrap_or((s, "32"));
    let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
    Some(NfsAllow::Net(ip.parse().ok()?, len))
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub interface: Option<String>,
    pub server_ip: Option<Ipv4Addr>,
    pub log_format: LogFormat,
    /// Who `serve` runs as after opening its sockets, when started as root.
    pub user: String,
    pub proxy: ProxyConfig,
    pub tftp: Tftp,
    pub http: Http,
    pub pxelinux: Pxelinux,
    pub uboot: UBoot,
    pub rpi: Rpi,
    pub nfs: NfsConfig,
    pub status: Status,
    /// `[status] http`, parsed.
    pub status_http: Option<std::net::SocketAddr>,
}

/// What the proxy core reads: everything needed to decide, nothing about sockets.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    pub relays: Vec<Relay>,
    pub boot: BootFiles,
    pub allow: Vec<MacPattern>,
    pub unknown_arch: Option<Arch>,
    pub menu: Vec<MenuItem>,
    pub prompt: Option<(String, u8)>,
    pub clients: Vec<ClientRule>,
    pub router_hint: bool,
}

/// `[boot] efi64` / `http_x64` value: Debian's signed shim and GRUB when
/// the tree has them (GRUB ≥ 2.12, signed), else iPXE (efi64) or no
/// answer (http_x64). Until the tree is looked at (`prefer_signed`), and in
/// replay, it is the iPXE choice.
pub const AUTO: &str = "auto";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BootFiles {
    pub bios: Option<String>,
    pub efi32: Option<String>,
    pub efi64: Option<String>,
    pub arm64: Option<String>,
    pub http_x64: Option<String>,
    pub http_arm64: Option<String>,
    pub ipxe: Option<String>,
    /// `efi64 = "auto"`: becomes shimx64.efi where the signed chain is.
    pub efi64_auto: bool,
    /// `http_x64 = "auto"`: becomes our URL of shimx64.efi where it is.
    pub http_x64_auto: bool,
}

impl BootFiles {
    /// The `auto` keys take Debian's signed chain: shim for x86-64 UEFI by
    /// PXE, and for UEFI HTTP boot at `http_base` (our HTTP door, if on).
    /// Returns whether anything changed.
    pub fn prefer_signed(&mut self, http_base: Option<&str>) -> bool {
        let mut changed = false;
        if self.efi64_auto {
            self.efi64 = Some("shimx64.efi".into());
            changed = true;
        }
        if self.http_x64_auto
            && let Some(base) = http_base
        {
            self.http_x64 = Some(format!("{}/shimx64.efi", base.trim_end_matches('/')));
            changed = true;
        }
        changed
    }

    /// The boot file (or URL for HTTP clients) configured under a key.
    pub fn get(&self, key: BootKey) -> Option<&str> {
        match key {
            BootKey::Bios => self.bios.as_deref(),
            BootKey::Efi32 => self.efi32.as_deref(),
            BootKey::Efi64 => self.efi64.as_deref(),
            BootKey::Arm64 => self.arm64.as_deref(),
            BootKey::HttpX64 => self.http_x64.as_deref(),
            BootKey::HttpArm64 => self.http_arm64.as_deref(),
        }
    }

    /// The boot file (or URL for HTTP clients) configured for an architecture.
    pub fn for_arch(&self, arch: Arch) -> Option<&str> {
        self.get(arch.boot_key()?)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MenuItem {
    pub entry: MenuEntry,
    pub file: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClientRule {
    pub mac: MacPattern,
    pub action: ClientAction,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClientAction {
    Ignore,
    Boot(String),
}

impl ProxyConfig {
    pub fn rule_for(&self, mac: Mac) -> Option<&ClientRule> {
        // The most specific (longest) matching pattern wins.
        self.clients
            .iter()
            .filter(|r| r.mac.matches(mac))
            .max_by_key(|r| r.mac.len())
    }

    pub fn allowed(&self, mac: Mac) -> bool {
        self.allow.is_empty() || self.allow.iter().any(|p| p.matches(mac))
    }
}

/// Loads the layers. `file` is the `--config` argument: when it is given the
/// file must exist; otherwise [`DEFAULT_CONFIG`] is read if present.
pub fn figment(file: Option<&Path>) -> Result<Figment, ConfigError> {
    let mut f = Figment::from(Serialized::defaults(RawConfig::default()));
    match file {
        Some(p) if !p.exists() => return Err(ConfigError::Missing(p.to_path_buf())),
        Some(p) => f = f.merge(Toml::file_exact(p)),
        None => {
            if Path::new(DEFAULT_CONFIG).exists() {
                f = f.merge(Toml::file_exact(DEFAULT_CONFIG));
            }
        }
    }
    // PXE_SIDECAR_TFTP__ROOT=/x sets [tftp] root; PXE_SIDECAR_CONFIG names the
    // file and PXE_SIDECAR_LOG the log filter, so neither is a config key.
    Ok(f.merge(
        Env::prefixed("PXE_SIDECAR_")
            .ignore(&["config", "log"])
            .split("__"),
    ))
}

pub fn load(file: Option<&Path>, overrides: &[(&str, String)]) -> Result<Config, ConfigError> {
    let mut f = figment(file)?;
    for (k, v) in overrides {
        f = f.merge((*k, v.as_str()));
    }
    let raw: RawConfig = f.extract()?;
    validate(raw)
}

fn boot_entry(key: &str, v: &str, url: bool) -> Result<Option<String>, ConfigError> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if url {
        if !(v.starts_with("http://") || v.starts_with("https://")) {
            return Err(invalid(
                key,
                v,
                "UEFI HTTP boot needs a URL (http://server/path)",
            ));
        }
        if v.len() > 255 {
            return Err(invalid(key, v, "longer than 255 bytes (option 67 limit)"));
        }
    } else {
        check_file_name(key, v)?;
    }
    Ok(Some(v.to_string()))
}

/// A TFTP boot file name must fit the BOOTP `file` field (RFC 951: 128 bytes
/// with the NUL) and be a plain relative name.
fn check_file_name(key: &str, v: &str) -> Result<(), ConfigError> {
    if v.len() > 127 {
        return Err(invalid(key, v, "longer than 127 bytes (BOOTP file field)"));
    }
    if v.bytes().any(|b| b == 0 || b.is_ascii_control()) {
        return Err(invalid(key, v, "contains control characters"));
    }
    Ok(())
}

pub fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let b = &raw.boot;
    let auto = |v: &str| v.trim() == AUTO;
    let boot = BootFiles {
        bios: boot_entry("boot.bios", &b.bios, false)?,
        efi32: boot_entry("boot.efi32", &b.efi32, false)?,
        efi64: if auto(&b.efi64) {
            Some("snponly.efi".into())
        } else {
            boot_entry("boot.efi64", &b.efi64, false)?
        },
        arm64: boot_entry("boot.arm64", &b.arm64, false)?,
        http_x64: if auto(&b.http_x64) {
            None
        } else {
            boot_entry("boot.http_x64", &b.http_x64, true)?
        },
        http_arm64: boot_entry("boot.http_arm64", &b.http_arm64, true)?,
        ipxe: boot_entry("boot.ipxe", &b.ipxe, false)?,
        efi64_auto: auto(&b.efi64),
        http_x64_auto: auto(&b.http_x64),
    };
    let allow = raw
        .proxy
        .allow
        .iter()
        .map(|s| s.parse().map_err(|e: String| invalid("proxy.allow", s, e)))
        .collect::<Result<Vec<MacPattern>, _>>()?;
    let unknown_arch = match raw.proxy.unknown_arch.as_deref().map(str::trim) {
        None | Some("") | Some("ignore") => None,
        Some(k) => Some(
            BootKey::parse_pxe(k)
                .ok_or_else(|| {
                    invalid(
                        "proxy.unknown_arch",
                        k,
                        "expected \"ignore\", \"bios\", \"efi32\", \"efi64\" or \"arm64\"",
                    )
                })?
                .arch(),
        ),
    };
    let mut menu = Vec::new();
    for (i, item) in raw.menu.items.iter().enumerate() {
        let key = format!("menu.items[{i}]");
        let file = boot_entry(&format!("{key}.file"), &item.file, false)?;
        if item.label.trim().is_empty() {
            return Err(invalid(
                format!("{key}.label"),
                "",
                "a menu item needs a label",
            ));
        }
        // Type 0 is "local boot" (PXE spec 2.1 table 2-1); vendor types start at 0x8000.
        let item_type = if file.is_some() {
            0x8000 + i as u16 + 1
        } else {
            0
        };
        menu.push(MenuItem {
            entry: MenuEntry {
                item_type,
                label: item.label.clone(),
            },
            file,
        });
    }
    if menu.len() > 32 {
        return Err(invalid(
            "menu.items",
            menu.len().to_string(),
            "at most 32 items fit option 43",
        ));
    }
    let prompt = (!raw.menu.prompt.is_empty()).then(|| (raw.menu.prompt.clone(), raw.menu.timeout));
    if prompt.is_some() && menu.is_empty() {
        return Err(invalid(
            "menu.prompt",
            &raw.menu.prompt,
            "a prompt needs [[menu.items]]",
        ));
    }
    let mut clients = Vec::new();
    let mut names = Vec::new();
    for (i, c) in raw.clients.iter().enumerate() {
        let key = format!("clients[{i}]");
        let mac = c
            .mac
            .parse()
            .map_err(|e: String| invalid(format!("{key}.mac"), &c.mac, e))?;
        let action = match (&c.boot, c.ignore) {
            (Some(_), true) => {
                return Err(invalid(
                    key,
                    &c.mac,
                    "set either `boot` or `ignore = true`, not both",
                ));
            }
            (Some(f), false) => {
                check_file_name(&format!("{key}.boot"), f)?;
                Some(ClientAction::Boot(f.clone()))
            }
            (None, true) => Some(ClientAction::Ignore),
            // a rule may only name the machine (its NFS area)
            (None, false) if c.name.is_some() => None,
            (None, false) => {
                return Err(invalid(
                    key,
                    &c.mac,
                    "a client rule needs `boot = \"file\"` or `ignore = true`",
                ));
            }
        };
        if let Some(name) = &c.name {
            let full: Mac = c.mac.parse().map_err(|e: String| {
                invalid(
                    format!("{key}.mac"),
                    &c.mac,
                    format!("a named client needs a full MAC: {e}"),
                )
            })?;
            let ok = !name.is_empty()
                && name.len() <= 63
                && !name.starts_with('.')
                && name != "myself"
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !ok {
                return Err(invalid(
                    format!("{key}.name"),
                    name,
                    "1-63 letters, digits, '-', '_' or '.', not starting with '.', not \"myself\"",
                ));
            }
            names.push((full, name.clone()));
        }
        if let Some(action) = action {
            clients.push(ClientRule { mac, action });
        }
    }
    if raw.tftp.port == 0 {
        return Err(invalid(
            "tftp.port",
            "0",
            "pick a UDP port (69 is what firmware uses)",
        ));
    }
    if raw.http.port == 0 {
        return Err(invalid(
            "http.port",
            "0",
            "pick a TCP port (80 is the usual)",
        ));
    }
    if raw.tftp.max_transfers == 0 || raw.tftp.max_per_client == 0 {
        return Err(invalid(
            "tftp.max_transfers",
            "0",
            "at least 1 transfer must be allowed",
        ));
    }
    if !(1..=64).contains(&raw.tftp.max_windowsize) {
        return Err(invalid(
            "tftp.max_windowsize",
            raw.tftp.max_windowsize.to_string(),
            "RFC 7440 windows from 1 to 64 are supported",
        ));
    }
    let up = &raw.tftp.upload_dir;
    if !up.as_os_str().is_empty() && (!up.is_absolute() || up.starts_with(&raw.tftp.root)) {
        return Err(invalid(
            "tftp.upload_dir",
            up.display().to_string(),
            "must be an absolute directory outside [tftp] root (uploads are never served back)",
        ));
    }
    let base = raw.http.base_url.trim();
    if !base.is_empty()
        && (!(base.starts_with("http://") || base.starts_with("https://"))
            || base.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(invalid(
            "http.base_url",
            base,
            "expected an http:// or https:// URL without spaces (e.g. http://cache.example/boot)",
        ));
    }
    let px = &raw.pxelinux;
    check_boot_entry(
        "pxelinux",
        &px.kernel,
        &[("initrd", &px.initrd)],
        &px.append,
    )?;
    let ub = &raw.uboot;
    check_boot_entry(
        "uboot",
        &ub.kernel,
        &[("initrd", &ub.initrd), ("fdt", &ub.fdt)],
        &ub.append,
    )?;
    check_rpi(&raw.rpi)?;
    let relays = raw
        .proxy
        .relays
        .iter()
        .map(|r| {
            Relay::parse(r).ok_or_else(|| {
                invalid(
                    "proxy.relays",
                    r,
                    "expected a relay agent's IPv4 address, optionally with its subnet's prefix length (10.1.0.1 or 10.1.0.1/22)",
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Config {
        interface: raw.interface,
        server_ip: raw.server_ip,
        log_format: raw.log_format,
        user: raw.user,
        proxy: ProxyConfig {
            boot,
            allow,
            unknown_arch,
            menu,
            prompt,
            clients,
            router_hint: raw.proxy.router_hint,
            relays,
        },
        tftp: raw.tftp,
        http: raw.http,
        pxelinux: raw.pxelinux,
        uboot: raw.uboot,
        // keys as the Pi spells its prefix: lowercase hex
        rpi: Rpi {
            serials: raw
                .rpi
                .serials
                .into_iter()
                .map(|(k, d)| (k.to_ascii_lowercase(), d))
                .collect(),
            dir: raw.rpi.dir,
        },
        nfs: nfs_config(raw.nfs, names)?,
        status_http: match raw.status.http.trim() {
            "" => None,
            a => Some(a.parse().map_err(|_| {
                invalid(
                    "status.http",
                    a,
                    "an address and port like \"127.0.0.1:9090\", or \"\" for no status page",
                )
            })?),
        },
        status: raw.status,
    })
}

/// A generated config's entry (`[pxelinux]`, `[uboot]`): file names inside
/// the TFTP root, a one-line `append`, and no file without a kernel.
fn check_boot_entry(
    section: &str,
    kernel: &str,
    files: &[(&str, &str)],
    append: &str,
) -> Result<(), ConfigError> {
    for (key, v) in std::iter::once(("kernel", kernel)).chain(files.iter().copied()) {
        if !v.is_empty() {
            check_file_name(&format!("{section}.{key}"), v)?;
        }
    }
    if append.contains('\n') {
        return Err(invalid(
            format!("{section}.append"),
            append,
            "must be one line",
        ));
    }
    if let Some((key, _)) = files.iter().find(|(_, v)| !v.is_empty())
        && kernel.is_empty()
    {
        return Err(invalid(
            format!("{section}.kernel"),
            "",
            format!("{key} is set but no kernel"),
        ));
    }
    Ok(())
}

/// `[rpi]`: directories are names inside the TFTP root; keys are what a Pi
/// puts before its file names.
fn check_rpi(rpi: &Rpi) -> Result<(), ConfigError> {
    // a relative path of plain names: it is joined to the TFTP root
    let dir_ok = |key: &str, d: &str| {
        let plain = !d.trim_matches('/').is_empty()
            && Path::new(d.trim_start_matches('/'))
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if plain {
            Ok(())
        } else {
            Err(invalid(
                key,
                d,
                "a directory inside [tftp] root, like \"rpi\" (no `..`)",
            ))
        }
    };
    dir_ok("rpi.dir", &rpi.dir)?;
    for (k, d) in &rpi.serials {
        let key = format!("rpi.serials.{k}");
        if !crate::rpi::is_prefix(&k.to_ascii_lowercase()) {
            return Err(invalid(
                key,
                k,
                "a Pi's serial (8 hex digits, as in `vcgencmd otp_dump | grep 28:`) or its MAC with dashes (dc-a6-32-01-36-c2)",
            ));
        }
        dir_ok(&key, d)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, text).unwrap();
        load(Some(&p), &[])
    }

    #[test]
    fn auto_is_ipxe_until_the_signed_chain_is_found() {
        let c = from_toml("").unwrap();
        let mut b = c.proxy.boot.clone();
        assert_eq!(b.efi64.as_deref(), Some("snponly.efi"));
        assert_eq!(b.http_x64, None);
        assert!(b.prefer_signed(Some("http://10.0.0.2:80/")));
        assert_eq!(b.efi64.as_deref(), Some("shimx64.efi"));
        assert_eq!(
            b.http_x64.as_deref(),
            Some("http://10.0.0.2:80/shimx64.efi")
        );
        // an explicit choice stays
        let c = from_toml("[boot]\nefi64 = \"snponly.efi\"\nhttp_x64 = \"\"\n").unwrap();
        let mut b = c.proxy.boot.clone();
        assert!(!b.prefer_signed(Some("http://10.0.0.2")));
        assert_eq!(b.efi64.as_deref(), Some("snponly.efi"));
        assert_eq!(b.http_x64, None);
    }

    /// The packaged conffile is the documented example: every key at its
    /// default, so installing the package changes nothing by itself.
    #[test]
    fn the_example_config_is_the_defaults() {
        let example = from_toml(include_str!("../conf/example.toml")).unwrap();
        let defaults = from_toml("").unwrap();
        assert_eq!(format!("{example:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn defaults_serve_debian_loaders() {
        let c = validate(RawConfig::default()).unwrap();
        assert_eq!(c.proxy.boot.bios.as_deref(), Some("pxelinux.0"));
        assert_eq!(c.proxy.boot.efi64.as_deref(), Some("snponly.efi"));
        assert_eq!(c.proxy.boot.ipxe.as_deref(), Some("boot.ipxe"));
        assert!(c.http.enabled);
        assert_eq!(c.proxy.boot.arm64.as_deref(), Some("shimaa64.efi"));
        assert_eq!(c.tftp.root, PathBuf::from("/srv/tftp"));
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let e = from_toml("[boot]\nbois = \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("bois"), "{e}");
        assert!(e.contains("c.toml"), "{e}");
    }

    #[test]
    fn missing_file_is_an_error() {
        let e = load(Some(Path::new("/nonexistent/x.toml")), &[]).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.toml"));
    }

    #[test]
    fn relays_parse_with_their_subnet() {
        let c = from_toml("[proxy]\nrelays = [\"10.1.0.1\", \"10.2.0.1/22\"]\n").unwrap();
        let r = &c.proxy.relays;
        assert_eq!((r[0].addr, r[0].prefix), (Ipv4Addr::new(10, 1, 0, 1), 24));
        assert!(r[1].serves(Ipv4Addr::new(10, 2, 3, 200)));
        assert!(!r[1].serves(Ipv4Addr::new(10, 2, 4, 1)));
        assert_eq!(r[1].network(), Ipv4Addr::new(10, 2, 0, 0));
        let c = from_toml("[proxy]\nrelays = [\"10.1.2.3/0\"]\n").unwrap();
        assert_eq!(c.proxy.relays[0].network(), Ipv4Addr::UNSPECIFIED);
        let e = from_toml("[proxy]\nrelays = [\"10.1.0.1/40\"]\n").unwrap_err();
        assert!(e.to_string().contains("proxy.relays"), "{e}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let e = from_toml("[proxy]\nallow = [\"zz:11\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("proxy.allow"), "{e}");
        let e = from_toml("[boot]\nhttp_x64 = \"tftp://x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("boot.http_x64"), "{e}");
        let e = from_toml("[[clients]]\nmac = \"52:54:00\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("clients[0]"), "{e}");
        let e = from_toml("server_ip = \"10.0.0.300\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("server_ip"), "{e}");
    }

    #[test]
    fn rules_and_menu() {
        let c = from_toml(
            "[[clients]]\nmac = \"52:54:00\"\nboot = \"a.0\"\n[[clients]]\nmac = \"52:54:00:12:34:56\"\nignore = true\n\
             [menu]\nprompt = \"F8\"\ntimeout = 3\n[[menu.items]]\nlabel = \"disk\"\n[[menu.items]]\nlabel = \"Debian\"\nfile = \"pxelinux.0\"\n",
        )
        .unwrap();
        let m: Mac = "52:54:00:12:34:56".parse().unwrap();
        assert_eq!(c.proxy.rule_for(m).unwrap().action, ClientAction::Ignore);
        let m2: Mac = "52:54:00:00:00:01".parse().unwrap();
        assert_eq!(
            c.proxy.rule_for(m2).unwrap().action,
            ClientAction::Boot("a.0".into())
        );
        assert_eq!(c.proxy.menu[0].entry.item_type, 0);
        assert_eq!(c.proxy.menu[1].entry.item_type, 0x8002);
    }

    #[test]
    fn example_config_documents_the_defaults() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/example.toml");
        let example = load(Some(&p), &[]).unwrap();
        let defaults = validate(RawConfig::default()).unwrap();
        assert_eq!(example.proxy, defaults.proxy);
        assert_eq!(example.tftp, defaults.tftp);
        assert_eq!(example.http, defaults.http);
        assert_eq!(example.pxelinux, defaults.pxelinux);
        assert_eq!(example.nfs, defaults.nfs);
        assert_eq!(example.status, defaults.status);
        assert_eq!(example.user, defaults.user);
    }

    #[test]
    fn empty_string_unsets_a_default() {
        let c = from_toml("[boot]\nbios = \"\"\n").unwrap();
        assert_eq!(c.proxy.boot.bios, None);
    }
}
