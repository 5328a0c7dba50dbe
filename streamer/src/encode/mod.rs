//! The encoder side of a stream: colour conversion, H.264 and Opus.
//!
//! CPU path, per video frame: the compositor's BGRA picture goes through [`convert_bgra`] into a
//! reusable [`Nv12Frame`], then [`VideoEncoder::encode`] turns it into one Annex B access unit,
//! right away (no lookahead, no B-frames). Audio: [`AudioEncoder`] turns 5 or 10 ms of 48 kHz
//! PCM into one constant-size Opus multistream packet.
//!
//! The video encoder runs on a GPU where one works: [`VideoEncoder::open`] picks NVENC, VAAPI
//! or the CPU encoders at runtime ([`backend`]) and falls back to the CPU with a log line.
//!
//! Nothing here touches sockets or threads; the session's encoder thread owns these values.

mod audio;
pub mod backend;
mod bands;
mod color;
pub mod cuda;
mod damage;
pub mod nal;
mod per_buffer;
mod tenbit;
pub mod vaapi;
mod video;

#[cfg(test)]
mod video_tests;

pub use audio::{
    AudioEncoder, AudioOptions, ChannelLayout, OpusLayout, MAX_PACKET_LEN as MAX_AUDIO_PACKET_LEN,
    SAMPLE_RATE as AUDIO_SAMPLE_RATE,
};
pub use backend::{Backend, EncoderPreference, HardwareOptions};
pub use color::{
    convert_bgra, convert_bgra_444, convert_frame, convert_frame_rows, convert_frame_to,
    reference_rgb, reference_ycbcr, BitDepth, Chroma, Colorspace, Nv12Frame, Picture, Yuv444Frame,
};
pub(crate) use damage::OnGpu;
pub use damage::{damaged_rows, StreamPicture};
pub use tenbit::{convert_bgra_444_10, convert_bgra_p010, P010Frame, Yuv444P10Frame};
pub use video::{Codec, EncodedFrame, EncoderOptions, VideoEncoder, X264Preset};
