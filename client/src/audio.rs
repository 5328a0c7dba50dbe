//! The audio plane's Opus packets into PCM, as a client plays them.
//!
//! punktfunk/1 sends one Opus multistream packet per audio frame, split into streams as
//! GameStream does for the same channel count ([`protocol::audio::opus_streams`], identity
//! mapping). A lost packet is concealed by libopus (one packet's length of its loss concealment),
//! so the decoded sound keeps its length whatever the network dropped.

use std::ffi::c_int;
use std::io::Write;
use std::path::Path;
use std::ptr::NonNull;

use anyhow::{bail, ensure, Context};
use audiopus_sys as opus;
use protocol::native::control::AudioFormat;

/// Decoded audio, and what decoding it counted.
pub(crate) struct AudioDecoder {
    decoder: NonNull<opus::OpusMSDecoder>,
    channels: usize,
    sample_rate: u32,
    /// Samples per channel in one packet.
    packet_samples: usize,
    /// The decoder's output for one packet (at most 120 ms).
    buf: Vec<i16>,
    /// Everything decoded, interleaved, when the caller keeps it.
    kept: Option<Vec<i16>>,
    pub(crate) decoded: u64,
    pub(crate) concealed: u64,
    pub(crate) errors: u64,
}

impl std::fmt::Debug for AudioDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioDecoder")
            .field("channels", &self.channels)
            .field("decoded", &self.decoded)
            .field("concealed", &self.concealed)
            .field("errors", &self.errors)
            .finish_non_exhaustive()
    }
}

// SAFETY: the decoder state is owned and used by one thread at a time.
unsafe impl Send for AudioDecoder {}

impl AudioDecoder {
    /// A decoder for the host's `format`; `keep` keeps the PCM for [`AudioDecoder::write_wav`].
    pub(crate) fn new(format: &AudioFormat, keep: bool) -> anyhow::Result<AudioDecoder> {
        let Some((streams, coupled)) = protocol::audio::opus_streams(format.channels, false) else {
            bail!(
                "the host sends {} audio channels, which Opus streams cannot carry",
                format.channels
            );
        };
        ensure!(
            matches!(
                format.sample_rate,
                8_000 | 12_000 | 16_000 | 24_000 | 48_000
            ),
            "the host's audio rate {} Hz is not an Opus rate",
            format.sample_rate
        );
        let mapping: Vec<u8> = (0..format.channels).collect();
        let mut error: c_int = 0;
        // SAFETY: `mapping` holds `channels` entries and outlives the call.
        let ptr = unsafe {
            opus::opus_multistream_decoder_create(
                format.sample_rate as i32,
                c_int::from(format.channels),
                c_int::from(streams),
                c_int::from(coupled),
                mapping.as_ptr(),
                &mut error,
            )
        };
        let Some(decoder) = NonNull::new(ptr).filter(|_| error == opus::OPUS_OK) else {
            bail!("cannot create the Opus decoder (error {error})");
        };
        let channels = usize::from(format.channels);
        let packet_samples =
            (u64::from(format.sample_rate) * u64::from(format.frame_us) / 1_000_000) as usize;
        Ok(AudioDecoder {
            decoder,
            channels,
            sample_rate: format.sample_rate,
            packet_samples: packet_samples.clamp(1, format.sample_rate as usize / 8),
            buf: vec![0; format.sample_rate as usize / 8 * channels],
            kept: keep.then(Vec::new),
            decoded: 0,
            concealed: 0,
            errors: 0,
        })
    }

    /// Decodes one packet; a packet libopus refuses counts as an error and is concealed.
    pub(crate) fn decode(&mut self, packet: &[u8]) {
        match self.run(Some(packet), self.buf.len() / self.channels) {
            Some(n) => {
                self.decoded += 1;
                self.keep(n);
            }
            None => {
                self.errors += 1;
                self.conceal(1);
            }
        }
    }

    /// Stands in for `packets` lost packets with libopus's loss concealment.
    pub(crate) fn conceal(&mut self, packets: u64) {
        // A long gap (a stalled link) is not worth more than a second of made-up sound.
        let cap = (self.sample_rate as usize / self.packet_samples) as u64;
        for _ in 0..packets.min(cap) {
            if let Some(n) = self.run(None, self.packet_samples) {
                self.concealed += 1;
                self.keep(n);
            }
        }
    }

    /// Runs the decoder on `packet` (`None`: conceal `samples` per channel); the samples per
    /// channel it wrote into `buf`.
    fn run(&mut self, packet: Option<&[u8]>, samples: usize) -> Option<usize> {
        let (data, len) = match packet {
            Some(p) => (p.as_ptr(), i32::try_from(p.len()).ok()?),
            None => (std::ptr::null(), 0),
        };
        // SAFETY: `buf` holds `samples * channels` samples (samples is at most its length over
        // the channels); `data` is `len` readable bytes or NULL for concealment.
        let n = unsafe {
            opus::opus_multistream_decode(
                self.decoder.as_ptr(),
                data,
                len,
                self.buf.as_mut_ptr(),
                samples as c_int,
                0,
            )
        };
        usize::try_from(n).ok()
    }

    fn keep(&mut self, samples: usize) {
        if let Some(kept) = &mut self.kept {
            kept.extend_from_slice(&self.buf[..samples * self.channels]);
        }
    }

    /// Writes the kept PCM as a 16-bit WAV file.
    pub(crate) fn write_wav(&self, path: &Path) -> anyhow::Result<()> {
        let pcm = self.kept.as_deref().unwrap_or_default();
        let data_len = u32::try_from(pcm.len() * 2).context("too much audio for a WAV file")?;
        let channels = self.channels as u16;
        let mut out = Vec::with_capacity(44 + pcm.len() * 2);
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + data_len).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes()); // PCM
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&self.sample_rate.to_le_bytes());
        out.extend_from_slice(&(self.sample_rate * u32::from(channels) * 2).to_le_bytes());
        out.extend_from_slice(&(channels * 2).to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data_len.to_le_bytes());
        for s in pcm {
            out.extend_from_slice(&s.to_le_bytes());
        }
        std::fs::File::create(path)
            .and_then(|mut f| f.write_all(&out))
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

impl Drop for AudioDecoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_multistream_decoder_create and destroyed once.
        unsafe { opus::opus_multistream_decoder_destroy(self.decoder.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stereo() -> AudioFormat {
        AudioFormat {
            sample_rate: 48_000,
            channels: 2,
            frame_us: 5_000,
        }
    }

    /// A 5 ms stereo packet of a 1 kHz tone on the left, from libopus's encoder.
    fn packets(n: usize) -> Vec<Vec<u8>> {
        let mut error = 0;
        // SAFETY: a plain stereo encoder, destroyed below.
        let enc = unsafe {
            opus::opus_encoder_create(
                48_000,
                2,
                opus::OPUS_APPLICATION_RESTRICTED_LOWDELAY,
                &mut error,
            )
        };
        assert_eq!(error, opus::OPUS_OK);
        let mut out = Vec::new();
        for p in 0..n {
            let pcm: Vec<i16> = (0..240)
                .flat_map(|i| {
                    let t = (p * 240 + i) as f64 / 48_000.0;
                    [
                        (10_000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16,
                        0,
                    ]
                })
                .collect();
            let mut buf = vec![0u8; 1500];
            // SAFETY: 240 samples per channel in `pcm`, 1500 bytes in `buf`.
            let len = unsafe { opus::opus_encode(enc, pcm.as_ptr(), 240, buf.as_mut_ptr(), 1500) };
            assert!(len > 0);
            buf.truncate(len as usize);
            out.push(buf);
        }
        // SAFETY: created above.
        unsafe { opus::opus_encoder_destroy(enc) };
        out
    }

    #[test]
    fn packets_decode_and_losses_are_concealed_at_their_length() {
        let mut d = AudioDecoder::new(&stereo(), true).unwrap();
        let p = packets(100);
        for (i, packet) in p.iter().enumerate() {
            if i % 10 == 3 {
                d.conceal(1);
            } else {
                d.decode(packet);
            }
        }
        d.decode(b"\xff\xff\xff");
        assert_eq!((d.decoded, d.concealed, d.errors), (90, 11, 1));
        let pcm = d.kept.as_ref().unwrap();
        assert_eq!(pcm.len(), 101 * 240 * 2);
        // The tone is on the left; the right stays near silence.
        let energy = |ch: usize| {
            pcm.iter()
                .skip(ch)
                .step_by(2)
                .map(|&s| f64::from(s).powi(2))
                .sum::<f64>()
        };
        assert!(
            energy(0) > 1000.0 * energy(1).max(1.0),
            "{} {}",
            energy(0),
            energy(1)
        );

        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("a.wav");
        d.write_wav(&wav).unwrap();
        let bytes = std::fs::read(&wav).unwrap();
        assert_eq!(&bytes[..4], b"RIFF");
        assert_eq!(&bytes[8..16], b"WAVEfmt ");
        assert_eq!(u16::from_le_bytes([bytes[22], bytes[23]]), 2);
        assert_eq!(
            u32::from_le_bytes(bytes[24..28].try_into().unwrap()),
            48_000
        );
        assert_eq!(bytes.len(), 44 + pcm.len() * 2);
    }

    #[test]
    fn formats_opus_cannot_carry_are_refused() {
        let mut f = stereo();
        f.channels = 3;
        assert!(AudioDecoder::new(&f, false).is_err());
        f.channels = 6;
        assert!(AudioDecoder::new(&f, false).is_ok());
        f.sample_rate = 44_100;
        assert!(AudioDecoder::new(&f, false).is_err());
    }
}
