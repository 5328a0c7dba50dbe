//! The encoder side of a stream: colour conversion, H.264 and Opus.
//!
//! CPU path, per video frame: the compositor's BGRA picture goes through [`convert_bgra`] into a
//! reusable [`Nv12Frame`], then [`VideoEncoder::encode`] turns it into one Annex B access unit,
//! right away (no lookahead, no B-frames). Audio: [`AudioEncoder`] turns 5 or 10 ms of 48 kHz
//! PCM into one constant-size Opus multistream packet.
//!
//! Nothing here touches sockets or threads; the session's encoder thread owns these values.

mod audio;
mod color;
pub mod nal;
mod video;

#[cfg(test)]
mod video_tests;

pub use audio::{
    AudioEncoder, AudioOptions, ChannelLayout, OpusLayout, MAX_PACKET_LEN as MAX_AUDIO_PACKET_LEN,
    SAMPLE_RATE as AUDIO_SAMPLE_RATE,
};
pub use color::{convert_bgra, convert_frame, reference_rgb, reference_ycbcr, Colorspace, Nv12Frame};
pub use video::{Codec, EncodedFrame, EncoderOptions, VideoEncoder, X264Preset};
