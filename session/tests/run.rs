//! `punktfunk run` records what an app draws in a fresh compositor.

use std::process::Command;

fn punktfunk() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_punktfunk"));
    c.env_remove("WAYLAND_DISPLAY").env_remove("DISPLAY");
    c
}

#[test]
fn records_the_test_pattern_to_png() {
    record_the_test_pattern("pixman");
}

#[test]
fn records_the_test_pattern_to_png_with_gles() {
    record_the_test_pattern("gles");
}

fn record_the_test_pattern(renderer: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("last.png");
    let status = punktfunk()
        .args([
            "run",
            "--renderer",
            renderer,
            "--mode",
            "640x480@60",
            "--frames",
            "20",
        ])
        .arg("--output")
        .arg(&out)
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_punktfunk"))
        .arg("testpattern")
        .status()
        .unwrap();
    assert!(status.success(), "punktfunk run failed: {status}");

    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&out).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut rgb = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut rgb).unwrap();
    assert_eq!((info.width, info.height), (640, 480));
    let px = |x: usize, y: usize| {
        let i = (y * 640 + x) * 3;
        (rgb[i], rgb[i + 1], rgb[i + 2])
    };
    // Bars: yellow is the second of eight, red the sixth (docs/testpattern.md).
    assert_eq!(px(120, 200), (255, 255, 0));
    assert_eq!(px(440, 200), (255, 0, 0));
    // The counter row: the 20th frame after the empty output is the app's frame 19, give or
    // take a frame the app drew while the recorder was shutting down.
    let bgra: Vec<u8> = rgb
        .chunks_exact(3)
        .flat_map(|p| [p[2], p[1], p[0], 255])
        .collect();
    let n = testpattern::decode_counter(&bgra, 640, 480, 640 * 4).expect("counter readable");
    assert!(
        (19..=21).contains(&n),
        "last recorded frame shows counter {n}, expected 19"
    );
}

#[test]
fn unknown_output_types_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("x.mkv");
    let out = punktfunk()
        .args(["run", "--frames", "1", "--output"])
        .arg(&target)
        .args(["--", "true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(".y4m, .h264 or .png"), "{err}");
    assert!(!target.exists(), "a refused output must not be created");
}
