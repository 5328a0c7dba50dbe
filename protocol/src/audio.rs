//! Opus packets into the RTP datagrams of the audio stream, with the 4 + 2 FEC and optional
//! AES-CBC.
//!
//! Each call to [`AudioPacketizer::packetize`] turns one Opus packet into one RTP data datagram
//! (payload type 97, sequence number from 0, timestamp from 0 growing by the packet duration in
//! **milliseconds**, SSRC 0). After every fourth data packet (sequence numbers `4k .. 4k + 3`) it
//! also emits the two FEC datagrams of that block: payload type 127, a 12-byte big-endian FEC
//! header (shard index, protected payload type, base sequence number, base timestamp, SSRC) and a
//! parity shard of the fixed audio matrix in [`crate::fec`], computed over the four RTP payloads.
//!
//! With [`AudioConfig::encryption`] set, each payload is encrypted on its own with AES-128-CBC and
//! PKCS#7 padding under the IV `BE32(rikeyid + sequence) ‖ 12 zero bytes`; the RTP header stays in
//! clear and FEC covers the ciphertexts.
//!
//! FEC needs all four payloads of a block to have the same length (CBR Opus guarantees it). A
//! block whose lengths differ is sent without FEC, because a client that sees one such block turns
//! audio FEC off for the rest of the session.

use openssl::cipher::Cipher;
use openssl::cipher_ctx::CipherCtx;
use openssl::error::ErrorStack;
use thiserror::Error;

use crate::fec::{ReedSolomon, AUDIO_DATA_SHARDS, AUDIO_PARITY_SHARDS};

/// RTP payload type of audio data packets.
pub const PAYLOAD_TYPE_AUDIO: u8 = 97;
/// RTP payload type of audio FEC packets.
pub const PAYLOAD_TYPE_FEC: u8 = 127;
/// Length of the RTP header of audio packets.
pub const RTP_HEADER_LEN: usize = 12;
/// Length of the FEC header that follows the RTP header in FEC packets.
pub const FEC_HEADER_LEN: usize = 12;
/// Largest audio datagram the client receives whole.
pub const MAX_DATAGRAM_LEN: usize = 1400;

/// How `channels` channels are split into Opus multistream streams, as `(streams, coupled
/// streams)`: the GameStream table (media notes, §3.2) that Moonlight clients and punktfunk/1
/// share. Coupled (stereo) streams come first, and channel `i` of the PCM is decoded channel `i`
/// (the identity mapping). `one_per_channel` is GameStream's high-quality surround (every channel
/// its own stream). `None` for a channel count other than 2, 6 or 8.
pub fn opus_streams(channels: u8, one_per_channel: bool) -> Option<(u8, u8)> {
    Some(match (channels, one_per_channel) {
        (2, _) => (1, 1),
        (6, false) => (4, 2),
        (6, true) => (6, 0),
        (8, false) => (5, 3),
        (8, true) => (8, 0),
        _ => return None,
    })
}

/// Audio encryption parameters from `/launch` (only when the client enabled `SS_ENC_AUDIO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioEncryption {
    /// The session's `rikey`.
    pub key: [u8; 16],
    /// The session's `rikeyid`; a negative value from the query is taken as its two's complement.
    pub rikeyid: u32,
}

/// Settings of one audio stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioConfig {
    /// `x-nv-aqos.packetDuration`: milliseconds of audio per packet (5 or 10).
    pub packet_duration_ms: u32,
    /// Encryption, if the client asked for it.
    pub encryption: Option<AudioEncryption>,
}

/// Errors from packetizing audio.
#[derive(Debug, Error)]
pub enum AudioError {
    /// The payload does not fit a datagram the client can receive.
    #[error("audio packet too large: {0} bytes")]
    TooLarge(usize),
    /// The cipher failed.
    #[error("audio encryption failed")]
    Crypto(#[from] ErrorStack),
}

/// The one to three datagrams produced for one Opus packet, in sending order.
#[derive(Debug, Default, Clone)]
pub struct AudioDatagrams {
    buf: Vec<u8>,
    ends: [usize; 3],
    count: usize,
}

impl AudioDatagrams {
    /// An empty buffer, reused from packet to packet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of datagrams: 1, or 3 when the packet closed an FEC block.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no datagrams.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Datagram `i`: 0 is the data packet, 1 and 2 the FEC packets.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        if i >= self.count {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.buf[start..self.ends[i]])
    }

    /// All datagrams, in sending order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.count).filter_map(|i| self.get(i))
    }
}

/// Turns Opus packets into audio datagrams; one per audio stream.
pub struct AudioPacketizer {
    config: AudioConfig,
    sequence: u16,
    timestamp: u32,
    /// RTP payloads of the current FEC block, by `sequence % 4`.
    block: [Vec<u8>; AUDIO_DATA_SHARDS],
    block_timestamp: u32,
    cipher: Option<CipherCtx>,
    fec: ReedSolomon,
}

impl std::fmt::Debug for AudioPacketizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioPacketizer")
            .field("config.packet_duration_ms", &self.config.packet_duration_ms)
            .field("encrypted", &self.cipher.is_some())
            .field("sequence", &self.sequence)
            .field("timestamp", &self.timestamp)
            .finish()
    }
}

impl AudioPacketizer {
    /// A packetizer starting at sequence number 0 and timestamp 0.
    pub fn new(config: AudioConfig) -> Result<Self, AudioError> {
        let cipher = match &config.encryption {
            Some(enc) => {
                let mut ctx = CipherCtx::new()?;
                ctx.encrypt_init(Some(Cipher::aes_128_cbc()), Some(&enc.key), Some(&[0; 16]))?;
                Some(ctx)
            }
            None => None,
        };
        Ok(Self {
            config,
            sequence: 0,
            timestamp: 0,
            block: Default::default(),
            block_timestamp: 0,
            cipher,
            fec: ReedSolomon::audio(),
        })
    }

    /// Sequence number the next data packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }

    /// RTP timestamp (milliseconds) the next data packet will carry.
    pub fn next_timestamp(&self) -> u32 {
        self.timestamp
    }

    /// Writes the datagrams for one Opus packet into `out` (replacing what it held).
    ///
    /// On error nothing is consumed: sequence number and timestamp stay where they were.
    pub fn packetize(&mut self, opus: &[u8], out: &mut AudioDatagrams) -> Result<(), AudioError> {
        let payload_len = match self.cipher {
            Some(_) => 16 * (opus.len() / 16 + 1),
            None => opus.len(),
        };
        let data_len = RTP_HEADER_LEN + payload_len;
        if data_len > MAX_DATAGRAM_LEN {
            return Err(AudioError::TooLarge(opus.len()));
        }
        let seq = self.sequence;
        let slot = seq as usize % AUDIO_DATA_SHARDS;
        if slot == 0 {
            self.block_timestamp = self.timestamp;
        }

        out.count = 0;
        out.buf.clear();
        out.buf.resize(data_len, 0);
        out.buf[0] = 0x80;
        out.buf[1] = PAYLOAD_TYPE_AUDIO;
        out.buf[2..4].copy_from_slice(&seq.to_be_bytes());
        out.buf[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        // SSRC 0 at 8..12 from the resize.
        match (self.cipher.as_mut(), &self.config.encryption) {
            (Some(ctx), Some(enc)) => {
                let mut iv = [0u8; 16];
                iv[..4].copy_from_slice(&enc.rikeyid.wrapping_add(seq as u32).to_be_bytes());
                ctx.encrypt_init(None, None, Some(&iv))?;
                let mut ct = [0u8; MAX_DATAGRAM_LEN + 16];
                let n = ctx.cipher_update(opus, Some(&mut ct))?;
                let m = ctx.cipher_final(&mut ct[n..])?;
                debug_assert_eq!(n + m, payload_len);
                out.buf[RTP_HEADER_LEN..].copy_from_slice(&ct[..payload_len]);
            }
            _ => out.buf[RTP_HEADER_LEN..].copy_from_slice(opus),
        }
        out.ends[0] = data_len;
        out.count = 1;

        let block = &mut self.block[slot];
        block.clear();
        block.extend_from_slice(&out.buf[RTP_HEADER_LEN..]);

        if slot == AUDIO_DATA_SHARDS - 1 {
            self.emit_fec(seq, payload_len, out);
        }
        self.sequence = seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(self.config.packet_duration_ms);
        Ok(())
    }

    /// Appends the two FEC datagrams of the block that data packet `last_seq` completed.
    fn emit_fec(&self, last_seq: u16, len: usize, out: &mut AudioDatagrams) {
        let fec_len = RTP_HEADER_LEN + FEC_HEADER_LEN + len;
        if self.block.iter().any(|b| b.len() != len) || fec_len > MAX_DATAGRAM_LEN {
            return;
        }
        let base_seq = last_seq.wrapping_sub(AUDIO_DATA_SHARDS as u16 - 1);
        let start = out.buf.len();
        out.buf.resize(start + AUDIO_PARITY_SHARDS * fec_len, 0);
        for k in 0..AUDIO_PARITY_SHARDS {
            let p = &mut out.buf[start + k * fec_len..][..fec_len];
            p[0] = 0x80;
            p[1] = PAYLOAD_TYPE_FEC;
            p[2..4].copy_from_slice(&last_seq.wrapping_add(1 + k as u16).to_be_bytes());
            p[4..12].fill(0);
            p[12] = k as u8;
            p[13] = PAYLOAD_TYPE_AUDIO;
            p[14..16].copy_from_slice(&base_seq.to_be_bytes());
            p[16..20].copy_from_slice(&self.block_timestamp.to_be_bytes());
            p[20..24].fill(0);
            out.ends[1 + k] = start + (k + 1) * fec_len;
        }
        let data = [
            &self.block[0][..],
            &self.block[1][..],
            &self.block[2][..],
            &self.block[3][..],
        ];
        let (p0, p1) = out.buf[start..].split_at_mut(fec_len);
        let header = RTP_HEADER_LEN + FEC_HEADER_LEN;
        let mut parity = [&mut p0[header..], &mut p1[header..]];
        // Four equal-length data shards and two parity shards of that length were checked and
        // sized above, which is all `encode` can reject.
        if self.fec.encode(&data, &mut parity).is_ok() {
            out.count = 3;
        }
    }
}
