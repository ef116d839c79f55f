//! The live view of clients: every protocol log line that names a client
//! (its `mac` field) is also kept, bounded, in that client's timeline —
//! DHCP, the 4011 step, TFTP and HTTP files, NFS mounts, errors. The same
//! lines the log shows, so the timeline never tells a different story.
//! `pxe-sidecar status` reads it over a local socket; the status page and
//! `/metrics` render it (see `status.rs`).

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Clients remembered (the least recently seen goes first).
const MAX_CLIENTS: usize = 512;
/// Events per client (the oldest go first).
const MAX_EVENTS: usize = 100;
/// Bytes of one step's text kept (peer-chosen names can be long).
const MAX_STEP_TEXT: usize = 512;

/// One step of a client's boot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Step {
    /// Seconds since the Unix epoch.
    pub t: f64,
    /// dhcp, pxe (the 4011 step), ipv6 (router solicitations), tftp, http, nfs.
    pub door: String,
    pub ok: bool,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Client {
    pub mac: String,
    pub ip: Option<String>,
    /// What the firmware said it is (vendor class, architecture).
    pub kind: Option<String>,
    pub first_seen: f64,
    pub last_seen: f64,
    pub steps: VecDeque<Step>,
}

/// Totals since start, for `/metrics`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Counters {
    pub dhcp_requests: u64,
    pub proxy_replies: u64,
    pub tftp_files: u64,
    pub tftp_errors: u64,
    pub http_requests: u64,
    pub nfs_mounts: u64,
    pub warnings: u64,
}

/// What `status` and the page show: every client, newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    pub now: f64,
    pub clients: Vec<Client>,
    pub counters: Counters,
}

#[derive(Debug, Default)]
pub struct Timeline {
    state: Mutex<(HashMap<String, Client>, Counters)>,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Which door a log line belongs to, from the words it starts with.
fn door(text: &str) -> &'static str {
    let first = text.split_whitespace().next().unwrap_or("");
    match first {
        "RRQ" | "WRQ" | "NAK" | "sent" => "tftp",
        "HTTP" => "http",
        "RS" => "ipv6",
        "MOUNT" | "NFS" => "nfs",
        _ if text.contains("to port 4011") || text.contains("DHCPACK to") => "pxe",
        _ if text.starts_with("DHCP") || text.starts_with("proxy DHCP") => "dhcp",
        // "<mac> not answered: …" and other lines about a request
        _ if first.len() == 17 && first.bytes().filter(|&b| b == b':').count() == 5 => "dhcp",
        _ => "other",
    }
}

impl Timeline {
    pub fn new() -> Arc<Timeline> {
        Arc::new(Timeline::default())
    }

    /// Adds one line to a client's timeline.
    pub fn record(&self, mac: &str, ip: Option<&str>, level: Level, text: &str) {
        let text = crate::text::clean(text);
        let text = crate::text::bounded(&text, MAX_STEP_TEXT);
        let text: &str = &text;
        let mac = crate::text::clean(mac);
        let mac: &str = &mac;
        let t = now();
        let door = door(text);
        // lines that carry a MAC but are not a client's step (start-up)
        if door == "other" {
            return;
        }
        let ok = level > Level::WARN;
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (clients, counters) = &mut *guard;
        match door {
            "dhcp" | "pxe" if text.starts_with("proxy DHCP") || text.starts_with("DHCPACK") => {
                counters.proxy_replies += 1
            }
            "dhcp" | "pxe" if text.starts_with("DHCP") && text.contains(" from ") => {
                counters.dhcp_requests += 1
            }
            "tftp" if text.starts_with("sent") => counters.tftp_files += 1,
            // pxelinux's config search asks for names that need not exist
            "tftp" if text.starts_with("NAK") && !text.contains("normal when absent") => {
                counters.tftp_errors += 1
            }
            "http" => counters.http_requests += 1,
            "nfs" if text.starts_with("MOUNT") && ok => counters.nfs_mounts += 1,
            _ => {}
        }
        if !ok {
            counters.warnings += 1;
        }
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(mac) {
            let oldest = clients
                .values()
                .min_by(|a, b| a.last_seen.total_cmp(&b.last_seen))
                .map(|c| c.mac.clone());
            if let Some(m) = oldest {
                clients.remove(&m);
            }
        }
        let c = clients.entry(mac.to_string()).or_insert_with(|| Client {
            mac: mac.to_string(),
            ip: None,
            kind: None,
            first_seen: t,
            last_seen: t,
            steps: VecDeque::new(),
        });
        c.last_seen = t;
        if let Some(ip) = ip.filter(|i| *i != "-" && *i != "0.0.0.0") {
            c.ip = Some(crate::text::bounded(&crate::text::clean(ip), 64).into_owned());
        }
        if c.kind.is_none()
            && text.starts_with("DHCPDISCOVER")
            && let (Some(a), Some(b)) = (text.find('('), text.rfind(')'))
            && a < b
        {
            c.kind = Some(text[a + 1..b].to_string());
        }
        if c.steps.len() >= MAX_EVENTS {
            c.steps.pop_front();
        }
        c.steps.push_back(Step {
            t,
            door: door.to_string(),
            ok,
            text: text.to_string(),
        });
    }

    pub fn snapshot(&self) -> Snapshot {
        let guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut clients: Vec<Client> = guard.0.values().cloned().collect();
        clients.sort_by(|a, b| b.last_seen.total_cmp(&a.last_seen));
        Snapshot {
            now: now(),
            clients,
            counters: guard.1.clone(),
        }
    }
}

/// Feeds every event with a `mac` field into the timeline.
pub struct TimelineLayer(pub Arc<Timeline>);

#[derive(Default)]
struct Fields {
    message: String,
    mac: Option<String>,
    ip: Option<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            "mac" => self.mac = Some(format!("{value:?}")),
            "ip" => self.ip = Some(format!("{value:?}")),
            _ => {}
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            "mac" => self.mac = Some(value.to_string()),
            "ip" => self.ip = Some(value.to_string()),
            _ => {}
        }
    }
}

impl<S: Subscriber> Layer<S> for TimelineLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let Some(mac) = f.mac.filter(|m| m.len() == 17) else {
            return;
        };
        self.0
            .record(&mac, f.ip.as_deref(), *event.metadata().level(), &f.message);
    }
}

/// The human report of `pxe-sidecar status`.
pub fn report(s: &Snapshot) -> String {
    let mut out = String::new();
    if s.clients.is_empty() {
        out.push_str("no clients seen yet\n");
    }
    for c in &s.clients {
        let _ = writeln!(
            out,
            "{}  {}  {}  (last seen {:.0} s ago)",
            c.mac,
            c.ip.as_deref().unwrap_or("-"),
            c.kind.as_deref().unwrap_or("-"),
            (s.now - c.last_seen).max(0.0)
        );
        for st in &c.steps {
            let _ = writeln!(
                out,
                "  {} {:<5} {} {}",
                clock(st.t),
                st.door,
                if st.ok { "✓" } else { "✗" },
                st.text
            );
        }
    }
    let _ = writeln!(out, "totals: {}", s.counters.summary());
    out
}

impl Counters {
    /// One line of totals, for `status` and the page.
    pub fn summary(&self) -> String {
        format!(
            "{} DHCP requests, {} proxy replies, {} TFTP files sent, {} TFTP errors, {} HTTP requests, {} NFS mounts, {} warnings",
            self.dhcp_requests,
            self.proxy_replies,
            self.tftp_files,
            self.tftp_errors,
            self.http_requests,
            self.nfs_mounts,
            self.warnings
        )
    }
}

/// `HH:MM:SS` (UTC) of a timeline time.
pub fn clock(t: f64) -> String {
    let secs = t as u64 % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_a_bounded_timeline_per_client() {
        let t = Timeline::default();
        let m = "52:54:00:12:34:56";
        t.record(
            m,
            Some("-"),
            Level::INFO,
            "DHCPDISCOVER from 52:54:00:12:34:56 to port 67 (PXEClient:Arch:00007:UNDI:003000, arch 7 EFI BC) via eth0",
        );
        t.record(
            m,
            Some("10.0.0.5"),
            Level::INFO,
            "DHCPREQUEST from 52:54:00:12:34:56 to port 4011 (…)",
        );
        t.record(
            m,
            Some("10.0.0.5"),
            Level::INFO,
            "sent syslinux.efi to 10.0.0.5: 200 bytes",
        );
        t.record(
            m,
            Some("10.0.0.5"),
            Level::INFO,
            "DHCPACK to 52:54:00:12:34:56 at 10.0.0.5:68: boot file a from 10.0.0.2",
        );
        t.record(
            m,
            Some("10.0.0.5"),
            Level::INFO,
            "NAK File not found: x (RRQ from 10.0.0.5)",
        );
        t.record(
            m,
            Some("10.0.0.5"),
            Level::INFO,
            "NAK File not found: pxelinux.cfg/0A (RRQ from 10.0.0.5; normal when absent)",
        );
        t.record(
            m,
            Some("10.0.0.5"),
            Level::WARN,
            "MOUNT /srv/nfsroot from 10.0.0.5 refused: NOENT",
        );
        let s = t.snapshot();
        let c = &s.clients[0];
        assert_eq!(c.ip.as_deref(), Some("10.0.0.5"));
        assert_eq!(
            c.kind.as_deref(),
            Some("PXEClient:Arch:00007:UNDI:003000, arch 7 EFI BC")
        );
        let doors: Vec<&str> = c.steps.iter().map(|s| s.door.as_str()).collect();
        assert_eq!(doors, ["dhcp", "pxe", "tftp", "pxe", "tftp", "tftp", "nfs"]);
        assert!(!c.steps[6].ok);
        assert_eq!(s.counters.dhcp_requests, 2);
        assert_eq!(s.counters.proxy_replies, 1);
        assert_eq!(s.counters.tftp_files, 1);
        assert_eq!(s.counters.tftp_errors, 1);
        assert_eq!(s.counters.nfs_mounts, 0);
        for i in 0..500 {
            t.record(m, None, Level::INFO, &format!("sent f{i} to 10.0.0.5"));
        }
        assert_eq!(t.snapshot().clients[0].steps.len(), MAX_EVENTS);
        for i in 0..600 {
            t.record(
                &format!("02:00:00:00:{:02x}:{:02x}", i / 256, i % 256),
                None,
                Level::INFO,
                "DHCPDISCOVER from x",
            );
        }
        assert_eq!(t.snapshot().clients.len(), MAX_CLIENTS);
        assert!(report(&t.snapshot()).contains("totals:"));
    }
}
