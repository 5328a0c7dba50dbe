use super::*;
use crate::test_util::pseudo_random;

/// The kernels this CPU has; notes (once per test binary) each one it lacks, whose tests are
/// skipped.
fn kernels() -> Vec<Kernel> {
    static NOTE: std::sync::Once = std::sync::Once::new();
    NOTE.call_once(|| {
        for k in Kernel::ALL.into_iter().filter(|k| !k.is_available()) {
            println!("note: this CPU lacks the {k:?} FEC kernel; its tests are skipped");
        }
    });
    Kernel::ALL
        .into_iter()
        .filter(|k| k.is_available())
        .collect()
}

/// Parity straight from the definition, one byte at a time with the field's `mul`.
fn reference_parity(rs: &ReedSolomon, data: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let len = data[0].len();
    (0..rs.parity_shards())
        .map(|j| {
            (0..len)
                .map(|k| {
                    data.iter()
                        .enumerate()
                        .fold(0, |acc, (i, d)| acc ^ mul(rs.coefficient(j, i), d[k]))
                })
                .collect()
        })
        .collect()
}

/// Encodes `data` with every kernel, through `encode` and through `encode_strided` at a few
/// strides and offsets, and checks each result against the reference.
fn check_all_kernels(rs: ReedSolomon, data: &[Vec<u8>], seed: u32) {
    let (d, p, len) = (rs.data_shards(), rs.parity_shards(), data[0].len());
    let expected = reference_parity(&rs, data);
    let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    for kernel in kernels() {
        let rs = rs.with_kernel(kernel);
        let what = format!("{kernel:?} d={d} p={p} len={len}");

        let mut parity = vec![pseudo_random(seed ^ 0x55, len); p];
        let mut prefs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
        rs.encode(&refs, &mut prefs).unwrap();
        assert_eq!(parity, expected, "encode, {what}");

        let extra = (seed as usize % 41) + 1;
        for (stride, offset) in [(len, 0), (len + extra, extra), (len + extra, extra / 2)] {
            let mut buf = pseudo_random(seed ^ 0xAA, (d + p) * stride + 3);
            for (i, shard) in data.iter().enumerate() {
                buf[i * stride + offset..][..len].copy_from_slice(shard);
            }
            let before = buf.clone();
            rs.encode_strided(&mut buf, stride, offset, len).unwrap();
            for (k, (&b, &a)) in buf.iter().zip(&before).enumerate() {
                let (slot, at) = (k / stride, k % stride);
                let in_parity = (d..d + p).contains(&slot) && (offset..offset + len).contains(&at);
                if in_parity {
                    assert_eq!(
                        b,
                        expected[slot - d][at - offset],
                        "strided {stride}+{offset}, {what}"
                    );
                } else {
                    assert_eq!(b, a, "byte {k} outside the parity changed, {what}");
                }
            }
        }
    }
}

#[test]
fn every_kernel_matches_the_reference_on_edge_shapes() {
    let shapes = [
        (1usize, 1usize, 1usize),
        (1, 2, 8),
        (1, 7, 32),
        (2, 1, 31),
        (3, 4, 33),
        (4, 5, 47),
        (5, 8, 64),
        (6, 9, 65),
        (8, 3, 95),
        (9, 12, 127),
        (17, 6, 16),
        (11, 1, 15),
        (3, 252, 33),
        (250, 5, 40),
        (100, 20, 100),
        (212, 43, 64),
        // Around the 64-byte vectors and the eight-row passes of the AVX-512 kernels.
        (7, 13, 63),
        (9, 15, 129),
        (30, 8, 191),
        (5, 17, 64),
        (2, 23, 200),
        (40, 7, 130),
        (12, 14, 1408),
    ];
    for (n, &(d, p, len)) in shapes.iter().enumerate() {
        let data: Vec<Vec<u8>> = (0..d)
            .map(|i| pseudo_random((n * 1000 + i) as u32, len))
            .collect();
        check_all_kernels(ReedSolomon::video(d, p).unwrap(), &data, n as u32);
    }
}

#[test]
fn every_kernel_matches_the_reference_on_random_shapes() {
    let dims = pseudo_random(0xFEC, 3 * 30);
    for (n, c) in dims.chunks(3).enumerate() {
        let d = 1 + c[0] as usize % 48;
        let p = 1 + c[1] as usize % 24;
        let len = 1 + (c[2] as usize * 7 + n) % 300;
        let data: Vec<Vec<u8>> = (0..d)
            .map(|i| pseudo_random((n * 7919 + i) as u32, len))
            .collect();
        check_all_kernels(ReedSolomon::video(d, p).unwrap(), &data, n as u32 + 17);
    }
}

#[test]
fn every_kernel_matches_the_reference_on_the_audio_code() {
    for len in (1..=160).chain([255, 256, 1400]) {
        let data: Vec<Vec<u8>> = (0..4)
            .map(|i| pseudo_random(len as u32 * 4 + i, len))
            .collect();
        check_all_kernels(ReedSolomon::audio(), &data, len as u32);
    }
}

/// Parity that nanors (the clients' Reed-Solomon library) computed for the same data shards.
#[test]
fn matches_parity_computed_by_nanors() {
    let shard = |i: usize, len: usize| -> Vec<u8> {
        (0..len)
            .map(|k| ((7 * i + 13 * k + 1) * (k + 3)) as u8)
            .collect()
    };
    let hex = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|k| u8::from_str_radix(&s[k..k + 2], 16).unwrap())
            .collect()
    };
    let cases: [(ReedSolomon, usize, &[&str]); 3] = [
        (
            ReedSolomon::video(5, 3).unwrap(),
            40,
            &[
                "de4ed6a32aeb9938b0a2d074414a0da0977fdd090b84946c6df90051\
                 85e6938f42a865a8ff723ab8",
                "9b45a97b8bb46de4f17ff4e4288d1afabf1c2cc0ff39b7002eed9c81\
                 b1796b32733cd93188f828ee",
                "d497f16c694d11a7aaf13499cfdb395bf971165f0a65e83f00e5183e\
                 51485065a0df87d9624c7792",
            ],
        ),
        (
            ReedSolomon::audio(),
            20,
            &[
                "3a17b34aae9b5985161c8144deaf2eea0e5ca0b2",
                "910d0f4f590dc971131fe0b25913d2d2ff5018ad",
            ],
        ),
        (
            ReedSolomon::video(1, 2).unwrap(),
            8,
            &["8f1ccd78b708ed4c", "01e37d50dafbb683"],
        ),
    ];
    for (rs, len, expected) in cases {
        let data: Vec<Vec<u8>> = (0..rs.data_shards()).map(|i| shard(i, len)).collect();
        let expected: Vec<Vec<u8>> = expected.iter().map(|s| hex(s)).collect();
        assert_eq!(reference_parity(&rs, &data), expected);
        check_all_kernels(rs, &data, len as u32);
    }
}

#[test]
fn field_basics() {
    assert_eq!(mul(2, 0x80), 0x1D);
    assert_eq!(inv(2), Some(0x8E));
    assert_eq!(inv(0), None);
    for a in 1..=255u8 {
        assert_eq!(mul(a, inv(a).unwrap()), 1);
    }
}

#[test]
fn cauchy_matrix_matches_reference_rows() {
    let rs = ReedSolomon::video(4, 2).unwrap();
    let rows: Vec<Vec<u8>> = (0..2)
        .map(|j| (0..4).map(|i| rs.coefficient(j, i)).collect())
        .collect();
    assert_eq!(rows[0], [0x8e, 0xf4, 0x47, 0xa7]);
    assert_eq!(rows[1], [0xf4, 0x8e, 0xa7, 0x47]);
}

#[test]
fn single_data_shard_is_scaled_not_copied() {
    let rs = ReedSolomon::video(1, 2).unwrap();
    let data = [1u8, 2, 3];
    let mut p0 = [0u8; 3];
    let mut p1 = [0u8; 3];
    rs.encode(&[&data], &mut [&mut p0, &mut p1]).unwrap();
    let c0 = inv(2).unwrap();
    let c1 = inv(3).unwrap();
    assert_eq!(p0, [mul(c0, 1), mul(c0, 2), mul(c0, 3)]);
    assert_eq!(p1, [mul(c1, 1), mul(c1, 2), mul(c1, 3)]);
}

/// The audio table is the systematic Vandermonde code over the points 0, 1, 2, 4, 8, 16.
#[test]
fn audio_matrix_is_systematic_vandermonde() {
    let points = [0u8, 1, 2, 4, 8, 16];
    let pow = |x: u8, e: usize| (0..e).fold(1u8, |acc, _| mul(acc, x));
    let v: Vec<u8> = points
        .iter()
        .flat_map(|&x| (0..4).map(move |e| pow(x, e)))
        .collect::<Vec<_>>();
    let mut top = v[..16].to_vec();
    let top_inv = invert(&mut top, 4).unwrap();
    let mut rows = Vec::new();
    for r in 4..6 {
        for c in 0..4 {
            let mut acc = 0;
            for k in 0..4 {
                acc ^= mul(v[r * 4 + k], top_inv[k * 4 + c]);
            }
            rows.push(acc);
        }
    }
    assert_eq!(rows, AUDIO_MATRIX);
}

#[test]
fn kernels_agree() {
    for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 100, 1408, 4099] {
        let src = pseudo_random(len as u32, len);
        let base = pseudo_random(len as u32 + 7, len);
        for c in [0u8, 1, 2, 0x1D, 0x8E, 0xFF] {
            let mut expected = base.clone();
            for (d, &s) in expected.iter_mut().zip(&src) {
                *d ^= mul(c, s);
            }
            for kernel in kernels() {
                let mut dst = base.clone();
                mul_add_slice(kernel, c, &src, &mut dst);
                assert_eq!(dst, expected, "kernel {kernel:?} c {c:#x} len {len}");
            }
        }
    }
}

#[test]
fn every_kernel_multiplies_every_byte_by_every_coefficient() {
    // All 256 byte values, then a tail that is not a whole vector of any kernel.
    let src: Vec<u8> = (0..=255u8).chain(0..37).collect();
    let base = pseudo_random(0xC0EF, src.len());
    for kernel in kernels() {
        for c in 0..=255u8 {
            let mut dst = base.clone();
            mul_add_slice(kernel, c, &src, &mut dst);
            for (k, (&d, (&b, &s))) in dst.iter().zip(base.iter().zip(&src)).enumerate() {
                assert_eq!(d, b ^ mul(c, s), "kernel {kernel:?} c {c:#x} byte {k}");
            }
        }
    }
}

#[test]
fn kernels_agree_on_random_coefficients_and_lengths() {
    let cases = pseudo_random(0x5EED, 3 * 200);
    for (n, case) in cases.chunks(3).enumerate() {
        let c = case[0];
        let len = (usize::from(case[1]) << 2 | usize::from(case[2]) & 3) % 700;
        let src = pseudo_random(n as u32, len);
        let base = pseudo_random(n as u32 + 1000, len);
        let expected: Vec<u8> = base
            .iter()
            .zip(&src)
            .map(|(&b, &s)| b ^ mul(c, s))
            .collect();
        for kernel in kernels() {
            let mut dst = base.clone();
            mul_add_slice(kernel, c, &src, &mut dst);
            assert_eq!(dst, expected, "kernel {kernel:?} c {c:#x} len {len}");
        }
    }
}

/// `gf2p8affineqb` as Intel defines it, for one byte: bit `b` of the result is the parity of
/// `x AND matrix.byte[7 - b]` (the instruction's constant term is 0 here).
fn affine_byte(matrix: u64, x: u8) -> u8 {
    (0..8).fold(0, |acc, b| {
        let row = (matrix >> (8 * (7 - b))) as u8;
        acc | (((row & x).count_ones() & 1) as u8) << b
    })
}

#[test]
fn affine_matrices_multiply_like_the_field() {
    // The identity matrix of Intel's documentation.
    assert_eq!(affine_matrix(1), 0x0102_0408_1020_4080);
    for c in 0..=255u8 {
        let m = affine_matrix(c);
        for x in 0..=255u8 {
            assert_eq!(affine_byte(m, x), mul(c, x), "c {c:#x} x {x:#x}");
        }
    }
}

#[test]
fn detect_picks_the_first_kernel_the_cpu_has() {
    let detected = Kernel::detect();
    assert!(detected.is_available());
    assert_eq!(Some(detected), kernels().first().copied());
    for kernel in Kernel::ALL {
        for len in [1, 15, 16, 31, 32, 63, 64, 65] {
            let k = kernel.usable(len);
            assert!(k.is_available(), "{kernel:?} at {len} bytes runs {k:?}");
            assert!(
                k == Kernel::Scalar || k.width() <= len,
                "{kernel:?} at {len} runs {k:?}"
            );
        }
    }
}

#[test]
fn encode_kernels_agree_and_strided_matches() {
    let (d, p, len) = (20, 5, 1408);
    let data: Vec<Vec<u8>> = (0..d).map(|i| pseudo_random(i as u32, len)).collect();
    let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    let mut results = Vec::new();
    for kernel in kernels() {
        let rs = ReedSolomon::video(d, p).unwrap().with_kernel(kernel);
        let mut parity = vec![vec![0u8; len]; p];
        let mut prefs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
        rs.encode(&refs, &mut prefs).unwrap();
        results.push(parity);
    }
    assert!(results.windows(2).all(|w| w[0] == w[1]));

    let stride = len + 40;
    let mut buf = vec![0xAAu8; (d + p) * stride];
    for (i, shard) in data.iter().enumerate() {
        buf[i * stride + 8..][..len].copy_from_slice(shard);
    }
    ReedSolomon::video(d, p)
        .unwrap()
        .encode_strided(&mut buf, stride, 8, len)
        .unwrap();
    for j in 0..p {
        assert_eq!(
            &buf[(d + j) * stride + 8..][..len],
            results[0][j].as_slice()
        );
        assert_eq!(buf[(d + j) * stride], 0xAA, "bytes outside the shard stay");
    }
}

#[test]
fn reconstructs_lost_data_shards() {
    for (d, p) in [(1usize, 2usize), (4, 2), (10, 3), (212, 43), (100, 155)] {
        let rs = ReedSolomon::video(d, p).unwrap();
        let len = 64;
        let data: Vec<Vec<u8>> = (0..d).map(|i| pseudo_random(i as u32 * 31, len)).collect();
        let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let mut parity = vec![vec![0u8; len]; p];
        {
            let mut prefs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
            rs.encode(&refs, &mut prefs).unwrap();
        }
        // Lose the first min(p, d) data shards.
        let lost = p.min(d);
        let mut shards: Vec<Vec<u8>> = data.iter().chain(parity.iter()).cloned().collect();
        let mut present = vec![true; d + p];
        for k in 0..lost {
            shards[k].fill(0);
            present[k] = false;
        }
        let mut srefs: Vec<&mut [u8]> = shards.iter_mut().map(Vec::as_mut_slice).collect();
        rs.reconstruct(&mut srefs, &present).unwrap();
        for k in 0..d {
            assert_eq!(shards[k], data[k], "d={d} p={p} shard {k}");
        }
    }
}

#[test]
fn audio_reconstructs_two_losses() {
    let rs = ReedSolomon::audio();
    let data: Vec<Vec<u8>> = (0..4).map(|i| pseudo_random(i, 120)).collect();
    let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    let mut parity = vec![vec![0u8; 120]; 2];
    {
        let mut prefs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
        rs.encode(&refs, &mut prefs).unwrap();
    }
    // Each parity byte is the documented row applied to the data bytes.
    for k in 0..120 {
        let expect = (0..4).fold(0, |acc, i| acc ^ mul(AUDIO_MATRIX[i], data[i][k]));
        assert_eq!(parity[0][k], expect);
    }
    let mut shards: Vec<Vec<u8>> = data.iter().chain(parity.iter()).cloned().collect();
    shards[1].fill(0);
    shards[3].fill(0);
    let present = [true, false, true, false, true, true];
    let mut srefs: Vec<&mut [u8]> = shards.iter_mut().map(Vec::as_mut_slice).collect();
    rs.reconstruct(&mut srefs, &present).unwrap();
    assert_eq!(shards[1], data[1]);
    assert_eq!(shards[3], data[3]);
    let mut srefs: Vec<&mut [u8]> = shards.iter_mut().map(Vec::as_mut_slice).collect();
    assert_eq!(
        rs.reconstruct(&mut srefs, &[false, false, false, true, true, true]),
        Err(FecError::TooFewShards {
            present: 3,
            needed: 4
        })
    );
}

#[test]
fn rejects_bad_shard_counts() {
    assert!(ReedSolomon::video(0, 2).is_err());
    assert!(ReedSolomon::video(212, 44).is_err());
    assert!(ReedSolomon::video(212, 43).is_ok());
}
