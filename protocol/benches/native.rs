//! Hot paths of the punktfunk/1 data plane: sealing a frame into datagrams and reassembling it.
//!
//! Run with `cargo bench -p protocol --bench native`.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use protocol::native::{
    DataKey, Datagrams, FrameSealer, Plane, Reassembler, ReassemblyConfig, DEFAULT_SHARD_PAYLOAD,
};

fn key() -> DataKey {
    DataKey::new([0x5a; 16], [1, 2, 3, 4]).unwrap()
}

fn frame(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 7) as u8).collect()
}

/// Frame sizes and FEC percentages: a 1 MiB frame (1 Gbit/s at 120 fps) without and with FEC,
/// and a 4 MiB keyframe.
const SIZES: [(usize, u8); 3] = [(1 << 20, 0), (1 << 20, 20), (4 << 20, 10)];

fn seal(c: &mut Criterion) {
    let mut group = c.benchmark_group("native_seal_frame");
    for (len, fec) in SIZES {
        let data = frame(len);
        let mut sealer = FrameSealer::new(&key(), Plane::Video, DEFAULT_SHARD_PAYLOAD).unwrap();
        sealer.warm_up(len, fec).unwrap();
        let mut out = Datagrams::new();
        group.throughput(Throughput::Bytes(len as u64));
        let mut index = 0u32;
        group.bench_function(
            BenchmarkId::from_parameter(format!("{len}B_fec{fec}")),
            |b| {
                b.iter(|| {
                    sealer
                        .seal_frame(black_box(&data), index, 0, false, fec, &mut out)
                        .unwrap();
                    index += 1;
                })
            },
        );
    }
    group.finish();
}

fn reassemble(c: &mut Criterion) {
    let mut group = c.benchmark_group("native_reassemble");
    group.sample_size(20);
    for (len, fec) in SIZES {
        // Lose no datagram, or one in 50 (2 %).
        for (lose_every, loss_percent) in [(0usize, 0), (50, 2)] {
            let data = frame(len);
            group.throughput(Throughput::Bytes(len as u64));
            let name = format!("{len}B_fec{fec}_loss{loss_percent}");
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter_custom(|iters| {
                    // Only the receiving side is timed; each frame is sealed just before.
                    let mut sealer =
                        FrameSealer::new(&key(), Plane::Video, DEFAULT_SHARD_PAYLOAD).unwrap();
                    let mut rx =
                        Reassembler::new(&key(), Plane::Video, ReassemblyConfig::default());
                    let mut out = Datagrams::new();
                    let now = Instant::now();
                    let mut spent = std::time::Duration::ZERO;
                    for i in 0..iters {
                        sealer
                            .seal_frame(&data, i as u32, 0, false, fec, &mut out)
                            .unwrap();
                        let start = Instant::now();
                        for (j, d) in out.iter().enumerate() {
                            if lose_every > 0 && j % lose_every == 3 {
                                continue;
                            }
                            let _ = rx.handle_datagram(now, d);
                        }
                        while let Some(e) = rx.poll_event() {
                            black_box(e);
                        }
                        spent += start.elapsed();
                    }
                    spent
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, seal, reassemble);
criterion_main!(benches);
