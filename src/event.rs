//! Typed protocol events. Every door reports what happened to a client as
//! one [`Event`]; the log line, the client's timeline and the metrics all
//! come from it, never from log text. The log level filters the log only:
//! the timeline and the counters see every event. Under a flood of packets
//! the log is capped (a line says how many were left out) while the
//! timeline folds repeats into one step.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use tracing::{debug, info, warn};

use crate::mac::Mac;

/// Which door saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// Port 67: DISCOVERs and proxy offers.
    Dhcp,
    /// Port 4011: the boot-server step.
    Pxe,
    /// IPv6 router solicitations.
    Ipv6,
    Tftp,
    Http,
    Nfs,
}

impl Door {
    pub fn as_str(self) -> &'static str {
        match self {
            Door::Dhcp => "dhcp",
            Door::Pxe => "pxe",
            Door::Ipv6 => "ipv6",
            Door::Tftp => "tftp",
            Door::Http => "http",
            Door::Nfs => "nfs",
        }
    }

    /// Doors driven by unauthenticated broadcast packets: their log lines
    /// are capped under a flood.
    fn packet_driven(self) -> bool {
        matches!(self, Door::Dhcp | Door::Pxe | Door::Ipv6)
    }
}

/// What happened, as far as counters and the timeline care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A DHCP request from a client.
    Request,
    /// A proxy offer or ACK we sent.
    Reply,
    /// A request we stay silent about, and why (in the text).
    NotAnswered,
    /// A router solicitation and what we did about it.
    RouterHint,
    /// A TFTP read request.
    FileRequested,
    /// A file sent whole.
    FileSent,
    /// A file that is not there; `expected` when the loader probes names
    /// that need not exist (pxelinux's config search, shim's extras).
    FileMissing { expected: bool },
    /// A path refused (outside the root, `..`, a write).
    FileRefused,
    /// The client ended a transfer before any data (a tsize probe).
    TransferProbed,
    /// A transfer that did not complete.
    TransferFailed,
    /// An HTTP request answered.
    Http,
    /// An NFS MOUNT granted.
    Mount,
    /// An NFS caller or call refused.
    NfsRefused,
    /// A per-client area made.
    NfsArea,
    /// An address and MAC that do not go together.
    Identity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
}

/// One protocol event about one client.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub door: Door,
    pub kind: Kind,
    pub level: Level,
    pub mac: Option<Mac>,
    pub ip: Option<IpAddr>,
    /// What the firmware says it is (vendor class, architecture), on requests.
    pub firmware: Option<String>,
    /// The line as a person reads it.
    pub text: String,
}

impl Event {
    pub fn new(door: Door, kind: Kind, level: Level, text: impl Into<String>) -> Event {
        Event {
            door,
            kind,
            level,
            mac: None,
            ip: None,
            firmware: None,
            text: text.into(),
        }
    }

    pub fn mac(mut self, mac: Option<Mac>) -> Event {
        self.mac = mac;
        self
    }

    pub fn ip(mut self, ip: Option<IpAddr>) -> Event {
        self.ip = ip.filter(|i| !i.is_unspecified());
        self
    }

    pub fn firmware(mut self, f: impl Into<String>) -> Event {
        self.firmware = Some(f.into());
        self
    }
}

/// What keeps events besides the log (the live timeline, `timeline.rs`).
pub trait Sink: Send + Sync {
    fn record(&self, e: &Event);
}

/// Where events go besides the log, once `serve` runs.
static SINK: OnceLock<Arc<dyn Sink>> = OnceLock::new();

/// Sends every later event to `sink` too.
pub fn record_into(sink: Arc<dyn Sink>) {
    let _ = SINK.set(sink);
}

/// Reports one event: to the timeline and counters, then to the log
/// (unless a packet flood has used up this second's lines).
pub fn emit(e: Event) {
    if let Some(sink) = SINK.get() {
        sink.record(&e);
    }
    if e.door.packet_driven() && !log_ok() {
        return;
    }
    // formatted only if the log takes the line
    let (mac, ip, door) = (Shown(e.mac), Shown(e.ip), e.door.as_str());
    match e.level {
        Level::Debug => debug!(door = %door, mac = %mac, ip = %ip, "{}", e.text),
        Level::Info => info!(door = %door, mac = %mac, ip = %ip, "{}", e.text),
        Level::Warn => warn!(door = %door, mac = %mac, ip = %ip, "{}", e.text),
    }
}

/// An optional field as the log shows it: the value, or `-`.
struct Shown<T>(Option<T>);

impl<T: std::fmt::Display> std::fmt::Display for Shown<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// Keeps a flood of hostile or repeated packets from flooding the log: at
/// most `PER_SECOND` packet lines a second, then one line saying how many
/// were left out.
struct LogLimiter {
    second: u64,
    lines: u32,
    suppressed: u64,
}

const PER_SECOND: u32 = 200;

static LIMITER: Mutex<LogLimiter> = Mutex::new(LogLimiter {
    second: 0,
    lines: 0,
    suppressed: 0,
});

fn started() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

impl LogLimiter {
    fn allow(&mut self, now: u64) -> bool {
        self.roll(now);
        self.lines += 1;
        if self.lines > PER_SECOND {
            self.suppressed += 1;
            return false;
        }
        true
    }

    /// Starts a new second when one has passed, reporting what was left out.
    fn roll(&mut self, now: u64) {
        if now != self.second {
            if self.suppressed > 0 {
                warn!(
                    suppressed = self.suppressed,
                    "{} packet log lines suppressed in the last second (flood?); the timeline kept them",
                    self.suppressed
                );
            }
            self.second = now;
            self.lines = 0;
            self.suppressed = 0;
        }
    }
}

/// Whether one more packet line may be logged this second.
pub fn log_ok() -> bool {
    let now = started().elapsed().as_secs();
    LIMITER.lock().unwrap_or_else(|e| e.into_inner()).allow(now)
}

/// Reports left-out lines even after a flood stops (call once a second).
pub fn tick() {
    let now = started().elapsed().as_secs();
    LIMITER.lock().unwrap_or_else(|e| e.into_inner()).roll(now);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_caps_a_second_and_starts_afresh() {
        let mut l = LogLimiter {
            second: 5,
            lines: 0,
            suppressed: 0,
        };
        let allowed = (0..PER_SECOND + 50).filter(|_| l.allow(5)).count();
        assert_eq!(allowed, PER_SECOND as usize);
        assert_eq!(l.suppressed, 50);
        assert!(l.allow(6));
        assert_eq!(l.suppressed, 0);
    }
}
