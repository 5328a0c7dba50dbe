//! Hot paths of the punktfunk/1 data plane: sealing a frame into datagrams and reassembling it.
//!
//! Run with `cargo bench -p protocol --bench native`; `native_peers` times the bare
//! Reed-Solomon encode and the bare AES-GCM seals of the same frames, the two parts sealing is
//! made of.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use protocol::native::{
    DataKey, Datagrams, FrameInfo, FrameSealer, Plane, Reassembler, ReassemblyConfig,
    DEFAULT_SHARD_PAYLOAD,
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
                        .seal_frame(
                            black_box(&data),
                            FrameInfo::new(index, 0, false),
                            fec,
                            &mut out,
                        )
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
                            .seal_frame(&data, FrameInfo::new(i as u32, 0, false), fec, &mut out)
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

/// The peers of `native_seal_frame` on the same frames: the bare Reed-Solomon encode of its
/// shards (the coder reused, as the sealer reuses it) and bare AES-128-GCM over its datagrams
/// (one seal per shard with a 40-byte header as AAD), nothing else: `ring`'s, which the sealer
/// uses, and the `aes-gcm` crate's, which it used before.
/// One AES-GCM seal of a payload under a nonce; returns a tag byte to keep it alive.
type SealFn<'a> = dyn Fn([u8; 12], &mut [u8]) -> u8 + 'a;

fn peers(c: &mut Criterion) {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    use aes_gcm::{Aes128Gcm, Nonce};
    use reed_solomon_simd::ReedSolomonEncoder;
    use ring::aead::{Aad, LessSafeKey, UnboundKey, AES_128_GCM};

    let mut group = c.benchmark_group("native_peers");
    for (len, fec) in SIZES {
        let shard = DEFAULT_SHARD_PAYLOAD as usize;
        let data = frame(len.div_ceil(shard) * shard);
        let shards = data.len() / shard;
        let recovery = protocol::native::fec::recovery_count(shards, fec);
        group.throughput(Throughput::Bytes(len as u64));
        if recovery > 0 {
            let mut rs = ReedSolomonEncoder::new(shards, recovery, shard).unwrap();
            group.bench_function(
                BenchmarkId::from_parameter(format!("{len}B_fec{fec}_reed_solomon_simd")),
                |b| {
                    b.iter(|| {
                        rs.reset(shards, recovery, shard).unwrap();
                        for chunk in data.chunks_exact(shard) {
                            rs.add_original_shard(chunk).unwrap();
                        }
                        black_box(rs.encode().unwrap().recovery_iter().count());
                    })
                },
            );
        }
        let cipher = Aes128Gcm::new(&[0x5a; 16].into());
        let mut buf = data.clone();
        buf.extend(vec![0u8; recovery * shard]);
        let header = [7u8; 40];
        let ring_key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[0x5a; 16]).unwrap());
        let ring_seal = |nonce: [u8; 12], payload: &mut [u8]| {
            let tag = ring_key
                .seal_in_place_separate_tag(
                    ring::aead::Nonce::assume_unique_for_key(nonce),
                    Aad::from(&header),
                    payload,
                )
                .unwrap();
            tag.as_ref()[0]
        };
        let crate_seal = |nonce: [u8; 12], payload: &mut [u8]| {
            let tag = cipher
                .encrypt_in_place_detached(Nonce::from_slice(&nonce), &header, payload)
                .unwrap();
            tag[0]
        };
        let seals: [(&str, &SealFn<'_>); 2] =
            [("ring_aes_gcm", &ring_seal), ("aes_gcm_crate", &crate_seal)];
        for (name, seal) in seals {
            group.bench_function(
                BenchmarkId::from_parameter(format!("{len}B_fec{fec}_{name}")),
                |b| {
                    let mut seq = 0u64;
                    b.iter(|| {
                        for payload in buf.chunks_exact_mut(shard) {
                            let mut nonce = [0u8; 12];
                            nonce[4..].copy_from_slice(&seq.to_le_bytes());
                            seq += 1;
                            black_box(seal(nonce, payload));
                        }
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, seal, peers, reassemble);
criterion_main!(benches);
