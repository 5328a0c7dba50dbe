//! The sender and the reassembler against each other, on a virtual clock.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::crypto::{OpenError, Sealer, TAG_LEN};
use super::header::{FecScheme, FrameLayout, Header, Plane, Shard, HEADER_LEN};
use super::*;

const MS: Duration = Duration::from_millis(1);

fn key() -> DataKey {
    DataKey::new(*b"punktfunk/1 key!", [0xa5, 0x5a, 0x01, 0x02]).unwrap()
}

/// Deterministic frame content.
fn frame(len: usize, seed: u32) -> Vec<u8> {
    crate::test_util::pseudo_random(seed, len)
}

/// A sender, a receiver and the receiver's clock.
struct Link {
    tx: FrameSealer,
    rx: Reassembler,
    now: Instant,
    out: Datagrams,
}

impl Link {
    fn new() -> Self {
        Self::with_config(ReassemblyConfig::default())
    }

    fn with_config(config: ReassemblyConfig) -> Self {
        Self {
            tx: FrameSealer::new(&key(), Plane::Video, DEFAULT_SHARD_PAYLOAD).unwrap(),
            rx: Reassembler::new(&key(), Plane::Video, config),
            now: Instant::now(),
            out: Datagrams::new(),
        }
    }

    /// Seals frame `index` (content from `index`) and returns its datagrams.
    fn sealed(&mut self, index: u32, len: usize, fec_percent: u8) -> Vec<Vec<u8>> {
        let data = frame(len, index);
        self.tx
            .seal_frame(
                &data,
                FrameInfo::new(index, pts(index), index & 7 == 0).encoded_in(encode_us(index)),
                fec_percent,
                &mut self.out,
            )
            .unwrap();
        self.out.iter().map(<[u8]>::to_vec).collect()
    }

    fn receive(&mut self, datagram: &[u8]) -> Result<(), DropReason> {
        self.rx.handle_datagram(self.now, datagram)
    }

    fn receive_all<'a>(&mut self, datagrams: impl IntoIterator<Item = &'a Vec<u8>>) {
        for d in datagrams {
            self.receive(d).unwrap();
        }
    }

    fn wait(&mut self, d: Duration) {
        self.now += d;
        self.rx.handle_timeout(self.now);
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.rx.poll_event()).collect()
    }
}

fn pts(index: u32) -> u64 {
    1_000_000_000 + index as u64 * 8_333_333
}

/// The encode time frame `index` is sealed with; 0 (not said) for every third frame.
fn encode_us(index: u32) -> u32 {
    match index % 3 {
        0 => 0,
        _ => 1500 + index,
    }
}

fn delivered(index: u32, len: usize, recovered: bool) -> Event {
    Event::Frame {
        index,
        pts_ns: pts(index),
        keyframe: index & 7 == 0,
        encode_us: encode_us(index),
        data: frame(len, index),
        recovered,
    }
}

#[test]
fn frames_arrive_whole_and_in_order_without_loss() {
    let mut link = Link::new();
    let sizes = [0, 1, 2, 1407, 1408, 1409, 2816, 10_000, 100_000, 333];
    let mut expected = Vec::new();
    for (i, &len) in sizes.iter().enumerate() {
        let fec = if i % 3 == 0 { 0 } else { 20 };
        let datagrams = link.sealed(i as u32, len, fec);
        link.receive_all(&datagrams);
        expected.push(delivered(i as u32, len, false));
    }
    assert_eq!(link.events(), expected);
    assert_eq!(link.rx.poll_timeout(), None);
    assert_eq!(link.rx.pending_frames(), 0);
    assert_eq!(link.rx.pending_bytes(), 0);
    let stats = link.rx.stats();
    assert_eq!(stats.frames_completed, sizes.len() as u64);
    assert_eq!((stats.frames_recovered, stats.frames_lost), (0, 0));
    // The recovery shards of frames that lost nothing are redundant, not dropped.
    assert!(stats.redundant_shards > 0);
    assert_eq!(stats.datagrams, link.tx.next_sequence());
    assert_eq!(
        stats.dropped_malformed + stats.dropped_bad_tag + stats.dropped_replay,
        0
    );
}

#[test]
fn every_plane_round_trips() {
    for plane in [Plane::Video, Plane::Audio, Plane::Probe] {
        let mut tx = FrameSealer::new(&key(), plane, 400).unwrap();
        let mut rx = Reassembler::new(&key(), plane, ReassemblyConfig::default());
        let mut out = Datagrams::new();
        let now = Instant::now();
        tx.seal_frame(&frame(960, 1), FrameInfo::new(0, 5, false), 50, &mut out)
            .unwrap();
        for d in out.iter() {
            rx.handle_datagram(now, d).unwrap();
        }
        assert!(
            matches!(rx.poll_event(), Some(Event::Frame { index: 0, data, .. }) if data == frame(960, 1))
        );
        // Another plane's datagrams are refused.
        let mut other = Reassembler::new(
            &key(),
            if plane == Plane::Video {
                Plane::Audio
            } else {
                Plane::Video
            },
            ReassemblyConfig::default(),
        );
        assert_eq!(
            other.handle_datagram(now, out.get(0).unwrap()),
            Err(DropReason::Open(OpenError::WrongPlane(plane)))
        );
    }
}

#[test]
fn losing_more_than_the_recovery_shards_reports_the_frame_lost_after_the_wait() {
    let mut link = Link::new();
    let first = link.sealed(0, 5000, 20);
    link.receive_all(&first);
    let lossy = link.sealed(1, 20_000, 20); // 15 data + 3 recovery shards
    assert_eq!(lossy.len(), 18);
    // Lose four data shards: one more than the recovery shards can replace.
    let (kept, lost): (Vec<_>, Vec<_>) = lossy
        .iter()
        .enumerate()
        .partition(|(i, _)| ![2, 5, 7, 11].contains(i));
    link.receive_all(kept.into_iter().map(|(_, d)| d));
    assert_eq!(link.events(), vec![delivered(0, 5000, false)]);
    // Nothing newer yet: the frame waits for its next shard until the stall timeout.
    assert_eq!(link.rx.poll_timeout(), Some(link.now + 100 * MS));

    link.now += 2 * MS;
    let newer_at = link.now;
    let next = link.sealed(2, 3000, 20);
    link.receive_all(&next);
    assert_eq!(link.events(), vec![]);
    assert_eq!(link.rx.poll_timeout(), Some(newer_at + 15 * MS));
    link.wait(15 * MS - Duration::from_nanos(1));
    assert_eq!(link.events(), vec![]);
    link.wait(Duration::from_nanos(1));
    assert_eq!(
        link.events(),
        vec![Event::Lost { first: 1, last: 1 }, delivered(2, 3000, false)]
    );
    assert_eq!(link.rx.poll_timeout(), None);
    // A straggler of the lost frame is stale.
    assert_eq!(link.receive(lost[0].1), Err(DropReason::Stale(1)));
    let stats = link.rx.stats();
    assert_eq!((stats.frames_completed, stats.frames_lost), (2, 1));
    assert_eq!(stats.dropped_stale, 1);
}

#[test]
fn a_stalled_last_frame_is_lost_after_the_stall_timeout() {
    let mut link = Link::new();
    let d = link.sealed(0, 50_000, 10);
    let data = 36;
    link.receive_all(&d[..data - 3]);
    link.now += 10 * MS;
    link.receive(&d[data - 3]).unwrap();
    assert_eq!(link.rx.poll_timeout(), Some(link.now + 100 * MS));
    link.wait(99 * MS);
    assert_eq!(link.events(), vec![]);
    link.wait(MS);
    assert_eq!(link.events(), vec![Event::Lost { first: 0, last: 0 }]);
    assert_eq!(link.rx.pending_bytes(), 0);
}

#[test]
fn a_frame_nothing_arrived_for_is_a_gap_reported_lost() {
    let mut link = Link::new();
    let zero = link.sealed(0, 100, 0);
    link.receive_all(&zero);
    for i in 1..4 {
        link.sealed(i, 4000, 10); // never arrive
    }
    link.now += 5 * MS;
    let four = link.sealed(4, 4000, 10);
    link.receive_all(&four);
    assert_eq!(link.events(), vec![delivered(0, 100, false)]);
    link.wait(15 * MS);
    assert_eq!(
        link.events(),
        vec![Event::Lost { first: 1, last: 3 }, delivered(4, 4000, false)]
    );
    assert_eq!(link.rx.stats().frames_lost, 3);
}

#[test]
fn a_reordered_shard_inside_the_wait_keeps_frames_in_order() {
    let mut link = Link::new();
    let zero = link.sealed(0, 9000, 0);
    let one = link.sealed(1, 9000, 0);
    link.receive_all(&zero[1..]);
    link.receive_all(&one);
    link.wait(14 * MS);
    assert_eq!(link.events(), vec![]);
    link.receive(&zero[0]).unwrap();
    assert_eq!(
        link.events(),
        vec![delivered(0, 9000, false), delivered(1, 9000, false)]
    );
}

#[test]
fn duplicates_are_refused_and_frames_delivered_once() {
    let mut link = Link::new();
    let mut expected = Vec::new();
    for i in 0..3 {
        let d = link.sealed(i, 7000, 25);
        for x in &d {
            assert_eq!(link.receive(x), Ok(()));
            let seq = Header::parse(x).unwrap().sequence();
            assert_eq!(
                link.receive(x),
                Err(DropReason::Open(OpenError::Replay(seq)))
            );
        }
        expected.push(delivered(i, 7000, false));
    }
    assert_eq!(link.events(), expected);
    assert_eq!(link.rx.stats().dropped_replay, link.tx.next_sequence());
}

#[test]
fn shards_of_delivered_frames_are_redundant_or_stale() {
    let mut link = Link::new();
    let zero = link.sealed(0, 3000, 50);
    let one = link.sealed(1, 3000, 50);
    // Frame 0 completes from its data shards; its recovery shards come after frame 1.
    link.receive_all(&zero[..3]);
    link.receive_all(&one[..3]);
    assert_eq!(link.events().len(), 2);
    // Recovery shards of the last delivered frame are fine, of an older one stale.
    assert_eq!(link.receive(&one[3]), Ok(()));
    assert_eq!(link.receive(&zero[3]), Err(DropReason::Stale(0)));
    assert_eq!(link.rx.stats().redundant_shards, 1);
}

#[test]
fn a_four_megabyte_frame_is_one_block_and_survives_its_recovery_budget_of_loss() {
    let mut link = Link::new();
    let len = 4 << 20;
    let d = link.sealed(0, len, 10);
    let layout = Header::parse(&d[0]).unwrap().layout().to_owned();
    assert_eq!(layout.data_shards(), 2979);
    assert_eq!(layout.recovery_shards(), 298);
    assert_eq!(d.len(), 2979 + 298);
    assert!(d.iter().all(|x| x.len() == 1464));
    // Lose 298 shards spread over data and recovery, 250 of them data.
    let lost: Vec<usize> = (0..250)
        .map(|i| i * 11 + 3)
        .chain((0..48).map(|i| 2979 + i * 6))
        .collect();
    for (i, x) in d.iter().enumerate() {
        if !lost.contains(&i) {
            link.receive(x).unwrap();
        }
    }
    assert_eq!(link.events(), vec![delivered(0, len, true)]);
    assert_eq!(link.rx.stats().frames_recovered, 1);

    let d = link.sealed(1, len, 10);
    link.receive_all(&d);
    assert_eq!(link.events(), vec![delivered(1, len, false)]);
}

#[test]
fn warmed_coders_still_code() {
    let mut link = Link::new();
    link.tx.warm_up(200_000, 20).unwrap();
    link.rx
        .warm_up(&FrameLayout::plan(200_000, DEFAULT_SHARD_PAYLOAD, 20).unwrap());
    let d = link.sealed(0, 200_000, 20);
    link.receive_all(d.iter().skip(5));
    assert_eq!(link.events(), vec![delivered(0, 200_000, true)]);
}

#[test]
fn a_header_claiming_a_huge_frame_is_refused_before_allocating() {
    // The largest frame a header can describe: 65 535 shards of 65 534 bytes, about 4.29 GB.
    let layout = FrameLayout::new(FecScheme::None, 4_294_770_690, 65_535, 0, 65_534).unwrap();
    let header = Header::new(Plane::Video, 0, 0, 0, true, layout, Shard::Data(0)).unwrap();
    let mut sealer = Sealer::new(&key(), Plane::Video);
    let mut datagram = Vec::new();
    sealer
        .seal(&header, &vec![0; 65_534], &mut datagram)
        .unwrap();
    let mut rx = Reassembler::new(&key(), Plane::Video, ReassemblyConfig::default());
    assert_eq!(
        rx.handle_datagram(Instant::now(), &datagram),
        Err(DropReason::TooLarge {
            index: 0,
            bytes: 65_535 * 65_534
        })
    );
    assert_eq!((rx.pending_frames(), rx.pending_bytes()), (0, 0));
    assert_eq!(rx.stats().dropped_too_large, 1);

    // Recovery shards count too: 64 MiB of frame is fine, 60 000 recovery shards are not.
    let layout = FrameLayout::new(FecScheme::Leopard16, 2000, 1, 60_000, 2000).unwrap();
    let header = Header::new(Plane::Video, 0, 0, 1, true, layout, Shard::Data(0)).unwrap();
    let mut datagram = Vec::new();
    sealer.seal(&header, &[0; 2000], &mut datagram).unwrap();
    let config = ReassemblyConfig {
        max_frame_bytes: 100_000_000,
        ..ReassemblyConfig::default()
    };
    let mut rx = Reassembler::new(&key(), Plane::Video, config);
    assert!(matches!(
        rx.handle_datagram(Instant::now(), &datagram),
        Err(DropReason::TooLarge { index: 1, .. })
    ));
    assert_eq!(rx.pending_bytes(), 0);
}

#[test]
fn buffered_bytes_and_frames_stay_within_their_limits() {
    let config = ReassemblyConfig {
        max_pending_bytes: 1 << 20,
        max_pending_frames: 3,
        ..ReassemblyConfig::default()
    };
    let mut link = Link::with_config(config);
    // Frames of 400 KB whose last shard never arrives: only two fit in 1 MiB.
    let mut held = Vec::new();
    for i in 0..6 {
        let d = link.sealed(i, 400_000, 0);
        link.receive_all(&d[..d.len() - 1]);
        held.push(d);
        assert!(link.rx.pending_bytes() <= 1 << 20);
        assert!(link.rx.pending_frames() <= 2);
    }
    // Each new frame pushed the oldest out as lost.
    assert_eq!(
        link.events(),
        (0..4)
            .map(|i| Event::Lost { first: i, last: i })
            .collect::<Vec<_>>()
    );
    // Frame 5 completes; frame 4 still holds it back.
    link.receive(held[5].last().unwrap()).unwrap();
    assert_eq!(link.events(), vec![]);
    link.receive(held[4].last().unwrap()).unwrap();
    assert_eq!(
        link.events(),
        vec![delivered(4, 400_000, false), delivered(5, 400_000, false)]
    );

    // Small frames: the frame count is the limit.
    for i in 6..10 {
        let d = link.sealed(i, 3000, 0);
        link.receive(&d[0]).unwrap();
        assert!(link.rx.pending_frames() <= 3);
    }
    assert_eq!(link.events(), vec![Event::Lost { first: 6, last: 6 }]);
}

#[test]
fn an_old_frame_that_does_not_fit_is_dropped() {
    let config = ReassemblyConfig {
        max_pending_frames: 2,
        ..ReassemblyConfig::default()
    };
    let mut link = Link::with_config(config);
    let d0 = link.sealed(0, 3000, 0);
    let d1 = link.sealed(1, 3000, 0);
    let d2 = link.sealed(2, 3000, 0);
    link.receive(&d1[0]).unwrap();
    link.receive(&d2[0]).unwrap();
    assert_eq!(link.receive(&d0[0]), Err(DropReason::Overflow(0)));
    assert_eq!(link.rx.stats().dropped_too_large, 1);
}

#[test]
fn shards_that_disagree_with_their_frame_are_refused() {
    let layout = FrameLayout::plan(3000, 1408, 0).unwrap();
    let mut sealer = Sealer::new(&key(), Plane::Video);
    let mut rx = Reassembler::new(&key(), Plane::Video, ReassemblyConfig::default());
    let now = Instant::now();
    let mut seal = |pts: u64, encode_us: u32, shard: Shard| {
        let h = Header::new(Plane::Video, 0, pts, 3, false, layout, shard)
            .unwrap()
            .with_encode_us(encode_us);
        let mut out = Vec::new();
        sealer
            .seal(&h, &vec![0; layout.shard_bytes() as usize], &mut out)
            .unwrap();
        out
    };
    let a = seal(10, 700, Shard::Data(0));
    let b = seal(11, 700, Shard::Data(1));
    let b2 = seal(10, 701, Shard::Data(1));
    let c = seal(10, 700, Shard::Data(0));
    rx.handle_datagram(now, &a).unwrap();
    // Another presentation time or encode time than the frame's first shard said.
    assert_eq!(
        rx.handle_datagram(now, &b),
        Err(DropReason::Inconsistent(3))
    );
    assert_eq!(
        rx.handle_datagram(now, &b2),
        Err(DropReason::Inconsistent(3))
    );
    // The same shard again under a new sequence number is redundant.
    assert_eq!(rx.handle_datagram(now, &c), Ok(()));
    assert_eq!(rx.stats().redundant_shards, 1);
    assert_eq!(rx.stats().dropped_malformed, 2);
}

#[test]
fn a_datagram_under_another_key_is_refused() {
    let mut link = Link::new();
    let mut other = FrameSealer::new(
        &DataKey::new([3; 16], *key().salt()).unwrap(),
        Plane::Video,
        DEFAULT_SHARD_PAYLOAD,
    )
    .unwrap();
    let mut out = Datagrams::new();
    other
        .seal_frame(&[1; 100], FrameInfo::new(0, 0, false), 0, &mut out)
        .unwrap();
    assert_eq!(
        link.receive(out.get(0).unwrap()),
        Err(DropReason::Open(OpenError::BadTag))
    );
    assert_eq!(link.rx.stats().dropped_bad_tag, 1);
    assert_eq!(link.rx.pending_frames(), 0);
}

/// A frame, its FEC percentage, and a set of lost datagrams no larger than its recovery shards.
fn frame_with_bearable_loss() -> impl Strategy<Value = (usize, u8, Vec<usize>)> {
    (0usize..60_000, 1u8..=100).prop_flat_map(|(len, percent)| {
        let layout = FrameLayout::plan(len, DEFAULT_SHARD_PAYLOAD, percent).unwrap();
        let total = layout.total_shards();
        let budget = layout.recovery_shards() as usize;
        (
            Just(len),
            Just(percent),
            proptest::sample::subsequence((0..total).collect::<Vec<_>>(), 0..=budget),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_loss_up_to_the_recovery_shards_is_recovered(
        (len, percent, lost) in frame_with_bearable_loss(),
        order in any::<u64>(),
    ) {
        let mut link = Link::new();
        let d = link.sealed(0, len, percent);
        let data = FrameLayout::plan(len, DEFAULT_SHARD_PAYLOAD, percent).unwrap().data_shards();
        let mut kept: Vec<&Vec<u8>> =
            d.iter().enumerate().filter(|(i, _)| !lost.contains(i)).map(|(_, x)| x).collect();
        // Reorder with a seeded rotation and swap pattern.
        if !kept.is_empty() {
            let n = kept.len();
            kept.rotate_left((order as usize) % n);
            for i in 0..n {
                kept.swap(i, (order as usize).wrapping_mul(i + 1) % n);
            }
        }
        for x in kept {
            link.receive(x).unwrap();
        }
        let data_lost = lost.iter().any(|&i| i < data as usize);
        let events = link.events();
        prop_assert_eq!(events.len(), 1);
        let Event::Frame { index, data, recovered, .. } = &events[0] else {
            return Err(TestCaseError::fail("frame lost"));
        };
        prop_assert_eq!(*index, 0);
        prop_assert_eq!(data, &frame(len, 0));
        // Recovery shards that overtook data shards may also complete the frame early.
        prop_assert!(*recovered || !data_lost);
    }

    #[test]
    fn frames_reordered_within_and_across_frames_arrive_in_order(
        lens in proptest::collection::vec(0usize..12_000, 1..6),
        seed in any::<u64>(),
    ) {
        let mut link = Link::new();
        let mut all = Vec::new();
        for (i, &len) in lens.iter().enumerate() {
            all.extend(link.sealed(i as u32, len, 20));
        }
        let mut x = seed | 1;
        for i in (1..all.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            all.swap(i, (x % (i as u64 + 1)) as usize);
        }
        for d in &all {
            // Shards trailing their delivered frame are redundant, or stale once a newer frame
            // was delivered too.
            match link.receive(d) {
                Ok(()) | Err(DropReason::Stale(_)) => {}
                Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
            }
        }
        let expected: Vec<Event> = lens
            .iter()
            .enumerate()
            .map(|(i, &len)| delivered(i as u32, len, false))
            .collect();
        let got: Vec<Event> = link
            .events()
            .into_iter()
            .map(|e| match e {
                Event::Frame { index, pts_ns, keyframe, encode_us, data, .. } => {
                    Event::Frame { index, pts_ns, keyframe, encode_us, data, recovered: false }
                }
                lost => lost,
            })
            .collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
        let mut rx = Reassembler::new(&key(), Plane::Video, ReassemblyConfig::default());
        prop_assert!(rx.handle_datagram(Instant::now(), &bytes).is_err());
        prop_assert_eq!(rx.pending_bytes(), 0);
    }

    #[test]
    fn damaged_datagrams_are_refused(
        at in 0usize..(HEADER_LEN + 1000 + TAG_LEN),
        flip in 1u8..=255,
        cut in 0usize..(HEADER_LEN + 1000 + TAG_LEN),
    ) {
        let mut link = Link::new();
        let d = link.sealed(0, 1000, 20);
        let mut damaged = d[0].clone();
        damaged[at] ^= flip;
        prop_assert!(link.receive(&damaged).is_err());
        prop_assert!(link.receive(&d[0][..cut]).is_err());
        prop_assert_eq!(link.rx.pending_bytes(), 0);
        // The genuine datagram still goes through afterwards.
        prop_assert_eq!(link.receive(&d[0]), Ok(()));
    }
}
