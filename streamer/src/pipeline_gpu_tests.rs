//! A stream whose encoder takes the compositor's frames on the GPU and fails during the stream:
//! the frame it failed on goes out from CPU memory as its replacement's IDR, and the frames
//! after it go through CPU memory.
//!
//! Needs a render node whose VAAPI driver imports the compositor's buffers, so it is ignored in
//! a plain `cargo test` and run on the virtual GPU by `scripts/test.sh`:
//!
//! ```sh
//! scripts/gpu-vm.sh -- cargo test -p streamer --lib -- --ignored pipeline::gpu_tests
//! ```

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use compositor::YuvStorage;
use ffmpeg::{codec, decoder, frame, Packet};
use ffmpeg_next as ffmpeg;

use super::VideoPipeline;
use crate::encode::backend::Backend;
use crate::encode::{EncoderOptions, EncoderPreference, HardwareOptions, VideoEncoder};

#[path = "../tests/gpu_common/mod.rs"]
mod gpu_common;

const T: Duration = Duration::from_secs(120);

/// The mean difference of the luma of `decoded` and `plane` (rows `stride` bytes apart).
fn luma_difference(decoded: &frame::Video, (plane, stride): (&[u8], usize)) -> f64 {
    let (width, height) = (decoded.width() as usize, decoded.height() as usize);
    let (data, pitch) = (decoded.data(0), decoded.stride(0));
    let mut sum = 0u64;
    for y in 0..height {
        for x in 0..width {
            sum += u64::from(data[y * pitch + x].abs_diff(plane[y * stride + x]));
        }
    }
    sum as f64 / (width * height) as f64
}

#[test]
#[ignore = "needs a render node (scripts/gpu-vm.sh)"]
fn a_gpu_encoder_that_fails_mid_stream_is_replaced_and_frames_go_through_cpu_memory() {
    let node = gpu_common::render_node()
        .expect("a render node in /dev/dri: scripts/gpu-vm.sh -- cargo test ...");
    // Small: the guest of the virtual GPU is slow.
    let (width, height) = (320, 240);
    let pattern = gpu_common::PatternOnGpu::start(
        Some(node.clone()),
        (width, height),
        false,
        Duration::from_secs(150),
    )
    .expect("GLES on the render node");
    // The pattern's frames first: the compositor's first frame, before any client drew, is
    // black.
    drop(pattern.dmabuf_frame(T));
    let hw = HardwareOptions {
        preference: EncoderPreference::Software,
        vaapi_device: None,
    };
    let options = EncoderOptions::new(width, height, 30, 2_000);
    let mut pipeline = VideoPipeline::open(&pattern.comp, options, &hw).expect("a stream");
    // VAAPI taking the frames as VA surfaces of the node, its session lost under it.
    let options = pipeline.encoder.options().clone();
    pipeline.encoder =
        VideoEncoder::vaapi_session_lost(options, &node).expect("the node's VAAPI driver");
    assert_eq!(pipeline.encoder.gpu_storage(), Some(YuvStorage::Buffer));

    let decoder = decoder::find(codec::Id::H264).expect("FFmpeg has an H.264 decoder");
    let mut decoder = codec::Context::new_with_codec(decoder)
        .decoder()
        .video()
        .unwrap();
    let keyframe_due = AtomicBool::new(false);
    let deadline = Instant::now() + T;
    let mut sent = 0;
    while sent < 5 {
        assert!(Instant::now() < deadline, "{sent} frames in {T:?}");
        if pipeline.next_picture(&keyframe_due, || true).is_none() {
            continue;
        }
        // The first frame goes to the failing encoder on the GPU; the rest may not.
        assert_eq!(
            pipeline.image.is_some(),
            sent == 0,
            "frame {sent} converted for the encoder on the GPU"
        );
        let encoded = pipeline
            .encode(false)
            .expect("the stream goes on")
            .expect("an access unit");
        assert_eq!(pipeline.encoder.gpu_storage(), None, "frame {sent}");
        // The replacement's first frame is an IDR: a client that lost its reference decodes it.
        assert_eq!(encoded.is_idr, sent == 0, "frame {sent}");
        decoder
            .send_packet(&Packet::copy(&encoded.data))
            .expect("decoding");
        let mut decoded = frame::Video::empty();
        decoder
            .receive_frame(&mut decoded)
            .expect("one access unit in, one picture out");
        // What was encoded is the frame, read back from the GPU into the picture (the first)
        // or converted into it: the test pattern, its black and white at the ends of limited
        // range. (A picture the frame never reached holds other values.)
        let luma = pipeline.picture.picture().plane(0);
        let (lo, hi) = luma.0[..luma.1 * height as usize]
            .iter()
            .fold((255, 0), |(lo, hi), &v| (v.min(lo), v.max(hi)));
        assert_eq!((lo, hi), (16, 235), "frame {sent}: the picture's luma");
        let off = luma_difference(&decoded, luma);
        assert!(
            off < 4.0,
            "frame {sent}: decoded luma {off:.1} off the picture"
        );
        sent += 1;
    }
    // Without a VAAPI encoder on the node (the virtual GPU's driver has none), VAAPI from CPU
    // memory does not open either, and the software encoder goes on, saying why.
    let encoder = &pipeline.encoder;
    if encoder.backend() == Backend::Software {
        let skipped = encoder.skipped().last().expect("VAAPI among the skipped");
        assert_eq!(
            (skipped.backend, skipped.next),
            (Backend::Vaapi, Backend::Software)
        );
        assert!(
            skipped.reason.contains("then h264_vaapi did not open"),
            "{}",
            skipped.reason
        );
    } else {
        assert_eq!(encoder.backend(), Backend::Vaapi);
        assert_eq!(encoder.options().frames_on, None);
    }
    println!(
        "[fallback] {sent} frames sent after the GPU encoder failed, by {}",
        encoder.encoder_name()
    );
    drop(pipeline);
    pattern.stop();
}
