//! The boot-file tree that TFTP and HTTP serve: a root directory resolved
//! the way `tftpd-hpa --secure` does (every path inside the root, `..`
//! refused, symlinks followed only while they stay inside), plus what the
//! server supplies when the root lacks it: Debian's packaged loaders and
//! boot configs generated from `[pxelinux]`. Files on disk always win.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::config::Config;

/// Where Debian's packages put the loaders that the default `[boot]` names
/// point at, and which package ships each.
const DEBIAN_LOADERS: &[(&str, &str, &str)] = &[
    ("pxelinux.0", "/usr/lib/PXELINUX/pxelinux.0", "pxelinux"),
    ("lpxelinux.0", "/usr/lib/PXELINUX/lpxelinux.0", "pxelinux"),
    (
        "ldlinux.c32",
        "/usr/lib/syslinux/modules/bios/ldlinux.c32",
        "syslinux-common",
    ),
    (
        "syslinux.efi",
        "/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi",
        "syslinux-efi",
    ),
    (
        "ldlinux.e64",
        "/usr/lib/syslinux/modules/efi64/ldlinux.e64",
        "syslinux-efi",
    ),
    (
        "syslinux32.efi",
        "/usr/lib/SYSLINUX.EFI/efi32/syslinux.efi",
        "syslinux-efi",
    ),
    (
        "ldlinux.e32",
        "/usr/lib/syslinux/modules/efi32/ldlinux.e32",
        "syslinux-efi",
    ),
    ("undionly.kpxe", "/usr/lib/ipxe/undionly.kpxe", "ipxe"),
    ("ipxe.pxe", "/usr/lib/ipxe/ipxe.pxe", "ipxe"),
    ("ipxe.efi", "/usr/lib/ipxe/ipxe.efi", "ipxe"),
    ("snponly.efi", "/usr/lib/ipxe/snponly.efi", "ipxe"),
    // The Secure Boot chain: shim, then GRUB's netboot image under the name
    // shim fetches from its own directory, then MokManager when needed.
    (
        "shimx64.efi",
        "/usr/lib/shim/shimx64.efi.signed",
        "shim-signed",
    ),
    (
        "grubx64.efi",
        "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed",
        "grub-efi-amd64-signed",
    ),
    (
        "mmx64.efi",
        "/usr/lib/shim/mmx64.efi.signed",
        "shim-helpers-amd64-signed",
    ),
    (
        "shimaa64.efi",
        "/usr/lib/shim/shimaa64.efi.signed",
        "shim-signed",
    ),
    (
        "grubaa64.efi",
        "/usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed",
        "grub-efi-arm64-signed",
    ),
    (
        "mmaa64.efi",
        "/usr/lib/shim/mmaa64.efi.signed",
        "shim-helpers-arm64-signed",
    ),
];

/// Whether `loaders fetch` supplies a package: the signed shim and GRUB
/// (a Debian 12 host's GRUB is too old, and another architecture's
/// packages do not install, so the fetch is the way on any host).
pub fn by_loaders_fetch(package: &str) -> bool {
    package.starts_with("shim") || package.starts_with("grub-efi")
}

/// The Secure Boot chain's names, as `loaders fetch` supplies them.
pub fn signed_chain_names() -> impl Iterator<Item = &'static str> {
    DEBIAN_LOADERS
        .iter()
        .filter(|(_, _, pkg)| by_loaders_fetch(pkg))
        .map(|(name, _, _)| *name)
}

/// Settles `[boot] efi64`/`http_x64 = "auto"` against the tree: Debian's
/// signed shim and GRUB when present (they boot with Secure Boot on or
/// off), iPXE otherwise. Returns a line saying what was chosen, if auto.
pub fn settle_auto(cfg: &mut Config, tree: &Tree, server: Ipv4Addr) -> Option<String> {
    let b = &mut cfg.proxy.boot;
    if !b.efi64_auto && !b.http_x64_auto {
        return None;
    }
    let Some(shim) = tree.signed_chain() else {
        return Some(
            "[boot] efi64 = \"auto\": iPXE (snponly.efi) for x86-64 UEFI — no signed shim and GRUB ≥ 2.12 here, so Secure Boot machines refuse it (`pxe-sidecar loaders fetch` gets them)"
                .into(),
        );
    };
    let base = cfg
        .http
        .enabled
        .then(|| format!("http://{server}:{}", cfg.http.port));
    b.prefer_signed(base.as_deref());
    Some(format!(
        "[boot] efi64 = \"auto\": Debian's signed shim and GRUB ≥ 2.12 for x86-64 UEFI ({}), Secure Boot on or off",
        shim.display()
    ))
}

/// Why a missing file is part of a normal boot, when it is: names loaders
/// try before they settle on one that exists.
pub fn expected_miss(name: &str) -> Option<&'static str> {
    let name = name.trim_start_matches('/');
    let base = name.rsplit('/').next().unwrap_or(name);
    if name.starts_with("pxelinux.cfg/") && base != "default" {
        return Some("pxelinux tries this name first; normal when absent");
    }
    // shim 16 looks beside itself for revocation and certificate updates
    if matches!(
        base,
        "revocations.efi" | "revocations_sku.efi" | "revocations_sbat.efi"
    ) || base.starts_with("shim_certificate")
    {
        return Some(
            "shim looks for optional revocation and certificate updates; normal when absent",
        );
    }
    // GRUB's netboot image has its modules inside; the lists are optional
    if name.starts_with("grub/") && base.ends_with(".lst") {
        return Some("GRUB looks for optional module lists; normal when absent");
    }
    None
}

/// The Debian package that ships a loader we can serve from it.
pub fn package_for(name: &str) -> Option<&'static str> {
    DEBIAN_LOADERS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, pkg)| *pkg)
}

/// The loader each syslinux binary, and shim, fetches next from its own
/// directory.
pub fn companion(file: &str) -> Option<String> {
    let (dir, base) = file.rsplit_once('/').map_or(("", file), |(d, b)| (d, b));
    let next = match base {
        "pxelinux.0" | "lpxelinux.0" => "ldlinux.c32",
        "syslinux.efi" => "ldlinux.e64",
        "syslinux32.efi" => "ldlinux.e32",
        "shimx64.efi" => "grubx64.efi",
        "shimaa64.efi" => "grubaa64.efi",
        _ => return None,
    };
    Some(if dir.is_empty() {
        next.to_string()
    } else {
        format!("{dir}/{next}")
    })
}

/// A boot file the config offers that nobody can serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The `[boot]` key that offers it.
    pub key: &'static str,
    pub file: String,
    /// The Debian package that would supply it.
    pub package: Option<&'static str>,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[boot] {}: {} is not in the TFTP root and no installed package supplies it: ",
            self.key, self.file
        )?;
        match self.package {
            Some(p) if by_loaders_fetch(p) => {
                write!(f, "get Debian 13's signed {p}: pxe-sidecar loaders fetch")
            }
            Some(p) => write!(f, "install package {p} (apt install {p})"),
            None => write!(f, "put it in the TFTP root or change [boot] {}", self.key),
        }?;
        f.write_str("; until then those clients stop with PXE-T01 (BIOS) or PXE-E23 (UEFI)")
    }
}

/// What a request resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A regular file (canonical path).
    Disk(PathBuf),
    /// Content generated from the config.
    Generated(Arc<[u8]>),
}

/// Why a request is refused. `NotFound` is TFTP error 1, the rest error 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("File not found")]
    NotFound,
    #[error("Access violation: {0}")]
    Denied(&'static str),
}

#[derive(Debug)]
pub struct Tree {
    /// Canonical root, or None when the directory does not exist.
    root: Option<PathBuf>,
    configured_root: PathBuf,
    generated: HashMap<String, Arc<[u8]>>,
    /// `nfsroot/…` names for the kernel and initrd inside `[nfs] root`.
    nfs_files: HashMap<String, PathBuf>,
    /// `[tftp] loaders`: packages unpacked by `loaders fetch`.
    loaders: PathBuf,
    /// `[rpi]`: where a Pi's `<serial>/…` requests are read.
    rpi: crate::config::Rpi,
}

/// The NFS root's kernel and initrd as TFTP names, when `[nfs]` serves a
/// tree that has them (what the generated configs boot with no `[pxelinux]`).
fn nfs_boot_files(cfg: &Config) -> HashMap<String, PathBuf> {
    let mut out = HashMap::new();
    if !cfg.nfs.enabled {
        return out;
    }
    let Ok(root) = std::fs::canonicalize(&cfg.nfs.root) else {
        return out;
    };
    if let Some((k, i)) = crate::rootfs::kernel_pair(&root) {
        for rel in [k, i] {
            // only regular files that stay inside the NFS root
            if let Ok(real) = std::fs::canonicalize(root.join(&rel))
                && real.starts_with(&root)
                && real.is_file()
            {
                out.insert(format!("nfsroot/{}", rel.display()), real);
            }
        }
    }
    if out.len() == 2 { out } else { HashMap::new() }
}

/// Normalizes a requested name to a relative path: backslashes (Windows PXE
/// clients) become slashes, leading slashes and `.` go, `..` is refused.
pub fn normalize(requested: &str) -> Result<String, Refusal> {
    let unified = requested.replace('\\', "/");
    let mut parts = Vec::new();
    for c in Path::new(&unified).components() {
        match c {
            Component::Normal(p) => {
                parts.push(p.to_str().ok_or(Refusal::Denied("name is not UTF-8"))?)
            }
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err(Refusal::Denied("`..` in the path")),
            Component::Prefix(_) => return Err(Refusal::Denied("drive prefix in the path")),
        }
    }
    if parts.is_empty() {
        return Err(Refusal::Denied("empty file name"));
    }
    Ok(parts.join("/"))
}

impl Tree {
    /// `server`: our address, for the NFS root in generated kernel lines.
    pub fn new(cfg: &Config, server: Option<Ipv4Addr>) -> Tree {
        let root = std::fs::canonicalize(&cfg.tftp.root)
            .ok()
            .filter(|p| p.is_dir());
        let nfs_files = nfs_boot_files(cfg);
        Tree {
            root,
            configured_root: cfg.tftp.root.clone(),
            generated: generate(cfg, server, &nfs_files),
            nfs_files,
            loaders: cfg.tftp.loaders.clone(),
            rpi: cfg.rpi.clone(),
        }
    }

    pub fn root_exists(&self) -> bool {
        self.root.is_some()
    }

    pub fn configured_root(&self) -> &Path {
        &self.configured_root
    }

    /// Resolves a client's file name. Returns the normalized name with it.
    pub fn resolve(&self, requested: &str) -> Result<(String, Source), Refusal> {
        let rel = normalize(requested)?;
        if let Some(found) = self.on_disk(&rel) {
            return found.map(|p| (rel, Source::Disk(p)));
        }
        if let Some(found) = self.rpi_file(&rel) {
            return found.map(|p| (rel, Source::Disk(p)));
        }
        if let Some(g) = self.generated.get(&rel) {
            return Ok((rel, Source::Generated(g.clone())));
        }
        if let Some(p) = self.nfs_files.get(&rel) {
            return Ok((rel, Source::Disk(p.clone())));
        }
        if let Some(p) = self.packaged(&rel) {
            return Ok((rel, Source::Disk(p)));
        }
        Err(Refusal::NotFound)
    }

    /// A regular file under the root (symlinks only within it), if the
    /// name exists there at all.
    fn on_disk(&self, rel: &str) -> Option<Result<PathBuf, Refusal>> {
        let root = self.root.as_ref()?;
        let candidate = root.join(rel);
        candidate.symlink_metadata().ok()?;
        Some((|| {
            let real = std::fs::canonicalize(&candidate).map_err(|_| Refusal::NotFound)?;
            if !real.starts_with(root) {
                return Err(Refusal::Denied("symlink leads outside the root"));
            }
            let meta = std::fs::metadata(&real).map_err(|_| Refusal::NotFound)?;
            if meta.is_dir() {
                return Err(Refusal::Denied("is a directory"));
            }
            if !meta.is_file() {
                return Err(Refusal::Denied("not a regular file"));
            }
            Ok(real)
        })())
    }

    /// A Raspberry Pi's `<serial>/file` (or `<mac-with-dashes>/file`): its
    /// own directory from `[rpi] serials`, else the shared `[rpi] dir`, so
    /// one tree boots every Pi and any one can be given its own.
    fn rpi_file(&self, rel: &str) -> Option<Result<PathBuf, Refusal>> {
        let (prefix, rest) = rel.split_once('/')?;
        let prefix = prefix.to_ascii_lowercase();
        if !crate::rpi::is_prefix(&prefix) {
            return None;
        }
        let dir = self.rpi.serials.get(&prefix).unwrap_or(&self.rpi.dir);
        self.on_disk(&format!("{}/{rest}", dir.trim_matches('/')))
    }

    /// A packaged loader: the fetched copy first (an admin fetched it
    /// because the host's is too old), then the host's package.
    fn packaged(&self, name: &str) -> Option<PathBuf> {
        let (_, path, _) = DEBIAN_LOADERS.iter().find(|(n, _, _)| *n == name)?;
        let fetched = self.loaders.join(path.trim_start_matches('/'));
        [fetched, PathBuf::from(path)]
            .into_iter()
            .find(|p| p.is_file())
    }

    /// Whether Debian's signed x86-64 chain is here: shim and a GRUB netboot
    /// image, both signed, the GRUB ≥ 2.12 (older ones cannot boot behind a
    /// proxyDHCP). What `[boot] efi64 = "auto"` looks for.
    pub fn signed_chain(&self) -> Option<PathBuf> {
        let facts = |name: &str| {
            let p = self.packaged(name)?;
            let facts = crate::pe::read_file(&p)?;
            Some((p, facts))
        };
        let (shim, s) = facts("shimx64.efi")?;
        let (_, g) = facts("grubx64.efi")?;
        (s.signed && g.signed && g.grub_version()? >= (2, 12)).then_some(shim)
    }

    /// The boot files the config offers by TFTP (and the `ldlinux` each
    /// syslinux loader fetches next) that nobody can serve.
    pub fn missing(&self, boot: &crate::config::BootFiles) -> Vec<Missing> {
        let mut out = Vec::new();
        for key in crate::pxe::BootKey::PXE {
            let Some(file) = boot.get(key) else { continue };
            for name in std::iter::once(file.to_string()).chain(companion(file)) {
                if self.resolve(&name) == Err(Refusal::NotFound) {
                    let base = name.rsplit('/').next().unwrap_or(&name);
                    out.push(Missing {
                        key: key.as_str(),
                        package: package_for(base),
                        file: name,
                    });
                }
            }
        }
        out
    }

    /// Names the server supplies itself (generated or packaged), for `check`.
    pub fn builtin_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.generated.keys().cloned().collect();
        v.extend(self.nfs_files.keys().cloned());
        v.extend(
            DEBIAN_LOADERS
                .iter()
                .filter(|(n, _, _)| self.packaged(n).is_some())
                .map(|(n, _, _)| n.to_string()),
        );
        v.sort();
        v
    }
}

/// `pxelinux.cfg/default` and the iPXE script named by `[boot] ipxe`, from
/// `[pxelinux]`. Without a kernel they tell the person at the console what to
/// configure, instead of leaving a bare `boot:` prompt.
/// U-Boot's pxelinux-style file from `[uboot]`, or, with no kernel set, one
/// whose menu title says what to configure and which boots locally.
fn uboot_config(u: &crate::config::UBoot) -> String {
    if u.kernel.is_empty() {
        return "# Generated by pxe-sidecar: no [uboot] kernel is configured yet.\n\
                menu title pxe-sidecar: nothing to boot yet; set kernel, initrd and append under [uboot]\n\
                default local\nlabel local\n  localboot 1\n"
            .to_string();
    }
    let mut s =
        String::from("# Generated by pxe-sidecar from [uboot].\ndefault linux\nlabel linux\n");
    s.push_str(&format!("  kernel {}\n", u.kernel));
    for (word, v) in [
        ("initrd", &u.initrd),
        ("fdt", &u.fdt),
        ("append", &u.append),
    ] {
        if !v.is_empty() {
            s.push_str(&format!("  {word} {v}\n"));
        }
    }
    s
}

fn generate(
    cfg: &Config,
    server: Option<Ipv4Addr>,
    nfs_files: &HashMap<String, PathBuf>,
) -> HashMap<String, Arc<[u8]>> {
    let mut p = cfg.pxelinux.clone();
    // nothing configured, but [nfs] serves a tree with a kernel: boot it
    if p.kernel.is_empty()
        && let Some(server) = server
    {
        let mut names: Vec<&String> = nfs_files.keys().collect();
        names.sort_by_key(|n| !n.contains("vmlinuz"));
        if let [k, i] = names[..] {
            let export = crate::rootfs::Export {
                server,
                path: cfg.nfs.root.clone(),
            };
            p.kernel = k.clone();
            p.initrd = i.clone();
            p.append = [export.kernel_args(), p.append.clone()].join(" ");
            p.append = p.append.trim_end().to_string();
        }
    }
    let p = &p;
    let mut out = HashMap::new();
    let pxelinux = if p.kernel.is_empty() {
        "# Generated by pxe-sidecar: no kernel is configured yet.\n\
         SERIAL 0 115200\n\
         SAY pxe-sidecar: this machine loaded pxelinux over the network.\n\
         SAY Nothing to boot yet: on the server, set kernel, initrd and append\n\
         SAY under [pxelinux] in the config, then run `pxe-sidecar check`.\n\
         SAY Booting from local disk in 30 seconds.\n\
         PROMPT 1\nTIMEOUT 300\nDEFAULT local\nLABEL local\n  LOCALBOOT -1\n"
            .to_string()
    } else {
        // SERIAL: the console on COM1 too, for headless machines and VMs.
        let mut s = String::from(
            "# Generated by pxe-sidecar from [pxelinux].\nSERIAL 0 115200\nDEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n",
        );
        s.push_str(&format!("  KERNEL {}\n", p.kernel));
        if !p.initrd.is_empty() {
            s.push_str(&format!("  INITRD {}\n", p.initrd));
        }
        if !p.append.is_empty() {
            s.push_str(&format!("  APPEND {}\n", p.append));
        }
        s
    };
    out.insert(
        "pxelinux.cfg/default".to_string(),
        Arc::from(pxelinux.into_bytes()),
    );
    out.insert(
        crate::pxe::UBOOT_CONFIG.to_string(),
        Arc::from(uboot_config(&cfg.uboot).into_bytes()),
    );
    if let Some(script) = &cfg.proxy.boot.ipxe {
        // Our address, written out: behind a router's DHCP, iPXE's
        // ${next-server} is the router's siaddr, not the proxy's (seen in
        // the e2e boots). HTTP is faster for kernels and initrds when on.
        let host = server.map_or_else(|| "${next-server}".to_string(), |ip| ip.to_string());
        let base = if !cfg.http.base_url.trim().is_empty() {
            format!("{}/", cfg.http.base_url.trim().trim_end_matches('/'))
        } else if cfg.http.enabled {
            format!("http://{host}:{}/", cfg.http.port)
        } else {
            format!("tftp://{host}/")
        };
        let text = if p.kernel.is_empty() {
            "#!ipxe\n# Generated by pxe-sidecar: no kernel is configured yet.\n\
             echo pxe-sidecar: iPXE is running, but nothing is configured to boot.\n\
             echo On the server set kernel, initrd and append under [pxelinux], then run pxe-sidecar check.\n\
             prompt --timeout 30000 Press any key to exit to the firmware ||\nexit\n"
                .to_string()
        } else {
            let mut s = format!(
                "#!ipxe\n# Generated by pxe-sidecar from [pxelinux].\nkernel {base}{}",
                p.kernel
            );
            // iPXE on UEFI starts the kernel as an EFI program and shows it
            // its images as files; the kernel's EFI stub loads the initrd
            // that `initrd=` names from there (Linux efi-stub.rst). Without
            // it a UEFI machine boots with no initramfs and panics at
            // "Unable to mount root fs" (seen in the UEFI e2e boot). BIOS
            // kernels ignore the argument.
            let initrd_name = Path::new(&p.initrd)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("initrd");
            if !p.initrd.is_empty() {
                s.push_str(&format!(" initrd={initrd_name}"));
            }
            if !p.append.is_empty() {
                s.push(' ');
                s.push_str(&p.append);
            }
            s.push('\n');
            if !p.initrd.is_empty() {
                s.push_str(&format!("initrd --name {initrd_name} {base}{}\n", p.initrd));
            }
            s.push_str("boot\n");
            s
        };
        out.insert(script.clone(), Arc::from(text.into_bytes()));
    }
    let grub_base = grub_http_base(cfg, server);
    out.insert(
        GRUB_CFG.to_string(),
        Arc::from(grub_cfg(p, &grub_base).into_bytes()),
    );
    out
}

/// Where Debian's signed GRUB netboot images look for their config: their
/// prefix is `/grub` on the server they were loaded from (they also ask for
/// `/grub/x86_64-efi/*.lst` or `/grub/arm64-efi/*.lst`, which may be absent).
pub const GRUB_CFG: &str = "grub/grub.cfg";

/// Where GRUB fetches kernel and initrd: over HTTP when it is on here or
/// `[http] base_url` names a plain-HTTP server (GRUB ≥ 2.12 reads
/// `(http,HOST[:PORT])/path`), else from its own `$root`, the TFTP server
/// it was loaded from (lock-step, blksize 1024: slow for an initrd).
fn grub_http_base(cfg: &Config, server: Option<Ipv4Addr>) -> String {
    let external = cfg.http.base_url.trim().trim_end_matches('/');
    if let Some(rest) = external.strip_prefix("http://") {
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        return if path.is_empty() {
            format!("(http,{host})")
        } else {
            format!("(http,{host})/{path}")
        };
    }
    match server {
        Some(ip) if cfg.http.enabled && cfg.http.port == 80 => format!("(http,{ip})"),
        Some(ip) if cfg.http.enabled => format!("(http,{ip}:{})", cfg.http.port),
        _ => String::new(),
    }
}

/// GRUB's menu from the same `[pxelinux]` entry; `base` prefixes the paths
/// (empty: GRUB's `$root`, the TFTP server it came from).
fn grub_cfg(p: &crate::config::Pxelinux, base: &str) -> String {
    if p.kernel.is_empty() {
        return "# Generated by pxe-sidecar: no kernel is configured yet.\n\
                echo \"pxe-sidecar: GRUB is running, but nothing is configured to boot.\"\n\
                echo \"On the server set kernel, initrd and append under [pxelinux], then run pxe-sidecar check.\"\n\
                sleep 30\nexit\n"
            .to_string();
    }
    let mut s = String::from(
        "# Generated by pxe-sidecar from [pxelinux].\nset timeout=0\nmenuentry \"linux\" {\n",
    );
    s.push_str(&format!("  echo \"Loading {base}/{}\"\n", p.kernel));
    s.push_str(&format!("  linux {base}/{}", p.kernel));
    if !p.append.is_empty() {
        s.push(' ');
        s.push_str(&p.append);
    }
    s.push('\n');
    if !p.initrd.is_empty() {
        s.push_str(&format!(
            "  echo \"Loading {base}/{}\"\n  initrd {base}/{}\n",
            p.initrd, p.initrd
        ));
    }
    s.push_str("}\n");
    s
}

#[cfg(test)]
mod tests {

    #[test]
    fn optional_names_are_expected_misses() {
        for name in [
            "pxelinux.cfg/01-52-54-00-12-34-56",
            "revocations_sku.efi",
            "/boot/revocations_sbat.efi",
            "shim_certificate_0.efi",
            "/grub/x86_64-efi/command.lst",
            "grub/arm64-efi/fs.lst",
        ] {
            assert!(super::expected_miss(name).is_some(), "{name}");
        }
        for name in [
            "pxelinux.cfg/default",
            "grubx64.efi",
            "/grub/grub.cfg",
            "x.lst",
        ] {
            assert_eq!(super::expected_miss(name), None, "{name}");
        }
    }

    #[test]
    fn grub_cfg_boots_the_configured_entry_or_says_what_to_set() {
        let mut raw = crate::config::RawConfig::default();
        raw.tftp.root = "/nonexistent-pxe-sidecar-test".into();
        let cfg = crate::config::validate(raw.clone()).unwrap();
        let t = super::Tree::new(&cfg, None);
        let Ok((_, super::Source::Generated(g))) = t.resolve("/grub/grub.cfg") else {
            panic!("no generated grub.cfg");
        };
        let text = String::from_utf8_lossy(&g).into_owned();
        assert!(text.contains("nothing is configured"), "{text}");
        raw.pxelinux.kernel = "debian/vmlinuz".into();
        raw.pxelinux.initrd = "debian/initrd.img".into();
        raw.pxelinux.append = "console=ttyS0".into();
        let cfg = crate::config::validate(raw).unwrap();
        let t = super::Tree::new(&cfg, None);
        let Ok((_, super::Source::Generated(g))) = t.resolve("grub/grub.cfg") else {
            panic!("no generated grub.cfg");
        };
        let text = String::from_utf8_lossy(&g).into_owned();
        assert!(
            text.contains("  linux /debian/vmlinuz console=ttyS0\n"),
            "{text}"
        );
        assert!(text.contains("  initrd /debian/initrd.img\n"), "{text}");
    }

    #[test]
    fn an_external_base_url_carries_kernel_and_initrd() {
        let mut raw = crate::config::RawConfig::default();
        raw.tftp.root = "/nonexistent-pxe-sidecar-test".into();
        raw.boot.ipxe = "boot.ipxe".into();
        raw.pxelinux.kernel = "debian/vmlinuz".into();
        raw.pxelinux.initrd = "debian/initrd.img".into();
        raw.http.base_url = "http://cache.example/boot/".into();
        let cfg = crate::config::validate(raw.clone()).unwrap();
        let tree = Tree::new(&cfg, Some(Ipv4Addr::new(10, 0, 0, 2)));
        let Ok((_, Source::Generated(script))) = tree.resolve("boot.ipxe") else {
            panic!("no script")
        };
        let script = String::from_utf8_lossy(&script);
        assert!(
            script.contains("kernel http://cache.example/boot/debian/vmlinuz"),
            "{script}"
        );
        assert!(
            script.contains("initrd --name initrd.img http://cache.example/boot/debian/initrd.img"),
            "{script}"
        );
        raw.http.base_url = "ftp://x".into();
        let e = crate::config::validate(raw).unwrap_err();
        assert!(e.to_string().contains("http.base_url"), "{e}");
    }

    #[test]
    fn companions_follow_the_loader() {
        assert_eq!(companion("pxelinux.0").as_deref(), Some("ldlinux.c32"));
        assert_eq!(
            companion("bios/pxelinux.0").as_deref(),
            Some("bios/ldlinux.c32")
        );
        assert_eq!(companion("syslinux.efi").as_deref(), Some("ldlinux.e64"));
        assert_eq!(companion("ipxe.efi"), None);
    }

    #[test]
    fn missing_boot_files_name_their_package() {
        let mut raw = crate::config::RawConfig::default();
        raw.tftp.root = "/nonexistent-pxe-sidecar-test".into();
        raw.boot.efi64 = "nothere.efi".into();
        let cfg = crate::config::validate(raw).unwrap();
        let tree = Tree::new(&cfg, None);
        let missing = tree.missing(&cfg.proxy.boot);
        let m = missing
            .iter()
            .find(|m| m.file == "nothere.efi")
            .expect("nothere.efi reported");
        assert_eq!((m.key, m.package), ("efi64", None));
        assert!(
            m.to_string()
                .contains("put it in the TFTP root or change [boot] efi64")
        );
        let pkg = Missing {
            key: "efi64",
            file: "snponly.efi".into(),
            package: package_for("snponly.efi"),
        };
        assert!(
            pkg.to_string()
                .contains("install package ipxe (apt install ipxe)"),
            "{pkg}"
        );
        assert_eq!(package_for("ldlinux.c32"), Some("syslinux-common"));
        assert_eq!(package_for("syslinux.efi"), Some("syslinux-efi"));
    }

    use super::*;
    use crate::config::{RawConfig, validate};

    fn tree(root: &Path, edit: impl FnOnce(&mut RawConfig)) -> Tree {
        let mut raw = RawConfig::default();
        raw.tftp.root = root.to_path_buf();
        raw.nfs.root = root.join("no-nfs-root");
        raw.nfs.state_dir = root.join("no-nfs-state");
        edit(&mut raw);
        Tree::new(&validate(raw).unwrap(), Some(Ipv4Addr::new(10, 0, 0, 2)))
    }

    #[test]
    fn normalize_rules() {
        assert_eq!(normalize("/pxelinux.0").unwrap(), "pxelinux.0");
        assert_eq!(normalize("//a/./b").unwrap(), "a/b");
        assert_eq!(
            normalize("pxelinux.cfg\\default").unwrap(),
            "pxelinux.cfg/default"
        );
        assert!(matches!(
            normalize("../etc/passwd"),
            Err(Refusal::Denied(_))
        ));
        assert!(matches!(
            normalize("/a/../../etc/passwd"),
            Err(Refusal::Denied(_))
        ));
        assert!(matches!(normalize("a\\..\\..\\x"), Err(Refusal::Denied(_))));
        assert!(matches!(normalize(""), Err(Refusal::Denied(_))));
        assert!(matches!(normalize("/"), Err(Refusal::Denied(_))));
    }

    #[test]
    fn resolves_inside_the_root_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/f"), b"x").unwrap();
        std::fs::write(dir.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink("../secret", root.join("out")).unwrap();
        std::os::unix::fs::symlink("sub/f", root.join("in")).unwrap();
        let t = tree(&root, |_| {});
        assert!(matches!(t.resolve("/sub/f"), Ok((_, Source::Disk(_)))));
        assert!(matches!(t.resolve("in"), Ok((_, Source::Disk(_)))));
        assert_eq!(
            t.resolve("out"),
            Err(Refusal::Denied("symlink leads outside the root"))
        );
        assert_eq!(t.resolve("sub"), Err(Refusal::Denied("is a directory")));
        assert_eq!(t.resolve("nope"), Err(Refusal::NotFound));
    }

    #[test]
    fn raspberry_pi_serials_read_their_directory_or_the_shared_one() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["rpi", "rpi/kitchen", "6aee7243"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::fs::write(dir.path().join("rpi/start4.elf"), "shared").unwrap();
        std::fs::write(dir.path().join("rpi/kitchen/start4.elf"), "own").unwrap();
        std::fs::write(dir.path().join("6aee7243/config.txt"), "literal").unwrap();
        let t = tree(dir.path(), |r| {
            r.rpi
                .serials
                .insert("DC-A6-32-01-36-C2".into(), "rpi/kitchen".into());
        });
        let read = |name: &str| match t.resolve(name) {
            Ok((_, Source::Disk(p))) => std::fs::read_to_string(p).unwrap(),
            other => format!("{other:?}"),
        };
        assert_eq!(read("1234abcd/start4.elf"), "shared");
        assert_eq!(read("dc-a6-32-01-36-c2/start4.elf"), "own");
        // a real directory of that name wins (the tree as tftpd-hpa serves it)
        assert_eq!(read("6aee7243/config.txt"), "literal");
        assert_eq!(read("1234abcd/missing.txt"), "Err(NotFound)");
        assert_eq!(
            read("1234abcd/../../etc/passwd"),
            "Err(Denied(\"`..` in the path\"))"
        );
        assert_eq!(read("notaserial/start4.elf"), "Err(NotFound)");
        // a link in a Pi's directory leads nowhere outside the root
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("rpi/evil")).unwrap();
        assert_eq!(
            read("1234abcd/evil"),
            "Err(Denied(\"symlink leads outside the root\"))"
        );
    }

    #[test]
    fn generated_configs_and_disk_wins() {
        let dir = tempfile::tempdir().unwrap();
        let t = tree(dir.path(), |r| {
            r.boot.ipxe = "boot.ipxe".into();
            r.pxelinux.kernel = "debian/vmlinuz".into();
            r.pxelinux.initrd = "debian/initrd.img".into();
            r.pxelinux.append = "root=/dev/nfs ro".into();
        });
        let Ok((_, Source::Generated(g))) = t.resolve("pxelinux.cfg/default") else {
            panic!()
        };
        let text = String::from_utf8(g.to_vec()).unwrap();
        assert!(
            text.contains("KERNEL debian/vmlinuz") && text.contains("APPEND root=/dev/nfs ro"),
            "{text}"
        );
        let Ok((_, Source::Generated(s))) = t.resolve("boot.ipxe") else {
            panic!()
        };
        // HTTP on (the default): kernel and initrd come from our HTTP door,
        // and the kernel is told the initrd's name (UEFI needs it)
        let s = String::from_utf8(s.to_vec()).unwrap();
        assert_eq!(
            s.lines().skip(2).collect::<Vec<_>>(),
            [
                "kernel http://10.0.0.2:80/debian/vmlinuz initrd=initrd.img root=/dev/nfs ro",
                "initrd --name initrd.img http://10.0.0.2:80/debian/initrd.img",
                "boot"
            ],
            "{s}"
        );
        let no_http = tree(dir.path(), |r| {
            r.http.enabled = false;
            r.pxelinux.kernel = "vmlinuz".into();
        });
        let Ok((_, Source::Generated(s))) = no_http.resolve("boot.ipxe") else {
            panic!()
        };
        let s = String::from_utf8(s.to_vec()).unwrap();
        assert!(
            s.contains("\nkernel tftp://10.0.0.2/vmlinuz\nboot\n"),
            "{s}"
        );
        std::fs::create_dir(dir.path().join("pxelinux.cfg")).unwrap();
        std::fs::write(dir.path().join("pxelinux.cfg/default"), b"mine").unwrap();
        assert!(matches!(
            t.resolve("pxelinux.cfg/default"),
            Ok((_, Source::Disk(_)))
        ));
        // Unconfigured: the generated menu says what to do next.
        let t = tree(Path::new("/nonexistent-root"), |_| {});
        let Ok((_, Source::Generated(g))) = t.resolve("pxelinux.cfg/default") else {
            panic!()
        };
        assert!(String::from_utf8_lossy(&g).contains("pxe-sidecar check"));
    }

    #[test]
    fn unconfigured_boot_uses_the_nfs_root_kernel() {
        let t = tempfile::tempdir().unwrap();
        let nfsroot = t.path().join("nfsroot");
        std::fs::create_dir_all(nfsroot.join("boot")).unwrap();
        std::fs::create_dir_all(nfsroot.join("etc")).unwrap();
        std::fs::write(nfsroot.join("boot/vmlinuz-6.1.0-9-amd64"), b"kernel").unwrap();
        std::fs::write(nfsroot.join("boot/initrd.img-6.1.0-9-amd64"), b"initrd").unwrap();
        std::fs::write(nfsroot.join("etc/passwd"), b"x").unwrap();
        std::os::unix::fs::symlink("boot/vmlinuz-6.1.0-9-amd64", nfsroot.join("vmlinuz")).unwrap();
        std::os::unix::fs::symlink("boot/initrd.img-6.1.0-9-amd64", nfsroot.join("initrd.img"))
            .unwrap();
        let nr = nfsroot.clone();
        let t2 = tree(&t.path().join("tftp"), move |r| r.nfs.root = nr);
        let (_, cfg) = t2.resolve("pxelinux.cfg/default").unwrap();
        let Source::Generated(text) = cfg else {
            panic!()
        };
        let text = String::from_utf8_lossy(&text).into_owned();
        assert!(text.contains("KERNEL nfsroot/vmlinuz\n"), "{text}");
        assert!(text.contains("INITRD nfsroot/initrd.img\n"), "{text}");
        assert!(
            text.contains(&format!(
                "APPEND root=/dev/nfs nfsroot=10.0.0.2:{},vers=3,tcp,nolock ip=dhcp rw",
                nfsroot.display()
            )),
            "{text}"
        );
        let (_, k) = t2.resolve("nfsroot/vmlinuz").unwrap();
        assert_eq!(
            k,
            Source::Disk(
                std::fs::canonicalize(nfsroot.join("boot/vmlinuz-6.1.0-9-amd64")).unwrap()
            )
        );
        assert_eq!(t2.resolve("nfsroot/etc/passwd"), Err(Refusal::NotFound));
        // an explicit [pxelinux] kernel wins
        let nr = nfsroot.clone();
        let t3 = tree(&t.path().join("tftp"), move |r| {
            r.nfs.root = nr;
            r.pxelinux.kernel = "debian/vmlinuz".into();
        });
        let (_, Source::Generated(text)) = t3.resolve("pxelinux.cfg/default").unwrap() else {
            panic!()
        };
        assert!(String::from_utf8_lossy(&text).contains("KERNEL debian/vmlinuz"));
    }
}
