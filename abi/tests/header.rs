//! The checked-in `include/punktfunk.h` is what cbindgen generates from the crate now.
//!
//! A stale header fails this test; `PUNKTFUNK_BLESS=1 cargo test -p punktfunk-abi --test header`
//! rewrites it.

use std::path::Path;

#[test]
fn checked_in_header_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("read cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen failed on the crate")
        .write(&mut generated);
    let generated = String::from_utf8(generated).expect("header is utf-8");

    let path = dir.join("include/punktfunk.h");
    if std::env::var_os("PUNKTFUNK_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write the header");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != generated {
        let line = checked_in
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or(
                checked_in.lines().count().min(generated.lines().count()),
                |i| i,
            )
            + 1;
        panic!(
            "abi/include/punktfunk.h is stale (first difference at line {line}); regenerate it with \
             `PUNKTFUNK_BLESS=1 cargo test -p punktfunk-abi --test header` and commit it"
        );
    }
}
