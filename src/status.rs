//! Where the live timeline is shown: a local Unix socket that
//! `pxe-sidecar status` reads, and a small HTTP server with a self-refreshing
//! page (server-rendered), `/api/clients` (JSON) and `/metrics` (Prometheus
//! text format). The HTTP side listens on loopback unless told otherwise.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UnixListener};
use tracing::warn;

use crate::timeline::{Snapshot, Timeline, clock};

/// Binds the status socket (a stale one from a previous run is replaced).
pub fn bind_socket(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| {
            format!(
                "creating {} for the status socket ([status] socket)",
                dir.display()
            )
        })?;
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        bail!(
            "{} is in use: another pxe-sidecar is running (stop it, or set [status] socket)",
            path.display()
        );
    }
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path).with_context(|| {
        format!(
            "binding the status socket {} ([status] socket)",
            path.display()
        )
    })?;
    // the timeline names machines and addresses: owner and group only
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660));
    Ok(l)
}

/// Answers each connection with the snapshot as JSON, then closes it.
pub async fn serve_socket(l: UnixListener, timeline: Arc<Timeline>) {
    loop {
        match l.accept().await {
            Ok((mut s, _)) => {
                let body = serde_json::to_vec(&timeline.snapshot()).unwrap_or_default();
                tokio::spawn(async move {
                    let _ = s.write_all(&body).await;
                    let _ = s.shutdown().await;
                });
            }
            Err(e) => warn!("status socket: accept failed: {e}"),
        }
    }
}

/// `pxe-sidecar status`: the running server's snapshot.
pub fn fetch(path: &Path) -> Result<Snapshot> {
    use std::io::Read;
    let s = std::os::unix::net::UnixStream::connect(path).with_context(|| {
        format!(
            "connecting to {} (is `pxe-sidecar serve` running? it creates this socket; [status] socket names another)",
            path.display()
        )
    })?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    let mut body = Vec::new();
    s.take(64 << 20).read_to_end(&mut body)?;
    serde_json::from_slice(&body).context("reading the server's status")
}

/// Binds the status page; non-loopback addresses need `allow_remote`.
pub async fn bind_http(addr: SocketAddr, allow_remote: bool) -> Result<TcpListener> {
    if !addr.ip().is_loopback() && !allow_remote {
        bail!(
            "[status] http = \"{addr}\" is not a loopback address: the page shows every client's MAC and address; set [status] allow_remote = true to serve it there"
        );
    }
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the status page on {addr} ([status] http)"))
}

pub async fn serve_http(l: TcpListener, timeline: Arc<Timeline>) -> Result<()> {
    let app = Router::new()
        .route("/", get(page))
        .route("/api/clients", get(api))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn(only_direct_hosts))
        .with_state(timeline);
    axum::serve(l, app).await.context("status page")
}

/// Whether a `Host:` header names the server directly: an IP literal (any
/// port) or `localhost`. A page elsewhere that re-points its own domain
/// name at our address (DNS rebinding) sends its domain name here, and
/// must not read the clients' MACs and addresses.
pub fn host_allowed(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest.split_once(']').is_some_and(|(ip, port)| {
            ip.parse::<std::net::Ipv6Addr>().is_ok()
                && (port.is_empty()
                    || port
                        .strip_prefix(':')
                        .is_some_and(|p| p.parse::<u16>().is_ok()))
        });
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.parse::<u16>().is_ok() => name,
            Some(_) => return false,
            None => host,
        }
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

async fn only_direct_hosts(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if host_allowed(host) {
        return next.run(req).await;
    }
    (
        axum::http::StatusCode::MISDIRECTED_REQUEST,
        "the status page answers only requests addressed to its IP address or localhost\n",
    )
        .into_response()
}

async fn api(State(t): State<Arc<Timeline>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string(&t.snapshot()).unwrap_or_default(),
    )
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page: one table per client, its steps in order; refreshes itself.
pub fn render(s: &Snapshot) -> String {
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\">\
         <title>pxe-sidecar: clients</title><style>body{font-family:sans-serif;margin:1em}\
         table{border-collapse:collapse;margin-bottom:1.5em}td,th{padding:2px 8px;text-align:left;border-bottom:1px solid #ddd}\
         .bad{color:#b00}.ok{color:#070}code{font-size:90%}</style></head><body><h1>pxe-sidecar: clients</h1>",
    );
    let _ = write!(h, "<p id=\"totals\">{}</p>", esc(&s.counters.summary()));
    if s.clients.is_empty() {
        h.push_str("<p>No client seen yet. Boot one, or run <code>pxe-sidecar probe</code>.</p>");
    }
    for c in &s.clients {
        let _ = write!(
            h,
            "<h2 class=\"client\" id=\"{m}\">{m} <small>{ip} {kind}</small></h2><table><tr><th>time (UTC)</th><th>step</th><th></th><th>what happened</th></tr>",
            m = esc(&c.mac),
            ip = esc(c.ip.as_deref().unwrap_or("-")),
            kind = esc(c.kind.as_deref().unwrap_or(""))
        );
        for st in &c.steps {
            let _ = write!(
                h,
                "<tr class=\"step\"><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td><code>{}</code></td></tr>",
                clock(st.t),
                esc(&st.door),
                if st.ok { "ok" } else { "bad" },
                if st.ok { "✓" } else { "✗" },
                esc(&format!("{}{}", st.text, st.repeated()))
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    h
}

async fn page(State(t): State<Arc<Timeline>>) -> Html<String> {
    Html(render(&t.snapshot()))
}

/// Prometheus text exposition format (version 0.0.4).
pub fn metrics_text(s: &Snapshot) -> String {
    let k = &s.counters;
    let mut m = String::new();
    for (name, help, v) in [
        (
            "pxe_sidecar_dhcp_requests_total",
            "PXE DHCP requests seen",
            k.dhcp_requests,
        ),
        (
            "pxe_sidecar_proxy_replies_total",
            "proxy offers and 4011 ACKs sent",
            k.proxy_replies,
        ),
        (
            "pxe_sidecar_tftp_files_sent_total",
            "TFTP transfers completed",
            k.tftp_files,
        ),
        (
            "pxe_sidecar_tftp_errors_total",
            "TFTP requests refused (NAK)",
            k.tftp_errors,
        ),
        (
            "pxe_sidecar_http_requests_total",
            "HTTP boot-file requests",
            k.http_requests,
        ),
        (
            "pxe_sidecar_nfs_mounts_total",
            "NFS MOUNT requests served",
            k.nfs_mounts,
        ),
        (
            "pxe_sidecar_warnings_total",
            "client events logged as warnings",
            k.warnings,
        ),
    ] {
        let _ = write!(
            m,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
        );
    }
    let _ = write!(
        m,
        "# HELP pxe_sidecar_clients clients in the timeline\n# TYPE pxe_sidecar_clients gauge\npxe_sidecar_clients {}\n",
        s.clients.len()
    );
    m
}

async fn metrics(State(t): State<Arc<Timeline>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics_text(&t.snapshot()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Door, Event, Kind, Level};
    use crate::mac::Mac;

    #[test]
    fn only_direct_host_headers_pass() {
        for ok in [
            "127.0.0.1:9090",
            "127.0.0.1",
            "localhost:9090",
            "LOCALHOST",
            "[::1]:9090",
            "[::1]",
            "10.0.0.2:80",
        ] {
            assert!(host_allowed(ok), "{ok}");
        }
        for bad in [
            "",
            "evil.example",
            "evil.example:9090",
            "127.0.0.1.nip.io:9090",
            "localhost.evil:9090",
            "[::1]x",
            "127.0.0.1:x",
            "[zz]:1",
        ] {
            assert!(!host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn page_escapes_and_metrics_count() {
        let t = Timeline::default();
        t.record(
            &Event::new(
                Door::Tftp,
                Kind::FileSent,
                Level::Info,
                "sent <pxelinux.0> to 10.0.0.5",
            )
            .mac(Some(Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56])))
            .ip(Some("10.0.0.5".parse().unwrap())),
        );
        let s = t.snapshot();
        let html = render(&s);
        assert!(html.contains("&lt;pxelinux.0&gt;") && !html.contains("<pxelinux.0>"));
        assert!(html.contains("http-equiv=\"refresh\""));
        let m = metrics_text(&s);
        assert!(m.contains("pxe_sidecar_tftp_files_sent_total 1\n"));
        assert!(m.contains("pxe_sidecar_clients 1\n"));
    }
}
