//! Annex B helpers: walking the NAL units of an H.264 access unit.
//!
//! The encoder uses them to drop x264's version SEI from IDR access units (Moonlight wants an IDR
//! to start, after optional AUD/SEI, with SPS, PPS and the slice, and we would rather not send a
//! free-text SEI at all); tests and the packetizer side use them to inspect what went out.

/// H.264 `nal_unit_type` values this crate looks at (ITU-T H.264 table 7-1).
pub mod nal_type {
    /// Coded slice of a non-IDR picture.
    pub const SLICE: u8 = 1;
    /// Coded slice of an IDR picture.
    pub const IDR: u8 = 5;
    /// Supplemental enhancement information.
    pub const SEI: u8 = 6;
    /// Sequence parameter set.
    pub const SPS: u8 = 7;
    /// Picture parameter set.
    pub const PPS: u8 = 8;
    /// Access unit delimiter.
    pub const AUD: u8 = 9;
}

/// One NAL unit inside an Annex B byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NalUnit<'a> {
    /// The unit including its start code (3 or 4 bytes).
    pub with_start_code: &'a [u8],
    /// The unit without its start code; the first byte is the NAL header.
    pub payload: &'a [u8],
}

impl NalUnit<'_> {
    /// `nal_unit_type` from the header byte, or 0 for an empty unit.
    pub fn kind(&self) -> u8 {
        self.payload.first().map_or(0, |b| b & 0x1f)
    }
}

/// Iterates over the NAL units of an Annex B stream. Bytes before the first start code are
/// skipped. A zero byte that precedes a 3-byte start code is counted as part of the start code
/// (making it 4 bytes), never as trailing data of the previous unit.
pub fn nal_units(stream: &[u8]) -> impl Iterator<Item = NalUnit<'_>> + '_ {
    let mut pos = next_start_code(stream, 0);
    std::iter::from_fn(move || {
        let (start, code_len) = pos?;
        let body = start + code_len;
        pos = next_start_code(stream, body);
        let end = pos.map_or(stream.len(), |(next, _)| next);
        Some(NalUnit {
            with_start_code: &stream[start..end],
            payload: &stream[body..end],
        })
    })
}

/// Finds the next start code at or after `from`: its offset and length (3 or 4).
fn next_start_code(stream: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 3 <= stream.len() {
        // Skip ahead quickly: a start code has a 1 at offset 2 and zeros before it.
        if stream[i + 2] > 1 {
            i += 3;
        } else if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            return if i > from && stream[i - 1] == 0 {
                Some((i - 1, 4))
            } else {
                Some((i, 3))
            };
        } else {
            i += 1;
        }
    }
    None
}

/// Removes every SEI NAL unit from `au` in place, keeping the other units and their start codes
/// byte for byte.
pub(crate) fn strip_sei(au: &mut Vec<u8>) {
    if !nal_units(au).any(|n| n.kind() == nal_type::SEI) {
        return;
    }
    let mut kept = Vec::with_capacity(au.len());
    for nal in nal_units(au) {
        if nal.kind() != nal_type::SEI {
            kept.extend_from_slice(nal.with_start_code);
        }
    }
    *au = kept;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let s = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 0, 0, 3, 1,
        ];
        let units: Vec<_> = nal_units(&s).collect();
        assert_eq!(units.len(), 3);
        assert_eq!(units[0].kind(), nal_type::SPS);
        assert_eq!(units[0].payload, &[0x67, 1, 2]);
        assert_eq!(units[1].with_start_code, &[0, 0, 1, 0x68, 3]);
        assert_eq!(units[2].with_start_code.len(), 4 + 5);
        assert_eq!(units[2].kind(), nal_type::IDR);
    }

    #[test]
    fn strip_sei_keeps_the_rest() {
        let mut s = vec![
            0, 0, 0, 1, 0x67, 9, 0, 0, 0, 1, 0x68, 8, 0, 0, 1, 0x06, 5, 5, 0, 0, 1, 0x65, 7,
        ];
        strip_sei(&mut s);
        assert_eq!(
            s,
            vec![0, 0, 0, 1, 0x67, 9, 0, 0, 0, 1, 0x68, 8, 0, 0, 1, 0x65, 7]
        );
    }
}
