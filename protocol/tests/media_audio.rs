//! Audio packetizer: RTP layout, FEC blocks and their recovery, AES-CBC.

use openssl::symm::{decrypt, Cipher};
use protocol::audio::{AudioConfig, AudioDatagrams, AudioEncryption, AudioError, AudioPacketizer};
use protocol::fec::ReedSolomon;

const KEY: [u8; 16] = *b"fedcba9876543210";

fn opus(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| (i * 31 + k * 7) as u8).collect()
}

/// Packetizes `count` packets of `len` bytes and returns every datagram in sending order.
fn run(config: AudioConfig, count: usize, len: usize) -> Vec<Vec<u8>> {
    let mut pk = AudioPacketizer::new(config).unwrap();
    let mut out = AudioDatagrams::new();
    let mut all = Vec::new();
    for i in 0..count {
        pk.packetize(&opus(i, len), &mut out).unwrap();
        all.extend(out.iter().map(<[u8]>::to_vec));
    }
    all
}

const PLAIN: AudioConfig = AudioConfig {
    packet_duration_ms: 5,
    encryption: None,
};

#[test]
fn data_packets_have_ms_timestamps_and_fec_follows_every_fourth() {
    let all = run(PLAIN, 8, 100);
    assert_eq!(all.len(), 8 + 4);
    let first = &all[0];
    assert_eq!(&first[..12], &[0x80, 97, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&first[12..], opus(0, 100).as_slice());
    // Data packets at positions 0-3 and 6-9, FEC at 4, 5, 10, 11.
    for (pos, seq) in [(0, 0u16), (1, 1), (2, 2), (3, 3), (6, 4), (9, 7)] {
        let p = &all[pos];
        assert_eq!(p[1], 97);
        assert_eq!(u16::from_be_bytes([p[2], p[3]]), seq);
        assert_eq!(
            u32::from_be_bytes(p[4..8].try_into().unwrap()),
            5 * seq as u32
        );
    }
    let fec = &all[10];
    assert_eq!(fec.len(), 24 + 100);
    assert_eq!(
        &fec[..24],
        &[
            0x80, 127, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, // RTP: seq = last data seq + 1
            0, 97, 0, 4, 0, 0, 0, 20, 0, 0, 0, 0, // shard 0, PT 97, base seq 4, base ts 20
        ]
    );
    assert_eq!(all[11][12], 1);
    assert_eq!(u16::from_be_bytes([all[11][2], all[11][3]]), 9);
}

/// Rebuilds lost data packets of block 0 the way the client does and compares them.
#[test]
fn lost_packets_are_recovered_from_fec() {
    let all = run(PLAIN, 4, 120);
    for lost in [[0usize, 1], [1, 3], [2, 2], [0, 3]] {
        let mut shards: Vec<Vec<u8>> = (0..4).map(|i| all[i][12..].to_vec()).collect();
        shards.push(all[4][24..].to_vec());
        shards.push(all[5][24..].to_vec());
        let mut present = [true; 6];
        for &l in &lost {
            present[l] = false;
            shards[l].fill(0);
        }
        let mut refs: Vec<&mut [u8]> = shards.iter_mut().map(Vec::as_mut_slice).collect();
        ReedSolomon::audio()
            .reconstruct(&mut refs, &present)
            .unwrap();
        for &l in &lost {
            let fec = &all[4];
            let base_seq = u16::from_be_bytes([fec[14], fec[15]]);
            let base_ts = u32::from_be_bytes(fec[16..20].try_into().unwrap());
            let mut rebuilt = vec![0x80, fec[13]];
            rebuilt.extend_from_slice(&(base_seq + l as u16).to_be_bytes());
            rebuilt.extend_from_slice(&(base_ts + 5 * l as u32).to_be_bytes());
            rebuilt.extend_from_slice(&fec[20..24]);
            rebuilt.extend_from_slice(&shards[l]);
            assert_eq!(rebuilt, all[l], "lost {lost:?}");
        }
    }
}

#[test]
fn encrypted_payloads_decrypt_with_sequence_iv() {
    // A negative rikeyid from the launch query, so the IV addition wraps.
    let rikeyid = -2i32 as u32;
    let cfg = AudioConfig {
        packet_duration_ms: 10,
        encryption: Some(AudioEncryption { key: KEY, rikeyid }),
    };
    let all = run(cfg, 6, 77);
    let data: Vec<&Vec<u8>> = all.iter().filter(|p| p[1] == 97).collect();
    assert_eq!(data.len(), 6);
    for (i, p) in data.iter().enumerate() {
        assert_eq!(p.len(), 12 + 80, "PKCS#7 pads 77 bytes to 80");
        assert_eq!(
            u32::from_be_bytes(p[4..8].try_into().unwrap()),
            10 * i as u32
        );
        let mut iv = [0u8; 16];
        iv[..4].copy_from_slice(&rikeyid.wrapping_add(i as u32).to_be_bytes());
        let plain = decrypt(Cipher::aes_128_cbc(), &KEY, Some(&iv), &p[12..]).unwrap();
        assert_eq!(plain, opus(i, 77));
    }
    // FEC covers the ciphertexts.
    let fec: Vec<&Vec<u8>> = all.iter().filter(|p| p[1] == 127).collect();
    assert_eq!(fec.len(), 2);
    let mut shards: Vec<Vec<u8>> = data[..4].iter().map(|p| p[12..].to_vec()).collect();
    shards.extend(fec.iter().map(|p| p[24..].to_vec()));
    shards[2].fill(0);
    let mut refs: Vec<&mut [u8]> = shards.iter_mut().map(Vec::as_mut_slice).collect();
    ReedSolomon::audio()
        .reconstruct(&mut refs, &[true, true, false, true, true, true])
        .unwrap();
    assert_eq!(shards[2], &data[2][12..]);
}

#[test]
fn block_with_mixed_lengths_gets_no_fec() {
    let mut pk = AudioPacketizer::new(PLAIN).unwrap();
    let mut out = AudioDatagrams::new();
    for len in [50, 50, 51, 50] {
        pk.packetize(&opus(0, len), &mut out).unwrap();
    }
    assert_eq!(out.len(), 1);
    for _ in 0..4 {
        pk.packetize(&opus(0, 50), &mut out).unwrap();
    }
    assert_eq!(out.len(), 3);
}

#[test]
fn oversized_packets_are_refused_without_consuming_a_sequence_number() {
    let mut pk = AudioPacketizer::new(PLAIN).unwrap();
    let mut out = AudioDatagrams::new();
    assert!(matches!(
        pk.packetize(&[0; 1389], &mut out),
        Err(AudioError::TooLarge(1389))
    ));
    assert_eq!(pk.next_sequence(), 0);
    pk.packetize(&[0; 1388], &mut out).unwrap();
    assert_eq!(out.get(0).unwrap().len(), 1400);
    assert_eq!(pk.next_sequence(), 1);
    assert_eq!(pk.next_timestamp(), 5);
}

#[test]
fn sequence_wraps_on_a_block_boundary() {
    let all = run(PLAIN, 65_540, 8);
    let data: Vec<&Vec<u8>> = all.iter().filter(|p| p[1] == 97).collect();
    assert_eq!(u16::from_be_bytes([data[65_536][2], data[65_536][3]]), 0);
    let last_fec = all.last().unwrap();
    assert_eq!(u16::from_be_bytes([last_fec[14], last_fec[15]]), 0);
}
