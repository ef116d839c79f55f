//! `pxe-sidecar replay`: a capture in, the core's decisions out. Reads classic
//! pcap and pcapng, feeds every DHCP datagram through the same frame step
//! as the live doors (`step.rs`; capture time as the clock), and can write
//! the replies as full frames to a new pcap.

use std::borrow::Cow;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::pcapng::{Block, PcapNgReader};

use crate::config::ProxyConfig;
use crate::frame::{self, Link};
use crate::mac::Mac;
use crate::proxy::{self, DHCP_CLIENT_PORT, DHCP_SERVER_PORT, PXE_PORT, Proxy, Reply};
use crate::step::{self, Datagram, Decision, Facts, Send};

/// The identity replies are sent from when replaying (TEST-NET-1, RFC 5737,
/// and a locally administered MAC) unless the config names a server address.
pub const REPLAY_SERVER_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
pub const REPLAY_SERVER_MAC: Mac = Mac([0x02, 0x50, 0x58, 0x45, 0x00, 0x01]);

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("not a pcap or pcapng capture: {0}")]
    Format(String),
    #[error("capture is damaged after frame {frame}: {why}")]
    Damaged { frame: usize, why: String },
    #[error("writing replies: {0}")]
    Write(String),
}

/// One captured frame, as read.
pub struct Frame<'a> {
    pub number: usize,
    pub time: Duration,
    pub link: Result<Link, u32>,
    pub data: Cow<'a, [u8]>,
}

/// Reads every frame of a capture held in memory.
pub fn frames(capture: &[u8]) -> Result<Vec<Frame<'_>>, ReplayError> {
    let mut out = Vec::new();
    let link_of = |d: DataLink| {
        let code = u32::from(d);
        Link::from_linktype(code).ok_or(code)
    };
    if capture.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        let mut r = PcapNgReader::new(capture).map_err(|e| ReplayError::Format(e.to_string()))?;
        while let Some(block) = r.next_block() {
            let block = block.map_err(|e| ReplayError::Damaged {
                frame: out.len(),
                why: e.to_string(),
            })?;
            let (time, iface, data) = match block {
                Block::EnhancedPacket(p) => (p.timestamp, p.interface_id, p.data),
                Block::SimplePacket(p) => (Duration::ZERO, 0, p.data),
                // Obsolete Packet Block: timestamps in the default microsecond unit.
                Block::Packet(p) => (
                    Duration::from_micros(p.timestamp),
                    p.interface_id as u32,
                    p.data,
                ),
                _ => continue,
            };
            let data = data.into_owned();
            let link = r
                .interfaces()
                .get(iface as usize)
                .map_or(Err(u32::MAX), |i| link_of(i.linktype));
            out.push(Frame {
                number: out.len() + 1,
                time,
                link,
                data: Cow::Owned(data),
            });
        }
    } else {
        let mut r = PcapReader::new(capture).map_err(|e| ReplayError::Format(e.to_string()))?;
        let header = r.header();
        let link = link_of(header.datalink);
        // Raw packets: tolerate captures whose records exceed the header's
        // snaplen (fuzzer-made files do), which the checked reader refuses.
        while let Some(p) = r.next_raw_packet() {
            let p = p.map_err(|e| ReplayError::Damaged {
                frame: out.len(),
                why: e.to_string(),
            })?;
            let frac = match header.ts_resolution {
                pcap_file::TsResolution::MicroSecond => p.ts_frac.min(999_999) * 1000,
                pcap_file::TsResolution::NanoSecond => p.ts_frac.min(999_999_999),
            };
            out.push(Frame {
                number: out.len() + 1,
                time: Duration::new(p.ts_sec as u64, frac),
                link,
                data: Cow::Owned(p.data.into_owned()),
            });
        }
    }
    Ok(out)
}

/// What replay made of one DHCP datagram.
pub struct Record {
    pub frame: usize,
    pub line: String,
    pub reply: Option<(Reply, Vec<u8>)>,
}

pub struct Outcome {
    pub frames: usize,
    pub records: Vec<Record>,
    pub skipped_links: Vec<u32>,
}

impl Outcome {
    pub fn replies(&self) -> impl Iterator<Item = &(Reply, Vec<u8>)> {
        self.records.iter().filter_map(|r| r.reply.as_ref())
    }

    /// The text a golden file holds.
    pub fn report(&self) -> String {
        let mut s = String::new();
        for r in &self.records {
            s.push_str(&r.line);
            s.push('\n');
        }
        for code in &self.skipped_links {
            s.push_str(&format!(
                "link type {code} is not supported: frames skipped\n"
            ));
        }
        s.push_str(&format!(
            "{} frames, {} DHCP, {} replies\n",
            self.frames,
            self.records.len(),
            self.replies().count()
        ));
        s
    }
}

pub fn is_dhcp_port(p: u16) -> bool {
    p == DHCP_SERVER_PORT || p == DHCP_CLIENT_PORT || p == PXE_PORT
}

/// Replays a capture through a fresh core.
pub fn replay(
    capture: &[u8],
    cfg: &ProxyConfig,
    server: Ipv4Addr,
    server_mac: Mac,
) -> Result<Outcome, ReplayError> {
    let frames = frames(capture)?;
    let mut core = Proxy::new();
    let mut records = Vec::new();
    let mut skipped_links = Vec::new();
    let start = frames.first().map_or(Duration::ZERO, |f| f.time);
    for f in &frames {
        let link = match f.link {
            Ok(l) => l,
            Err(code) => {
                if !skipped_links.contains(&code) {
                    skipped_links.push(code);
                }
                continue;
            }
        };
        let Some(udp) = frame::udp(link, &f.data) else {
            continue;
        };
        if !is_dhcp_port(udp.dst.port()) && !is_dhcp_port(udp.src.port()) {
            continue;
        }
        // Captures are not always in time order (joined files); the core
        // treats a step back in time as a new window.
        let t = f.time.saturating_sub(start);
        let datagram = Datagram::of(&udp);
        let meta = datagram.meta();
        let head = format!("#{} {:>4}.{:06}", f.number, t.as_secs(), t.subsec_micros());
        let facts = Facts {
            cfg,
            ip: server,
            mac: server_mac,
        };
        let decision = match step::step(&mut core, &facts, &datagram, t.as_millis() as u64) {
            Err(skip) => Err(format!(
                "{head} {} -> {skip}",
                proxy::peek(udp.payload, meta)
            )),
            Ok(d) => Ok(d),
        };
        let (line, reply) = match decision {
            Err(line) => (line, None),
            Ok(Decision {
                outcome: Err(why), ..
            }) => (
                format!("{head} {} -> ignore: {why}", proxy::peek(udp.payload, meta)),
                None,
            ),
            Ok(d) => {
                let send = d.send(&facts);
                let Ok((req, decided)) = d.outcome else {
                    continue;
                };
                let what = proxy::describe_request(&req);
                match (decided, send) {
                    (Err(why), _) => (format!("{head} {what} -> ignore: {why}"), None),
                    (Ok(reply), send) => {
                        let bytes = match send {
                            Some(Send::Link(frame)) => frame,
                            // routed replies (a relay, the 4011 ACK) leave
                            // toward whatever sent us the request
                            _ => frame::build(
                                server_mac,
                                udp.src_mac.unwrap_or(Mac::BROADCAST),
                                SocketAddrV4::new(server, reply.src_port),
                                reply.dest.addr(),
                                &reply.payload,
                            ),
                        };
                        let line = format!(
                            "{head} {what} -> {}",
                            proxy::describe_reply(&req, &reply, server)
                        );
                        (line, Some((reply, bytes)))
                    }
                }
            }
        };
        records.push(Record {
            frame: f.number,
            line,
            reply,
        });
    }
    Ok(Outcome {
        frames: frames.len(),
        records,
        skipped_links,
    })
}

/// Writes reply frames as a classic pcap (Ethernet), zero packets allowed.
pub fn write_pcap(out: impl Write, outcome: &Outcome) -> Result<(), ReplayError> {
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ..Default::default()
    };
    let mut w =
        PcapWriter::with_header(out, header).map_err(|e| ReplayError::Write(e.to_string()))?;
    for (i, (_, bytes)) in outcome.replies().enumerate() {
        // Replies are spaced 1 ms apart: their capture times are not meaningful.
        let p = PcapPacket::new(Duration::from_millis(i as u64), bytes.len() as u32, bytes);
        w.write_packet(&p)
            .map_err(|e| ReplayError::Write(e.to_string()))?;
    }
    Ok(())
}
