//! The encrypted control-stream envelope and the messages it carries.
//!
//! Every control message (the payload of one ENet packet) is wrapped in an AES-128-GCM envelope:
//!
//! ```text
//! LE16 0x0001 | LE16 length = 4 + 16 + n | LE32 seq | 16-byte tag | n bytes ciphertext
//! ```
//!
//! The plaintext is `LE16 type | LE16 payload length | payload`. The 12-byte nonce is `LE32 seq ‖
//! six zero bytes ‖ origin ‖ 'C'`, where origin is `'C'` for messages from the client and `'H'` for
//! messages from the host. The key is the session's `rikey`. Neither side checks the peer's
//! sequence numbers; the host must only never reuse its own.
//!
//! [`decrypt_client_message`] opens a client packet and parses it into a [`ControlMessage`];
//! [`HostMessage`] builds the host's messages and [`encrypt_host_message`] seals them. Everything a
//! client sends is length-checked and rejected with a [`ControlError`], never a panic. Input
//! packets (type 0x0206) are handed on as bytes for [`crate::input`].

use openssl::error::ErrorStack;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
use thiserror::Error;

/// Type of the encrypted envelope.
pub const TYPE_ENCRYPTED: u16 = 0x0001;
/// Client: periodic ping.
pub const TYPE_PERIODIC_PING: u16 = 0x0200;
/// Client: input packet.
pub const TYPE_INPUT_DATA: u16 = 0x0206;
/// Client: invalidate reference frames.
pub const TYPE_INVALIDATE_REF_FRAMES: u16 = 0x0301;
/// Client: request an IDR frame (also "start A").
pub const TYPE_REQUEST_IDR: u16 = 0x0302;
/// Client: start B.
pub const TYPE_START_B: u16 = 0x0307;
/// Client: long-term reference frame acknowledged.
pub const TYPE_LTR_ACK: u16 = 0x0350;
/// Client: per-frame FEC status (the same number is the host's RGB LED message).
pub const TYPE_FEC_STATUS: u16 = 0x5502;
/// Host: termination with an error code.
pub const TYPE_TERMINATION: u16 = 0x0109;
/// Host: controller rumble.
pub const TYPE_RUMBLE: u16 = 0x010B;
/// Host: HDR mode and metadata.
pub const TYPE_HDR_MODE: u16 = 0x010E;
/// Host: trigger rumble.
pub const TYPE_RUMBLE_TRIGGERS: u16 = 0x5500;
/// Host: enable or disable a motion sensor.
pub const TYPE_SET_MOTION_EVENT: u16 = 0x5501;
/// Host: controller RGB LED.
pub const TYPE_SET_RGB_LED: u16 = 0x5502;
/// Host: DualSense adaptive trigger effect.
pub const TYPE_ADAPTIVE_TRIGGERS: u16 = 0x5503;

/// Termination code for a normal end of the stream (the client reports a graceful end).
pub const TERMINATION_GRACEFUL: u32 = 0x8003_0023;
/// Termination code the client shows as "protected content".
pub const TERMINATION_PROTECTED_CONTENT: u32 = 0x800E_9302;
/// Termination code the client shows as a frame conversion (capture or encoder) failure.
pub const TERMINATION_FRAME_CONVERSION: u32 = 0x800E_9403;

/// Length of the envelope before the ciphertext.
pub const ENVELOPE_HEADER_LEN: usize = 24;
/// Motion sensor type: accelerometer.
pub const MOTION_ACCEL: u8 = 0x01;
/// Motion sensor type: gyroscope.
pub const MOTION_GYRO: u8 = 0x02;

/// Errors from opening or building control messages.
#[derive(Debug, Error)]
pub enum ControlError {
    /// The packet is shorter than an envelope.
    #[error("control packet too short: {0} bytes")]
    TooShort(usize),
    /// The packet is not an encrypted envelope.
    #[error("unencrypted control packet of type {0:#06x}")]
    NotEncrypted(u16),
    /// The envelope's length field disagrees with the packet.
    #[error("envelope length {declared} does not match packet of {actual} bytes")]
    LengthMismatch {
        /// Bytes the length field promises after the first four.
        declared: usize,
        /// Bytes in the packet.
        actual: usize,
    },
    /// The tag did not verify (wrong key, or the packet was altered).
    #[error("control message failed to decrypt")]
    Decrypt,
    /// The inner header's payload length runs past the plaintext.
    #[error("inner payload length {declared} exceeds {available} bytes")]
    PayloadLength {
        /// Payload length in the inner header.
        declared: usize,
        /// Bytes available after the inner header.
        available: usize,
    },
    /// An envelope inside an envelope.
    #[error("nested encrypted envelope")]
    Nested,
    /// A known message with the wrong payload length.
    #[error("message {ty:#06x} has {got} payload bytes, expected {expected}")]
    BadLength {
        /// Message type.
        ty: u16,
        /// Payload length the type has.
        expected: usize,
        /// Payload length received.
        got: usize,
    },
    /// A payload too long for the 16-bit length fields.
    #[error("payload too long: {0} bytes")]
    PayloadTooLong(usize),
    /// The cipher failed while sealing.
    #[error("control encryption failed")]
    Crypto(#[from] ErrorStack),
}

/// Who sent a message; part of the nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The client (nonce byte `'C'`).
    Client,
    /// The host (nonce byte `'H'`).
    Host,
}

/// A decrypted message before its payload is interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The sender's sequence number.
    pub seq: u32,
    /// Message type.
    pub ty: u16,
    /// Payload after the inner 4-byte header.
    pub payload: Vec<u8>,
}

/// A message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMessage {
    /// Send an IDR frame next (also sent once as "start A").
    RequestIdr,
    /// Stop referencing frames `first..=last`; the next frame is a recovery frame.
    InvalidateRefFrames {
        /// First frame index to invalidate.
        first: u32,
        /// Last frame index to invalidate (inclusive).
        last: u32,
    },
    /// Start B; needs no action.
    StartB,
    /// Periodic ping keeping ENet's RTT fresh; needs no action.
    PeriodicPing,
    /// How one frame fared in FEC.
    FecStatus(FecStatus),
    /// The client holds the long-term reference frame `frame_index`.
    LtrAck {
        /// The acknowledged frame.
        frame_index: u32,
    },
    /// One input packet, to parse with [`crate::input::InputPacket::parse`].
    Input(Vec<u8>),
    /// A type this host does not act on; to be ignored.
    Unknown {
        /// The message type.
        ty: u16,
    },
}

/// The client's per-frame FEC report (type 0x5502, big-endian fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FecStatus {
    /// Frame the report is about.
    pub frame_index: u32,
    /// Highest RTP sequence number received.
    pub highest_received_sequence: u16,
    /// Next sequence number the client still waits for.
    pub next_contiguous_sequence: u16,
    /// Packets missing before the highest received one.
    pub missing_packets_before_highest: u16,
    /// Data packets of the block.
    pub total_data_packets: u16,
    /// Parity packets of the block.
    pub total_parity_packets: u16,
    /// Data packets received.
    pub received_data_packets: u16,
    /// Parity packets received.
    pub received_parity_packets: u16,
    /// FEC percentage of the block.
    pub fec_percentage: u8,
    /// Index of the block in the frame.
    pub multi_fec_block_index: u8,
    /// Blocks in the frame.
    pub multi_fec_block_count: u8,
}

impl ControlMessage {
    /// Interprets the payload of a client message of type `ty`.
    pub fn parse(ty: u16, payload: &[u8]) -> Result<Self, ControlError> {
        let expect = |expected: usize| {
            if payload.len() == expected {
                Ok(())
            } else {
                Err(ControlError::BadLength {
                    ty,
                    expected,
                    got: payload.len(),
                })
            }
        };
        let le32 = |o: usize| {
            u32::from_le_bytes([payload[o], payload[o + 1], payload[o + 2], payload[o + 3]])
        };
        let be16 = |o: usize| u16::from_be_bytes([payload[o], payload[o + 1]]);
        Ok(match ty {
            TYPE_REQUEST_IDR => {
                expect(2)?;
                Self::RequestIdr
            }
            TYPE_START_B => {
                expect(1)?;
                Self::StartB
            }
            TYPE_PERIODIC_PING => {
                expect(8)?;
                Self::PeriodicPing
            }
            TYPE_INVALIDATE_REF_FRAMES => {
                expect(24)?;
                Self::InvalidateRefFrames {
                    first: le32(0),
                    last: le32(8),
                }
            }
            TYPE_LTR_ACK => {
                expect(8)?;
                Self::LtrAck {
                    frame_index: le32(0),
                }
            }
            TYPE_FEC_STATUS => {
                expect(21)?;
                Self::FecStatus(FecStatus {
                    frame_index: u32::from_be_bytes([
                        payload[0], payload[1], payload[2], payload[3],
                    ]),
                    highest_received_sequence: be16(4),
                    next_contiguous_sequence: be16(6),
                    missing_packets_before_highest: be16(8),
                    total_data_packets: be16(10),
                    total_parity_packets: be16(12),
                    received_data_packets: be16(14),
                    received_parity_packets: be16(16),
                    fec_percentage: payload[18],
                    multi_fec_block_index: payload[19],
                    multi_fec_block_count: payload[20],
                })
            }
            TYPE_INPUT_DATA => Self::Input(payload.to_vec()),
            TYPE_ENCRYPTED => return Err(ControlError::Nested),
            ty => Self::Unknown { ty },
        })
    }
}

/// Opens a client packet and parses the message inside.
pub fn decrypt_client_message(
    key: &[u8; 16],
    packet: &[u8],
) -> Result<ControlMessage, ControlError> {
    let env = decrypt_envelope(key, Origin::Client, packet)?;
    ControlMessage::parse(env.ty, &env.payload)
}

/// Seals a host message (`'H'` nonce) with sequence number `seq`, ready to send on channel 0.
///
/// The caller keeps `seq` growing by one per message and never reuses it with the same key.
pub fn encrypt_host_message(
    key: &[u8; 16],
    seq: u32,
    ty: u16,
    payload: &[u8],
) -> Result<Vec<u8>, ControlError> {
    encrypt_envelope(key, Origin::Host, seq, ty, payload)
}

/// Opens an envelope sent by `origin`, checking every length on the way.
pub fn decrypt_envelope(
    key: &[u8; 16],
    origin: Origin,
    packet: &[u8],
) -> Result<Envelope, ControlError> {
    if packet.len() < 4 {
        return Err(ControlError::TooShort(packet.len()));
    }
    let outer = u16::from_le_bytes([packet[0], packet[1]]);
    if outer != TYPE_ENCRYPTED {
        return Err(ControlError::NotEncrypted(outer));
    }
    let declared = u16::from_le_bytes([packet[2], packet[3]]) as usize;
    if declared + 4 != packet.len() {
        return Err(ControlError::LengthMismatch {
            declared,
            actual: packet.len(),
        });
    }
    // seq, tag and at least the 4-byte inner header.
    if packet.len() < ENVELOPE_HEADER_LEN + 4 {
        return Err(ControlError::TooShort(packet.len()));
    }
    let seq = u32::from_le_bytes([packet[4], packet[5], packet[6], packet[7]]);
    let plain = decrypt_aead(
        Cipher::aes_128_gcm(),
        key,
        Some(&nonce(seq, origin)),
        &[],
        &packet[ENVELOPE_HEADER_LEN..],
        &packet[8..ENVELOPE_HEADER_LEN],
    )
    .map_err(|_| ControlError::Decrypt)?;
    let ty = u16::from_le_bytes([plain[0], plain[1]]);
    let len = u16::from_le_bytes([plain[2], plain[3]]) as usize;
    if 4 + len > plain.len() {
        return Err(ControlError::PayloadLength {
            declared: len,
            available: plain.len() - 4,
        });
    }
    Ok(Envelope {
        seq,
        ty,
        payload: plain[4..4 + len].to_vec(),
    })
}

/// Seals a message from `origin` into an envelope.
pub fn encrypt_envelope(
    key: &[u8; 16],
    origin: Origin,
    seq: u32,
    ty: u16,
    payload: &[u8],
) -> Result<Vec<u8>, ControlError> {
    // The outer length counts seq (4), tag (16) and the inner header (4) too.
    if payload.len() > u16::MAX as usize - 24 {
        return Err(ControlError::PayloadTooLong(payload.len()));
    }
    let mut plain = Vec::with_capacity(4 + payload.len());
    plain.extend_from_slice(&ty.to_le_bytes());
    plain.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    plain.extend_from_slice(payload);
    let mut tag = [0u8; 16];
    let ct = encrypt_aead(
        Cipher::aes_128_gcm(),
        key,
        Some(&nonce(seq, origin)),
        &[],
        &plain,
        &mut tag,
    )?;
    let mut out = Vec::with_capacity(ENVELOPE_HEADER_LEN + ct.len());
    out.extend_from_slice(&TYPE_ENCRYPTED.to_le_bytes());
    out.extend_from_slice(&((20 + ct.len()) as u16).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&tag);
    out.extend_from_slice(&ct);
    Ok(out)
}

fn nonce(seq: u32, origin: Origin) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&seq.to_le_bytes());
    n[10] = match origin {
        Origin::Client => b'C',
        Origin::Host => b'H',
    };
    n[11] = b'C';
    n
}

/// HDR mastering metadata sent with [`HostMessage::HdrMode`] (chromaticities in units of
/// 1/50 000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HdrMetadata {
    /// Red, green and blue primaries as (x, y).
    pub display_primaries: [(u16, u16); 3],
    /// White point (x, y).
    pub white_point: (u16, u16),
    /// Peak display luminance in nits.
    pub max_display_luminance: u16,
    /// Minimum display luminance in 1/10 000 nit.
    pub min_display_luminance: u16,
    /// MaxCLL in nits.
    pub max_content_light_level: u16,
    /// MaxFALL in nits.
    pub max_frame_average_light_level: u16,
    /// Full-frame luminance in nits.
    pub max_full_frame_luminance: u16,
}

/// A message from the host to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostMessage {
    /// End the stream with an error code, e.g. [`TERMINATION_GRACEFUL`]; send before the ENet
    /// disconnect.
    Termination {
        /// The code, sent big-endian.
        code: u32,
    },
    /// Set both rumble motors of a controller; (0, 0) stops.
    Rumble {
        /// The client's controller number.
        controller: u16,
        /// Large (low-frequency) motor.
        low_freq: u16,
        /// Small (high-frequency) motor.
        high_freq: u16,
    },
    /// Set the trigger motors of a controller.
    TriggerRumble {
        /// The client's controller number.
        controller: u16,
        /// Left trigger motor.
        left: u16,
        /// Right trigger motor.
        right: u16,
    },
    /// Ask for motion reports from a sensor at a rate (0 disables it).
    MotionEventState {
        /// The client's controller number.
        controller: u16,
        /// Reports per second; 0 turns the sensor off.
        report_rate_hz: u16,
        /// [`MOTION_ACCEL`] or [`MOTION_GYRO`].
        motion_type: u8,
    },
    /// Set a controller's RGB LED.
    RgbLed {
        /// The client's controller number.
        controller: u16,
        /// Red.
        r: u8,
        /// Green.
        g: u8,
        /// Blue.
        b: u8,
    },
    /// Tell the client whether the stream is HDR, with its metadata.
    HdrMode {
        /// Whether HDR is on.
        enabled: bool,
        /// Mastering metadata.
        metadata: HdrMetadata,
    },
    /// A DualSense adaptive trigger effect, passed through from the virtual pad.
    AdaptiveTriggers {
        /// The client's controller number.
        controller: u16,
        /// 0x04: right effect valid, 0x08: left effect valid.
        event_flags: u8,
        /// Left effect mode.
        type_left: u8,
        /// Right effect mode.
        type_right: u8,
        /// Left effect parameters.
        left: [u8; 10],
        /// Right effect parameters.
        right: [u8; 10],
    },
}

impl HostMessage {
    /// The message type.
    pub fn message_type(&self) -> u16 {
        match self {
            HostMessage::Termination { .. } => TYPE_TERMINATION,
            HostMessage::Rumble { .. } => TYPE_RUMBLE,
            HostMessage::TriggerRumble { .. } => TYPE_RUMBLE_TRIGGERS,
            HostMessage::MotionEventState { .. } => TYPE_SET_MOTION_EVENT,
            HostMessage::RgbLed { .. } => TYPE_SET_RGB_LED,
            HostMessage::HdrMode { .. } => TYPE_HDR_MODE,
            HostMessage::AdaptiveTriggers { .. } => TYPE_ADAPTIVE_TRIGGERS,
        }
    }

    /// The payload bytes.
    pub fn payload(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(27);
        match *self {
            HostMessage::Termination { code } => p.extend_from_slice(&code.to_be_bytes()),
            HostMessage::Rumble {
                controller,
                low_freq,
                high_freq,
            } => {
                // Four bytes the client skips; the reference host fills them with this marker.
                p.extend_from_slice(&0x00C0_FFEEu32.to_le_bytes());
                for v in [controller, low_freq, high_freq] {
                    p.extend_from_slice(&v.to_le_bytes());
                }
            }
            HostMessage::TriggerRumble {
                controller,
                left,
                right,
            } => {
                for v in [controller, left, right] {
                    p.extend_from_slice(&v.to_le_bytes());
                }
            }
            HostMessage::MotionEventState {
                controller,
                report_rate_hz,
                motion_type,
            } => {
                p.extend_from_slice(&controller.to_le_bytes());
                p.extend_from_slice(&report_rate_hz.to_le_bytes());
                p.push(motion_type);
            }
            HostMessage::RgbLed {
                controller,
                r,
                g,
                b,
            } => {
                p.extend_from_slice(&controller.to_le_bytes());
                p.extend_from_slice(&[r, g, b]);
            }
            HostMessage::HdrMode {
                enabled,
                metadata: m,
            } => {
                p.push(u8::from(enabled));
                for (x, y) in m.display_primaries.iter().chain([&m.white_point]) {
                    p.extend_from_slice(&x.to_le_bytes());
                    p.extend_from_slice(&y.to_le_bytes());
                }
                for v in [
                    m.max_display_luminance,
                    m.min_display_luminance,
                    m.max_content_light_level,
                    m.max_frame_average_light_level,
                    m.max_full_frame_luminance,
                ] {
                    p.extend_from_slice(&v.to_le_bytes());
                }
            }
            HostMessage::AdaptiveTriggers {
                controller,
                event_flags,
                type_left,
                type_right,
                left,
                right,
            } => {
                p.extend_from_slice(&controller.to_le_bytes());
                p.extend_from_slice(&[event_flags, type_left, type_right]);
                p.extend_from_slice(&left);
                p.extend_from_slice(&right);
            }
        }
        p
    }

    /// Seals the message with sequence number `seq`.
    pub fn encrypt(&self, key: &[u8; 16], seq: u32) -> Result<Vec<u8>, ControlError> {
        encrypt_host_message(key, seq, self.message_type(), &self.payload())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const KEY: [u8; 16] = [7; 16];

    fn client(seq: u32, ty: u16, payload: &[u8]) -> Vec<u8> {
        encrypt_envelope(&KEY, Origin::Client, seq, ty, payload).unwrap()
    }

    #[test]
    fn envelope_layout_and_nonce() {
        let packet = client(5, TYPE_REQUEST_IDR, &[0, 0]);
        assert_eq!(packet.len(), 24 + 6);
        assert_eq!(&packet[..8], &[0x01, 0x00, 26, 0, 5, 0, 0, 0]);
        let mut tag = [0u8; 16];
        let nonce = [5, 0, 0, 0, 0, 0, 0, 0, 0, 0, b'C', b'C'];
        let ct = encrypt_aead(
            Cipher::aes_128_gcm(),
            &KEY,
            Some(&nonce),
            &[],
            &[2, 3, 2, 0, 0, 0],
            &mut tag,
        )
        .unwrap();
        assert_eq!(&packet[8..24], &tag);
        assert_eq!(&packet[24..], &ct[..]);
        assert_eq!(
            decrypt_client_message(&KEY, &packet).unwrap(),
            ControlMessage::RequestIdr
        );
    }

    #[test]
    fn parses_client_messages() {
        let mut rfi = [0u8; 24];
        rfi[0..4].copy_from_slice(&41u32.to_le_bytes());
        rfi[8..12].copy_from_slice(&44u32.to_le_bytes());
        let cases: Vec<(u16, Vec<u8>, ControlMessage)> = vec![
            (
                TYPE_INVALIDATE_REF_FRAMES,
                rfi.to_vec(),
                ControlMessage::InvalidateRefFrames {
                    first: 41,
                    last: 44,
                },
            ),
            (TYPE_START_B, vec![0], ControlMessage::StartB),
            (
                TYPE_PERIODIC_PING,
                vec![4, 0, 0, 0, 0, 0, 0xAA, 0xBB],
                ControlMessage::PeriodicPing,
            ),
            (
                TYPE_LTR_ACK,
                vec![9, 0, 0, 0, 0, 0, 0, 0],
                ControlMessage::LtrAck { frame_index: 9 },
            ),
            (
                TYPE_INPUT_DATA,
                vec![0, 0, 0, 8, 7, 0, 0, 0, 0, 1, 0, 2],
                ControlMessage::Input(vec![0, 0, 0, 8, 7, 0, 0, 0, 0, 1, 0, 2]),
            ),
            (
                0x0201,
                vec![1, 2, 3],
                ControlMessage::Unknown { ty: 0x0201 },
            ),
        ];
        for (seq, (ty, payload, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                decrypt_client_message(&KEY, &client(seq as u32, ty, &payload)).unwrap(),
                want
            );
        }
        let fec: Vec<u8> = [
            0, 0, 1, 0, 0, 10, 0, 9, 0, 1, 0, 73, 0, 15, 0, 72, 0, 15, 20, 0, 1,
        ]
        .to_vec();
        let msg = decrypt_client_message(&KEY, &client(1, TYPE_FEC_STATUS, &fec)).unwrap();
        let ControlMessage::FecStatus(s) = msg else {
            panic!("{msg:?}")
        };
        assert_eq!(s.frame_index, 256);
        assert_eq!(
            (s.highest_received_sequence, s.next_contiguous_sequence),
            (10, 9)
        );
        assert_eq!((s.total_data_packets, s.total_parity_packets), (73, 15));
        assert_eq!(
            (s.received_data_packets, s.received_parity_packets),
            (72, 15)
        );
        assert_eq!(
            (
                s.fec_percentage,
                s.multi_fec_block_index,
                s.multi_fec_block_count
            ),
            (20, 0, 1)
        );
    }

    #[test]
    fn rejects_malformed_packets() {
        let good = client(0, TYPE_REQUEST_IDR, &[0, 0]);
        assert!(matches!(
            decrypt_client_message(&KEY, &good[..3]),
            Err(ControlError::TooShort(3))
        ));
        assert!(matches!(
            decrypt_client_message(&KEY, &good[..good.len() - 1]),
            Err(ControlError::LengthMismatch { .. })
        ));
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(
            decrypt_client_message(&KEY, &long),
            Err(ControlError::LengthMismatch { .. })
        ));
        let mut flipped = good.clone();
        flipped[25] ^= 1;
        assert!(matches!(
            decrypt_client_message(&KEY, &flipped),
            Err(ControlError::Decrypt)
        ));
        // A host nonce does not open as a client message.
        let host = encrypt_host_message(&KEY, 0, TYPE_REQUEST_IDR, &[0, 0]).unwrap();
        assert!(matches!(
            decrypt_client_message(&KEY, &host),
            Err(ControlError::Decrypt)
        ));
        assert!(matches!(
            decrypt_client_message(&KEY, &[0x02, 0x03, 0, 0]),
            Err(ControlError::NotEncrypted(0x0302))
        ));
        assert!(matches!(
            decrypt_client_message(&KEY, &client(0, TYPE_REQUEST_IDR, &[0])),
            Err(ControlError::BadLength {
                ty: TYPE_REQUEST_IDR,
                expected: 2,
                got: 1
            })
        ));
        assert!(matches!(
            decrypt_client_message(&KEY, &client(0, TYPE_ENCRYPTED, &[])),
            Err(ControlError::Nested)
        ));
    }

    #[test]
    fn host_messages_have_documented_payloads() {
        let t = HostMessage::Termination {
            code: TERMINATION_GRACEFUL,
        };
        assert_eq!(
            (t.message_type(), t.payload()),
            (0x0109, vec![0x80, 0x03, 0x00, 0x23])
        );
        let r = HostMessage::Rumble {
            controller: 1,
            low_freq: 0x1234,
            high_freq: 0xFFFF,
        };
        assert_eq!(
            r.payload(),
            [0xEE, 0xFF, 0xC0, 0x00, 1, 0, 0x34, 0x12, 0xFF, 0xFF]
        );
        let tr = HostMessage::TriggerRumble {
            controller: 2,
            left: 3,
            right: 4,
        };
        assert_eq!(
            (tr.message_type(), tr.payload()),
            (0x5500, vec![2, 0, 3, 0, 4, 0])
        );
        let m = HostMessage::MotionEventState {
            controller: 0,
            report_rate_hz: 100,
            motion_type: MOTION_GYRO,
        };
        assert_eq!(
            (m.message_type(), m.payload()),
            (0x5501, vec![0, 0, 100, 0, 2])
        );
        let led = HostMessage::RgbLed {
            controller: 3,
            r: 1,
            g: 2,
            b: 3,
        };
        assert_eq!(
            (led.message_type(), led.payload()),
            (0x5502, vec![3, 0, 1, 2, 3])
        );
        let hdr = HostMessage::HdrMode {
            enabled: true,
            metadata: HdrMetadata {
                max_full_frame_luminance: 0x0102,
                ..Default::default()
            },
        };
        let p = hdr.payload();
        assert_eq!(
            (hdr.message_type(), p.len(), p[0], &p[25..]),
            (0x010E, 27, 1, &[2u8, 1][..])
        );
        let at = HostMessage::AdaptiveTriggers {
            controller: 0,
            event_flags: 0x0C,
            type_left: 1,
            type_right: 2,
            left: [5; 10],
            right: [6; 10],
        };
        assert_eq!(at.payload().len(), 25);

        let sealed = t.encrypt(&KEY, 3).unwrap();
        let env = decrypt_envelope(&KEY, Origin::Host, &sealed).unwrap();
        assert_eq!(
            env,
            Envelope {
                seq: 3,
                ty: 0x0109,
                payload: vec![0x80, 0x03, 0x00, 0x23]
            }
        );
    }

    proptest! {
        #[test]
        fn random_packets_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = decrypt_client_message(&KEY, &bytes);
        }

        #[test]
        fn random_payloads_round_trip_or_fail_cleanly(
            ty in any::<u16>(),
            seq in any::<u32>(),
            payload in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let packet = client(seq, ty, &payload);
            let env = decrypt_envelope(&KEY, Origin::Client, &packet).unwrap();
            prop_assert_eq!(&env, &Envelope { seq, ty, payload: payload.clone() });
            let _ = ControlMessage::parse(ty, &payload);
        }
    }
}
