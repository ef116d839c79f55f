//! Which machine is at which address, as far as a LAN peer cannot fake it
//! with one packet: TFTP, HTTP and NFS only see an IP, and the NFS door
//! hands out per-client areas and `allow = ["pxe"]` by machine.
//!
//! An address is tied to a MAC only where the LAN itself shows it: the
//! kernel's neighbour (ARP) table, or a DHCP frame whose Ethernet source is
//! its `chaddr` and whose IP source is its `ciaddr`. DHCP fields alone
//! (`ciaddr`, option 50, another server's ACK) prove nothing: anyone can
//! write them. An address that has mounted stays with its MAC: a different
//! MAC showing up there is refused and named in the log, never rebound.
//! A peer that spoofs both the IP and the MAC of another machine (ARP
//! spoofing) is beyond what this can tell; README "Security model".

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::event::{Door, Event, Kind, Level, emit};
use crate::mac::Mac;
use crate::pxe::Family;
use crate::step::{Claim, Proof};

/// Bound on remembered addresses and on answered machines. When full, the
/// longest-unseen sixteenth goes; addresses that have mounted stay.
const MAX: usize = 4096;
/// How long a neighbour-table answer is reused before reading it again.
const NEIGH_TTL: Duration = Duration::from_secs(5);

/// Looks an on-link address up in the neighbour table.
pub type Neighbours = Arc<dyn Fn(Ipv4Addr) -> Option<Mac> + Send + Sync>;

#[derive(Debug, Clone, Copy)]
struct Entry {
    mac: Mac,
    seen: Instant,
    /// The MAC as the neighbour table showed it, and when.
    checked: Option<(Option<Mac>, Instant)>,
    mounted: bool,
    /// Learned at the 4011 step of a client behind a relay the config
    /// names: its frames carry the router's MAC, so the neighbour table
    /// cannot show it.
    relayed: bool,
}

struct Table {
    by_ip: HashMap<Ipv4Addr, Entry>,
    answered: HashMap<Mac, (Instant, Family)>,
    /// Conflicts already reported, by address: one warning a minute each.
    warned: HashMap<Ipv4Addr, Instant>,
}

#[derive(Clone)]
pub struct Clients {
    table: Arc<Mutex<Table>>,
    neighbours: Neighbours,
}

impl Default for Clients {
    fn default() -> Clients {
        Clients::with_neighbours(Arc::new(neighbour_table))
    }
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clients")
    }
}

/// Drops the longest-unseen sixteenth of `map` whose entries may go.
fn evict<K: Copy + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    seen: impl Fn(&V) -> Option<Instant>,
) {
    let mut ages: Vec<(Instant, K)> = map
        .iter()
        .filter_map(|(k, v)| seen(v).map(|t| (t, *k)))
        .collect();
    let n = (MAX / 16).min(ages.len());
    if n == 0 {
        return;
    }
    ages.select_nth_unstable_by_key(n - 1, |(t, _)| *t);
    for (_, k) in ages.into_iter().take(n) {
        map.remove(&k);
    }
}

impl Table {
    /// Adds an address, making room by evicting the longest-unseen ones
    /// that have not mounted; nothing is added when mounted ones fill it.
    fn add(&mut self, ip: Ipv4Addr, entry: Entry) {
        if self.by_ip.len() >= MAX {
            evict(&mut self.by_ip, |e| (!e.mounted).then_some(e.seen));
            if self.by_ip.len() >= MAX {
                return;
            }
        }
        self.by_ip.insert(ip, entry);
    }
}

impl Clients {
    pub fn with_neighbours(neighbours: Neighbours) -> Clients {
        Clients {
            table: Arc::new(Mutex::new(Table {
                by_ip: HashMap::new(),
                answered: HashMap::new(),
                warned: HashMap::new(),
            })),
            neighbours,
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers that we sent this machine a proxy offer or ACK.
    pub fn answered(&self, mac: Mac, family: Family) {
        let mut t = self.table();
        if t.answered.len() >= MAX && !t.answered.contains_key(&mac) {
            evict(&mut t.answered, |(at, _)| Some(*at));
        }
        t.answered.insert(mac, (Instant::now(), family));
    }

    /// How long ago we last sent this machine a proxy offer or ACK.
    pub fn answered_ago(&self, mac: Mac) -> Option<Duration> {
        self.table().answered.get(&mac).map(|(at, _)| at.elapsed())
    }

    /// The firmware the machine at `ip` last asked us as.
    pub fn family(&self, ip: IpAddr) -> Option<Family> {
        let mac = self.mac_at(ip)?;
        self.table().answered.get(&mac).map(|(_, f)| *f)
    }

    /// Takes a request's claim on its address (`step::Claim`): the Ethernet
    /// source or the neighbour table must show the same MAC, except behind
    /// a relay the config names, where the 4011 step's `chaddr` is all
    /// there is. Returns the MAC known at that address instead when it
    /// disagrees, or when that address mounted as another MAC (nothing is
    /// learned then).
    pub fn claim(&self, c: &Claim) -> Result<(), Mac> {
        let (ip, mac) = (c.ip, c.mac);
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
            return Ok(());
        }
        let shown = match c.proof {
            Proof::Frame(m) => Some(m),
            Proof::Neighbour => (self.neighbours)(ip),
            Proof::Relayed => None,
        };
        if let Some(other) = shown.filter(|m| *m != mac) {
            return Err(other);
        }
        let relayed = c.proof == Proof::Relayed;
        let now = Instant::now();
        let checked = shown.map(|m| (Some(m), now));
        let mut t = self.table();
        if let Some(e) = t.by_ip.get_mut(&ip) {
            if e.mounted && e.mac != mac {
                return Err(e.mac);
            }
            e.mac = mac;
            e.seen = now;
            e.checked = checked;
            e.relayed = relayed;
            return Ok(());
        }
        t.add(
            ip,
            Entry {
                mac,
                seen: now,
                checked,
                mounted: false,
                relayed,
            },
        );
        Ok(())
    }

    /// The machine at `ip` as the LAN shows it now, for deciding who may
    /// mount and whose area is whose. `None` when the neighbour table does
    /// not know the address, or shows another MAC where a machine mounted.
    pub fn identify(&self, ip: Ipv4Addr) -> Option<Mac> {
        let now = Instant::now();
        let cached = {
            let t = self.table();
            t.by_ip.get(&ip).and_then(|e| {
                e.checked
                    .filter(|(_, at)| now.duration_since(*at) < NEIGH_TTL)
                    .map(|(m, _)| m)
            })
        };
        let shown = match cached {
            Some(m) => m,
            None => {
                let m = (self.neighbours)(ip);
                self.note_check(ip, m, now);
                m
            }
        };
        let shown = match shown {
            Some(m) => m,
            // off-link: only a client learned behind a named relay
            None => {
                let t = self.table();
                return t.by_ip.get(&ip).filter(|e| e.relayed).map(|e| e.mac);
            }
        };
        let t = self.table();
        match t.by_ip.get(&ip) {
            Some(e) if e.mounted && e.mac != shown => {
                let pinned = e.mac;
                drop(t);
                self.warn_conflict(ip, pinned, shown);
                None
            }
            _ => Some(shown),
        }
    }

    fn note_check(&self, ip: Ipv4Addr, shown: Option<Mac>, now: Instant) {
        let mut t = self.table();
        if let Some(e) = t.by_ip.get_mut(&ip) {
            e.checked = Some((shown, now));
            return;
        }
        let Some(mac) = shown else { return };
        t.add(
            ip,
            Entry {
                mac,
                seen: now,
                checked: Some((shown, now)),
                mounted: false,
                relayed: false,
            },
        );
    }

    fn warn_conflict(&self, ip: Ipv4Addr, pinned: Mac, shown: Mac) {
        let mut t = self.table();
        let now = Instant::now();
        if t.warned.len() >= MAX {
            t.warned.clear();
        }
        let last = t.warned.insert(ip, now);
        drop(t);
        if last.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(60)) {
            emit(
                Event::new(
                    Door::Nfs,
                    Kind::Identity,
                    Level::Warn,
                    format!("{ip} mounted as {pinned}, but the LAN now shows {shown} there: refused (another machine took the address, or spoofs it)"),
                )
                .mac(Some(shown))
                .ip(Some(IpAddr::V4(ip))),
            );
        }
    }

    /// The machine at `ip` mounted: its address stays with its MAC.
    pub fn mounted(&self, ip: Ipv4Addr) {
        let Some(mac) = self.identify(ip) else { return };
        let mut t = self.table();
        let now = Instant::now();
        let e = t.by_ip.entry(ip).or_insert(Entry {
            mac,
            seen: now,
            checked: Some((Some(mac), now)),
            mounted: true,
            relayed: false,
        });
        e.mac = mac;
        e.seen = now;
        e.mounted = true;
    }

    /// Whether the machine at `ip` got a PXE answer from us (or mounted
    /// as such before).
    pub fn booted_via_us(&self, ip: Ipv4Addr) -> bool {
        let Some(mac) = self.identify(ip) else {
            return false;
        };
        let t = self.table();
        t.answered.contains_key(&mac) || t.by_ip.get(&ip).is_some_and(|e| e.mounted)
    }

    /// The MAC remembered or shown for an address, for log lines.
    pub fn mac(&self, ip: Ipv4Addr) -> Option<Mac> {
        let known = self.table().by_ip.get(&ip).map(|e| e.mac);
        known.or_else(|| self.identify(ip))
    }

    /// The MAC for any peer address (IPv6 peers are not tied to one).
    pub fn mac_at(&self, ip: IpAddr) -> Option<Mac> {
        match ip {
            IpAddr::V4(v4) => self.mac(v4),
            IpAddr::V6(_) => None,
        }
    }
}

/// The kernel's ARP table entry for `ip`, if complete (/proc/net/arp).
fn neighbour_table(ip: Ipv4Addr) -> Option<Mac> {
    let text = std::fs::read_to_string("/proc/net/arp").ok()?;
    parse_arp(&text, ip)
}

/// Reads one address out of /proc/net/arp's table.
fn parse_arp(text: &str, ip: Ipv4Addr) -> Option<Mac> {
    const ATF_COM: u32 = 0x2;
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [addr, _, flags, hw, ..] = f.as_slice() else {
            return None;
        };
        if addr.parse::<Ipv4Addr>().ok()? != ip {
            return None;
        }
        let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).ok()?;
        if flags & ATF_COM == 0 {
            return None;
        }
        hw.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mac = Mac([2, 0, 0, 0, 0, 0x0a]);
    const B: Mac = Mac([2, 0, 0, 0, 0, 0x0b]);
    const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 10);

    fn claim(ip: Ipv4Addr, mac: Mac, proof: Proof) -> Claim {
        Claim { ip, mac, proof }
    }

    fn lan(table: Arc<Mutex<HashMap<Ipv4Addr, Mac>>>) -> Clients {
        Clients::with_neighbours(Arc::new(move |ip| table.lock().unwrap().get(&ip).copied()))
    }

    #[test]
    fn a_claim_the_lan_contradicts_is_refused() {
        let table = Arc::new(Mutex::new(HashMap::from([(IP, A)])));
        let c = lan(table);
        // B's MAC in chaddr, sent from A's address: one forged 4011 REQUEST
        assert_eq!(c.claim(&claim(IP, B, Proof::Neighbour)), Err(A));
        assert_eq!(c.claim(&claim(IP, B, Proof::Frame(A))), Err(A));
        assert_eq!(c.claim(&claim(IP, A, Proof::Neighbour)), Ok(()));
        assert_eq!(c.identify(IP), Some(A));
    }

    #[test]
    fn identity_comes_from_the_lan_not_from_dhcp_fields() {
        let table = Arc::new(Mutex::new(HashMap::new()));
        let c = lan(table.clone());
        c.answered(B, Family::Bios);
        // nothing on the LAN at that address: no identity, no "pxe" admission
        assert_eq!(c.identify(IP), None);
        assert!(!c.booted_via_us(IP));
        table.lock().unwrap().insert(IP, B);
        assert!(c.booted_via_us(IP));
    }

    #[test]
    fn a_mounted_address_is_never_rebound() {
        let table = Arc::new(Mutex::new(HashMap::from([(IP, A)])));
        let c = lan(table.clone());
        c.answered(A, Family::Bios);
        c.mounted(IP);
        table.lock().unwrap().insert(IP, B);
        // the cached look is fresh for NEIGH_TTL; a new claim reads again
        assert_eq!(c.claim(&claim(IP, B, Proof::Neighbour)), Err(A));
        let t = c.table();
        assert!(t.by_ip[&IP].mounted && t.by_ip[&IP].mac == A);
    }

    #[test]
    fn a_flood_evicts_old_entries_but_keeps_mounted_ones() {
        let c = Clients::with_neighbours(Arc::new(|_| None));
        c.claim(&claim(IP, A, Proof::Frame(A))).unwrap();
        c.table().by_ip.get_mut(&IP).unwrap().mounted = true;
        c.answered(A, Family::Bios);
        for i in 0..3 * MAX as u32 {
            let ip = Ipv4Addr::from(0x0a01_0000 + i);
            let b = i.to_be_bytes();
            let mac = Mac([2, 1, b[0], b[1], b[2], b[3]]);
            c.claim(&claim(ip, mac, Proof::Frame(mac))).unwrap();
            c.answered(mac, Family::Bios);
        }
        let t = c.table();
        assert!(t.by_ip.len() <= MAX && t.answered.len() <= MAX);
        assert_eq!(t.by_ip[&IP].mac, A, "the mounted client was evicted");
        // recent ones stay: eviction drops the oldest, not everything
        assert!(t.by_ip.len() > MAX / 2);
    }

    #[test]
    fn clients_behind_a_named_relay_are_known_by_their_4011_step() {
        let c = Clients::with_neighbours(Arc::new(|_| None));
        assert_eq!(c.identify(IP), None);
        c.claim(&claim(IP, A, Proof::Relayed)).unwrap();
        assert_eq!(c.identify(IP), Some(A));
        c.mounted(IP);
        assert_eq!(c.claim(&claim(IP, B, Proof::Relayed)), Err(A));
    }

    #[test]
    fn arp_table_lines() {
        let text = "IP address       HW type     Flags       HW address            Mask     Device\n\
                    10.0.0.10        0x1         0x2         02:00:00:00:00:0a     *        eth0\n\
                    10.0.0.11        0x1         0x0         00:00:00:00:00:00     *        eth0\n";
        assert_eq!(parse_arp(text, IP), Some(A));
        assert_eq!(parse_arp(text, Ipv4Addr::new(10, 0, 0, 11)), None);
        assert_eq!(parse_arp(text, Ipv4Addr::new(10, 0, 0, 12)), None);
    }
}
