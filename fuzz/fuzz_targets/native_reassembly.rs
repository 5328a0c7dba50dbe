//! punktfunk/1 data plane, receiving side: sealed frames cut into shards, delivered with any
//! loss, reordering, duplication and delay, mixed with forged and tampered datagrams. Every
//! frame handed out is exactly the frame that was sealed, frames come out in index order, and
//! buffered memory stays within its bounds.
#![no_main]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use protocol::native::{
    DataKey, Datagrams, Event, FrameInfo, FrameSealer, Plane, Reassembler, ReassemblyConfig,
};
use punktfunk_fuzz::Choices;

fn frame_bytes(index: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(31)
                .wrapping_add(index.wrapping_mul(131)) as u8
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let mut c = Choices::new(data);
    let key = DataKey::new([0x42; 16], [1, 2, 3, 4]).expect("key");
    let shard = (2 + c.u16() % 1024) & !1;
    let Ok(mut sealer) = FrameSealer::new(&key, Plane::Video, shard) else {
        return;
    };
    let config = ReassemblyConfig {
        max_frame_bytes: 1 << 20,
        max_pending_frames: 1 + c.u8() as usize % 16,
        max_pending_bytes: 1 << 22,
        ..ReassemblyConfig::default()
    };
    let mut rx = Reassembler::new(&key, Plane::Video, config.clone());
    let start = Instant::now();
    let mut now = start;
    let mut sent: HashMap<u32, Vec<u8>> = HashMap::new();
    let mut next_index = 0u32;
    let mut last_out: Option<u32> = None;
    let mut out = Datagrams::new();
    let mut held: Vec<Vec<u8>> = Vec::new();

    for _ in 0..32 {
        if c.is_empty() {
            break;
        }
        match c.u8() % 6 {
            // A frame, some of its datagrams lost, the rest in order or backwards.
            0 | 1 => {
                // Up to 128 data shards a frame.
                let len = c.u16() as usize % (128 * shard as usize + 1);
                let frame = frame_bytes(next_index, len);
                let fec = c.u8() % 101;
                let keyframe = c.bool();
                if sealer
                    .seal_frame(
                        &frame,
                        FrameInfo::new(next_index, 1000 * next_index as u64, keyframe),
                        fec,
                        &mut out,
                    )
                    .is_err()
                {
                    continue;
                }
                sent.insert(next_index, frame);
                next_index = next_index.wrapping_add(1);
                let loss = c.u8();
                let backwards = c.bool();
                let mut order: Vec<usize> = (0..out.len()).collect();
                if backwards {
                    order.reverse();
                }
                for (n, i) in order.into_iter().enumerate() {
                    if loss != 0 && (n as u8).wrapping_mul(37) % 255 < loss / 2 {
                        continue;
                    }
                    let d = out.get(i).expect("datagram").to_vec();
                    if (n as u8) % 7 == loss % 7 {
                        held.push(d.clone());
                    }
                    let _ = rx.handle_datagram(now, &d);
                }
            }
            // Late and duplicate datagrams.
            2 => {
                for d in held.drain(..) {
                    let _ = rx.handle_datagram(now, &d);
                }
            }
            // A forged datagram, or a real one with one byte changed: never accepted.
            3 => {
                let mut d = match held.last() {
                    Some(d) if c.bool() => d.clone(),
                    _ => c.short_bytes().to_vec(),
                };
                if !d.is_empty() {
                    let at = c.u16() as usize % d.len();
                    d[at] ^= 1 + c.u8() % 255;
                    assert!(
                        rx.handle_datagram(now, &d).is_err(),
                        "a changed datagram was taken"
                    );
                }
            }
            // Time passes.
            _ => {
                now += Duration::from_millis(c.u8() as u64);
                rx.handle_timeout(now);
            }
        }
        assert!(rx.pending_bytes() <= config.max_pending_bytes);
        assert!(rx.pending_frames() <= config.max_pending_frames);
        while let Some(event) = rx.poll_event() {
            let (first, last) = match event {
                Event::Frame { index, data, .. } => {
                    assert_eq!(
                        Some(&data),
                        sent.get(&index),
                        "frame {index} came out changed"
                    );
                    (index, index)
                }
                Event::Lost { first, last } => (first, last),
            };
            assert!(first <= last);
            if let Some(prev) = last_out {
                assert!(first > prev, "frame {first} came out after {prev}");
            }
            last_out = Some(last);
        }
    }
});
