//! The live view of clients: every protocol event (`event.rs`) that names
//! a client is kept, bounded, in that client's timeline — DHCP, the 4011
//! step, TFTP and HTTP files, NFS mounts, errors — and counted. The same
//! events the log shows, whatever the log level, so the timeline never
//! tells a different story. `pxe-sidecar status` reads it over a local
//! socket; the status page and `/metrics` render it (see `status.rs`).

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::event::{Event, Kind, Level, Sink};

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
    /// How many times more the same step followed at once (a client
    /// repeating itself, or a flood), folded into this one.
    #[serde(default)]
    pub repeats: u64,
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

impl Timeline {
    pub fn new() -> Arc<Timeline> {
        Arc::new(Timeline::default())
    }

    /// Counts one event, and adds it to its client's timeline when it
    /// names a client and is a step (not a debug-level remark).
    pub fn record(&self, e: &Event) {
        let t = now();
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (clients, counters) = &mut *guard;
        count(counters, e);
        let Some(mac) = e.mac else { return };
        if e.level == Level::Debug {
            return;
        }
        let mac = mac.to_string();
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&mac) {
            let oldest = clients
                .values()
                .min_by(|a, b| a.last_seen.total_cmp(&b.last_seen))
                .map(|c| c.mac.clone());
            if let Some(m) = oldest {
                clients.remove(&m);
            }
        }
        let c = clients.entry(mac.clone()).or_insert_with(|| Client {
            mac,
            ip: None,
            kind: None,
            first_seen: t,
            last_seen: t,
            steps: VecDeque::new(),
        });
        c.last_seen = t;
        if let Some(ip) = e.ip {
            c.ip = Some(ip.to_string());
        }
        if c.kind.is_none()
            && let Some(f) = &e.firmware
        {
            c.kind = Some(crate::text::bounded(&crate::text::clean(f), 128).into_owned());
        }
        let text = crate::text::clean(&e.text);
        let text = crate::text::bounded(&text, MAX_STEP_TEXT);
        let door = e.door.as_str();
        let ok = e.level < Level::Warn;
        if let Some(last) = c.steps.back_mut()
            && last.door == door
            && last.ok == ok
            && last.text == text
        {
            last.repeats += 1;
            last.t = t;
            return;
        }
        if c.steps.len() >= MAX_EVENTS {
            c.steps.pop_front();
        }
        c.steps.push_back(Step {
            t,
            door: door.to_string(),
            ok,
            text: text.into_owned(),
            repeats: 0,
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

impl Sink for Timeline {
    fn record(&self, e: &Event) {
        Timeline::record(self, e);
    }
}

/// What an event adds to the totals.
fn count(c: &mut Counters, e: &Event) {
    match e.kind {
        Kind::Request => c.dhcp_requests += 1,
        Kind::Reply => c.proxy_replies += 1,
        Kind::FileSent => c.tftp_files += 1,
        Kind::FileMissing { expected: false } | Kind::FileRefused | Kind::TransferFailed => {
            c.tftp_errors += 1
        }
        Kind::Http => c.http_requests += 1,
        Kind::Mount => c.nfs_mounts += 1,
        _ => {}
    }
    if e.level == Level::Warn {
        c.warnings += 1;
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
                "  {} {:<5} {} {}{}",
                clock(st.t),
                st.door,
                if st.ok { "✓" } else { "✗" },
                st.text,
                st.repeated()
            );
        }
    }
    let _ = writeln!(out, "totals: {}", s.counters.summary());
    out
}

impl Step {
    /// " (and 312 more times)" when repeats were folded into this step.
    pub fn repeated(&self) -> String {
        match self.repeats {
            0 => String::new(),
            1 => " (and once more)".into(),
            n => format!(" (and {n} more times)"),
        }
    }
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
    use crate::event::Door;
    use crate::mac::Mac;

    const M: Mac = Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

    fn ev(door: Door, kind: Kind, level: Level, text: &str) -> Event {
        Event::new(door, kind, level, text).mac(Some(M))
    }

    #[test]
    fn events_become_a_bounded_timeline_per_client() {
        let t = Timeline::default();
        let ip = Some("10.0.0.5".parse().unwrap());
        t.record(
            &ev(
                Door::Dhcp,
                Kind::Request,
                Level::Info,
                "DHCPDISCOVER from …",
            )
            .firmware("PXEClient:Arch:00007:UNDI:003000, arch 7 EFI BC"),
        );
        t.record(&ev(Door::Pxe, Kind::Request, Level::Info, "DHCPREQUEST …").ip(ip));
        t.record(&ev(
            Door::Tftp,
            Kind::FileSent,
            Level::Info,
            "sent syslinux.efi",
        ));
        t.record(&ev(Door::Pxe, Kind::Reply, Level::Info, "DHCPACK …"));
        t.record(&ev(
            Door::Tftp,
            Kind::FileMissing { expected: false },
            Level::Info,
            "NAK x",
        ));
        t.record(&ev(
            Door::Tftp,
            Kind::FileMissing { expected: true },
            Level::Info,
            "NAK 0A",
        ));
        t.record(&ev(
            Door::Nfs,
            Kind::NfsRefused,
            Level::Warn,
            "MOUNT refused",
        ));
        // debug remarks are counted, not shown; events without a MAC only counted
        t.record(&ev(Door::Dhcp, Kind::NotAnswered, Level::Debug, "not PXE"));
        t.record(&Event::new(Door::Http, Kind::Http, Level::Info, "GET /x"));
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
        assert_eq!(s.counters.http_requests, 1);
        assert_eq!(s.counters.warnings, 1);
        for i in 0..500 {
            t.record(&ev(
                Door::Tftp,
                Kind::FileSent,
                Level::Info,
                &format!("sent f{i}"),
            ));
        }
        assert_eq!(t.snapshot().clients[0].steps.len(), MAX_EVENTS);
        for i in 0..600u32 {
            let b = i.to_be_bytes();
            t.record(
                &Event::new(Door::Dhcp, Kind::Request, Level::Info, "DHCPDISCOVER")
                    .mac(Some(Mac([2, 0, 0, 0, b[2], b[3]]))),
            );
        }
        assert_eq!(t.snapshot().clients.len(), MAX_CLIENTS);
        assert!(report(&t.snapshot()).contains("totals:"));
    }

    #[test]
    fn a_flood_folds_into_one_step_and_long_text_is_cut() {
        let t = Timeline::default();
        for _ in 0..313 {
            t.record(&ev(
                Door::Dhcp,
                Kind::Request,
                Level::Info,
                "DHCPDISCOVER from x",
            ));
        }
        t.record(&ev(Door::Dhcp, Kind::Reply, Level::Info, &"y".repeat(5000)));
        let s = t.snapshot();
        let steps = &s.clients[0].steps;
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].repeats, 312);
        assert!(report(&s).contains("(and 312 more times)"));
        assert!(steps[1].text.len() <= MAX_STEP_TEXT + 4);
        assert_eq!(s.counters.dhcp_requests, 313);
    }
}
