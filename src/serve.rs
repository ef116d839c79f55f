//! `pxe-sidecar serve`: the live shell around the proxy core. It owns the
//! sockets, the clock, signals and logs; every decision is the core's.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::net::UdpSocket;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{debug, error, info, warn};

use crate::clients::Clients;
use crate::config::{self, Config};
use crate::event::{self, Door, Event, Kind, Level, emit};
use crate::files::Tree;
use crate::frame::{self, Link};
use crate::listen::{self, Interface, RawSocket};
use crate::mac::Mac;
use crate::proxy::{self, Meta, PXE_PORT, Proxy};
use crate::step::{self, Claim, Datagram, Decision, Facts, Send, Skip};
use crate::{http, tftp};
use crate::{ndp, nfs, privs};

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

struct Live {
    cfg: Config,
    iface: Interface,
}

struct Server {
    live: RwLock<Live>,
    clients: Clients,
    tree: Arc<RwLock<Tree>>,
    core: Mutex<Proxy>,
    /// The NDP door's memory (routers heard, clients answered).
    routers: Mutex<ndp::Routers>,
    started: Instant,
}

/// Resolves the interface the config names, or the default route's.
pub fn resolve_interface(cfg: &Config) -> Result<Interface, listen::ListenError> {
    let name = match &cfg.interface {
        Some(n) => n.clone(),
        None => listen::default_route_interface()?,
    };
    listen::lookup(&name, cfg.server_ip)
}

pub async fn run(opts: Options) -> Result<()> {
    let cfg = opts.load()?;
    let iface = resolve_interface(&cfg)?;
    let raw = RawSocket::open(&iface)?;
    raw.set_recv_buffer(4 << 20);
    // Without it PXE still works; iPXE clients just wait longer (src/ndp.rs).
    let ndp_socket = RawSocket::open_ndp(&iface)
        .map_err(|e| warn!("IPv6 router solicitations not watched: {e}"))
        .ok();
    let pxe = bind_4011(&iface)?;
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
    let tree = Arc::new(RwLock::new(Tree::new(&cfg, Some(iface.ipv4))));
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
    let server = Arc::new(Server {
        live: RwLock::new(Live { cfg, iface }),
        clients,
        tree,
        core: Mutex::new(core),
        routers: Mutex::new(ndp::Routers::default()),
        started: Instant::now(),
    });
    let pxe = Arc::new(pxe);
    tasks.spawn(raw_loop(server.clone(), raw, pxe.clone()));
    tasks.spawn(pxe_loop(server.clone(), pxe));
    if let Some(sock) = ndp_socket {
        tasks.spawn(ndp_loop(server.clone(), Arc::new(sock)));
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

fn reload(server: &Server, opts: &Options) {
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
            *server.tree.write().unwrap_or_else(|e| e.into_inner()) =
                Tree::new(&new, Some(live.iface.ipv4));
            live.cfg = new;
            info!("SIGHUP: configuration reloaded");
        }
        Err(e) => error!("SIGHUP: new configuration rejected, keeping the old one: {e}"),
    }
}

fn bind_4011(iface: &Interface) -> Result<UdpSocket> {
    let std = std::net::UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, PXE_PORT))).with_context(|| {
        format!("binding UDP port 4011 (PXE boot server) on {}: is another PXE server running? (ss -ulpn 'sport = 4011')", iface.name)
    })?;
    listen::bind_to_device(std.as_raw_fd(), &iface.name).with_context(|| {
        format!(
            "SO_BINDTODEVICE {} on the 4011 socket (needs CAP_NET_RAW)",
            iface.name
        )
    })?;
    std.set_broadcast(true)?;
    std.set_nonblocking(true)?;
    Ok(UdpSocket::from_std(std)?)
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

impl Server {
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// The frame step (src/step.rs) on one datagram, and what it learned
    /// applied; no logging here, so the reply leaves first.
    fn process(&self, d: &Datagram) -> Result<Processed, Skip> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        let facts = Facts {
            cfg: &live.cfg.proxy,
            ip: live.iface.ipv4,
            mac: live.iface.mac,
        };
        let now = self.now().as_millis() as u64;
        let decision = step::step(
            &mut self.core.lock().unwrap_or_else(|e| e.into_inner()),
            &facts,
            d,
            now,
        )?;
        let send = decision.send(&facts);
        if let Ok((req, Ok(_))) = &decision.outcome {
            self.clients.answered(req.mac);
        }
        let refused = decision
            .claim
            .and_then(|c| self.clients.claim(&c).err().map(|shown| (c, shown)));
        Ok(Processed {
            decision,
            send,
            refused,
            iface: live.iface.clone(),
        })
    }

    /// The events of one datagram, reported after its reply was sent.
    fn log(&self, p: &Processed, payload: &[u8]) {
        let meta = p.decision.meta;
        if let Some((c, shown)) = p.refused {
            emit(
                Event::new(
                    door_of(meta),
                    Kind::Identity,
                    Level::Warn,
                    format!(
                        "{} claims {} in a request, but {shown} is known at that address: not taken as that machine's address",
                        c.mac, c.ip
                    ),
                )
                .mac(Some(c.mac))
                .ip(Some(IpAddr::V4(c.ip))),
            );
        }
        let (req, decision) = match &p.decision.outcome {
            Ok(x) => x,
            // no client to name (not PXE, malformed): a log line only
            Err(why) => {
                if event::log_ok() {
                    let who = proxy::peek(payload, meta);
                    match why.level() {
                        Level::Debug => debug!(src = %meta.src, "{who}: ignored: {why}"),
                        _ => info!(src = %meta.src, "{who}: ignored: {why}"),
                    }
                }
                return;
            }
        };
        let ip = Some(IpAddr::V4(*meta.src.ip()));
        let ev = |kind, level, text: String| {
            Event::new(door_of(meta), kind, level, text)
                .mac(Some(req.mac))
                .ip(ip)
        };
        emit(
            ev(
                Kind::Request,
                Level::Info,
                format!("{} via {}", proxy::describe_request(req), p.iface.name),
            )
            .firmware(proxy::describe_firmware(req)),
        );
        match decision {
            Ok(reply) => {
                emit(ev(
                    Kind::Reply,
                    Level::Info,
                    proxy::describe_reply(req, reply, p.iface.ipv4),
                ));
                let tftp_on = self
                    .live
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .cfg
                    .tftp
                    .enabled;
                if !tftp_on && !reply.boot.file.contains("://") {
                    emit(ev(
                        Kind::Reply,
                        Level::Warn,
                        format!(
                            "{} will fetch {} by TFTP from {}, but [tftp] is off here: unless another TFTP server answers there, it stops with PXE-E32: TFTP open timeout",
                            req.mac, reply.boot.file, p.iface.ipv4
                        ),
                    ));
                }
            }
            Err(why) => emit(ev(
                Kind::NotAnswered,
                why.level(),
                format!("{} not answered: {why}", req.mac),
            )),
        }
    }
}

/// The door a datagram came in by: port 4011 is the boot-server step.
fn door_of(meta: Meta) -> Door {
    if meta.dst_port == PXE_PORT {
        Door::Pxe
    } else {
        Door::Dhcp
    }
}

/// What one datagram came to, kept until its reply is on the wire so that
/// formatting the log lines never delays the reply.
struct Processed {
    decision: Decision,
    send: Option<Send>,
    /// A claim on an address that the LAN (or a mount) contradicts.
    refused: Option<(Claim, Mac)>,
    iface: Interface,
}

async fn raw_loop(server: Arc<Server>, raw: RawSocket, pxe: Arc<UdpSocket>) -> Result<()> {
    let mut buf = vec![0u8; 65_536];
    loop {
        let len = raw.recv_incoming(&mut buf, "DHCP").await;
        let Some(udp) = frame::udp(Link::Ethernet, &buf[..len]) else {
            continue;
        };
        let d = Datagram::of(&udp);
        let p = match server.process(&d) {
            Ok(p) => p,
            Err(Skip::ToClient) => {
                if event::log_ok() {
                    debug!("{}", proxy::peek(udp.payload, d_meta(&d)));
                }
                continue;
            }
            Err(_) => continue,
        };
        let sent = match &p.send {
            Some(Send::Link(frame)) => raw.send(frame).await,
            // relay agents are routed, not on our link: the kernel routes it
            Some(Send::Routed(addr)) => {
                let payload = p.decision.reply().map_or(&[][..], |r| &r.payload[..]);
                pxe.send_to(payload, SocketAddr::V4(*addr))
                    .await
                    .map(|_| ())
            }
            None => Ok(()),
        };
        if let (Err(e), Some(reply)) = (sent, p.decision.reply()) {
            warn!("sending {} to {}: {e}", reply.msg, reply.dest.addr());
        }
        server.log(&p, udp.payload);
    }
}

fn d_meta(d: &Datagram) -> Meta {
    Meta {
        src: d.src,
        dst_port: d.dst_port,
    }
}

async fn pxe_loop(server: Arc<Server>, sock: Arc<UdpSocket>) -> Result<()> {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                warn!("port 4011 receive failed: {e}");
                continue;
            }
        };
        let SocketAddr::V4(src) = from else { continue };
        let d = Datagram {
            src_mac: None,
            src,
            dst_port: PXE_PORT,
            payload: &buf[..n],
        };
        let Ok(p) = server.process(&d) else { continue };
        if let (Some(Send::Routed(addr)), Some(reply)) = (&p.send, p.decision.reply())
            && let Err(e) = sock.send_to(&reply.payload, SocketAddr::V4(*addr)).await
        {
            warn!("sending {} to {addr}: {e}", reply.msg);
        }
        server.log(&p, &buf[..n]);
    }
}

/// Router solicitations and advertisements (src/ndp.rs): remembers the
/// routers it hears, and answers a PXE client's solicitation with "no router
/// here" when, `ndp::WAIT_MS` later, no router has answered it.
async fn ndp_loop(server: Arc<Server>, sock: Arc<RawSocket>) -> Result<()> {
    let mut buf = vec![0u8; 2048];
    loop {
        let len = sock.recv_incoming(&mut buf, "IPv6 router discovery").await;
        let now = server.now().as_millis() as u64;
        match ndp::parse(&buf[..len]) {
            Err(why) => {
                if event::log_ok() {
                    debug!("IPv6 router discovery frame ignored: {why}");
                }
            }
            Ok(ndp::Ndp::Advertisement { mac, src, lifetime }) => {
                let new = server
                    .routers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .heard(src, now);
                if new {
                    info!(
                        "RA from IPv6 router {src} ({mac}, lifetime {lifetime} s): PXE clients' router solicitations are left to it"
                    );
                }
            }
            Ok(ndp::Ndp::Solicitation { mac, src }) => {
                let (enabled, iface) = {
                    let l = server.live.read().unwrap_or_else(|e| e.into_inner());
                    (l.cfg.proxy.router_hint, l.iface.clone())
                };
                let pxe_ago = server
                    .clients
                    .answered_ago(mac)
                    .map(|d| d.as_millis() as u64);
                let verdict = server
                    .routers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .consider(enabled, mac, src, pxe_ago, now);
                match verdict {
                    Ok(()) => {
                        tokio::spawn(answer_solicitation(
                            server.clone(),
                            sock.clone(),
                            iface,
                            mac,
                            src,
                        ));
                    }
                    // Every host on the LAN solicits routers: only PXE clients are
                    // news; firmware repeats its solicitation while we wait.
                    Err(why) => {
                        let level = match why {
                            ndp::Skip::NotPxe | ndp::Skip::Answered => Level::Debug,
                            _ => Level::Info,
                        };
                        emit(ndp_event(
                            mac,
                            src,
                            level,
                            format!(
                                "RS from {mac} ({src}) via {}: not answered: {why}",
                                iface.name
                            ),
                        ));
                    }
                }
            }
        }
    }
}

async fn answer_solicitation(
    server: Arc<Server>,
    sock: Arc<RawSocket>,
    iface: Interface,
    mac: Mac,
    src: std::net::Ipv6Addr,
) {
    tokio::time::sleep(Duration::from_millis(ndp::WAIT_MS)).await;
    let table = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    let ours = ndp::link_local(&table, &iface.name);
    let now = server.now().as_millis() as u64;
    let verdict = {
        let mut routers = server.routers.lock().unwrap_or_else(|e| e.into_inner());
        match ours {
            Some(ours) => routers.answer(mac, now).map(|()| ours),
            None => {
                routers.cancel(mac);
                Err(ndp::Skip::NoLinkLocal)
            }
        }
    };
    let sent = match verdict {
        Err(why) => Err(format!("not answered: {why}")),
        Ok(ours) => {
            let frame = ndp::no_router_frame(iface.mac, ours, mac, src);
            (sock.send(&frame).await).map_err(|e| format!("sending the RA failed: {e}"))
        }
    };
    let text = match sent {
        Ok(()) => format!(
            "RS from {mac} ({src}) via {}: no IPv6 router answered in {} ms; sent RA \"no router here\" (lifetime 0, no prefixes) so its firmware stops waiting for one (iPXE waits ~15 s)",
            iface.name,
            ndp::WAIT_MS
        ),
        Err(e) => format!("RS from {mac} ({src}) via {}: {e}", iface.name),
    };
    emit(ndp_event(mac, src, Level::Info, text));
}

fn ndp_event(mac: Mac, src: std::net::Ipv6Addr, level: Level, text: String) -> Event {
    Event::new(Door::Ipv6, Kind::RouterHint, level, text)
        .mac(Some(mac))
        .ip(Some(IpAddr::V6(src)))
}

/// Once a second: report suppressed log lines even when the flood has
/// stopped; every other second, follow the interface's IPv4 address (a
/// DHCP-configured laptop's changes) unless `server_ip` pins it.
async fn housekeeping(server: Arc<Server>) -> Result<()> {
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

fn follow_address(server: &Server) {
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
