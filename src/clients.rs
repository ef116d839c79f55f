//! What the DHCP side learned about clients (IP → MAC), so that TFTP and
//! HTTP log lines, which only see an IP, name the machine too.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use crate::mac::Mac;

/// Bound on remembered clients; the table starts over when it is full.
const MAX: usize = 4096;

#[derive(Debug, Clone, Default)]
pub struct Clients(Arc<Mutex<HashMap<Ipv4Addr, Mac>>>);

impl Clients {
    pub fn learn(&self, ip: Ipv4Addr, mac: Mac) {
        if ip.is_unspecified() || ip.is_broadcast() {
            return;
        }
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAX && !m.contains_key(&ip) {
            m.clear();
        }
        m.insert(ip, mac);
    }

    /// The MAC for an address, or "-" when we never saw it in DHCP.
    pub fn mac_of(&self, ip: IpAddr) -> String {
        let IpAddr::V4(v4) = ip else {
            return "-".into();
        };
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&v4)
            .map_or_else(|| "-".to_string(), Mac::to_string)
    }
}
