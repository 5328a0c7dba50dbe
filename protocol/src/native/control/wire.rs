//! Reading and writing the fields of one message.

use super::*;

/// The fields of one message being read.
pub(super) struct Reader<'a> {
    /// What is left of the fields.
    pub(super) b: &'a [u8],
    /// The message's type byte, for errors.
    pub(super) kind: u8,
}

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], ControlError> {
        if self.b.len() < n {
            return Err(ControlError::Truncated { kind: self.kind });
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], ControlError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub(super) fn u8(&mut self) -> Result<u8, ControlError> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn u16(&mut self) -> Result<u16, ControlError> {
        self.array().map(u16::from_le_bytes)
    }

    pub(super) fn u32(&mut self) -> Result<u32, ControlError> {
        self.array().map(u32::from_le_bytes)
    }

    pub(super) fn u64(&mut self) -> Result<u64, ControlError> {
        self.array().map(u64::from_le_bytes)
    }

    pub(super) fn bool(&mut self) -> Result<bool, ControlError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(self.invalid("bool", b.into())),
        }
    }

    pub(super) fn mode(&mut self) -> Result<Mode, ControlError> {
        Ok(Mode {
            width: self.u16()?,
            height: self.u16()?,
            refresh_mhz: self.u32()?,
        })
    }

    pub(super) fn bytes(&mut self, max: usize) -> Result<&'a [u8], ControlError> {
        let len = self.u16()? as usize;
        if len > max {
            return Err(ControlError::FieldTooLong {
                kind: self.kind,
                len,
                max,
            });
        }
        self.take(len)
    }

    pub(super) fn blob(&mut self) -> Result<Vec<u8>, ControlError> {
        self.bytes(MAX_BLOB_LEN).map(<[u8]>::to_vec)
    }

    pub(super) fn string(&mut self, max: usize) -> Result<String, ControlError> {
        let b = self.bytes(max)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| ControlError::Utf8 { kind: self.kind })
    }

    /// An optional trailing field: its default when the message ends before it.
    pub(super) fn optional<T: Default>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, ControlError>,
    ) -> Result<T, ControlError> {
        if self.b.is_empty() {
            Ok(T::default())
        } else {
            read(self)
        }
    }

    pub(super) fn invalid(&self, field: &'static str, value: u64) -> ControlError {
        ControlError::InvalidValue {
            kind: self.kind,
            field,
            value,
        }
    }
}

/// The fields of one message being written.
pub(super) struct Writer<'a> {
    /// Where they go.
    pub(super) out: &'a mut Vec<u8>,
    /// The message's type byte, for errors.
    pub(super) kind: u8,
}

impl Writer<'_> {
    pub(super) fn message(&mut self, m: &Message) -> Result<(), ControlError> {
        self.u8(self.kind);
        match m {
            Message::Hello(h) => {
                self.mode(&h.mode);
                self.u32(h.bitrate_kbps);
                self.string(&h.client_name, MAX_NAME_LEN)?;
                self.string(&h.app, MAX_NAME_LEN)?;
                self.u8(h.codecs.0);
                self.u8(h.video_caps.0);
                self.u8(h.audio_channels);
                self.u16(h.max_shard_payload);
                self.u32(h.synthetic_kbps);
            }
            Message::Welcome(w) => {
                self.mode(&w.mode);
                self.u8(w.codec.wire());
                self.u8(w.bit_depth);
                self.u8(match w.chroma {
                    Chroma::Yuv420 => 0,
                    Chroma::Yuv444 => 1,
                });
                self.u8(w.colour.primaries);
                self.u8(w.colour.transfer);
                self.u8(w.colour.matrix);
                self.u8(w.colour.full_range.into());
                self.u8(w.fec_percent);
                self.u16(w.shard_payload);
                self.u32(w.audio.sample_rate);
                self.u8(w.audio.channels);
                self.u32(w.audio.frame_us);
                self.out.extend_from_slice(&w.data_key);
                self.out.extend_from_slice(&w.data_salt);
                self.u16(w.udp_port);
                self.u32(w.host_caps.0);
            }
            Message::Start { client_udp_port } => self.u16(*client_udp_port),
            Message::Close { code, reason } => {
                self.u16(code.wire());
                self.string(reason, MAX_REASON_LEN)?;
            }
            Message::Reconfigure { mode } => self.mode(mode),
            Message::Reconfigured { accepted, mode } => {
                self.u8((*accepted).into());
                self.mode(mode);
            }
            Message::RequestKeyframe | Message::ListApps | Message::Unknown { .. } => {}
            Message::LossReport {
                loss_ppm,
                frames_lost,
                frames_recovered,
            } => {
                self.u32(*loss_ppm);
                self.u32(*frames_lost);
                self.u32(*frames_recovered);
            }
            Message::SetBitrate { kbps } => self.u32(*kbps),
            Message::BitrateChanged { kbps, reason } => {
                self.u32(*kbps);
                self.u8(reason.wire());
            }
            Message::ClockProbe { t1 } => self.u64(*t1),
            Message::ClockEcho { t1, t2, t3 } => {
                self.u64(*t1);
                self.u64(*t2);
                self.u64(*t3);
            }
            Message::Rumble { pad, low, high } => {
                self.u8(*pad);
                self.u16(*low);
                self.u16(*high);
            }
            Message::Apps { entries } => {
                let n = u16::try_from(entries.len()).map_err(|_| ControlError::TooLong {
                    len: entries.len(),
                    max: u16::MAX as usize,
                })?;
                self.u16(n);
                for e in entries {
                    self.u32(e.id);
                    self.string(&e.name, MAX_NAME_LEN)?;
                }
            }
            Message::PairRequest { name, spake_a } => {
                self.string(name, MAX_NAME_LEN)?;
                self.bytes(spake_a, MAX_BLOB_LEN)?;
            }
            Message::PairChallenge { spake_b, confirm } => {
                self.bytes(spake_b, MAX_BLOB_LEN)?;
                self.bytes(confirm, MAX_BLOB_LEN)?;
            }
            Message::PairProof { confirm } => self.bytes(confirm, MAX_BLOB_LEN)?,
            Message::PairResult { ok } => self.u8((*ok).into()),
        }
        Ok(())
    }

    pub(super) fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    pub(super) fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    pub(super) fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    pub(super) fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    pub(super) fn mode(&mut self, m: &Mode) {
        self.u16(m.width);
        self.u16(m.height);
        self.u32(m.refresh_mhz);
    }

    pub(super) fn bytes(&mut self, b: &[u8], max: usize) -> Result<(), ControlError> {
        if b.len() > max {
            return Err(ControlError::FieldTooLong {
                kind: self.kind,
                len: b.len(),
                max,
            });
        }
        // At most MAX_BLOB_LEN or MAX_REASON_LEN, far below u16::MAX.
        self.u16(b.len() as u16);
        self.out.extend_from_slice(b);
        Ok(())
    }

    pub(super) fn string(&mut self, s: &str, max: usize) -> Result<(), ControlError> {
        self.bytes(s.as_bytes(), max)
    }
}
