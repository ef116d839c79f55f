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

/// Serves until the listener fails.
pub async fn run(
    listener: tokio::net::TcpListener,
    tree: Arc<RwLock<Tree>>,
    clients: Clients,
) -> std::io::Result<()> {
    let app = Router::new()
        .fallback(serve)
        .with_state(Ctx { tree, clients });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
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
            say(
                Level::Info,
                format!("HTTP {method} {path} from {ip}: 404 File not found"),
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
