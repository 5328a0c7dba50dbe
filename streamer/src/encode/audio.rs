//! Opus multistream encoding for the GameStream audio stream.
//!
//! The GameStream client decodes 48 kHz Opus multistream packets whose layout (streams, coupled
//! streams, mapping) it learns from the DESCRIBE reply. Every packet must have the same length,
//! or the client turns audio FEC off for the rest of the session, so the encoder runs in CBR.

use std::ffi::CStr;
use std::os::raw::c_int;
use std::ptr::NonNull;

use anyhow::{bail, ensure, Result};
use audiopus_sys as opus;

/// The only sample rate GameStream uses.
pub const SAMPLE_RATE: u32 = 48_000;

/// An upper bound for one packet of any layout here: at most 1275 bytes per Opus stream, plus
/// the self-delimiting length bytes of the first streams, for at most 8 streams.
pub const MAX_PACKET_LEN: usize = 8 * 1278;

/// Speaker layouts Moonlight asks for (`x-nv-audio.surround.numChannels`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelLayout {
    /// FL FR.
    #[default]
    Stereo,
    /// FL FR FC LFE BL BR.
    Surround51,
    /// FL FR FC LFE BL BR SL SR.
    Surround71,
}

impl ChannelLayout {
    /// Number of interleaved channels in the PCM.
    pub fn channels(self) -> usize {
        match self {
            ChannelLayout::Stereo => 2,
            ChannelLayout::Surround51 => 6,
            ChannelLayout::Surround71 => 8,
        }
    }
}

/// How the channels are split into Opus streams, and at which bitrate (the table in the
/// GameStream media notes, §3.2). The same values go into the DESCRIBE reply's surround
/// parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusLayout {
    /// Interleaved input channels.
    pub channels: u8,
    /// Opus streams in each packet.
    pub streams: u8,
    /// How many of those streams are coupled (stereo) streams.
    pub coupled_streams: u8,
    /// Encoder mapping: input channel i goes to decoded channel `mapping[i]` of the stream
    /// layout (coupled streams first, two channels each).
    pub mapping: &'static [u8],
    /// Bitrate in bits per second.
    pub bitrate: u32,
}

impl OpusLayout {
    /// The layout for `layout`; `high_quality` gives every channel its own stream at a higher
    /// rate (`x-nv-audio.surround.AudioQuality:1`, or stereo on a LAN).
    pub fn new(layout: ChannelLayout, high_quality: bool) -> OpusLayout {
        const IDENTITY: &[u8] = &[0, 1, 2, 3, 4, 5, 6, 7];
        let channels = layout.channels() as u8;
        let (streams, coupled_streams) = protocol::audio::opus_streams(channels, high_quality)
            .expect("every layout has a stream table");
        let bitrate = match (layout, high_quality) {
            (ChannelLayout::Stereo, false) => 96_000,
            (ChannelLayout::Stereo, true) => 512_000,
            (ChannelLayout::Surround51, false) => 256_000,
            (ChannelLayout::Surround51, true) => 1_536_000,
            (ChannelLayout::Surround71, false) => 450_000,
            (ChannelLayout::Surround71, true) => 2_048_000,
        };
        OpusLayout {
            channels,
            streams,
            coupled_streams,
            mapping: &IDENTITY[..usize::from(channels)],
            bitrate,
        }
    }
}

/// What [`AudioEncoder::new`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioOptions {
    /// Speaker layout of the PCM.
    pub layout: ChannelLayout,
    /// High-quality surround / stereo (see [`OpusLayout::new`]).
    pub high_quality: bool,
    /// `x-nv-aqos.packetDuration`: 5 or 10 ms.
    pub packet_duration_ms: u32,
}

impl Default for AudioOptions {
    fn default() -> AudioOptions {
        AudioOptions {
            layout: ChannelLayout::Stereo,
            high_quality: false,
            packet_duration_ms: 5,
        }
    }
}

/// A libopus multistream encoder set up for GameStream: restricted low delay, CBR.
#[derive(Debug)]
pub struct AudioEncoder {
    encoder: NonNull<opus::OpusMSEncoder>,
    layout: OpusLayout,
    frame_samples: usize,
    silence: Vec<i16>,
}

// SAFETY: the encoder state is only touched through `&mut self`; libopus keeps no thread-local or
// global state for it.
unsafe impl Send for AudioEncoder {}

impl AudioEncoder {
    /// Creates the encoder.
    pub fn new(options: AudioOptions) -> Result<AudioEncoder> {
        ensure!(
            matches!(options.packet_duration_ms, 5 | 10),
            "audio packet duration must be 5 or 10 ms, got {}",
            options.packet_duration_ms
        );
        let layout = OpusLayout::new(options.layout, options.high_quality);
        let mut error: c_int = 0;
        // SAFETY: the mapping slice holds `channels` entries and outlives the call.
        let ptr = unsafe {
            opus::opus_multistream_encoder_create(
                SAMPLE_RATE as i32,
                c_int::from(layout.channels),
                c_int::from(layout.streams),
                c_int::from(layout.coupled_streams),
                layout.mapping.as_ptr(),
                opus::OPUS_APPLICATION_RESTRICTED_LOWDELAY,
                &mut error,
            )
        };
        let Some(encoder) = NonNull::new(ptr).filter(|_| error == opus::OPUS_OK) else {
            bail!("error creating the Opus encoder: {}", opus_error(error));
        };
        let mut this = AudioEncoder {
            encoder,
            layout,
            frame_samples: options.packet_duration_ms as usize * (SAMPLE_RATE as usize / 1000),
            silence: Vec::new(),
        };
        this.ctl(
            opus::OPUS_SET_BITRATE_REQUEST,
            layout.bitrate as i32,
            "bitrate",
        )?;
        this.ctl(opus::OPUS_SET_VBR_REQUEST, 0, "CBR")?;
        this.silence = vec![0; this.frame_samples * usize::from(layout.channels)];
        Ok(this)
    }

    /// The stream layout in use (also what the DESCRIBE reply announces).
    pub fn layout(&self) -> &OpusLayout {
        &self.layout
    }

    /// Samples per channel in one packet (240 for 5 ms, 480 for 10 ms).
    pub fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    /// Encodes exactly one packet's worth of interleaved PCM (`frame_samples() * channels`
    /// samples, channel order FL FR FC LFE BL BR SL SR) into `out` and returns the packet length.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize> {
        let expected = self.frame_samples * usize::from(self.layout.channels);
        ensure!(
            pcm.len() == expected,
            "one audio packet needs {expected} samples, got {}",
            pcm.len()
        );
        let max = out.len().min(i32::MAX as usize) as i32;
        // SAFETY: `pcm` holds frame_samples * channels samples and `out` has `max` bytes.
        let ret = unsafe {
            opus::opus_multistream_encode(
                self.encoder.as_ptr(),
                pcm.as_ptr(),
                self.frame_samples as c_int,
                out.as_mut_ptr(),
                max,
            )
        };
        if ret < 0 {
            bail!("Opus encoding failed: {}", opus_error(ret));
        }
        Ok(ret as usize)
    }

    /// Encodes one packet of silence, for when there is no audio source (yet).
    pub fn encode_silence(&mut self, out: &mut [u8]) -> Result<usize> {
        let silence = std::mem::take(&mut self.silence);
        let result = self.encode(&silence, out);
        self.silence = silence;
        result
    }

    fn ctl(&mut self, request: c_int, value: i32, what: &str) -> Result<()> {
        // SAFETY: every request used here takes one opus_int32 argument.
        let ret =
            unsafe { opus::opus_multistream_encoder_ctl(self.encoder.as_ptr(), request, value) };
        if ret != opus::OPUS_OK {
            bail!("setting the Opus {what} failed: {}", opus_error(ret));
        }
        Ok(())
    }
}

impl Drop for AudioEncoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_multistream_encoder_create and destroyed only here.
        unsafe { opus::opus_multistream_encoder_destroy(self.encoder.as_ptr()) }
    }
}

fn opus_error(code: c_int) -> String {
    // SAFETY: opus_strerror returns a static NUL-terminated string for any code.
    unsafe { CStr::from_ptr(opus::opus_strerror(code)) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A multistream decoder, as the client runs it.
    struct Decoder(NonNull<opus::OpusMSDecoder>, usize);

    impl Decoder {
        fn new(layout: &OpusLayout) -> Decoder {
            let mut error = 0;
            let ptr = unsafe {
                opus::opus_multistream_decoder_create(
                    SAMPLE_RATE as i32,
                    c_int::from(layout.channels),
                    c_int::from(layout.streams),
                    c_int::from(layout.coupled_streams),
                    layout.mapping.as_ptr(),
                    &mut error,
                )
            };
            assert_eq!(error, opus::OPUS_OK);
            Decoder(NonNull::new(ptr).unwrap(), usize::from(layout.channels))
        }

        /// Decodes one packet; returns interleaved PCM.
        fn decode(&mut self, packet: &[u8]) -> Vec<i16> {
            let mut pcm = vec![0i16; 960 * self.1];
            let n = unsafe {
                opus::opus_multistream_decode(
                    self.0.as_ptr(),
                    packet.as_ptr(),
                    packet.len() as i32,
                    pcm.as_mut_ptr(),
                    960,
                    0,
                )
            };
            assert!(n > 0, "decode failed: {}", opus_error(n));
            pcm.truncate(n as usize * self.1);
            pcm
        }
    }

    impl Drop for Decoder {
        fn drop(&mut self) {
            unsafe { opus::opus_multistream_decoder_destroy(self.0.as_ptr()) }
        }
    }

    /// A 1 kHz tone on `channel` only, everything else silent.
    fn tone(channels: usize, frames: usize, channel: usize, start: usize) -> Vec<i16> {
        let mut pcm = vec![0i16; channels * frames];
        for i in 0..frames {
            let t = (start + i) as f32 / SAMPLE_RATE as f32;
            pcm[i * channels + channel] =
                ((t * 1000.0 * std::f32::consts::TAU).sin() * 12000.0) as i16;
        }
        pcm
    }

    #[test]
    fn every_layout_gives_constant_size_decodable_packets() {
        for layout in [
            ChannelLayout::Stereo,
            ChannelLayout::Surround51,
            ChannelLayout::Surround71,
        ] {
            for high_quality in [false, true] {
                for packet_duration_ms in [5, 10] {
                    let options = AudioOptions {
                        layout,
                        high_quality,
                        packet_duration_ms,
                    };
                    let mut enc = AudioEncoder::new(options).unwrap();
                    let channels = layout.channels();
                    let frame = enc.frame_samples();
                    assert_eq!(frame, packet_duration_ms as usize * 48);
                    let mut dec = Decoder::new(enc.layout());
                    let mut out = vec![0u8; MAX_PACKET_LEN];
                    let mut sizes = Vec::new();
                    // Tone on the last channel, then silence: content changes, size must not.
                    let mut energy = vec![0f64; channels];
                    for n in 0..40 {
                        let len = if n < 30 {
                            let pcm = tone(channels, frame, channels - 1, n * frame);
                            enc.encode(&pcm, &mut out).unwrap()
                        } else {
                            enc.encode_silence(&mut out).unwrap()
                        };
                        sizes.push(len);
                        let pcm = dec.decode(&out[..len]);
                        assert_eq!(pcm.len(), frame * channels, "{options:?}");
                        if (10..30).contains(&n) {
                            for (i, s) in pcm.iter().enumerate() {
                                energy[i % channels] += f64::from(*s).powi(2);
                            }
                        }
                    }
                    let expected =
                        (enc.layout().bitrate as usize * packet_duration_ms as usize) / 8000;
                    assert!(
                        sizes.iter().all(|&s| s == sizes[0]),
                        "{options:?}: sizes {sizes:?}"
                    );
                    assert!(
                        sizes[0].abs_diff(expected) <= expected / 10 + 8,
                        "{options:?}: packet {} bytes, bitrate says {expected}",
                        sizes[0]
                    );
                    // The tone comes out on the channel it went in on.
                    let loud = energy[channels - 1];
                    let rest: f64 = energy[..channels - 1].iter().sum();
                    assert!(
                        loud > 100.0 * rest.max(1.0),
                        "{options:?}: energy {energy:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn rejects_wrong_sizes() {
        assert!(AudioEncoder::new(AudioOptions {
            packet_duration_ms: 20,
            ..AudioOptions::default()
        })
        .is_err());
        let mut enc = AudioEncoder::new(AudioOptions::default()).unwrap();
        let mut out = vec![0u8; MAX_PACKET_LEN];
        assert!(enc.encode(&[0; 100], &mut out).is_err());
    }
}
