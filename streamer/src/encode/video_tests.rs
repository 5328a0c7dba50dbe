//! Round trips through libx264 and FFmpeg's H.264 decoder.

use ffmpeg::util::color;
use ffmpeg::{codec, decoder, format, frame, Packet};
use ffmpeg_next as ffmpeg;

use super::nal::{nal_type, nal_units};
use super::video::{replacements, CLOSED};
use super::*;
use crate::encode::backend::{Backend, EncoderPreference, HardwareOptions};

const W: u32 = 1280;
const H: u32 = 720;

/// Eight vertical bars (white, yellow, cyan, green, magenta, red, blue, black), as R, G, B.
const BARS: [(u8, u8, u8); 8] = [
    (235, 235, 235),
    (235, 235, 16),
    (16, 235, 235),
    (16, 235, 16),
    (235, 16, 235),
    (235, 16, 16),
    (16, 16, 235),
    (16, 16, 16),
];

/// Colour bars over the top two thirds; below, a grey ramp that moves `shift` pixels per frame so
/// consecutive frames differ.
fn bars_bgra(shift: u32) -> Vec<u8> {
    let mut px = vec![0u8; (W * H * 4) as usize];
    for y in 0..H {
        for x in 0..W {
            let (r, g, b) = if y < H * 2 / 3 {
                BARS[(x * 8 / W) as usize]
            } else {
                let v = ((x + shift * 4) % 256) as u8;
                (v, v, v)
            };
            let o = ((y * W + x) * 4) as usize;
            px[o..o + 4].copy_from_slice(&[b, g, r, 0]);
        }
    }
    px
}

fn nv12_of(px: &[u8], cs: Colorspace) -> Nv12Frame {
    let mut nv12 = Nv12Frame::new(W, H).unwrap();
    convert_bgra(px, W as usize * 4, cs, &mut nv12).unwrap();
    nv12
}

fn options(cs: Colorspace) -> EncoderOptions {
    EncoderOptions {
        colorspace: cs,
        ..EncoderOptions::new(W, H, 60, 20_000)
    }
}

fn h264_decoder() -> decoder::Video {
    let codec = decoder::find(codec::Id::H264).expect("FFmpeg has an H.264 decoder");
    codec::Context::new_with_codec(codec)
        .decoder()
        .video()
        .unwrap()
}

fn decode(dec: &mut decoder::Video, au: &[u8]) -> frame::Video {
    dec.send_packet(&Packet::copy(au)).unwrap();
    let mut out = frame::Video::empty();
    dec.receive_frame(&mut out)
        .expect("one access unit in, one picture out");
    out
}

fn kinds(au: &[u8]) -> Vec<u8> {
    nal_units(au).map(|n| n.kind()).collect()
}

#[test]
fn bars_survive_the_round_trip_in_every_colorspace() {
    for cs in Colorspace::ALL {
        let mut enc = VideoEncoder::new(options(cs)).unwrap();
        let mut dec = h264_decoder();
        for n in 0..3 {
            let au = enc
                .encode(&nv12_of(&bars_bgra(n), cs), n == 0)
                .unwrap()
                .unwrap();
            let pic = decode(&mut dec, &au.data);
            assert_eq!((pic.width(), pic.height()), (W, H));
            // FFmpeg flags full range with its deprecated "J" formats; same layout either way.
            assert!(matches!(
                pic.format(),
                format::Pixel::YUV420P | format::Pixel::YUVJ420P
            ));
            // The VUI says what the conversion did.
            let want_range = if cs.is_full_range() {
                color::Range::JPEG
            } else {
                color::Range::MPEG
            };
            assert_eq!(pic.color_range(), want_range, "{cs:?}");
            let want_space = if cs.is_bt709() {
                color::Space::BT709
            } else {
                color::Space::SMPTE170M
            };
            assert_eq!(pic.color_space(), want_space, "{cs:?}");
            // Chroma is each 2x2 block's mean, sited at its centre.
            assert_eq!(
                pic.chroma_location(),
                ffmpeg::util::chroma::Location::Center,
                "{cs:?}"
            );
            // Sample the middle of each bar, away from the edges, and convert back to RGB.
            let (ys, us, vs) = (pic.stride(0), pic.stride(1), pic.stride(2));
            for (i, &(r, g, b)) in BARS.iter().enumerate() {
                let x = (i as u32 * W / 8 + W / 16) as usize;
                let y = (H / 3) as usize;
                let yv = f32::from(pic.data(0)[y * ys + x]);
                let cb = f32::from(pic.data(1)[y / 2 * us + x / 2]);
                let cr = f32::from(pic.data(2)[y / 2 * vs + x / 2]);
                let (rr, gg, bb) = reference_rgb(yv, cb, cr, cs);
                for (got, want) in [(rr, r), (gg, g), (bb, b)] {
                    assert!(
                        (got - f32::from(want)).abs() <= 10.0,
                        "{cs:?} frame {n} bar {i}: got ({rr:.0}, {gg:.0}, {bb:.0}), want {:?}",
                        (r, g, b)
                    );
                }
            }
        }
    }
}

#[test]
fn idr_only_on_request() {
    let cs = Colorspace::Rec709Limited;
    let mut enc = VideoEncoder::new(options(cs)).unwrap();
    let mut idrs = Vec::new();
    for n in 0..12 {
        let force = n == 5 || n == 9;
        let au = enc
            .encode(&nv12_of(&bars_bgra(n), cs), force)
            .unwrap()
            .unwrap();
        assert_eq!(au.pts, i64::from(n));
        let k = kinds(&au.data);
        if au.is_idr {
            idrs.push(n);
            // SPS, PPS, then IDR slices only; no SEI or anything else in between.
            assert!(au.data.starts_with(&[0, 0, 0, 1]) || au.data.starts_with(&[0, 0, 1]));
            assert_eq!(&k[..2], &[nal_type::SPS, nal_type::PPS], "frame {n}: {k:?}");
            assert!(
                k[2..].iter().all(|&t| t == nal_type::IDR),
                "frame {n}: {k:?}"
            );
        } else {
            assert!(k.iter().all(|&t| t == nal_type::SLICE), "frame {n}: {k:?}");
        }
        enc.recycle(au);
    }
    // The first frame is always an IDR; after that, only the requested ones.
    assert_eq!(idrs, vec![0, 5, 9]);
}

#[test]
fn slice_count_is_honoured() {
    let cs = Colorspace::Rec601Limited;
    let opts = EncoderOptions {
        slices: 4,
        ..options(cs)
    };
    let mut enc = VideoEncoder::new(opts).unwrap();
    let mut dec = h264_decoder();
    for n in 0..3 {
        let au = enc
            .encode(&nv12_of(&bars_bgra(n), cs), false)
            .unwrap()
            .unwrap();
        let slices = kinds(&au.data)
            .into_iter()
            .filter(|&t| t == nal_type::SLICE || t == nal_type::IDR)
            .count();
        assert_eq!(slices, 4, "frame {n}");
        decode(&mut dec, &au.data);
    }
}

#[test]
fn more_threads_than_slices_means_more_slices() {
    let cs = Colorspace::Rec601Limited;
    let mut enc = VideoEncoder::new(EncoderOptions {
        slices: 1,
        threads: 3,
        ..options(cs)
    })
    .unwrap();
    let au = enc
        .encode(&nv12_of(&bars_bgra(0), cs), false)
        .unwrap()
        .unwrap();
    assert_eq!(kinds(&au.data)[2..].len(), 3);
}

#[test]
fn wrong_size_frames_and_options_are_rejected() {
    assert!(VideoEncoder::new(EncoderOptions::new(1279, 720, 60, 10_000)).is_err());
    assert!(VideoEncoder::new(EncoderOptions::new(1280, 720, 0, 10_000)).is_err());
    assert!(VideoEncoder::new(EncoderOptions {
        slices: 0,
        ..EncoderOptions::new(W, H, 60, 1)
    })
    .is_err());
    let mut enc = VideoEncoder::new(EncoderOptions::new(640, 360, 60, 5_000)).unwrap();
    let nv12 = nv12_of(&bars_bgra(0), Colorspace::Rec601Limited);
    assert!(enc.encode(&nv12, false).is_err());
}

#[test]
fn encoders_can_move_to_the_encoder_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<VideoEncoder>();
    assert_send::<Nv12Frame>();
    assert_send::<AudioEncoder>();
}

/// 4:4:4 with every CPU encoder: the decoder gets full-resolution chroma, and a one-pixel
/// column of colour keeps its colour where 4:2:0 would blend it with its neighbours.
#[test]
fn yuv444_streams_keep_single_pixel_colour() {
    let cs = Colorspace::Rec709Limited;
    // Grey, with one red column at an odd x and one blue row at an odd y.
    let (red_x, blue_y) = (W / 2 + 1, H / 2 + 1);
    let mut px = vec![0u8; (W * H * 4) as usize];
    for y in 0..H {
        for x in 0..W {
            let (r, g, b) = if x == red_x {
                (235, 16, 16)
            } else if y == blue_y {
                (16, 16, 235)
            } else {
                (128, 128, 128)
            };
            let o = ((y * W + x) * 4) as usize;
            px[o..o + 4].copy_from_slice(&[b, g, r, 0]);
        }
    }
    let mut picture = Picture::new(Chroma::Yuv444, BitDepth::Eight, W, H).unwrap();
    let Picture::Yuv444(yuv) = &mut picture else {
        unreachable!()
    };
    convert_bgra_444(&px, W as usize * 4, cs, yuv).unwrap();
    for (codec, id) in [
        (Codec::H264, codec::Id::H264),
        (Codec::Hevc, codec::Id::HEVC),
        (Codec::Av1, codec::Id::AV1),
    ] {
        if !codec.is_available() {
            eprintln!("SKIPPED {codec:?}: FFmpeg lacks {}", codec.encoder_name());
            continue;
        }
        let mut enc = VideoEncoder::new(EncoderOptions {
            codec,
            chroma: Chroma::Yuv444,
            ..options(cs)
        })
        .unwrap();
        // A 4:2:0 picture is refused by a 4:4:4 encoder.
        assert!(enc.encode(&Nv12Frame::new(W, H).unwrap(), false).is_err());
        let au = enc
            .encode_picture(&picture, true)
            .unwrap()
            .expect("one access unit per picture");
        let dec_codec = decoder::find(id).unwrap_or_else(|| panic!("FFmpeg decodes {id:?}"));
        let mut dec = codec::Context::new_with_codec(dec_codec)
            .decoder()
            .video()
            .unwrap();
        let pic = decode(&mut dec, &au.data);
        assert_eq!(pic.format(), format::Pixel::YUV444P, "{codec:?}");
        let rgb_at = |x: u32, y: u32| {
            let sample = |i: usize| f32::from(pic.data(i)[y as usize * pic.stride(i) + x as usize]);
            reference_rgb(sample(0), sample(1), sample(2), cs)
        };
        let (r, g, b) = rgb_at(red_x, H / 4);
        assert!(
            r > 200.0 && g < 60.0 && b < 60.0,
            "{codec:?}: red column is {r}, {g}, {b}"
        );
        let (r, g, b) = rgb_at(W / 4, blue_y);
        assert!(
            b > 200.0 && r < 60.0 && g < 60.0,
            "{codec:?}: blue row is {r}, {g}, {b}"
        );
        let (r, g, b) = rgb_at(red_x + 1, H / 4);
        assert!(
            (r - g).abs() < 20.0 && (g - b).abs() < 20.0,
            "{codec:?}: next to the red column: {r}, {g}, {b}"
        );
    }
}

/// HEVC and AV1: key frames only at the start and on request, and the bars survive a decode.
#[test]
fn hevc_and_av1_round_trip_with_idr_on_request() {
    for (codec, id) in [(Codec::Hevc, codec::Id::HEVC), (Codec::Av1, codec::Id::AV1)] {
        if !codec.is_available() {
            eprintln!("SKIPPED {codec:?}: FFmpeg lacks {}", codec.encoder_name());
            continue;
        }
        let cs = Colorspace::Rec601Limited;
        let mut enc = VideoEncoder::new(EncoderOptions {
            codec,
            ..options(cs)
        })
        .unwrap();
        let dec_codec = decoder::find(id).unwrap_or_else(|| panic!("FFmpeg decodes {id:?}"));
        let mut dec = codec::Context::new_with_codec(dec_codec)
            .decoder()
            .video()
            .unwrap();
        let mut keys = Vec::new();
        let mut decoded = 0;
        for n in 0..10u32 {
            let Some(au) = enc.encode(&nv12_of(&bars_bgra(n), cs), n == 6).unwrap() else {
                panic!("{codec:?} held frame {n} back: the stream would lag");
            };
            if au.is_idr {
                keys.push(n);
            }
            if codec == Codec::Hevc && au.is_idr {
                // An IRAP access unit starts with VPS, SPS, PPS (types 32, 33, 34).
                let types: Vec<u8> = nal_units(&au.data)
                    .map(|n| (n.payload[0] >> 1) & 0x3f)
                    .collect();
                assert_eq!(&types[..3], &[32, 33, 34], "{codec:?} frame {n}: {types:?}");
            }
            dec.send_packet(&Packet::copy(&au.data)).unwrap();
            let mut pic = frame::Video::empty();
            while dec.receive_frame(&mut pic).is_ok() {
                decoded += 1;
                // AV1 has no centre siting to signal (only left and top left).
                let siting = match codec {
                    Codec::Av1 => ffmpeg::util::chroma::Location::Unspecified,
                    _ => ffmpeg::util::chroma::Location::Center,
                };
                assert_eq!(pic.chroma_location(), siting, "{codec:?}");
                let y = pic.data(0)[(H / 3) as usize * pic.stride(0) + (W / 16) as usize];
                assert!(y > 200, "{codec:?}: white bar decoded as luma {y}");
            }
        }
        assert_eq!(
            keys,
            vec![0, 6],
            "{codec:?}: key frames at the start and on request only"
        );
        assert!(
            decoded >= 8,
            "{codec:?}: only {decoded} pictures decoded out of 10"
        );
    }
}

/// 10-bit: HEVC and AV1, 4:2:0 and 4:4:4, decode to 10-bit pictures whose samples have the
/// conversion's extra precision (and, in 4:4:4, single-pixel colour); H.264 has no 10-bit here,
/// and an encoder takes only pictures of its own format.
#[test]
fn ten_bit_streams_keep_ten_bit_samples() {
    let cs = Colorspace::Rec709Limited;
    // Bars above, flat grey 32 below (173.9 in ten bits, where 8-bit 43 shifted would be 172),
    // with one red column at an odd x in the grey.
    let red_x = W / 2 + 1;
    let mut px = bars_bgra(0);
    for (i, p) in px.chunks_exact_mut(4).enumerate() {
        if i / W as usize >= (H * 2 / 3) as usize {
            let red = i % W as usize == red_x as usize;
            p.copy_from_slice(if red {
                &[16, 16, 235, 0]
            } else {
                &[32, 32, 32, 0]
            });
        }
    }
    for chroma in [Chroma::Yuv420, Chroma::Yuv444] {
        let mut picture = Picture::new(chroma, BitDepth::Ten, W, H).unwrap();
        match &mut picture {
            Picture::P010(p) => convert_bgra_p010(&px, W as usize * 4, cs, p).unwrap(),
            Picture::Yuv444P10(p) => convert_bgra_444_10(&px, W as usize * 4, cs, p).unwrap(),
            other => unreachable!("{other:?}"),
        }
        for (codec, id) in [(Codec::Hevc, codec::Id::HEVC), (Codec::Av1, codec::Id::AV1)] {
            if !codec.is_available() {
                eprintln!("SKIPPED {codec:?}: FFmpeg lacks {}", codec.encoder_name());
                continue;
            }
            let what = format!("{codec:?} {chroma:?}");
            let mut enc = VideoEncoder::new(EncoderOptions {
                codec,
                chroma,
                depth: BitDepth::Ten,
                ..options(cs)
            })
            .unwrap();
            assert!(enc.encode(&Nv12Frame::new(W, H).unwrap(), false).is_err());
            let dec_codec = decoder::find(id).unwrap_or_else(|| panic!("FFmpeg decodes {id:?}"));
            let mut dec = codec::Context::new_with_codec(dec_codec)
                .decoder()
                .video()
                .unwrap();
            let mut pic = frame::Video::empty();
            for n in 0..3 {
                let au = enc
                    .encode_picture(&picture, n == 0)
                    .unwrap()
                    .expect("one access unit per picture");
                dec.send_packet(&Packet::copy(&au.data)).unwrap();
                dec.receive_frame(&mut pic)
                    .expect("one picture per access unit");
            }
            let format = match chroma {
                Chroma::Yuv420 => format::Pixel::YUV420P10LE,
                Chroma::Yuv444 => format::Pixel::YUV444P10LE,
            };
            assert_eq!(pic.format(), format, "{what}");
            let sample = |plane: usize, x: u32, y: u32| {
                let o = y as usize * pic.stride(plane) + 2 * x as usize;
                u16::from_le_bytes([pic.data(plane)[o], pic.data(plane)[o + 1]])
            };
            let grey = sample(0, W / 4, H * 5 / 6);
            assert!(
                (173..=175).contains(&grey),
                "{what}: grey 32 decoded as {grey}"
            );
            // The bars' white is 235: 64 + 876 * 235 / 255 = 871.3.
            let white = sample(0, W / 16, H / 3);
            assert!(
                (869..=873).contains(&white),
                "{what}: white bar decoded as {white}"
            );
            if chroma == Chroma::Yuv444 {
                // Full-resolution chroma: the red column's Cr is 897, its grey neighbour's
                // stays at the midpoint, 512.
                let (red, next) = (sample(2, red_x, H * 5 / 6), sample(2, red_x + 1, H * 5 / 6));
                assert!(
                    red > 850 && (505..=519).contains(&next),
                    "{what}: Cr {red} | {next}"
                );
            }
        }
    }
    let opened = VideoEncoder::new(EncoderOptions {
        depth: BitDepth::Ten,
        ..options(cs)
    });
    assert!(opened.is_err(), "H.264 opened with 10 bits");
    let picture = Picture::new(Chroma::Yuv420, BitDepth::Ten, W, H).unwrap();
    let mut enc = VideoEncoder::new(EncoderOptions {
        codec: Codec::Hevc,
        ..options(cs)
    })
    .unwrap();
    assert!(
        enc.encode_picture(&picture, true).is_err(),
        "8-bit encoder took P010"
    );
}

/// Every `[video] encoder` choice opens something that encodes: on a machine without a working
/// NVENC or VAAPI (CI, this test's usual home) each ends on libx264 with the reasons recorded;
/// where a GPU encoder works, it has to produce a decodable stream too.
#[test]
fn every_encoder_choice_opens_something_that_encodes() {
    use std::path::Path;
    let no_device = Path::new("/nonexistent/renderD128");
    for (preference, device) in [
        (EncoderPreference::Auto, None),
        (EncoderPreference::Auto, Some(no_device)),
        (EncoderPreference::Nvenc, None),
        (EncoderPreference::Vaapi, Some(no_device)),
        (EncoderPreference::Software, None),
    ] {
        let hw = HardwareOptions {
            preference,
            vaapi_device: device.map(Path::to_path_buf),
        };
        let cs = Colorspace::Rec709Limited;
        let mut enc = VideoEncoder::open(options(cs), &hw).unwrap();
        let skipped: Vec<Backend> = enc.skipped().iter().map(|s| s.backend).collect();
        assert!(
            enc.skipped().iter().all(|s| !s.reason.is_empty()),
            "{:?}",
            enc.skipped()
        );
        match (preference, enc.backend()) {
            (EncoderPreference::Software, b) => {
                assert_eq!(b, Backend::Software);
                assert!(skipped.is_empty());
            }
            (EncoderPreference::Vaapi, b) => {
                assert_eq!(b, Backend::Software);
                assert_eq!(skipped, [Backend::Vaapi]);
                assert!(
                    enc.skipped()[0].reason.contains("does not exist"),
                    "{:?}",
                    enc.skipped()
                );
            }
            (EncoderPreference::Nvenc, Backend::Software) => {
                assert_eq!(skipped, [Backend::Nvenc]);
            }
            (EncoderPreference::Auto, Backend::Software) => {
                assert_eq!(skipped, [Backend::Nvenc, Backend::Vaapi]);
                if device.is_some() {
                    assert!(enc.skipped()[1].reason.contains("does not exist"));
                } else if !Path::new("/dev/dri").exists() {
                    assert!(
                        enc.skipped()[1].reason.contains("/dev/dri"),
                        "{:?}",
                        enc.skipped()
                    );
                }
            }
            (_, b) => eprintln!("{preference:?} runs on {b} here"),
        }
        eprintln!(
            "{preference:?} (device {device:?}) -> {}: {:?}",
            enc.encoder_name(),
            enc.skipped()
        );
        let mut dec = h264_decoder();
        for n in 0..4 {
            let au = enc
                .encode(&nv12_of(&bars_bgra(n), cs), n == 0)
                .unwrap()
                .unwrap();
            assert_eq!(au.is_idr, n == 0, "{preference:?} frame {n}");
            let pic = decode(&mut dec, &au.data);
            assert_eq!((pic.width(), pic.height()), (W, H));
        }
    }
}

/// NVENC's and VAAPI's settings are what the docs promise.
#[test]
fn hardware_settings() {
    let nv = EncoderOptions {
        backend: Backend::Nvenc,
        ..options(Colorspace::default())
    }
    .dictionary();
    for (k, v) in [
        ("preset", "p1"),
        ("tune", "ull"),
        ("zerolatency", "1"),
        ("rc", "cbr"),
        ("rc-lookahead", "0"),
        ("forced-idr", "1"),
        ("no-scenecut", "1"),
    ] {
        assert_eq!(nv.get(k), Some(v), "nvenc {k}");
    }
    let va = EncoderOptions {
        backend: Backend::Vaapi,
        ..options(Colorspace::default())
    }
    .dictionary();
    for (k, v) in [("low_power", "1"), ("async_depth", "1"), ("rc_mode", "CBR")] {
        assert_eq!(va.get(k), Some(v), "vaapi {k}");
    }
}

/// A 640x360 picture of noise (a new one per `seed`): as hard to compress as pictures get, so
/// every frame comes out at the size the rate control allows.
fn noise_nv12(seed: u32) -> Nv12Frame {
    let (w, h) = (640u32, 360u32);
    let px =
        crate::encode::color::tests::noise((w * h * 4) as usize, seed.wrapping_mul(2_654_435_761));
    let mut nv12 = Nv12Frame::new(w, h).unwrap();
    convert_bgra(&px, w as usize * 4, Colorspace::Rec709Limited, &mut nv12).unwrap();
    nv12
}

#[test]
fn a_lower_bitrate_takes_effect_in_the_open_encoder() {
    let mut enc = VideoEncoder::new(EncoderOptions::new(640, 360, 60, 8_000)).unwrap();
    assert!(enc.can_change_bitrate());
    let mean_size = |enc: &mut VideoEncoder, from: u32| {
        let sizes: Vec<usize> = (from..from + 20)
            .map(|n| {
                enc.encode(&noise_nv12(n), false)
                    .unwrap()
                    .unwrap()
                    .data
                    .len()
            })
            .collect();
        // The last ten, once the rate control has settled.
        sizes[10..].iter().sum::<usize>() / 10
    };
    let high = mean_size(&mut enc, 0);
    assert!(enc.set_bitrate(1_000));
    assert_eq!(enc.bitrate_kbps(), 1_000);
    let low = mean_size(&mut enc, 20);
    // 8 Mb/s at 60 fps is 16.7 kB a frame, 1 Mb/s 2.1 kB.
    assert!(high > 10_000, "{high} bytes a frame at 8 Mb/s");
    assert!(
        low < high / 3,
        "{low} bytes a frame at 1 Mb/s, {high} at 8 Mb/s"
    );
    assert!(enc.set_bitrate(8_000));
    let back = mean_size(&mut enc, 40);
    assert!(
        back > high / 2,
        "{back} bytes a frame back at 8 Mb/s, {high} before"
    );
}

#[test]
fn encoders_that_keep_their_rate_say_so() {
    let opts = EncoderOptions {
        codec: Codec::Hevc,
        ..EncoderOptions::new(640, 360, 60, 2_000)
    };
    if !Codec::Hevc.is_available() {
        return;
    }
    let mut enc = VideoEncoder::new(opts).unwrap();
    assert!(!enc.can_change_bitrate());
    assert!(!enc.set_bitrate(1_000));
    assert_eq!(enc.bitrate_kbps(), 2_000);
}

#[test]
fn a_closed_encoder_refuses_frames_and_bitrates_without_panicking() {
    let cs = Colorspace::Rec709Limited;
    let mut enc = VideoEncoder::new(options(cs)).unwrap();
    let frame = nv12_of(&bars_bgra(0), cs);
    assert!(enc.encode(&frame, false).unwrap().is_some());
    assert!(enc.set_bitrate(10_000), "libx264 takes a new bitrate");
    enc.close();
    let err = enc
        .encode(&frame, false)
        .expect_err("a closed encoder took a frame");
    assert!(format!("{err:#}").contains("closed"), "{err:#}");
    assert!(!enc.set_bitrate(5_000), "a closed encoder took a bitrate");
    // Another encoder for the same options opens and encodes as before.
    let mut again = VideoEncoder::new(enc.options().clone()).unwrap();
    assert!(again.encode(&frame, true).unwrap().is_some());
}

#[test]
fn a_failing_hardware_encoder_is_replaced_by_itself_from_cpu_memory_then_by_software() {
    let node = Some(std::path::PathBuf::from("/dev/dri/renderD128"));
    let on_gpu = EncoderOptions {
        backend: Backend::Nvenc,
        frames_on: node.clone(),
        ..options(Colorspace::Rec709Limited)
    };
    let ladder = replacements(&on_gpu);
    let steps: Vec<_> = ladder
        .iter()
        .map(|o| (o.backend, o.frames_on.clone()))
        .collect();
    assert_eq!(
        steps,
        [(Backend::Nvenc, None), (Backend::Software, None)],
        "NVENC with CUDA frames: NVENC from CPU memory, then the software encoder"
    );
    let vaapi = EncoderOptions {
        backend: Backend::Vaapi,
        vaapi_device: node.clone(),
        ..options(Colorspace::Rec709Limited)
    };
    let ladder = replacements(&vaapi);
    assert_eq!(
        ladder.len(),
        1,
        "VAAPI from CPU memory: the software encoder"
    );
    assert_eq!(
        (ladder[0].backend, &ladder[0].vaapi_device),
        (Backend::Software, &None)
    );
    assert!(replacements(&options(Colorspace::Rec709Limited)).is_empty());
}

#[test]
fn an_encoder_that_fails_mid_stream_is_replaced_and_the_picture_goes_out_as_an_idr() {
    let cs = Colorspace::Rec709Limited;
    let mut enc = VideoEncoder::new(options(cs)).unwrap();
    assert!(enc
        .encode(&nv12_of(&bars_bgra(0), cs), false)
        .unwrap()
        .is_some());
    // libx264 standing for NVENC that took CUDA frames, its session ended under it (as a GPU
    // reset would): the next picture fails in it for real.
    enc.standing_for(Backend::Nvenc, Some("/dev/dri/renderD128".into()));
    enc.close();
    let out = enc
        .encode(&nv12_of(&bars_bgra(1), cs), false)
        .expect("a replacement took the picture")
        .expect("an access unit");
    assert!(out.is_idr, "the replacement's first frame is an IDR");
    assert_eq!(
        out.pts, 1,
        "the replacement goes on with the stream's timestamps"
    );
    assert_eq!(enc.options().frames_on, None, "{:?}", enc.options());
    // NVENC from CPU memory is tried first; without an NVIDIA GPU it does not open, and the
    // software encoder takes over, saying why.
    if enc.options().backend == Backend::Software {
        let skipped = enc.skipped().last().expect("NVENC among the skipped");
        assert_eq!(
            (skipped.backend, skipped.next),
            (Backend::Nvenc, Backend::Software)
        );
        // The failure during the stream, then NVENC from CPU memory, tried and not opened.
        assert!(skipped.reason.starts_with(CLOSED), "{}", skipped.reason);
        assert!(
            skipped.reason.contains("then h264_nvenc did not open"),
            "{}",
            skipped.reason
        );
    } else {
        assert_eq!(enc.options().backend, Backend::Nvenc);
    }
    assert!(enc
        .encode(&nv12_of(&bars_bgra(2), cs), false)
        .unwrap()
        .is_some());
    // Nothing replaces the software encoder: its failure is the caller's.
    enc.standing_for(Backend::Software, None);
    enc.close();
    let err = enc
        .encode(&nv12_of(&bars_bgra(3), cs), false)
        .expect_err("a closed software encoder took a picture");
    assert!(format!("{err:#}").contains("closed"), "{err:#}");
}
