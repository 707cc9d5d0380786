//! Fuzz target: [`driftline::fuzzing::container`] (an Avro object container
//! file as `replay` reads it). Nothing may panic, allocate past the Avro cap
//! or hang.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| driftline::fuzzing::container(data));
