//! classify + decide over arbitrary datagrams, to either port, under a
//! config with every feature on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pxe_sidecar::fuzzing;

fuzz_target!(|data: &[u8]| fuzzing::proxy(data));
