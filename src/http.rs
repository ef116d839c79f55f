//! The HTTP door: the boot tree of `files.rs`, read-only, for iPXE
//! (`chain http://…`, kernels and initrds far faster than TFTP) and UEFI HTTP
//! boot. Same path rules and the same log vocabulary as TFTP; range requests
//! and Content-Length come from tower-http's `ServeFile`; no listings.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::clients::Clients;
use crate::event::{Door, Event, Kind, Level, emit};
use crate::files::{Refusal, Source, Tree};

#[derive(Clone)]
struct Ctx {
    tree: Arc<RwLock<Tree>>,
    clients: Clients,
}

/// Serves every connection with title-case header names (see below).
pub async fn run(
    listener: tokio::net::TcpListener,
    tree: Arc<RwLock<Tree>>,
    clients: Clients,
) -> std::io::Result<()> {
    let app = Router::new()
        .fallback(serve)
        .with_state(Ctx { tree, clients });
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            // out of descriptors or a connection reset before accept: the
            // listener itself is fine
            Err(e) => {
                tracing::warn!("HTTP accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let app = app.clone();
        let svc =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                app.clone().oneshot(req.map(Body::new))
            });
        tokio::spawn(async move {
            // GRUB's HTTP client matches header names case-sensitively
            // ("Content-Length: "; grub-core/net/http.c): with hyper's
            // lowercase names it never learns a file's size, and with
            // Secure Boot on it refuses the kernel ("big file signature
            // isn't implemented yet"). HTTP/1.1 names are case-insensitive
            // (RFC 9110 §5.1), so Title-Case suits every client.
            let _ = hyper::server::conn::http1::Builder::new()
                .title_case_headers(true)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn plain(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{text}\n"),
    )
        .into_response()
}

async fn serve(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let method = req.method().clone();
    let raw_path = req.uri().path().to_string();
    let ip = peer.ip();
    let mac = ctx.clients.mac_at(ip);
    let say = |level, text: String| {
        emit(
            Event::new(Door::Http, Kind::Http, level, text)
                .mac(mac)
                .ip(Some(ip)),
        );
    };
    if method != Method::GET && method != Method::HEAD {
        say(
            Level::Warn,
            format!("HTTP {method} {raw_path} from {ip}: 405 (read-only server)"),
        );
        let mut r = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "read-only: GET and HEAD only",
        );
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let Ok(path) = percent_encoding::percent_decode_str(&raw_path).decode_utf8() else {
        say(
            Level::Warn,
            format!("HTTP {method} {raw_path} from {ip}: 400 (path is not UTF-8)"),
        );
        return plain(StatusCode::BAD_REQUEST, "path is not UTF-8");
    };
    let resolved = ctx
        .tree
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .resolve(&path);
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let response = match resolved {
        Ok((_, Source::Disk(file))) => match ServeFile::new(&file).oneshot(req).await {
            Ok(r) => r.map(Body::new),
            Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        },
        Ok((_, Source::Generated(bytes))) => {
            let len = bytes.len();
            let body = if method == Method::HEAD {
                Body::empty()
            } else {
                Body::from(bytes.to_vec())
            };
            let mut r = Response::new(body);
            r.headers_mut().insert(header::CONTENT_LENGTH, len.into());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r
        }
        // No listings: a directory, like a missing file, is not found.
        Err(Refusal::Denied("empty file name"))
        | Err(Refusal::Denied("is a directory"))
        | Err(Refusal::NotFound) => {
            let why = crate::files::expected_miss(&path)
                .map(|w| format!(" ({w})"))
                .unwrap_or_default();
            say(
                Level::Info,
                format!("HTTP {method} {path} from {ip}: 404 File not found{why}"),
            );
            return plain(StatusCode::NOT_FOUND, "File not found");
        }
        Err(Refusal::Denied(why)) => {
            say(
                Level::Warn,
                format!("HTTP {method} {path} from {ip}: 403 Access violation: {why}"),
            );
            return plain(StatusCode::FORBIDDEN, "Access violation");
        }
    };
    let len = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?")
        .to_string();
    let range = range.map(|r| format!(", {r}")).unwrap_or_default();
    say(
        Level::Info,
        format!(
            "HTTP {method} {path} from {ip}: {} ({len} bytes{range})",
            response.status().as_u16()
        ),
    );
    response
}
