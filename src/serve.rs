//! `pxe-sidecar serve`: the wiring. It loads the config, opens every
//! door's socket while it has the privileges to, drops them, and runs the
//! doors (`live/` for DHCP, 4011 and IPv6; `tftp.rs`, `http.rs`, `nfs/`),
//! SIGHUP reloads and the once-a-second housekeeping.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{debug, error, info, warn};

use crate::clients::Clients;
use crate::config::{self, Config};
use crate::event::{self};
use crate::files::Tree;
use crate::listen::{self, RawIp, RawSocket};
use crate::proxy::Proxy;
use crate::{http, tftp};
use crate::{live, ndp, nfs, privs};

/// How `serve` was started: the config file and the CLI overrides, kept so
/// SIGHUP can load the same layers again.
#[derive(Debug, Clone)]
pub struct Options {
    pub config_file: Option<PathBuf>,
    pub overrides: Vec<(&'static str, String)>,
    /// Where the log's client events are also kept (the live view).
    pub timeline: Arc<crate::timeline::Timeline>,
}

impl Options {
    pub fn load(&self) -> Result<Config, config::ConfigError> {
        config::load(self.config_file.as_deref(), &self.overrides)
    }
}

pub async fn run(opts: Options) -> Result<()> {
    let cfg = opts.load()?;
    let iface = listen::resolve(&cfg)?;
    let raw = RawSocket::open(&iface)?;
    raw.set_recv_buffer(4 << 20);
    // Without it PXE still works; iPXE clients just wait longer (src/ndp.rs).
    let ndp_socket = RawSocket::open_ndp(&iface)
        .map_err(|e| warn!("IPv6 router solicitations not watched: {e}"))
        .ok();
    let pxe = live::pxe::bind(&iface)?;
    let relay = RawIp::open(&iface)?;
    let tftp_socket = if cfg.tftp.enabled {
        Some(tftp::bind(&cfg.tftp, iface.ipv4)?)
    } else {
        None
    };
    let http_listener = if cfg.http.enabled {
        let addr = SocketAddr::from((iface.ipv4, cfg.http.port));
        let l = std::net::TcpListener::bind(addr).with_context(|| {
            format!(
                "binding TCP {addr} for HTTP: another web server may hold it (ss -tlpn 'sport = {}'); set [http] port or enabled = false",
                cfg.http.port
            )
        })?;
        l.set_nonblocking(true)?;
        Some(l)
    } else {
        None
    };
    let status_socket = if cfg.status.socket.as_os_str().is_empty() {
        None
    } else {
        Some(crate::status::bind_socket(&cfg.status.socket)?)
    };
    let status_http = match cfg.status_http {
        Some(addr) => Some(crate::status::bind_http(addr, cfg.status.allow_remote).await?),
        None => None,
    };
    let mut cfg = cfg;
    let tree = boot_tree(&mut cfg, iface.ipv4, "");
    let tree = Arc::new(RwLock::new(tree));
    let clients = Clients::default();
    let nfs_stopped = nfs::start(&cfg.nfs, iface.ipv4, clients.clone())?;
    if nfs_stopped.is_some() {
        // The NFS door's threads act as each caller (setfsuid) and keep the
        // file powers root callers need (src/privs.rs); a change of uid
        // would take them from every thread. This thread, which drives
        // DHCP, TFTP and HTTP, needs no capability once its sockets are
        // open, nor do the threads it starts from here on.
        privs::keep_on_thread(&[])
            .context("dropping the capabilities of the DHCP/TFTP/HTTP thread")?;
        info!(
            "NFS door: its threads act as each client's uid/gid; DHCP/TFTP/HTTP: no capabilities (user {:?} applies with [nfs] enabled = false)",
            cfg.user
        );
    } else {
        drop_privileges(&cfg)?;
    }
    info!(
        interface = %iface.name,
        ip = %iface.ipv4,
        mac = %iface.mac,
        "proxyDHCP listening on {} ({} {}): raw socket for UDP 67/68, UDP 4011",
        iface.name, iface.ipv4, iface.mac
    );
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(l) = status_socket {
        info!(
            "status: `pxe-sidecar status` reads {}",
            cfg.status.socket.display()
        );
        let t = opts.timeline.clone();
        tasks.spawn(async move {
            crate::status::serve_socket(l, t).await;
            bail!("the status socket stopped")
        });
    }
    if let Some(l) = status_http {
        info!(
            "status page on http://{}/ (/api/clients, /metrics)",
            l.local_addr()
                .map_or_else(|_| "?".into(), |a| a.to_string())
        );
        let t = opts.timeline.clone();
        tasks.spawn(async move {
            crate::status::serve_http(l, t).await?;
            bail!("the status page stopped")
        });
    }
    if let Some(stopped) = nfs_stopped {
        tasks.spawn(async move {
            match stopped.await {
                Ok(Ok(())) => bail!("the NFS server stopped"),
                Ok(Err(e)) => bail!(e),
                Err(_) => bail!("the NFS server thread failed"),
            }
        });
    }
    if let Some(sock) = tftp_socket {
        let t = tree.read().unwrap_or_else(|e| e.into_inner());
        if !t.root_exists() {
            warn!(
                "TFTP root {} does not exist: serving only Debian's packaged loaders and the generated configs ({})",
                t.configured_root().display(),
                t.builtin_names().join(", ")
            );
        }
        info!(
            "TFTP listening on {}:{} (root {})",
            iface.ipv4,
            cfg.tftp.port,
            t.configured_root().display()
        );
        drop(t);
        // The TFTP thread reports its end through a channel: waiting on it
        // never blocks shutdown (a blocking join would keep the runtime alive).
        let stopped = tftp::spawn(&cfg.tftp, sock, tree.clone(), clients.clone())?;
        tasks.spawn(async move {
            match stopped.await {
                Ok(Ok(())) => bail!("the TFTP server stopped"),
                Ok(Err(e)) => bail!(e),
                Err(_) => bail!("the TFTP server thread failed"),
            }
        });
    }
    if let Some(l) = http_listener {
        info!(
            "HTTP listening on {}:{} (same tree as TFTP, read-only)",
            iface.ipv4, cfg.http.port
        );
        let listener = tokio::net::TcpListener::from_std(l)?;
        let (tree, clients) = (tree.clone(), clients.clone());
        tasks.spawn(async move {
            http::run(listener, tree, clients).await?;
            bail!("the HTTP server stopped")
        });
    }
    let mut core = Proxy::new();
    core.set_link(Some(iface.subnets.clone()));
    let server = Arc::new(live::Server {
        live: RwLock::new(live::Live { cfg, iface }),
        clients,
        tree,
        core: Mutex::new(core),
        routers: Mutex::new(ndp::Routers::default()),
        started: Instant::now(),
    });
    let pxe = Arc::new(pxe);
    tasks.spawn(live::dhcp::serve(server.clone(), raw, relay));
    tasks.spawn(live::pxe::serve(server.clone(), pxe));
    if let Some(sock) = ndp_socket {
        tasks.spawn(live::ndp::serve(server.clone(), Arc::new(sock)));
    }
    tasks.spawn(housekeeping(server.clone()));

    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    loop {
        tokio::select! {
            _ = hup.recv() => reload(&server, &opts),
            _ = term.recv() => { info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { info!("SIGINT: stopping"); break; }
            Some(res) = tasks.join_next() => {
                match res {
                    Ok(Err(e)) => bail!(e),
                    Ok(Ok(())) => bail!("a listener stopped unexpectedly"),
                    Err(e) => bail!("a listener task failed: {e}"),
                }
            }
        }
    }
    tasks.abort_all();
    Ok(())
}

/// The boot tree for `cfg` (at start and on SIGHUP): `[boot] … = "auto"`
/// settled against it and said, then one warning for each boot file the
/// config offers that nobody can serve, naming the package that ships it.
fn boot_tree(cfg: &mut Config, ip: std::net::Ipv4Addr, when: &str) -> Tree {
    let tree = Tree::new(cfg, Some(ip));
    if let Some(chose) = crate::files::settle_auto(cfg, &tree, ip) {
        info!("{when}{chose}");
    }
    if cfg.tftp.enabled {
        for m in tree.missing(&cfg.proxy.boot) {
            warn!("{m}");
        }
    }
    tree
}

fn reload(server: &live::Server, opts: &Options) {
    match opts.load() {
        Ok(new) => {
            let mut live = server.live.write().unwrap_or_else(|e| e.into_inner());
            if new.interface.is_some() && new.interface.as_deref() != Some(live.iface.name.as_str())
            {
                warn!(
                    "SIGHUP: changing `interface` needs a restart; keeping {}",
                    live.iface.name
                );
            }
            if let Some(ip) = new.server_ip {
                live.iface.ipv4 = ip;
            }
            if new.tftp != live.cfg.tftp || new.http != live.cfg.http {
                warn!(
                    "SIGHUP: [tftp]/[http] sockets and limits change on restart; the file tree is reloaded now"
                );
            }
            let mut new = new;
            let tree = boot_tree(&mut new, live.iface.ipv4, "SIGHUP: ");
            *server.tree.write().unwrap_or_else(|e| e.into_inner()) = tree;
            live.cfg = new;
            info!("SIGHUP: configuration reloaded");
        }
        Err(e) => error!("SIGHUP: new configuration rejected, keeping the old one: {e}"),
    }
}

/// Runs as an unprivileged user once every privileged socket is open
/// (started by a service manager as another user: without capabilities).
fn drop_privileges(cfg: &Config) -> Result<()> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 || cfg.user.is_empty() {
        return privs::keep_on_thread(&[])
            .context("dropping capabilities once the sockets are open");
    }
    let name = std::ffi::CString::new(cfg.user.as_str())
        .context("config key `user` contains a NUL byte")?;
    // SAFETY: getpwnam returns NULL or a pointer to static storage, read at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        bail!(
            "config key `user` = {:?}: no such user (create it, or set user = \"\" to stay root)",
            cfg.user
        );
    }
    // SAFETY: pw is non-null and points at a valid passwd entry.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    // SAFETY: plain syscalls; the order (groups, gid, then uid) keeps the right to change each.
    let ok = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setgid(gid) == 0
            && libc::setuid(uid) == 0
    };
    if !ok {
        bail!(
            "dropping privileges to user {:?}: {}",
            cfg.user,
            std::io::Error::last_os_error()
        );
    }
    info!("running as user {} (uid {uid})", cfg.user);
    Ok(())
}

/// Once a second: report suppressed log lines even when the flood has
/// stopped; every other second, follow the interface's IPv4 address (a
/// DHCP-configured laptop's changes) unless `server_ip` pins it.
async fn housekeeping(server: Arc<live::Server>) -> Result<()> {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for n in 0u64.. {
        tick.tick().await;
        event::tick();
        if n % 2 == 1 {
            follow_address(&server);
        }
    }
    Ok(())
}

fn follow_address(server: &live::Server) {
    let (name, pinned, current) = {
        let l = server.live.read().unwrap_or_else(|e| e.into_inner());
        (l.iface.name.clone(), l.cfg.server_ip, l.iface.ipv4)
    };
    let looked = listen::lookup(&name, pinned);
    if let Ok(now) = &looked {
        // the subnet a 4011 ACK may go to follows the interface too
        server
            .core
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_link(Some(now.subnets.clone()));
    }
    match looked {
        Ok(now) if now.ipv4 != current => {
            info!(interface = %name, "address of {name} changed: {current} -> {}", now.ipv4);
            let l = server.live.read().unwrap_or_else(|e| e.into_inner());
            if l.cfg.tftp.enabled || l.cfg.http.enabled {
                warn!(
                    "TFTP/HTTP stay bound to {current} until a restart; proxy offers now name {}",
                    now.ipv4
                );
            }
            drop(l);
            server
                .live
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .iface
                .ipv4 = now.ipv4;
        }
        Ok(_) => {}
        Err(e) => debug!("interface check: {e}"),
    }
}
