//! Router solicitation/advertisement parsing and our answer, over
//! arbitrary Ethernet frames.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pxe_sidecar::fuzzing;

fuzz_target!(|data: &[u8]| fuzzing::ndp(data));
