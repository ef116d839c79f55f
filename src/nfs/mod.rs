//! The NFS door: NFSv3 + MOUNT (nfs3_server, vendored) serving the client
//! root tree of `[nfs]`, plus the portmapper on 111 that klibc's `nfsmount`
//! asks first. It runs on its own small multi-threaded runtime so bulk reads
//! never delay a DHCP answer.

mod creds;
pub mod fs;
mod handle;
pub mod perm;
pub mod policy;
mod sys;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use nfs3_server::tcp::{NFSTcp, NFSTcpListener};
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::clients::Clients;
use crate::config::NfsConfig;
use crate::{portmap, privs};

/// The file-handle generation, kept in the state dir so that handles stay
/// valid across restarts (a client that mounted before keeps working). A
/// new state dir starts a new generation: old handles then get ESTALE.
pub fn generation(state_dir: &Path) -> Result<u64> {
    let p = state_dir.join("nfs-generation");
    if let Ok(text) = std::fs::read_to_string(&p)
        && let Ok(g) = text.trim().parse()
    {
        return Ok(g);
    }
    std::fs::create_dir_all(state_dir).with_context(|| {
        format!(
            "creating [nfs] state_dir {} (set [nfs] state_dir to a writable directory)",
            state_dir.display()
        )
    })?;
    let g = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64);
    std::fs::write(&p, format!("{g}\n"))
        .with_context(|| format!("writing {} ([nfs] state_dir)", p.display()))?;
    Ok(g)
}

/// Whether `start` will serve: `[nfs]` on and its root there.
pub fn will_serve(cfg: &NfsConfig) -> bool {
    cfg.enabled && cfg.root.is_dir()
}

/// Starts NFS (and the portmapper) on `ip`; `None` when `[nfs]` is off or
/// its root does not exist yet (said in the log). The receiver reports the
/// end of the server thread.
pub fn start(
    cfg: &NfsConfig,
    ip: Ipv4Addr,
    clients: Clients,
) -> Result<Option<oneshot::Receiver<Result<()>>>> {
    if !cfg.enabled {
        return Ok(None);
    }
    if !will_serve(cfg) {
        warn!(
            "NFS off: [nfs] root {} does not exist (debootstrap a tree there and run `pxe-sidecar rootfs prepare {}`, or set [nfs] enabled = false)",
            cfg.root.display(),
            cfg.root.display()
        );
        return Ok(None);
    }
    let generation = generation(&cfg.state_dir)?;
    let fs = fs::RootFs::new(cfg, clients)
        .with_context(|| format!("opening [nfs] root {}", cfg.root.display()))?;
    let export = cfg.root.display().to_string();
    let (port, with_portmap) = (cfg.port, cfg.portmap);
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    let (done, stopped) = oneshot::channel();
    std::thread::Builder::new()
        .name("nfs".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("nfs")
                // the workers serve clients: no network powers (src/privs.rs)
                .on_thread_start(|| {
                    if let Err(e) = privs::keep_on_thread(privs::NFS) {
                        warn!("NFS worker keeps its capabilities: {e}");
                    }
                })
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = bound_tx.send(Err(anyhow!("starting the NFS runtime: {e}")));
                    return;
                }
            };
            let result = runtime.block_on(async move {
                // bind first, so that a busy port stops start-up with a clear error
                let bound = async {
                    let addr = SocketAddr::from((ip, port));
                    let mut l = NFSTcpListener::bind_with_generation(&addr.to_string(), fs, generation)
                        .await
                        .with_context(|| {
                            format!("binding TCP {addr} for NFS: is another NFS server running (ss -tlpn 'sport = {port}')? Stop it, or set [nfs] port / enabled = false")
                        })?;
                    l.with_export_name(&export);
                    let pmap = if with_portmap {
                        Some(portmap::bind(ip, 111).await?)
                    } else {
                        None
                    };
                    Ok::<_, anyhow::Error>((l, pmap))
                }
                .await;
                let (listener, pmap) = match bound {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = bound_tx.send(Err(e));
                        return Ok(());
                    }
                };
                // the ports are bound: this thread (the accept loop) needs
                // no more than the workers
                if let Err(e) = privs::keep_on_thread(privs::NFS) {
                    warn!("NFS accept thread keeps its capabilities: {e}");
                }
                let _ = bound_tx.send(Ok(pmap.is_some()));
                if let Some((udp, tcp)) = pmap {
                    tokio::spawn(portmap::serve(
                        portmap::Map { nfs_port: port },
                        udp,
                        tcp,
                    ));
                }
                listener.handle_forever().await
            });
            let _ = done.send(result.map_err(|e| anyhow!("NFS server: {e}")));
        })
        .context("starting the NFS thread")?;
    let with_pmap = bound_rx
        .recv()
        .map_err(|_| anyhow!("the NFS thread ended while binding"))??;
    info!(
        "NFS listening on {ip}:{port} (TCP, NFSv3 + MOUNT; export {}){}",
        cfg.root.display(),
        if with_pmap {
            ", portmapper on 111 (UDP+TCP)"
        } else {
            ""
        }
    );
    Ok(Some(stopped))
}
