//! Hot paths of the media plane: FEC kernels and whole-frame video packetizing.
//!
//! Run with `cargo bench -p protocol --bench media`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use protocol::fec::{Kernel, ReedSolomon};
use protocol::video::{FrameType, VideoConfig, VideoDatagrams, VideoPacketizer};

fn fec_encode(c: &mut Criterion) {
    // The largest block of the default settings: 212 data + 43 parity shards of 1408 bytes.
    let (d, p, len) = (212usize, 43usize, 1408usize);
    let data: Vec<Vec<u8>> = (0..d).map(|i| vec![i as u8; len]).collect();
    let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    let mut parity = vec![vec![0u8; len]; p];
    let mut group = c.benchmark_group("fec_encode_212_43_1408");
    group.throughput(Throughput::Bytes((d * len) as u64));
    for kernel in Kernel::ALL {
        if !kernel.is_available() {
            continue;
        }
        let rs = ReedSolomon::video(d, p).unwrap().with_kernel(kernel);
        group.bench_function(BenchmarkId::from_parameter(format!("{kernel:?}")), |b| {
            b.iter(|| {
                let mut prefs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
                rs.encode(black_box(&refs), &mut prefs).unwrap();
            })
        });
    }
    // The way the video packetizer calls it: shards in one buffer, one per datagram slot.
    let stride = len + 32;
    let mut buf = vec![0u8; (d + p) * stride];
    for (i, slot) in buf.chunks_mut(stride).take(d).enumerate() {
        slot.fill(i as u8);
    }
    let rs = ReedSolomon::video(d, p).unwrap();
    group.bench_function(
        BenchmarkId::from_parameter(format!("{:?}_strided", Kernel::detect())),
        |b| {
            b.iter(|| {
                rs.encode_strided(black_box(&mut buf), stride, 16, len)
                    .unwrap()
            })
        },
    );
    group.finish();

    // The audio code: four data and two parity shards of 128 bytes.
    let mut group = c.benchmark_group("fec_encode_audio_4_2_128");
    group.throughput(Throughput::Bytes(4 * 128));
    let data: Vec<Vec<u8>> = (0..4).map(|i| vec![i as u8 * 37; 128]).collect();
    let mut parity = [[0u8; 128]; 2];
    for kernel in Kernel::ALL {
        if !kernel.is_available() {
            continue;
        }
        let rs = ReedSolomon::audio().with_kernel(kernel);
        group.bench_function(BenchmarkId::from_parameter(format!("{kernel:?}")), |b| {
            b.iter(|| {
                let refs = [&data[0][..], &data[1][..], &data[2][..], &data[3][..]];
                let (p0, p1) = parity.split_at_mut(1);
                rs.encode(black_box(&refs), &mut [&mut p0[0][..], &mut p1[0][..]])
                    .unwrap();
            })
        });
    }
    group.finish();
}

fn packetize(c: &mut Criterion) {
    let mut group = c.benchmark_group("video_packetize");
    for (name, size, key) in [
        ("p_frame_30k", 30_000usize, None),
        ("idr_250k", 250_000, None),
        ("idr_250k_aes_gcm", 250_000, Some([7u8; 16])),
    ] {
        let frame = vec![0x5Au8; size];
        let config = VideoConfig {
            encryption_key: key,
            ..VideoConfig::default()
        };
        let mut pk = VideoPacketizer::new(config).unwrap();
        let mut out = VideoDatagrams::new();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                pk.packetize(black_box(&frame), FrameType::P, 0, 0, &mut out)
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, fec_encode, packetize);
criterion_main!(benches);
