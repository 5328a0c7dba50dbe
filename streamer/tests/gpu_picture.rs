//! A stream's picture from dmabuf frames converted on the GPU: frame after frame, converting
//! only the rows each frame changed, it holds what a whole conversion of that frame on the CPU
//! gives. And a 10-bit stream has the compositor render its frames in 10 bits.
//!
//! Needs a render node, so it is ignored in a plain `cargo test` and run on a virtual GPU by
//! `scripts/test.sh`:
//!
//! ```sh
//! scripts/gpu-vm.sh -- cargo test -p streamer --test gpu_picture -- --include-ignored
//! ```
//!
//! Run that way, a missing render node fails it.

mod gpu_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use compositor::FrameData;
use gpu_common::PatternOnGpu;
use streamer::encode::{
    convert_frame_to, BitDepth, Chroma, Codec, Colorspace, EncoderOptions, EncoderPreference,
    HardwareOptions, Picture, StreamPicture,
};
use streamer::pipeline::VideoPipeline;

const T: Duration = Duration::from_secs(120);

/// The samples of plane `plane`, row by row, as values (10-bit ones shifted down).
fn samples(picture: &Picture, plane: usize) -> Vec<Vec<i32>> {
    let ten = picture.depth() == BitDepth::Ten;
    let rows = if plane > 0 && picture.chroma() == Chroma::Yuv420 {
        picture.height() / 2
    } else {
        picture.height()
    } as usize;
    let row_bytes = picture.width() as usize * if ten { 2 } else { 1 };
    (0..rows)
        .map(|r| {
            let (data, stride) = picture.plane(plane);
            let row = &data[r * stride..][..row_bytes];
            if ten {
                row.chunks(2)
                    .map(|s| i32::from(u16::from_le_bytes([s[0], s[1]]) >> 6))
                    .collect()
            } else {
                row.iter().map(|&s| i32::from(s)).collect()
            }
        })
        .collect()
}

#[test]
#[ignore = "needs a render node (scripts/gpu-vm.sh)"]
fn a_picture_from_gpu_frames_holds_each_frame_converted_whole() {
    let node = gpu_common::render_node()
        .expect("a render node in /dev/dri: scripts/gpu-vm.sh -- cargo test ...");
    // Small: the check's conversions on the CPU are slow in an emulated, unoptimised guest.
    let (width, height) = (320, 240);
    let pattern = PatternOnGpu::start(Some(node), (width, height), false, Duration::from_secs(150))
        .expect("GLES on the render node");
    let colorspace = Colorspace::Rec709Limited;
    let formats = [
        (Chroma::Yuv420, BitDepth::Eight),
        (Chroma::Yuv444, BitDepth::Ten),
    ];
    let mut pictures: Vec<StreamPicture> = formats
        .iter()
        .map(|&(c, d)| StreamPicture::new(Picture::new(c, d, width, height).unwrap()))
        .collect();
    let rx = pattern.comp.frames();
    let deadline = Instant::now() + T;
    // Frames are checked after a conversion of only some rows (the frame before was converted,
    // and the test pattern changes its counter and moving block), and a few whole ones. While
    // a check runs, frames are missed, so the next one is converted whole.
    let (mut whole_checked, mut partial_checked) = (0, 0);
    while partial_checked < 5 || whole_checked < 2 {
        assert!(
            Instant::now() < deadline,
            "{partial_checked} partial and {whole_checked} whole conversions checked"
        );
        let Some(frame) = rx.recv_timeout(T) else {
            continue;
        };
        assert!(
            matches!(frame.data, FrameData::Dmabuf(_)),
            "frame {} is not a dmabuf",
            frame.seq
        );
        let mut converted = Vec::new();
        for picture in &mut pictures {
            let rows = picture.convert(&frame, colorspace).unwrap();
            assert!(picture.converted_on_gpu(), "frame {} on the CPU", frame.seq);
            converted.push(rows);
        }
        let partial = converted.iter().all(|&rows| 0 < rows && rows < height);
        if !partial && whole_checked >= 2 {
            continue;
        }
        for ((picture, &(chroma, depth)), rows) in pictures.iter().zip(&formats).zip(&converted) {
            let mut whole = Picture::new(chroma, depth, width, height).unwrap();
            convert_frame_to(&frame, colorspace, &mut whole).unwrap();
            let planes = if chroma == Chroma::Yuv420 { 2 } else { 3 };
            for plane in 0..planes {
                let (got, want) = (samples(picture.picture(), plane), samples(&whole, plane));
                for (r, (g, w)) in got.iter().zip(&want).enumerate() {
                    let worst = g.iter().zip(w).map(|(a, b)| (a - b).abs()).max().unwrap();
                    assert!(
                        worst <= 1,
                        "frame {} {chroma:?} {depth:?}: plane {plane} row {r} is {worst} off \
                         ({rows} rows converted)",
                        frame.seq
                    );
                }
            }
        }
        if partial {
            partial_checked += 1;
        } else {
            whole_checked += 1;
        }
    }
    drop(rx);
    pattern.stop();
}

#[test]
#[ignore = "needs a render node (scripts/gpu-vm.sh)"]
fn a_ten_bit_stream_has_the_compositor_render_in_ten_bits() {
    let node = gpu_common::render_node()
        .expect("a render node in /dev/dri: scripts/gpu-vm.sh -- cargo test ...");
    let (width, height) = (320, 240);
    let comp = Arc::new(gpu_common::compositor_on(Some(node), (width, height)));
    let rx = comp.frames();
    // The fourcc of the next frame in one of `fourccs` (each switch draws the output anew).
    let frame_in = |fourccs: &[&[u8; 4]]| {
        let deadline = Instant::now() + T;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if let Some(FrameData::Dmabuf(gpu)) = rx.recv_timeout(left).map(|f| f.data) {
                if fourccs
                    .iter()
                    .any(|f| u32::from_le_bytes(**f) == gpu.fourcc())
                {
                    return true;
                }
            }
        }
        false
    };
    let hw = HardwareOptions {
        preference: EncoderPreference::Software,
        vaapi_device: None,
    };
    let ten_bit = EncoderOptions {
        codec: Codec::Hevc,
        depth: BitDepth::Ten,
        ..EncoderOptions::new(width, height, 30, 2_000)
    };
    let mut pipeline = VideoPipeline::open(&comp, ten_bit, &hw).expect("a 10-bit HEVC stream");
    assert!(
        frame_in(&[b"XB30"]),
        "no 10-bit frame for the 10-bit stream"
    );
    // A mode change to 8-bit H.264 (the same as a new stream): 8-bit frames again.
    pipeline
        .reopen(EncoderOptions::new(width, height, 30, 2_000), &hw)
        .expect("an 8-bit H.264 stream");
    assert!(frame_in(&[b"XR24"]), "no 8-bit frame for the 8-bit stream");
    println!(
        "[ten-bit] a 10-bit stream's frames rendered in XBGR2101010, an 8-bit one's in XRGB8888"
    );
    drop(pipeline);
    drop(rx);
    if let Ok(comp) = Arc::try_unwrap(comp) {
        comp.shutdown();
    }
}
