//! What the DHCP side learned about clients (IP → MAC), so that TFTP, HTTP
//! and NFS, which only see an IP, name the machine too; and which machines
//! we answered as PXE clients (the NFS door's `allow = ["pxe"]`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::mac::Mac;

/// Bound on remembered clients; the table starts over when it is full.
const MAX: usize = 4096;

#[derive(Debug, Default)]
struct Table {
    by_ip: HashMap<Ipv4Addr, Mac>,
    answered: HashMap<Mac, Instant>,
}

#[derive(Debug, Clone, Default)]
pub struct Clients(Arc<Mutex<Table>>);

impl Clients {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers that we sent this machine a proxy offer or ACK.
    pub fn answered(&self, mac: Mac) {
        let mut t = self.table();
        if t.answered.len() >= MAX && !t.answered.contains_key(&mac) {
            t.answered.clear();
        }
        t.answered.insert(mac, Instant::now());
    }

    /// How long ago we last sent this machine a proxy offer or ACK.
    pub fn answered_ago(&self, mac: Mac) -> Option<Duration> {
        self.table().answered.get(&mac).map(Instant::elapsed)
    }

    /// Whether the machine at `ip` got a PXE answer from us.
    pub fn booted_via_us(&self, ip: Ipv4Addr) -> bool {
        let t = self.table();
        t.by_ip.get(&ip).is_some_and(|m| t.answered.contains_key(m))
    }

    pub fn learn(&self, ip: Ipv4Addr, mac: Mac) {
        if ip.is_unspecified() || ip.is_broadcast() {
            return;
        }
        let mut t = self.table();
        let m = &mut t.by_ip;
        if m.len() >= MAX && !m.contains_key(&ip) {
            m.clear();
        }
        m.insert(ip, mac);
    }

    /// The MAC learned for an address, if any.
    pub fn mac(&self, ip: Ipv4Addr) -> Option<Mac> {
        self.table().by_ip.get(&ip).copied()
    }

    /// The MAC for an address, or "-" when we never saw it in DHCP.
    pub fn mac_of(&self, ip: IpAddr) -> String {
        let IpAddr::V4(v4) = ip else {
            return "-".into();
        };
        self.table()
            .by_ip
            .get(&v4)
            .map_or_else(|| "-".to_string(), Mac::to_string)
    }
}
