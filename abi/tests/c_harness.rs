//! Builds `tests/c/roundtrip.c` with the system C compiler against the checked-in header and the
//! static library, and runs it.
//!
//! The compiler is `$CC`, or `cc`; a missing compiler fails the test rather than skipping it.
//! `cargo test` builds the library only as an rlib for the tests, so the test first runs
//! `cargo build -p punktfunk-abi --lib` with the same target directory and profile; that makes
//! `libpunktfunk.a` in the profile directory, the parent of the test executable's `deps`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the static library needs from the system on Linux, as
/// `rustc --print native-static-libs` lists it (libssl and libcrypto come with the `protocol`
/// crate's OpenSSL dependency).
const NATIVE_LIBS: &[&str] = &[
    "-lssl",
    "-lcrypto",
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
    "-lc",
];

#[test]
fn c_program_round_trips_frames_through_the_static_library() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = static_library();
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join("punktfunk-roundtrip");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());

    let mut build = Command::new(&cc);
    build
        .args(["-std=c11", "-O1", "-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(dir.join("include"))
        .arg(dir.join("tests/c/roundtrip.c"))
        .arg(&lib)
        .args(NATIVE_LIBS)
        .arg("-o")
        .arg(&exe);
    let out = build.output().unwrap_or_else(|e| {
        panic!("cannot run the C compiler `{cc}` ({e}); install a C toolchain (gcc) or set CC")
    });
    assert!(
        out.status.success(),
        "compiling roundtrip.c failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let run = Command::new(&exe).output().expect("run the C harness");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "the C harness failed ({}):\n{stdout}{stderr}",
        run.status
    );
    print!("{stdout}");
    assert!(
        stdout.contains("all passed"),
        "unexpected output:\n{stdout}"
    );
}

/// Builds `libpunktfunk.a` in the profile this test was built in, and returns its path.
fn static_library() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // <target>/<profile>/deps/c_harness-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lies in <profile>/deps");
    let target_dir = profile_dir
        .parent()
        .expect("profile directory has a parent");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(name) => name,
        None => panic!("odd profile directory {}", profile_dir.display()),
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args([
            "build",
            "-p",
            "punktfunk-abi",
            "--lib",
            "--profile",
            profile,
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{cargo}`: {e}"));
    assert!(
        out.status.success(),
        "building the static library failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lib = profile_dir.join("libpunktfunk.a");
    assert!(
        lib.is_file(),
        "{} is missing after the build",
        lib.display()
    );
    lib
}
