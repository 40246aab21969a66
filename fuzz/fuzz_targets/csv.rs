//! Bytes → a `.csv` / `.csv.gz` object in memory → the worker's loader
//! (listing, row estimate, decode, store build) for both presets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quiver_worker::fuzzing;

fuzz_target!(init: fuzzing::install_fuzz_panic_hook(), |data: &[u8]| {
    if data.len() > fuzzing::MAX_INPUT_BYTES {
        return;
    }
    // Errors are the expected answer to bad files; only a panic is a finding.
    let _ = fuzzing::csv_all(data);
});
