//! What the benches share: the peer encoder.

use ffmpeg::codec::{self, threading};
use ffmpeg::util::color;
use ffmpeg::{encoder, format, Dictionary};
use ffmpeg_next as ffmpeg;

/// An encoder context for `name` with the settings `VideoEncoder` uses for one slice and one
/// thread at `fps` (rate control, colour description, no B-frames), not opened yet.
pub(crate) fn bare_context(
    name: &str,
    pixel: format::Pixel,
    (width, height): (u32, u32),
    fps: u32,
    kbps: u32,
) -> encoder::video::Video {
    let codec = encoder::find_by_name(name).unwrap_or_else(|| panic!("FFmpeg has {name}"));
    let mut enc = codec::Context::new_with_codec(codec)
        .encoder()
        .video()
        .unwrap();
    enc.set_width(width);
    enc.set_height(height);
    enc.set_format(pixel);
    enc.set_time_base((1, fps as i32));
    enc.set_frame_rate(Some((fps as i32, 1)));
    enc.set_max_b_frames(0);
    enc.set_bit_rate(kbps as usize * 1000);
    enc.set_max_bit_rate(kbps as usize * 1000);
    enc.set_threading(threading::Config {
        kind: threading::Type::Slice,
        count: 1,
        ..Default::default()
    });
    enc.set_colorspace(color::Space::BT709);
    enc.set_color_range(color::Range::MPEG);
    // SAFETY: field writes on an allocated, unopened context.
    unsafe {
        let ctx = &mut *enc.as_mut_ptr();
        ctx.color_primaries = color::Primaries::BT709.into();
        ctx.color_trc = color::TransferCharacteristic::BT709.into();
        ctx.rc_buffer_size = (f64::from(kbps) * 1000.0 * 1.5 / f64::from(fps)) as i32;
        ctx.slices = 1;
    }
    enc
}

/// libx264 opened by hand, bypassing `VideoEncoder`, with the settings it uses for one slice and
/// one thread at `fps`: the "bare encoder" every pipeline figure is compared with.
pub(crate) fn bare_x264(width: u32, height: u32, fps: u32, kbps: u32) -> encoder::Video {
    let enc = bare_context("libx264", format::Pixel::NV12, (width, height), fps, kbps);
    let mut opts = Dictionary::new();
    opts.set("preset", "ultrafast");
    opts.set("tune", "zerolatency");
    opts.set("forced-idr", "1");
    opts.set(
        "x264-params",
        "keyint=infinite:scenecut=0:bframes=0:repeat-headers=1:aud=0:slices=1:nal-hrd=none",
    );
    enc.open_with(opts).expect("opening libx264")
}
