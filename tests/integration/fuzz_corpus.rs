//! The fuzz targets' seed corpus and every crash input kept from fuzzing
//! (`tests/fuzz/corpus/<target>/`, `tests/fuzz/regressions/<target>/`),
//! run through the same harness on the stable toolchain: none may panic.

use std::path::Path;

fn each_input(target: &str, f: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz");
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            eprintln!("{}", path.display());
            f(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn confluent_avro_inputs_do_not_panic() {
    assert!(each_input("confluent_avro", driftline::fuzzing::confluent_avro) >= 5);
}

#[test]
fn json_inputs_do_not_panic() {
    assert!(each_input("json", driftline::fuzzing::json) >= 5);
}

#[test]
fn writer_schema_inputs_do_not_panic() {
    assert!(each_input("writer_schema", driftline::fuzzing::writer_schema) >= 5);
}

#[test]
fn container_inputs_do_not_panic() {
    assert!(each_input("container", driftline::fuzzing::container) >= 5);
}
