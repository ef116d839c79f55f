//! `pxe-sidecar loaders fetch`: Debian's signed Secure Boot chain (shim,
//! and GRUB's netboot image) from a Debian release other than the host's,
//! for hosts whose packaged GRUB cannot boot behind a proxyDHCP (Debian 12's
//! 2.06 asks the router for its config). apt runs with a private state
//! directory — the host's apt state is never touched — downloads the
//! packages for amd64 and arm64, and `dpkg-deb -x` unpacks them unchanged
//! under `[tftp] loaders`, where the boot tree looks before the host's
//! packages. Signed binaries are never modified or re-signed.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// What the chain needs, per architecture: shim, its MokManager and
/// fallback (shim-helpers), GRUB's signed images.
fn packages(arch: &str) -> Vec<String> {
    let grub = match arch {
        "amd64" => "grub-efi-amd64-signed",
        "arm64" => "grub-efi-arm64-signed",
        _ => return Vec::new(),
    };
    ["shim-signed", &format!("shim-helpers-{arch}-signed"), grub]
        .iter()
        .map(|p| format!("{p}:{arch}"))
        .collect()
}

pub struct Fetch {
    pub suite: String,
    pub mirror: String,
    pub dir: PathBuf,
    pub arches: Vec<String>,
}

/// One package unpacked.
pub struct Fetched {
    pub deb: String,
}

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("{what}: could not start it"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Downloads and unpacks; the previous content of `dir` is replaced only
/// once everything is in.
pub fn fetch(f: &Fetch) -> Result<Vec<Fetched>> {
    for a in &f.arches {
        if packages(a).is_empty() {
            bail!("--arch {a}: the signed chain exists for amd64 and arm64");
        }
    }
    let parent = f.dir.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let work = f.dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&work);
    let apt = work.join("apt");
    for d in ["lists/partial", "cache/archives/partial", "debs"] {
        std::fs::create_dir_all(apt.join(d))
            .with_context(|| format!("creating {}", apt.display()))?;
    }
    std::fs::write(apt.join("status"), "")?;
    let sources = apt.join("sources.list");
    std::fs::write(&sources, format!("deb {} {} main\n", f.mirror, f.suite))?;
    let opt = |k: &str, v: &Path| format!("-o{k}={}", v.display());
    let mut base: Vec<String> = vec![
        opt("Dir::Etc::SourceList", &sources),
        "-oDir::Etc::SourceParts=/dev/null".into(),
        opt("Dir::State::Lists", &apt.join("lists")),
        opt("Dir::State::status", &apt.join("status")),
        opt("Dir::Cache", &apt.join("cache")),
        // the download runs as root into our directory, not as _apt
        "-oAPT::Sandbox::User=root".into(),
        "-oAPT::Architectures::=".into(),
    ];
    base.extend(
        f.arches
            .iter()
            .map(|a| format!("-oAPT::Architectures::={a}")),
    );
    run(
        Command::new("apt-get").args(&base).args(["-q", "update"]),
        &format!("apt-get update from {} {}", f.mirror, f.suite),
    )?;
    let wanted: Vec<String> = f.arches.iter().flat_map(|a| packages(a)).collect();
    run(
        Command::new("apt-get")
            .args(&base)
            .args(["-q", "download"])
            .args(&wanted)
            .current_dir(apt.join("debs")),
        &format!("apt-get download {}", wanted.join(" ")),
    )?;
    let tree = work.join("tree");
    let mut got = Vec::new();
    let mut debs: Vec<PathBuf> = std::fs::read_dir(apt.join("debs"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    debs.sort();
    for deb in debs {
        run(
            Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree),
            &format!("dpkg-deb -x {}", deb.display()),
        )?;
        got.push(Fetched {
            deb: deb
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        });
    }
    std::fs::write(
        tree.join("FETCHED"),
        format!(
            "# pxe-sidecar loaders fetch: {} {}, unpacked unchanged\n{}\n",
            f.mirror,
            f.suite,
            got.iter()
                .map(|g| g.deb.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    )?;
    let _ = std::fs::remove_dir_all(&f.dir);
    std::fs::rename(&tree, &f.dir)
        .with_context(|| format!("moving the unpacked files to {}", f.dir.display()))?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(got)
}

/// What the boot tree now serves of the chain, with what each binary says
/// of itself (signed; the GRUB version in its SBAT).
pub fn served(cfg: &crate::config::Config) -> String {
    use crate::files::{Source, Tree, signed_chain_names};
    let tree = Tree::new(cfg, None);
    let mut out = String::new();
    for name in signed_chain_names() {
        let Ok((_, Source::Disk(path))) = tree.resolve(name) else {
            continue;
        };
        let facts = crate::pe::read_file(&path);
        let what = match &facts {
            Some(f) => {
                let grub = f
                    .grub_version()
                    .map(|(a, b)| format!(", GRUB {a}.{b:02}"))
                    .unwrap_or_default();
                format!("{}{grub}", if f.signed { "signed" } else { "UNSIGNED" })
            }
            None => "not a PE image".into(),
        };
        out.push_str(&format!("{name}: {} ({what})\n", path.display()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_per_architecture() {
        assert_eq!(
            packages("amd64"),
            [
                "shim-signed:amd64",
                "shim-helpers-amd64-signed:amd64",
                "grub-efi-amd64-signed:amd64"
            ]
        );
        assert_eq!(packages("arm64")[2], "grub-efi-arm64-signed:arm64");
        assert!(packages("i386").is_empty());
    }
}
