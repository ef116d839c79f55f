//! Arbitrary bytes as one connection to the NFS door (record marking, RPC,
//! MOUNT and NFSv3 arguments, the file system behind them), or as one
//! portmapper call.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pxe_sidecar::fuzzing;

fuzz_target!(|data: &[u8]| fuzzing::nfs(data));
