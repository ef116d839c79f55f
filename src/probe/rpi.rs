//! `probe --arch rpi4|rpi5`: a Raspberry Pi EEPROM bootloader's network
//! boot, played from its published DHCP request (pcaps/make-rpi-captures.py
//! has the sources) and its TFTP pattern: blksize 1024, the first file
//! tested by aborting after one block, every name under the serial.

use std::net::Ipv4Addr;

use super::report::Probe;
use super::tftp::{tftp_failed, tftp_get, tftp_read, tftp_text};
use super::verdict::{Offer, TftpFail};
use crate::mac::Mac;
use crate::rpi::{BOOT_MENU_TEXT, Family};

/// The Pi 4 bootloader's largest block (rpi-eeprom issue #82).
const BLKSIZE: u16 = 1024;

/// The serial the probe plays: the MAC's low four bytes.
fn serial(mac: Mac) -> u32 {
    u32::from_be_bytes([mac.0[2], mac.0[3], mac.0[4], mac.0[5]])
}

/// The bootloader's DISCOVER: options 53, 55, 93, 94, 97, 60 in its order,
/// the GUID in today's default format (`RPi4`, board revision, MAC low
/// bytes, serial, little-endian), flags 0.
pub(super) fn discover(mac: Mac, xid: u32, family: Family) -> Vec<u8> {
    let revision: u32 = match family {
        Family::Pi4 => 0x00c0_3111,
        Family::Pi5 => 0x00d0_4170,
    };
    let mut b = vec![1, 1, 6, 0];
    b.extend_from_slice(&xid.to_be_bytes());
    b.extend_from_slice(&[0; 20]); // secs, flags, ciaddr, yiaddr, siaddr, giaddr
    b.extend_from_slice(&mac.0);
    b.extend_from_slice(&[0; 10 + 64 + 128]);
    b.extend_from_slice(&[0x63, 0x82, 0x53, 0x63]);
    let mut guid = vec![0];
    guid.extend_from_slice(b"RPi4");
    guid.extend_from_slice(&revision.to_le_bytes());
    guid.extend_from_slice(&mac.0[2..]);
    guid.extend_from_slice(&serial(mac).to_le_bytes());
    let vendor_class = b"PXEClient:Arch:00000:UNDI:002001";
    for (code, body) in [
        (53, &[1][..]),
        (
            55,
            &[1, 3, 43, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135][..],
        ),
        (93, &[0, 0][..]),
        (94, &[1, 2, 1][..]),
        (97, &guid[..]),
        (60, &vendor_class[..]),
    ] {
        b.push(code);
        b.push(body.len() as u8);
        b.extend_from_slice(body);
    }
    b.push(255);
    b.resize(322, 0);
    b
}

/// What the Pi does with the offers: the menu, then its files.
pub(super) fn follow(
    p: &mut Probe,
    own_ip: Option<Ipv4Addr>,
    offers: &[Offer],
    family: Family,
    mac: Mac,
) {
    let with_menu = offers.iter().find(|o| {
        crate::pxe::menu_labels(&o.vendor)
            .iter()
            .any(|l| l.trim_end() == BOOT_MENU_TEXT)
    });
    let Some(offer) = with_menu else {
        p.note(
            false,
            format!("no offer carries the \"{BOOT_MENU_TEXT}\" menu in option 43: the Pi repeats its DISCOVER, then tries its next boot mode (its screen: NETBOOT init failed)"),
        );
        return;
    };
    let server = offer.tftp_server();
    p.note(
        true,
        format!(
            "{}: menu \"{BOOT_MENU_TEXT}\": the Pi takes TFTP from {server}",
            offer.server
        ),
    );
    let Some(own_ip) = own_ip else {
        p.note(
            false,
            "the probe's interface has no IPv4 address: it stops before TFTP (give it one)",
        );
        return;
    };
    let serial = format!("{:08x}", serial(mac));
    let first = format!("{serial}/{}", family.first_file());
    p.note(
        true,
        format!("as serial {serial} (TFTP_PREFIX=0): {first} first, blksize {BLKSIZE}"),
    );
    // The bootloader tests a file by reading one block and aborting.
    match tftp_read(own_ip, server, &first, BLKSIZE, &mut |_| false) {
        Ok(tsize) => p.note(
            true,
            format!(
                "TFTP {first}: there ({} bytes by tsize); aborted after the first block, as the Pi does to test a file",
                tsize.map_or("?".into(), |n| n.to_string())
            ),
        ),
        Err(TftpFail::Error(1, _)) => {
            p.note(
                false,
                format!("TFTP {first}: not found; the Pi tries {} without the serial, then gives up. Put the Pi's boot partition files (firmware, config.txt, cmdline.txt, kernel, DTBs) in [rpi] dir", family.first_file()),
            );
            return;
        }
        Err(f) => {
            tftp_failed(p, server, &first, f);
            return;
        }
    }
    let text = |p: &mut Probe, name: &str| -> Option<String> {
        let path = format!("{serial}/{name}");
        match tftp_text(own_ip, server, &path, BLKSIZE) {
            Ok(text) => {
                p.note(true, format!("TFTP {path}: {} bytes", text.len()));
                Some(text)
            }
            Err(f) => {
                tftp_failed(p, server, &path, f);
                None
            }
        }
    };
    let config = text(p, "config.txt").unwrap_or_default();
    let setting = |key: &str| {
        config.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    if family == Family::Pi4 {
        for f in ["start4.elf", "fixup4.dat"] {
            whole(p, own_ip, server, &format!("{serial}/{f}"));
        }
    }
    let cmdline_name = setting("cmdline").unwrap_or_else(|| "cmdline.txt".into());
    if let Some(cmdline) = text(p, &cmdline_name) {
        let root: Vec<&str> = cmdline
            .split_whitespace()
            .filter(|w| w.starts_with("root=") || w.starts_with("nfsroot="))
            .collect();
        p.note(
            !root.is_empty(),
            if root.is_empty() {
                format!("{cmdline_name} names no root=: the kernel will not find its root (for NFS: root=/dev/nfs nfsroot=SERVER:/path,vers=3,tcp ip=dhcp; `pxe-sidecar rootfs prepare` prints the line for a Pi's tree)")
            } else {
                format!("{cmdline_name}: {}", root.join(" "))
            },
        );
    }
    let kernel = setting("kernel").unwrap_or_else(|| match family {
        Family::Pi4 => "kernel8.img".into(),
        Family::Pi5 => "kernel_2712.img".into(),
    });
    whole(p, own_ip, server, &format!("{serial}/{kernel}"));
}

/// Reads a whole file at the Pi's block size and says how it went.
fn whole(p: &mut Probe, own_ip: Ipv4Addr, server: Ipv4Addr, path: &str) {
    match tftp_get(own_ip, server, path, BLKSIZE) {
        Ok((n, t)) => p.note(
            true,
            format!("TFTP {path}: {n} bytes in {} ms", t.as_millis()),
        ),
        Err(f) => tftp_failed(p, server, path, f),
    }
}
