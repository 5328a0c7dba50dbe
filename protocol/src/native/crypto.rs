//! AES-128-GCM for each data-plane datagram, and the receiver's replay window.
//!
//! A sealed datagram is `header (40) ‖ ciphertext of the shard ‖ tag (16)`. The clear header is the
//! associated data, so no header field can be altered without the tag failing. The 96-bit nonce
//! is the 4-byte salt followed by the datagram's sequence number as 8 little-endian bytes, where
//! the salt's last byte is XORed with the plane's magic byte: the planes of one session share a
//! key and each counts its sequence from 0, and this keeps their nonces apart. A key seals one
//! direction only (the host's media); anything the other way needs its own key or salt.
//!
//! [`Sealer`] numbers datagrams itself and refuses to wrap its counter, so a nonce is never used
//! twice under a key. [`Opener`] checks the header, the length and the replay window before it
//! decrypts, and moves the window only after the tag verified, so a forged datagram cannot push
//! genuine ones out of it.

use std::fmt;

use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_128_GCM};
use thiserror::Error;

use super::header::{Header, HeaderError, Plane, HEADER_LEN};

/// Length of the AES-128 key.
pub const KEY_LEN: usize = 16;
/// Length of the nonce salt.
pub const SALT_LEN: usize = 4;
/// Length of the GCM tag at the end of each datagram.
pub const TAG_LEN: usize = 16;
/// Sequence numbers the replay window remembers below the highest one seen. A 4 MB keyframe is
/// about 3 000 datagrams, so reordering within one frame stays inside the window.
pub const REPLAY_WINDOW: u64 = 4096;

const WINDOW_WORDS: usize = (REPLAY_WINDOW / 64) as usize;

/// Errors of the sealing side and of key set-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CryptoError {
    /// An all-zero key (an unset key must never encrypt anything).
    #[error("refusing an all-zero key")]
    ZeroKey,
    /// The 64-bit sequence counter is used up; the session needs a new key.
    #[error("sequence numbers exhausted")]
    SequenceExhausted,
    /// The header names another plane than the sealer's.
    #[error("header of plane {got:?} given to the sealer of {expected:?}")]
    PlaneMismatch {
        /// The sealer's plane.
        expected: Plane,
        /// The header's plane.
        got: Plane,
    },
    /// The payload is not one shard long.
    #[error("payload of {got} bytes for shards of {expected}")]
    PayloadLength {
        /// The header's shard size.
        expected: usize,
        /// The payload's length.
        got: usize,
    },
}

/// Why a received datagram was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum OpenError {
    /// The header is malformed.
    #[error("malformed header: {0}")]
    Header(#[from] HeaderError),
    /// The header names another plane than the opener's.
    #[error("datagram of plane {0:?}")]
    WrongPlane(Plane),
    /// The datagram is not header, one shard and tag long.
    #[error("datagram of {got} bytes, expected {expected}")]
    Length {
        /// Length the header implies.
        expected: usize,
        /// Length received.
        got: usize,
    },
    /// The tag did not verify: wrong key, or altered on the way.
    #[error("authentication failed")]
    BadTag,
    /// A sequence number already received.
    #[error("replayed sequence {0}")]
    Replay(u64),
    /// A sequence number too far below the highest one received to be checked.
    #[error("sequence {0} is older than the replay window")]
    TooOld(u64),
}

/// The data-plane key and nonce salt of a session, as the host announces them in `Welcome`.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey {
    key: [u8; KEY_LEN],
    salt: [u8; SALT_LEN],
}

impl DataKey {
    /// A key and salt; an all-zero key is refused.
    ///
    /// Both come from the caller's random source, fresh for each session.
    pub fn new(key: [u8; KEY_LEN], salt: [u8; SALT_LEN]) -> Result<Self, CryptoError> {
        if key.iter().all(|&b| b == 0) {
            return Err(CryptoError::ZeroKey);
        }
        Ok(Self { key, salt })
    }

    /// The AES-128 key.
    pub fn key(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    /// The nonce salt.
    pub fn salt(&self) -> &[u8; SALT_LEN] {
        &self.salt
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey").finish_non_exhaustive()
    }
}

/// Seals the datagrams of one plane, numbering them from 0.
pub struct Sealer {
    cipher: PlaneCipher,
    next: u64,
}

impl Sealer {
    /// A sealer for `plane` whose first datagram gets sequence 0.
    pub fn new(key: &DataKey, plane: Plane) -> Self {
        Self {
            cipher: PlaneCipher::new(key, plane),
            next: 0,
        }
    }

    /// The plane it seals for.
    pub fn plane(&self) -> Plane {
        self.cipher.plane
    }

    /// The sequence number the next datagram gets.
    pub fn next_sequence(&self) -> u64 {
        self.next
    }

    /// Seals one shard: appends `header ‖ ciphertext ‖ tag` to `out`.
    ///
    /// The header's sequence number is replaced by the next one; the header as sent is
    /// returned. `payload` must be exactly one shard long.
    pub fn seal(
        &mut self,
        header: &Header,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Header, CryptoError> {
        let expected = header.layout().shard_bytes() as usize;
        if payload.len() != expected {
            return Err(CryptoError::PayloadLength {
                expected,
                got: payload.len(),
            });
        }
        let start = out.len();
        out.resize(start + header.layout().datagram_len(), 0);
        let datagram = &mut out[start..];
        datagram[HEADER_LEN..HEADER_LEN + expected].copy_from_slice(payload);
        match self.seal_in_place(header, datagram) {
            Ok(sent) => Ok(sent),
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// Seals a datagram whose shard already lies in place: `datagram` is one
    /// [`datagram_len`](super::FrameLayout::datagram_len) long with the plaintext shard at
    /// `HEADER_LEN..`; the header and the tag are written around it.
    pub(crate) fn seal_in_place(
        &mut self,
        header: &Header,
        datagram: &mut [u8],
    ) -> Result<Header, CryptoError> {
        if header.plane() != self.cipher.plane {
            return Err(CryptoError::PlaneMismatch {
                expected: self.cipher.plane,
                got: header.plane(),
            });
        }
        let shard_bytes = header.layout().shard_bytes() as usize;
        if datagram.len() != HEADER_LEN + shard_bytes + TAG_LEN {
            return Err(CryptoError::PayloadLength {
                expected: shard_bytes,
                got: datagram.len().saturating_sub(HEADER_LEN + TAG_LEN),
            });
        }
        // The last value is never used, so the counter cannot wrap onto a used nonce.
        if self.next == u64::MAX {
            return Err(CryptoError::SequenceExhausted);
        }
        let header = header.with_sequence(self.next);
        let (head, rest) = datagram.split_at_mut(HEADER_LEN);
        let head: &mut [u8; HEADER_LEN] = head
            .try_into()
            .expect("split at HEADER_LEN gives HEADER_LEN bytes");
        header.write(head);
        let (payload, tag_out) = rest.split_at_mut(shard_bytes);
        let tag = self.cipher.seal(header.sequence(), head, payload);
        tag_out.copy_from_slice(&tag);
        self.next += 1;
        Ok(header)
    }
}

/// Opens the datagrams of one plane and remembers which sequence numbers it has seen.
pub struct Opener {
    cipher: PlaneCipher,
    window: ReplayWindow,
}

impl Opener {
    /// An opener for `plane` that has seen nothing yet.
    pub fn new(key: &DataKey, plane: Plane) -> Self {
        Self {
            cipher: PlaneCipher::new(key, plane),
            window: ReplayWindow::new(),
        }
    }

    /// The plane it opens.
    pub fn plane(&self) -> Plane {
        self.cipher.plane
    }

    /// Checks and decrypts one datagram; on success `shard` holds the plaintext shard.
    ///
    /// On any error `shard`'s content is unspecified and the replay window is unchanged.
    pub fn open(&mut self, datagram: &[u8], shard: &mut Vec<u8>) -> Result<Header, OpenError> {
        let header = Header::parse(datagram)?;
        if header.plane() != self.cipher.plane {
            return Err(OpenError::WrongPlane(header.plane()));
        }
        let expected = header.layout().datagram_len();
        if datagram.len() != expected {
            return Err(OpenError::Length {
                expected,
                got: datagram.len(),
            });
        }
        self.window.check(header.sequence())?;
        let (head, rest) = datagram.split_at(HEADER_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        shard.clear();
        shard.extend_from_slice(ciphertext);
        self.cipher
            .open(header.sequence(), head, shard, tag)
            .map_err(|()| OpenError::BadTag)?;
        self.window.commit(header.sequence());
        Ok(header)
    }

    /// The replay window.
    pub fn window(&self) -> &ReplayWindow {
        &self.window
    }
}

/// Which sequence numbers have been received: the highest one and a bitmap of the
/// [`REPLAY_WINDOW`] below it.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// Bit `s % REPLAY_WINDOW` is set when `s` was received (for `s` in the window).
    bits: [u64; WINDOW_WORDS],
    highest: Option<u64>,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// A window that has seen nothing.
    pub fn new() -> Self {
        Self {
            bits: [0; WINDOW_WORDS],
            highest: None,
        }
    }

    /// The highest sequence number committed.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Whether `seq` may be accepted: new, and not below the window.
    pub fn check(&self, seq: u64) -> Result<(), OpenError> {
        let Some(highest) = self.highest else {
            return Ok(());
        };
        if seq > highest {
            return Ok(());
        }
        if highest - seq >= REPLAY_WINDOW {
            return Err(OpenError::TooOld(seq));
        }
        let (word, bit) = Self::slot(seq);
        if self.bits[word] & bit != 0 {
            return Err(OpenError::Replay(seq));
        }
        Ok(())
    }

    /// Records `seq` as received. Call it only after [`check`](Self::check) passed and the
    /// datagram authenticated.
    pub fn commit(&mut self, seq: u64) {
        match self.highest {
            Some(h) if seq <= h => {
                if h - seq >= REPLAY_WINDOW {
                    return;
                }
            }
            Some(h) => {
                // Forget the slots the window slides past.
                if seq - h >= REPLAY_WINDOW {
                    self.bits = [0; WINDOW_WORDS];
                } else {
                    for s in h + 1..seq {
                        let (word, bit) = Self::slot(s);
                        self.bits[word] &= !bit;
                    }
                }
                self.highest = Some(seq);
            }
            None => {
                self.bits = [0; WINDOW_WORDS];
                self.highest = Some(seq);
            }
        }
        let (word, bit) = Self::slot(seq);
        self.bits[word] |= bit;
    }

    fn slot(seq: u64) -> (usize, u64) {
        let i = seq % REPLAY_WINDOW;
        ((i / 64) as usize, 1u64 << (i % 64))
    }
}

/// The cipher and nonce prefix of one plane. AES-128-GCM from `ring`, which has AES-NI, VAES
/// and carry-less multiply kernels for the CPU it runs on.
struct PlaneCipher {
    cipher: LessSafeKey,
    prefix: [u8; SALT_LEN],
    plane: Plane,
}

impl PlaneCipher {
    fn new(key: &DataKey, plane: Plane) -> Self {
        let mut prefix = key.salt;
        prefix[SALT_LEN - 1] ^= plane.magic();
        let unbound = UnboundKey::new(&AES_128_GCM, &key.key).expect("an AES-128 key is 16 bytes");
        Self {
            cipher: LessSafeKey::new(unbound),
            prefix,
            plane,
        }
    }

    fn nonce(&self, seq: u64) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[..SALT_LEN].copy_from_slice(&self.prefix);
        n[SALT_LEN..].copy_from_slice(&seq.to_le_bytes());
        n
    }

    fn seal(&self, seq: u64, aad: &[u8], payload: &mut [u8]) -> [u8; TAG_LEN] {
        // Only fails for payloads over 64 GiB; shards are at most 64 KiB.
        let tag = self
            .cipher
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(self.nonce(seq)),
                Aad::from(aad),
                payload,
            )
            .expect("a shard is far below the GCM length limit");
        tag.as_ref().try_into().expect("an AES-GCM tag is 16 bytes")
    }

    fn open(&self, seq: u64, aad: &[u8], payload: &mut [u8], tag: &[u8]) -> Result<(), ()> {
        let tag = Tag::try_from(tag).map_err(|_| ())?;
        self.cipher
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(self.nonce(seq)),
                Aad::from(aad),
                tag,
                payload,
                0..,
            )
            .map(|_| ())
            .map_err(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::native::header::{FrameLayout, Shard};

    #[test]
    fn the_seal_is_standard_aes_128_gcm() {
        // The same bytes as another AES-GCM implementation makes of the same key, nonce, AAD
        // and payload: what a client with any AES-GCM library opens.
        use aes_gcm::aead::{AeadInPlace, KeyInit};
        let k = key();
        let cipher = PlaneCipher::new(&k, Plane::Video);
        let other = aes_gcm::Aes128Gcm::new(&k.key.into());
        for (seq, len) in [(0u64, 0usize), (1, 1), (77, 1408), (u64::MAX >> 8, 5000)] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 13 + 5) as u8).collect();
            let aad = [9u8; 40];
            let mut ours = plain.clone();
            let tag = cipher.seal(seq, &aad, &mut ours);
            let mut theirs = plain.clone();
            let their_tag = other
                .encrypt_in_place_detached(
                    aes_gcm::Nonce::from_slice(&cipher.nonce(seq)),
                    &aad,
                    &mut theirs,
                )
                .unwrap();
            assert_eq!(
                (ours.as_slice(), &tag[..]),
                (theirs.as_slice(), &their_tag[..])
            );
            cipher.open(seq, &aad, &mut ours, &tag).unwrap();
            assert_eq!(ours, plain);
            assert!(cipher.open(seq, &aad, &mut theirs, &tag[..15]).is_err());
        }
    }

    fn key() -> DataKey {
        DataKey::new([7; 16], [1, 2, 3, 4]).unwrap()
    }

    fn header(plane: Plane, shard_bytes: usize) -> Header {
        let layout = FrameLayout::plan(shard_bytes * 3, shard_bytes as u16, 50).unwrap();
        Header::new(plane, 0, 123, 9, false, layout, Shard::Data(1)).unwrap()
    }

    fn sealed(payload: &[u8]) -> (Header, Vec<u8>) {
        let mut s = Sealer::new(&key(), Plane::Video);
        let mut out = Vec::new();
        let h = s
            .seal(&header(Plane::Video, payload.len()), payload, &mut out)
            .unwrap();
        (h, out)
    }

    #[test]
    fn zero_key_is_refused() {
        assert_eq!(
            DataKey::new([0; 16], [1, 2, 3, 4]).unwrap_err(),
            CryptoError::ZeroKey
        );
        assert!(DataKey::new([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0; 4]).is_ok());
        assert!(!format!("{:?}", key()).contains('7'));
    }

    #[test]
    fn seal_then_open_round_trips() {
        let payload: Vec<u8> = (0..1408u32).map(|i| i as u8).collect();
        let (h, datagram) = sealed(&payload);
        assert_eq!(datagram.len(), 1464);
        assert_eq!(&datagram[..HEADER_LEN], &h.encode());
        assert_ne!(&datagram[HEADER_LEN..HEADER_LEN + 1408], &payload[..]);
        let mut o = Opener::new(&key(), Plane::Video);
        let mut shard = Vec::new();
        assert_eq!(o.open(&datagram, &mut shard), Ok(h));
        assert_eq!(shard, payload);
    }

    #[test]
    fn sequence_numbers_count_up_per_sealer() {
        let mut s = Sealer::new(&key(), Plane::Audio);
        let mut out = Vec::new();
        let h = header(Plane::Audio, 100);
        for i in 0..3 {
            assert_eq!(s.seal(&h, &[0; 100], &mut out).unwrap().sequence(), i);
        }
        assert_eq!(out.len(), 3 * (100 + 56));
        assert_eq!(
            s.seal(&header(Plane::Video, 100), &[0; 100], &mut out),
            Err(CryptoError::PlaneMismatch {
                expected: Plane::Audio,
                got: Plane::Video
            })
        );
        assert!(matches!(
            s.seal(&h, &[0; 98], &mut out),
            Err(CryptoError::PayloadLength { .. })
        ));
        assert_eq!(out.len(), 3 * (100 + 56));
        s.next = u64::MAX;
        assert_eq!(
            s.seal(&h, &[0; 100], &mut out),
            Err(CryptoError::SequenceExhausted)
        );
        assert_eq!(out.len(), 3 * (100 + 56));
    }

    #[test]
    fn planes_never_share_a_nonce() {
        let k = key();
        let nonces: Vec<[u8; 12]> = [Plane::Video, Plane::Audio, Plane::Probe]
            .into_iter()
            .map(|p| PlaneCipher::new(&k, p).nonce(5))
            .collect();
        assert_ne!(nonces[0], nonces[1]);
        assert_ne!(nonces[1], nonces[2]);
        assert_ne!(nonces[0], nonces[2]);
        assert_eq!(&nonces[0][4..], &5u64.to_le_bytes());
    }

    #[test]
    fn every_altered_byte_fails_the_tag() {
        let (_, datagram) = sealed(&[0x55; 64]);
        for i in 0..datagram.len() {
            let mut d = datagram.clone();
            d[i] ^= 0x01;
            let mut o = Opener::new(&key(), Plane::Video);
            let r = o.open(&d, &mut Vec::new());
            assert!(r.is_err(), "byte {i}");
            // Header bytes may also make the header itself invalid; past it only the tag can
            // tell. The reserved bytes and unknown flag bits are covered by the tag too.
            if i >= 36 || (4..24).contains(&i) {
                assert_eq!(r, Err(OpenError::BadTag), "byte {i}");
            }
            assert_eq!(o.window().highest(), None);
        }
        let mut o = Opener::new(&DataKey::new([8; 16], [1, 2, 3, 4]).unwrap(), Plane::Video);
        assert_eq!(o.open(&datagram, &mut Vec::new()), Err(OpenError::BadTag));
        let mut o = Opener::new(&DataKey::new([7; 16], [1, 2, 3, 5]).unwrap(), Plane::Video);
        assert_eq!(o.open(&datagram, &mut Vec::new()), Err(OpenError::BadTag));
    }

    #[test]
    fn wrong_plane_and_length_are_refused() {
        let (_, datagram) = sealed(&[1; 64]);
        let mut o = Opener::new(&key(), Plane::Audio);
        assert_eq!(
            o.open(&datagram, &mut Vec::new()),
            Err(OpenError::WrongPlane(Plane::Video))
        );
        let mut o = Opener::new(&key(), Plane::Video);
        assert!(matches!(
            o.open(&datagram[..datagram.len() - 1], &mut Vec::new()),
            Err(OpenError::Length { .. })
        ));
        let mut longer = datagram.clone();
        longer.push(0);
        assert!(matches!(
            o.open(&longer, &mut Vec::new()),
            Err(OpenError::Length { .. })
        ));
        assert!(matches!(
            o.open(&datagram[..10], &mut Vec::new()),
            Err(OpenError::Header(HeaderError::Truncated(10)))
        ));
    }

    #[test]
    fn replays_and_old_sequences_are_refused() {
        let mut s = Sealer::new(&key(), Plane::Video);
        let h = header(Plane::Video, 16);
        let datagrams: Vec<Vec<u8>> = (0..REPLAY_WINDOW + 10)
            .map(|_| {
                let mut out = Vec::new();
                s.seal(&h, &[3; 16], &mut out).unwrap();
                out
            })
            .collect();
        let mut o = Opener::new(&key(), Plane::Video);
        let mut shard = Vec::new();
        assert!(o.open(&datagrams[5], &mut shard).is_ok());
        assert_eq!(o.open(&datagrams[5], &mut shard), Err(OpenError::Replay(5)));
        // Older than the highest but inside the window: fine once.
        assert!(o.open(&datagrams[0], &mut shard).is_ok());
        assert_eq!(o.open(&datagrams[0], &mut shard), Err(OpenError::Replay(0)));
        let last = datagrams.len() - 1;
        assert!(o.open(&datagrams[last], &mut shard).is_ok());
        // 4105 - 9 = 4096 below the highest: out of the window.
        assert_eq!(o.open(&datagrams[9], &mut shard), Err(OpenError::TooOld(9)));
        assert!(o.open(&datagrams[10], &mut shard).is_ok());
        assert!(o.open(&datagrams[last - 1], &mut shard).is_ok());
        assert_eq!(
            o.open(&datagrams[last - 1], &mut shard),
            Err(OpenError::Replay(last as u64 - 1))
        );
    }

    #[test]
    fn a_forged_datagram_does_not_move_the_window() {
        let mut s = Sealer::new(&key(), Plane::Video);
        let h = header(Plane::Video, 16);
        let mut first = Vec::new();
        s.seal(&h, &[3; 16], &mut first).unwrap();
        let mut forged = Vec::new();
        let mut other = Sealer::new(&DataKey::new([9; 16], [0; 4]).unwrap(), Plane::Video);
        other.next = 1_000_000;
        other.seal(&h, &[3; 16], &mut forged).unwrap();
        let mut o = Opener::new(&key(), Plane::Video);
        assert_eq!(o.open(&forged, &mut Vec::new()), Err(OpenError::BadTag));
        assert!(o.open(&first, &mut Vec::new()).is_ok());
        assert_eq!(o.window().highest(), Some(0));
    }

    proptest! {
        /// The window agrees with a set of everything committed, for any order of arrival.
        #[test]
        fn window_matches_a_model(seqs in proptest::collection::vec(0u64..20_000, 1..400)) {
            let mut w = ReplayWindow::new();
            let mut seen = std::collections::BTreeSet::new();
            for s in seqs {
                let highest = seen.iter().next_back().copied();
                let expected = match highest {
                    Some(h) if s <= h && h - s >= REPLAY_WINDOW => Err(OpenError::TooOld(s)),
                    _ if seen.contains(&s) => Err(OpenError::Replay(s)),
                    _ => Ok(()),
                };
                prop_assert_eq!(w.check(s), expected);
                if expected.is_ok() {
                    w.commit(s);
                    seen.insert(s);
                }
            }
        }

        #[test]
        fn random_datagrams_never_open(d in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut o = Opener::new(&key(), Plane::Video);
            prop_assert!(o.open(&d, &mut Vec::new()).is_err());
        }
    }
}
