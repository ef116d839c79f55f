//! Command line: parse, load config, run one subcommand. Errors end as one
//! line on stderr (anyhow context chain), never a backtrace.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};

use pxe_sidecar::config::{self, Config, LogFormat};

use pxe_sidecar::timeline::{self, Timeline};
use pxe_sidecar::{check, debootstrap, loaders, privs, probe, replay, rootfs, serve, status};

mod man;

#[derive(Parser)]
#[command(
    name = "pxe-sidecar",
    version,
    about = "proxyDHCP + TFTP + NFS netboot server that explains itself"
)]
struct Cli {
    /// Config file (TOML). Default: /etc/pxe-sidecar/pxe-sidecar.toml if it exists.
    #[arg(long, global = true, env = "PXE_SIDECAR_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the proxyDHCP server on the LAN (needs CAP_NET_RAW).
    Serve {
        /// Interface to serve on (default: the default route's).
        #[arg(long)]
        interface: Option<String>,
        /// Our IPv4 address as clients see it (default: the interface's).
        #[arg(long)]
        server_ip: Option<std::net::Ipv4Addr>,
        /// Log lines for people, or JSON for a log collector.
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
    },
    /// Preflight: walk the boot steps and say what will fail and how to fix it.
    Check {
        /// Interface to check (default: the config's, else the default route's).
        #[arg(long)]
        interface: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Act like PXE firmware on the LAN and report each boot stage.
    Probe {
        /// The firmware to play: a name, or its IANA architecture number
        /// (0, 6, 7, 9, 11, 16, 19).
        #[arg(long, value_enum, default_value = "bios")]
        arch: probe::ProbeArch,
        /// The MAC to send from (default: the interface's).
        #[arg(long)]
        mac: Option<String>,
        /// Interface (default: the config's, else the default route's).
        #[arg(long)]
        interface: Option<String>,
        /// Seconds to collect offers (iPXE waits about 4).
        #[arg(long, default_value_t = 4)]
        wait: u64,
    },
    /// The running server's clients, step by step (from its status socket).
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Create, check or prepare a client root tree for a read-only NFS root.
    Rootfs {
        #[command(subcommand)]
        action: RootfsCmd,
    },
    /// Feed a capture (pcap or pcapng) through the proxy core and print each decision.
    Replay {
        /// The capture to read.
        input: PathBuf,
        /// Write every reply as an Ethernet/IPv4/UDP frame to this pcap.
        #[arg(long)]
        write: Option<PathBuf>,
        /// Our address in the replies (default: server_ip from config, else 192.0.2.2).
        #[arg(long)]
        server_ip: Option<std::net::Ipv4Addr>,
    },
    /// Print the manual page pxe-sidecar(8) (roff; `man -l -` reads it).
    Man,
    /// Print the completion script for a shell.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Signed Secure Boot loaders (shim, GRUB) from another Debian release.
    Loaders {
        #[command(subcommand)]
        action: LoadersCmd,
    },
}

#[derive(Subcommand)]
enum LoadersCmd {
    /// Download Debian's signed shim and GRUB netboot image (GRUB 2.12 from
    /// Debian 13 by default: Debian 12's 2.06 cannot boot behind a
    /// proxyDHCP) with apt in a private state directory, and unpack them
    /// unchanged into [tftp] loaders, which the boot tree reads first.
    Fetch {
        /// Debian release to take them from.
        #[arg(long, default_value = "trixie")]
        suite: String,
        /// Debian mirror.
        #[arg(long, default_value = "http://deb.debian.org/debian")]
        mirror: String,
        /// Where to unpack (default: [tftp] loaders, /var/cache/pxe-sidecar/loaders).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Architectures (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "amd64,arm64")]
        arch: Vec<String>,
    },
}

#[derive(Subcommand)]
enum RootfsCmd {
    /// Say what the tree lacks for a read-only NFS root (exit 1 if anything).
    Check {
        /// The client tree (e.g. a debootstrap in /srv/nfsroot).
        dir: PathBuf,
        /// Our address as clients mount it (default: server_ip, else the interface's).
        #[arg(long)]
        server: Option<std::net::Ipv4Addr>,
    },
    /// Make a Debian tree for the NFS root from nothing: debootstrap with
    /// what an NFS root needs (kernel, initramfs-tools with the netboot
    /// modules, systemd, nfs-common), then `prepare`, then `check`. Refuses
    /// a non-empty DIR it did not make.
    Create {
        /// Where the tree goes (new or empty; e.g. /srv/nfsroot).
        dir: PathBuf,
        /// Debian release (default: this host's, else bookworm).
        #[arg(long)]
        suite: Option<String>,
        /// Debian mirror.
        #[arg(long, default_value = "http://deb.debian.org/debian")]
        mirror: String,
        /// More packages to install (comma-separated).
        #[arg(long, value_delimiter = ',')]
        include: Vec<String>,
        /// Our address as clients mount it (default: server_ip, else the interface's).
        #[arg(long)]
        server: Option<std::net::Ipv4Addr>,
    },
    /// Apply the read-only root recipe to the tree (idempotent).
    Prepare {
        dir: PathBuf,
        #[arg(long)]
        server: Option<std::net::Ipv4Addr>,
        /// Print the changes without making them.
        #[arg(long)]
        dry_run: bool,
    },
}

/// The export a tree is served as: our address and the tree's path.
fn export_for(
    cli: &Cli,
    dir: &std::path::Path,
    server: Option<std::net::Ipv4Addr>,
) -> Result<rootfs::Export> {
    let cfg = load(cli, &[])?;
    let server = match server.or(cfg.server_ip) {
        Some(ip) => ip,
        None => {
            pxe_sidecar::listen::resolve(&cfg)
                .context("finding our address for the fstab and kernel line (give --server IP)")?
                .ipv4
        }
    };
    let path = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let configured = std::fs::canonicalize(&cfg.nfs.root).unwrap_or(cfg.nfs.root.clone());
    if path != configured {
        println!(
            "note: {} is not [nfs] root ({}); set [nfs] root = \"{}\" to serve it",
            path.display(),
            cfg.nfs.root.display(),
            path.display()
        );
    }
    Ok(rootfs::Export { server, path })
}

fn load(cli: &Cli, overrides: &[(&str, String)]) -> Result<Config> {
    Ok(config::load(cli.config.as_deref(), overrides)?)
}

/// Logs go to stdout through a writer thread, so a slow terminal or disk
/// never delays a reply (the guard flushes what is queued at exit).
/// `writer_caps`: what the log writer thread keeps: nothing, unless the
/// process changes its uid later (glibc makes every thread change it, and
/// aborts when one of them may not).
fn init_logs(
    format: LogFormat,
    writer_caps: &'static [privs::Cap],
) -> tracing_appender::non_blocking::WorkerGuard {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // nfs3_server logs routine NFS errors (EXIST, NOENT) at error level; the
    // NFS door logs what matters itself
    let filter = tracing_subscriber::EnvFilter::try_from_env("PXE_SIDECAR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,nfs3_server=off"));
    // Colours only on a terminal: a log file or journald gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    // The writer thread is started from a helper thread that keeps only
    // `writer_caps`, so that it inherits no more (src/privs.rs).
    let (writer, guard) = std::thread::spawn(move || {
        let _ = privs::keep_on_thread(writer_caps);
        tracing_appender::non_blocking(std::io::stdout())
    })
    .join()
    .unwrap_or_else(|_| tracing_appender::non_blocking(std::io::stdout()));
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(writer);
    // Peer-chosen text (file names, paths, vendor classes) is escaped in
    // every field, so a `\n` cannot forge a line nor `\x1b` drive the
    // terminal; JSON escapes control characters by itself.
    use tracing_subscriber::field::MakeExt;
    let fields = tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let text = format!("{value:?}");
        let text = pxe_sidecar::text::clean(&text);
        if field.name() == "message" {
            write!(w, "{text}")
        } else {
            write!(w, "{}={text}", field.name())
        }
    })
    .delimited(" ");
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry.with(fmt.json().flatten_event(true)).init(),
        LogFormat::Human => registry.with(fmt.fmt_fields(fields)).init(),
    }
    guard
}

fn run(cli: Cli) -> Result<()> {
    match &cli.cmd {
        Cmd::Serve {
            interface,
            server_ip,
            log_format,
        } => {
            let mut overrides = Vec::new();
            if let Some(i) = interface {
                overrides.push(("interface", i.clone()));
            }
            if let Some(ip) = server_ip {
                overrides.push(("server_ip", ip.to_string()));
            }
            if let Some(f) = log_format {
                overrides.push((
                    "log_format",
                    match f {
                        LogFormat::Human => "human",
                        LogFormat::Json => "json",
                    }
                    .into(),
                ));
            }
            let opts = serve::Options {
                config_file: cli.config.clone(),
                overrides,
                timeline: Timeline::new(),
            };
            let cfg = opts.load()?;
            // Before the first thread starts, so that every thread inherits it.
            // SAFETY: geteuid has no preconditions.
            let kept = if unsafe { libc::geteuid() } == 0 {
                let mut caps = privs::SOCKETS.to_vec();
                if pxe_sidecar::nfs::will_serve(&cfg.nfs) {
                    caps.extend_from_slice(privs::NFS);
                }
                privs::limit_process(&caps)
                    .context("limiting the capabilities of `serve` (running as root)")?;
                Some(privs::permitted().unwrap_or(0))
            } else {
                None
            };
            let writer_caps: &[privs::Cap] = if kept.is_some()
                && !pxe_sidecar::nfs::will_serve(&cfg.nfs)
                && !cfg.user.is_empty()
            {
                &[privs::Cap::Setuid, privs::Cap::Setgid]
            } else {
                &[]
            };
            let _logs = init_logs(cfg.log_format, writer_caps);
            // the live timeline sees every event, whatever the log level
            pxe_sidecar::event::record_into(opts.timeline.clone());
            if let Some(kept) = kept {
                tracing::info!(
                    "running as root with only {} (and a bounding set to match)",
                    privs::names(kept)
                );
            }
            // One thread drives every socket, as dnsmasq's poll loop does: no
            // cross-thread wakeup between a DISCOVER and its offer. TFTP has
            // its own thread; file reads for HTTP use tokio's blocking pool.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            rt.block_on(serve::run(opts))
        }
        Cmd::Check { interface, json } => {
            let overrides: Vec<(&str, String)> =
                interface.iter().map(|i| ("interface", i.clone())).collect();
            let steps = check::run(cli.config.as_deref(), &overrides);
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&steps).context("encoding the report")?
                );
            } else {
                print!("{}", check::report(&steps));
            }
            if steps.iter().any(|s| !s.ok) {
                std::process::exit(1);
            }
            Ok(())
        }
        Cmd::Probe {
            arch,
            mac,
            interface,
            wait,
        } => {
            let arch = *arch;
            let mac = mac
                .as_deref()
                .map(|m| {
                    m.parse::<pxe_sidecar::mac::Mac>()
                        .map_err(anyhow::Error::msg)
                })
                .transpose()
                .context("--mac")?;
            let iface = match interface {
                Some(i) => i.clone(),
                None => {
                    let cfg = load(&cli, &[])?;
                    pxe_sidecar::listen::resolve(&cfg)?.name
                }
            };
            let p = probe::run(&iface, arch, mac, std::time::Duration::from_secs(*wait))?;
            print!("{}", p.report());
            if p.failed() {
                std::process::exit(1);
            }
            Ok(())
        }
        Cmd::Status { json } => {
            let cfg = load(&cli, &[])?;
            anyhow::ensure!(
                !cfg.status.socket.as_os_str().is_empty(),
                "[status] socket is \"\": the server offers no status socket"
            );
            let snap = status::fetch(&cfg.status.socket)?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&snap).context("encoding the status")?
                );
            } else {
                print!("{}", timeline::report(&snap));
            }
            Ok(())
        }
        Cmd::Rootfs { action } => match action {
            RootfsCmd::Check { dir, server } => {
                let export = export_for(&cli, dir, *server)?;
                let findings = rootfs::check(dir, &export);
                for f in &findings {
                    println!("{f}");
                }
                print!("{}", rootfs::boot_advice(dir, &export));
                if findings.iter().any(|f| !f.ok) {
                    std::process::exit(1);
                }
                Ok(())
            }
            RootfsCmd::Create {
                dir,
                suite,
                mirror,
                include,
                server,
            } => {
                let dir = &std::path::absolute(dir)
                    .with_context(|| format!("{}: not a usable path", dir.display()))?;
                let create = debootstrap::Create {
                    dir: dir.clone(),
                    suite: suite
                        .clone()
                        .or_else(debootstrap::host_suite)
                        .unwrap_or_else(|| "bookworm".into()),
                    mirror: mirror.clone(),
                    include: include.clone(),
                };
                // the export names the tree where it will be: it may not exist yet
                let export = export_for(&cli, dir, *server)?;
                debootstrap::run(&create, &export)
            }
            RootfsCmd::Prepare {
                dir,
                server,
                dry_run,
            } => {
                anyhow::ensure!(
                    dir.is_dir(),
                    "{} does not exist: make it with `pxe-sidecar rootfs create {}`",
                    dir.display(),
                    dir.display()
                );
                let export = export_for(&cli, dir, *server)?;
                let changes = rootfs::plan(dir, &export)
                    .with_context(|| format!("reading {}", dir.display()))?;
                if changes.is_empty() {
                    println!("{}: nothing to change", dir.display());
                }
                for c in &changes {
                    println!("{} {c}", if *dry_run { "would" } else { "+" });
                }
                if !*dry_run {
                    rootfs::apply(dir, &changes)?;
                }
                print!("{}", rootfs::boot_advice(dir, &export));
                Ok(())
            }
        },
        Cmd::Loaders {
            action:
                LoadersCmd::Fetch {
                    suite,
                    mirror,
                    dir,
                    arch,
                },
        } => {
            let mut cfg = load(&cli, &[])?;
            let dir = dir.clone().unwrap_or(cfg.tftp.loaders.clone());
            let fetch = loaders::Fetch {
                suite: suite.clone(),
                mirror: mirror.clone(),
                dir: std::path::absolute(&dir)?,
                arches: arch.clone(),
            };
            for got in loaders::fetch(&fetch)? {
                println!("unpacked {}", got.deb);
            }
            let differs = cfg.tftp.loaders != fetch.dir;
            cfg.tftp.loaders = fetch.dir.clone();
            print!("{}", loaders::served(&cfg));
            if differs {
                println!(
                    "set [tftp] loaders = \"{}\" for the server to read them",
                    fetch.dir.display()
                );
            }
            Ok(())
        }
        Cmd::Man => Ok(man::page(Cli::command(), &mut std::io::stdout().lock())?),
        Cmd::Completions { shell } => {
            man::completions(*shell, Cli::command(), &mut std::io::stdout().lock());
            Ok(())
        }
        Cmd::Replay {
            input,
            write,
            server_ip,
        } => {
            let cfg = load(&cli, &[])?;
            let bytes = std::fs::read(input)
                .with_context(|| format!("reading capture {}", input.display()))?;
            let server = server_ip
                .or(cfg.server_ip)
                .unwrap_or(replay::REPLAY_SERVER_IP);
            let outcome = replay::replay(&bytes, &cfg.proxy, server, replay::REPLAY_SERVER_MAC)
                .with_context(|| format!("replaying {}", input.display()))?;
            print!("{}", outcome.report());
            if let Some(out) = write {
                let f = std::fs::File::create(out)
                    .with_context(|| format!("creating {}", out.display()))?;
                replay::write_pcap(std::io::BufWriter::new(f), &outcome)
                    .with_context(|| format!("writing {}", out.display()))?;
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pxe-sidecar: {e:#}");
            ExitCode::FAILURE
        }
    }
}
