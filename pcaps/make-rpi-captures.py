#!/usr/bin/env python3
"""Writes the Raspberry Pi captures in pcaps/ from public logs.

No public pcap of a Pi's EEPROM bootloader or boot ROM asking for a network
boot could be found, so each DISCOVER here is rebuilt field by field from a
published dissection or tcpdump of one (sources per capture below, and in
pcaps/README.md). Fields the source shows are copied; the rest are what the
source implies (zeros for an unused BOOTP field, a correct UDP checksum
where the source shows one). Run it from the repository root:

    python3 pcaps/make-rpi-captures.py
"""

import struct
import sys

BROADCAST = bytes([0xFF] * 6)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def option(code, body):
    return bytes([code, len(body)]) + body


def discover(mac, xid, options, dhcp_len, ttl, udp_sum):
    """A client's broadcast DISCOVER from 0.0.0.0:68 to 255.255.255.255:67."""
    bootp = struct.pack("!BBBBIHH", 1, 1, 6, 0, xid, 0, 0)
    bootp += bytes(16)  # ciaddr, yiaddr, siaddr, giaddr
    bootp += mac + bytes(10) + bytes(64) + bytes(128)
    bootp += bytes([0x63, 0x82, 0x53, 0x63]) + options
    assert len(bootp) <= dhcp_len, (len(bootp), dhcp_len)
    bootp += bytes(dhcp_len - len(bootp))
    src, dst = bytes(4), bytes([255] * 4)
    udp_len = 8 + len(bootp)
    udp = struct.pack("!HHHH", 68, 67, udp_len, 0) + bootp
    if udp_sum:
        pseudo = src + dst + struct.pack("!BBH", 0, 17, udp_len)
        s = checksum(pseudo + udp) or 0xFFFF
        udp = udp[:6] + struct.pack("!H", s) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0, ttl, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return BROADCAST + mac + b"\x08\x00" + ip + udp


def pcap(frames):
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for i, f in enumerate(frames):
        out += struct.pack("<IIII", 1600000000 + i, 0, len(f), len(f)) + f
    return out


def eeprom_options(guid):
    """The Pi 4 bootloader's DISCOVER options, in its order (rpi-eeprom
    issue #58, a Wireshark dissection): 53, 55 (14 items), 93 = 0,
    94 = UNDI 2.1, 97, 60, END."""
    prl = bytes([1, 3, 43, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135])
    return (
        option(53, b"\x01")
        + option(55, prl)
        + option(93, b"\x00\x00")
        + option(94, b"\x01\x02\x01")
        + option(97, b"\x00" + guid)
        + option(60, b"PXEClient:Arch:00000:UNDI:002001")
        + b"\xff"
    )


def new_guid(revision, mac, serial):
    """DHCP_OPTION97's default (bootloader configuration page): the FourCC
    `RPi4`, the board revision, the MAC's low four bytes, the serial, all
    little-endian."""
    return b"RPi4" + struct.pack("<I", revision) + mac[2:] + struct.pack("<I", serial)


def main():
    # rpi-eeprom issue #58 (2019 bootloader): MAC dc:a6:32:27:76:bc, xid
    # 0x5864f63c, UDP length 330, checksum present, GUID = the serial
    # 6aee7243 four times (little-endian, as Wireshark's UUID shows it).
    pi4_mac = bytes.fromhex("dca6322776bc")
    old = struct.pack("<I", 0x6AEE7243) * 4
    captures = {
        "rpi4-eeprom-2019-discover.pcap": discover(
            pi4_mac, 0x5864F63C, eeprom_options(old), 322, 128, True
        ),
        # The same board with today's default GUID: a Pi 4B 4 GB (revision
        # c03111, the configuration page's example).
        "rpi4-eeprom-discover.pcap": discover(
            pi4_mac,
            0x5864F63C,
            eeprom_options(new_guid(0x00C03111, pi4_mac, 0x6AEE7243)),
            322,
            128,
            True,
        ),
        # A Pi 5: the same bootloader options (rpi-eeprom issue #826 shows
        # its PXEClient:Arch:00000:UNDI:002001), a Raspberry Pi Ltd OUI and a
        # Pi 5 8 GB revision (d04170).
        "rpi5-eeprom-discover.pcap": discover(
            bytes.fromhex("2ccf67a1b2c3"),
            0x1C2D3E4F,
            eeprom_options(new_guid(0x00D04170, bytes.fromhex("2ccf67a1b2c3"), 0x1234ABCD)),
            322,
            128,
            True,
        ),
        # The vendor's "Network booting" page: the Pi 3B boot ROM's DISCOVER
        # (tcpdump -vv): IP length 348, ttl 128, no UDP checksum, options 53,
        # 55 (12 items), 93, 94, 97 (the constant 0x44 GUID), 60, END.
        "rpi3-bootrom-discover.pcap": discover(
            bytes.fromhex("b827eb28f66d"),
            0x26F30339,
            option(53, b"\x01")
            + option(55, bytes([43, 60, 67, 128, 129, 130, 131, 132, 133, 134, 135, 66]))
            + option(93, b"\x00\x00")
            + option(94, b"\x01\x02\x01")
            + option(97, b"\x00" + b"\x44" * 16)
            + option(60, b"PXEClient:Arch:00000:UNDI:002001")
            + b"\xff",
            320,
            128,
            False,
        ),
    }
    for name, frame in captures.items():
        with open(f"pcaps/{name}", "wb") as f:
            f.write(pcap([frame]))
        print(f"pcaps/{name}: {len(frame)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
