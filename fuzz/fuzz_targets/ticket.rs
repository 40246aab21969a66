//! DoGet ticket bytes → `Query::from_json` → `query::run` on a fixed shard →
//! Flight encoding and decoding of the answer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(init: quiver_worker::fuzzing::install_fuzz_panic_hook(), |data: &[u8]| {
    // Errors are the expected answer to bad tickets; only a panic is a finding.
    let _ = quiver_worker::fuzzing::ticket(data);
});
