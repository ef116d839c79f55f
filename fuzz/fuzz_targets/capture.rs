//! The pcap/pcapng reader and frame parser over arbitrary files.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pxe_sidecar::fuzzing;

fuzz_target!(|data: &[u8]| fuzzing::capture(data));
