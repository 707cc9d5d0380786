//! Fuzz target: [`driftline::fuzzing::json`] (what it decodes and applies
//! is documented there). Nothing may panic, overflow the stack, allocate
//! past the Avro cap or hang.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| driftline::fuzzing::json(data));
