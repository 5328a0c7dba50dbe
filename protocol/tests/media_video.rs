//! Video packetizer against a receiver that applies the stock client's checks
//! (moonlight-common-c `RtpvAddPacket`, `reconstructFrame`, `processRtpPayload`).

use openssl::symm::{decrypt_aead, Cipher};
use proptest::prelude::*;
use protocol::fec::ReedSolomon;
use protocol::video::{FrameType, VideoConfig, VideoDatagrams, VideoPacketizer};

const KEY: [u8; 16] = *b"0123456789abcdef";

/// What the receiver learned from one frame.
#[derive(Debug)]
struct Received {
    frame: Vec<u8>,
    frame_type: u8,
    latency: u16,
    /// (D, P, pct) per block, P from the client's formula.
    blocks: Vec<(usize, usize, u8)>,
    /// Datagrams seen per block.
    seen: Vec<usize>,
}

/// A receiver holding the state the client keeps between frames.
struct Receiver {
    packet_size: usize,
    key: Option<[u8; 16]>,
    next_frame: u32,
    next_seq: Option<u16>,
}

impl Receiver {
    fn new(cfg: &VideoConfig) -> Self {
        Self {
            packet_size: cfg.packet_size,
            key: cfg.encryption_key,
            next_frame: 1,
            next_seq: None,
        }
    }

    /// Takes the datagrams that arrived for one frame (in sending order, some possibly dropped)
    /// plus the number that were sent, and rebuilds the frame.
    fn receive(&mut self, datagrams: &[Vec<u8>], sent: usize) -> Result<Received, String> {
        let b = self.packet_size + 16;
        let c = self.packet_size - 16;
        let mut plain = Vec::new();
        for d in datagrams {
            let p = match self.key {
                Some(key) => {
                    if d.len() != 32 + b {
                        return Err(format!("encrypted length {}", d.len()));
                    }
                    let frame_number = u32::from_le_bytes(d[12..16].try_into().unwrap());
                    if frame_number != self.next_frame {
                        return Err("prefix frame number".into());
                    }
                    if d[11] != b'V' {
                        return Err("iv tag".into());
                    }
                    decrypt_aead(
                        Cipher::aes_128_gcm(),
                        &key,
                        Some(&d[..12]),
                        &[],
                        &d[32..],
                        &d[16..32],
                    )
                    .map_err(|e| format!("decrypt: {e}"))?
                }
                None => d.clone(),
            };
            if p.len() != b {
                return Err(format!("datagram length {}", p.len()));
            }
            plain.push(p);
        }

        // Per-packet header checks, grouping into blocks.
        let mut blocks: Vec<(usize, usize, u8, u16)> = Vec::new(); // D, P, pct, first seq
        let mut shards: Vec<Vec<Option<Vec<u8>>>> = Vec::new();
        let mut last_block_index = None;
        let mut block_count = None;
        let mut timestamp = None;
        for p in &plain {
            if p[0] != 0x90 {
                return Err("rtp byte 0".into());
            }
            let seq = u16::from_be_bytes([p[2], p[3]]);
            let ts = u32::from_be_bytes(p[4..8].try_into().unwrap());
            if *timestamp.get_or_insert(ts) != ts {
                return Err("timestamp differs".into());
            }
            let frame_index = u32::from_le_bytes(p[20..24].try_into().unwrap());
            if frame_index != self.next_frame {
                return Err(format!("frame index {frame_index}"));
            }
            let fec_info = u32::from_le_bytes(p[28..32].try_into().unwrap());
            if fec_info & 0xF != 0 {
                return Err("fecInfo low bits".into());
            }
            let d = (fec_info >> 22) as usize;
            let idx = ((fec_info >> 12) & 0x3FF) as usize;
            let pct = ((fec_info >> 4) & 0xFF) as u8;
            // The client's own formula, kept independent of the host's helper.
            #[allow(clippy::manual_div_ceil)]
            let parity = (d * pct as usize + 99) / 100;
            if d == 0 || idx >= d + parity || (parity > 0 && d + parity > 255) {
                return Err(format!("fecInfo D={d} idx={idx} P={parity}"));
            }
            let mfb = p[27];
            if mfb & 0x0F != 0 {
                return Err("multiFecBlocks low bits".into());
            }
            let (bi, last) = (((mfb >> 4) & 3) as usize, ((mfb >> 6) & 3) as usize);
            if *block_count.get_or_insert(last) != last {
                return Err("block count differs".into());
            }
            let first_seq = seq.wrapping_sub(idx as u16);
            match last_block_index {
                Some(prev) if bi == prev => {
                    let (bd, bp, bpct, bseq) = blocks[bi];
                    if (bd, bp, bpct, bseq) != (d, parity, pct, first_seq) {
                        return Err("block fields differ".into());
                    }
                }
                _ => {
                    if bi != blocks.len() {
                        return Err(format!("block {bi} out of order"));
                    }
                    blocks.push((d, parity, pct, first_seq));
                    shards.push(vec![None; d + parity]);
                    last_block_index = Some(bi);
                }
            }
            if idx < d {
                check_data_header(p, idx, d, seq)?;
            }
            shards[bi][idx] = Some(p.clone());
        }
        if block_count.map(|l| l + 1) != Some(blocks.len()) {
            return Err("missing blocks".into());
        }
        let expected: usize = blocks.iter().map(|(d, p, ..)| d + p).sum();
        if expected != sent {
            return Err(format!(
                "client expects {expected} datagrams, host sent {sent}"
            ));
        }
        let seen = shards.iter().map(|s| s.iter().flatten().count()).collect();

        // Sequence numbers: blocks are contiguous and continue the previous frame.
        let mut seq = blocks[0].3;
        if let Some(next) = self.next_seq {
            if next != seq {
                return Err(format!("sequence gap {next} -> {seq}"));
            }
        }
        for (d, p, _, first) in &blocks {
            if *first != seq {
                return Err("blocks not contiguous".into());
            }
            seq = seq.wrapping_add((d + p) as u16);
        }
        self.next_seq = Some(seq);

        // FEC recovery, then the sanity checks the client applies to recovered packets.
        let mut stream = Vec::new();
        for (bi, (d, p, ..)) in blocks.iter().enumerate() {
            let (d, p) = (*d, *p);
            let present: Vec<bool> = shards[bi].iter().map(Option::is_some).collect();
            let mut bufs: Vec<Vec<u8>> = shards[bi]
                .iter()
                .map(|s| s.clone().unwrap_or_else(|| vec![0; b]))
                .collect();
            if present[..d].iter().any(|x| !x) {
                let rs = ReedSolomon::video(d, p).map_err(|e| e.to_string())?;
                let mut refs: Vec<&mut [u8]> = bufs.iter_mut().map(Vec::as_mut_slice).collect();
                rs.reconstruct(&mut refs, &present)
                    .map_err(|e| e.to_string())?;
                for i in (0..d).filter(|&i| !present[i]) {
                    let seq = blocks[bi].3.wrapping_add(i as u16);
                    check_data_header(&bufs[i], i, d, seq)?;
                }
            }
            for shard in &bufs[..d] {
                stream.extend_from_slice(&shard[32..32 + c]);
            }
        }

        // The 8-byte frame header.
        if stream[0] != 0x01 {
            return Err("frame header type".into());
        }
        let latency = u16::from_le_bytes([stream[1], stream[2]]);
        let frame_type = stream[3];
        if ![1, 2, 4, 5].contains(&frame_type) {
            return Err("frame type".into());
        }
        let last_len = u16::from_le_bytes([stream[4], stream[5]]) as usize;
        if last_len == 0 || last_len > c {
            return Err("lastPayloadLen".into());
        }
        let n = stream.len() / c;
        let end = (n - 1) * c + last_len;
        if stream[end..].iter().any(|&x| x != 0) {
            return Err("padding not zero".into());
        }
        self.next_frame += 1;
        Ok(Received {
            frame: stream[8..end].to_vec(),
            frame_type,
            latency,
            blocks: blocks.iter().map(|(d, p, pct, _)| (*d, *p, *pct)).collect(),
            seen,
        })
    }
}

/// The checks on a data packet's NV header (also applied to recovered packets).
fn check_data_header(p: &[u8], idx: usize, d: usize, seq: u16) -> Result<(), String> {
    let flags = p[24];
    let mut want = 0x01;
    if idx == 0 {
        want |= 0x04;
    }
    if idx + 1 == d {
        want |= 0x02;
    }
    if flags != want {
        return Err(format!("flags {flags:#x} at shard {idx} of {d}"));
    }
    if p[26] != 0x10 {
        return Err("multiFecFlags".into());
    }
    let spi = u32::from_le_bytes(p[16..20].try_into().unwrap());
    if spi & 0xFF != 0 || (spi >> 8) as u16 != seq {
        return Err(format!("streamPacketIndex {spi:#x} for seq {seq}"));
    }
    Ok(())
}

fn frame_bytes(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9) | 1;
    let mut v: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    // A start code up front, as an encoder would emit; content does not matter to the packetizer.
    if len >= 4 {
        v[..4].copy_from_slice(&[0, 0, 0, 1]);
    }
    v
}

fn collect(out: &VideoDatagrams) -> Vec<Vec<u8>> {
    out.iter().map(<[u8]>::to_vec).collect()
}

fn run_frames(cfg: VideoConfig, sizes: &[usize], drop: impl Fn(usize, usize) -> Vec<usize>) {
    let mut pk = VideoPacketizer::new(cfg.clone()).unwrap();
    let mut rx = Receiver::new(&cfg);
    let mut out = VideoDatagrams::new();
    for (f, &len) in sizes.iter().enumerate() {
        let frame = frame_bytes(len, f as u32 + 1);
        let info = pk
            .packetize(&frame, FrameType::P, 1234, 90 * f as u32, &mut out)
            .unwrap();
        assert_eq!(info.frame_index, f as u32 + 1);
        assert_eq!(out.len() * out.datagram_len(), out.as_bytes().len());
        let mut datagrams = collect(&out);
        let sent = datagrams.len();
        // Drop the chosen packets of each block.
        let mut keep = vec![true; sent];
        let mut base = 0;
        for blk in info.plan.blocks() {
            for k in drop(blk.data, blk.parity) {
                keep[base + k] = false;
            }
            base += blk.data + blk.parity;
        }
        let mut k = 0;
        datagrams.retain(|_| {
            k += 1;
            keep[k - 1]
        });
        let got = rx
            .receive(&datagrams, sent)
            .unwrap_or_else(|e| panic!("frame {f} len {len}: {e}"));
        assert_eq!(got.frame, frame, "frame {f} len {len}");
        assert_eq!(got.frame_type, 1);
        assert_eq!(got.latency, 12);
    }
    assert_eq!(pk.next_frame_index(), sizes.len() as u32 + 1);
}

const SIZES: &[usize] = &[
    0, 1, 7, 8, 1367, 1368, 1369, 5000, 100_000, 291_000, 400_000, 1_200_000,
];

#[test]
fn frames_arrive_whole_without_loss() {
    run_frames(VideoConfig::default(), SIZES, |_, _| vec![]);
}

#[test]
fn frames_recover_from_losing_first_data_packets() {
    run_frames(VideoConfig::default(), SIZES, |d, p| {
        (0..p.min(d)).collect()
    });
}

#[test]
fn frames_recover_from_scattered_losses() {
    // Drop every other packet from the start of the block until P are gone.
    run_frames(VideoConfig::default(), SIZES, |d, p| {
        (0..d + p).step_by(2).take(p).collect()
    });
}

#[test]
fn encrypted_frames_decrypt_and_recover() {
    let cfg = VideoConfig {
        packet_size: 1392 - 32,
        encryption_key: Some(KEY),
        ..Default::default()
    };
    run_frames(cfg.clone(), SIZES, |_, _| vec![]);
    run_frames(cfg, SIZES, |d, p| {
        (d.saturating_sub(1)..d + p).take(p).collect()
    });
}

#[test]
fn encrypted_datagrams_use_counter_nonces() {
    let cfg = VideoConfig {
        encryption_key: Some(KEY),
        ..Default::default()
    };
    let mut pk = VideoPacketizer::new(cfg).unwrap();
    let mut out = VideoDatagrams::new();
    pk.packetize(&[0, 0, 1, 0x65], FrameType::Idr, 0, 0, &mut out)
        .unwrap();
    let n = out.len() as u64;
    pk.packetize(&[0, 0, 1, 0x41], FrameType::P, 0, 1500, &mut out)
        .unwrap();
    let first = out.get(0).unwrap();
    assert_eq!(&first[..8], &n.to_le_bytes());
    assert_eq!(&first[8..12], &[0, 0, 0, b'V']);
    assert_eq!(&first[12..16], &2u32.to_le_bytes());
    assert_eq!(first.len(), 1392 + 16 + 32);
}

#[test]
fn small_frame_has_minimum_parity_and_frame_header() {
    let mut pk = VideoPacketizer::new(VideoConfig::default()).unwrap();
    let mut out = VideoDatagrams::new();
    let info = pk
        .packetize(
            &[0, 0, 0, 1, 0x65, 0x88],
            FrameType::Idr,
            1_000_049,
            4500,
            &mut out,
        )
        .unwrap();
    assert_eq!(info.plan.blocks().len(), 1);
    assert_eq!(out.len(), 3, "one data packet plus two parity");
    let p = out.get(0).unwrap();
    assert_eq!(&p[..4], &[0x90, 0x00, 0x00, 0x00]);
    assert_eq!(&p[4..8], &4500u32.to_be_bytes());
    assert_eq!(p[24], 0x07, "PIC_DATA | EOF | SOF");
    assert_eq!(
        &p[32..40],
        &[0x01, 0x10, 0x27, 0x02, 14, 0, 0, 0],
        "latency 10000 x 0.1 ms, IDR"
    );
    assert_eq!(&p[40..46], &[0, 0, 0, 1, 0x65, 0x88]);
    let seqs: Vec<u16> = out
        .iter()
        .map(|d| u16::from_be_bytes([d[2], d[3]]))
        .collect();
    assert_eq!(seqs, [0, 1, 2]);
    pk.packetize(
        &[0, 0, 1, 0x41],
        FrameType::AfterRefInvalidation,
        0,
        0,
        &mut out,
    )
    .unwrap();
    assert_eq!(
        u16::from_be_bytes([out.get(0).unwrap()[2], out.get(0).unwrap()[3]]),
        3
    );
    assert_eq!(out.get(0).unwrap()[35], 5);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// For any frame size and FEC setting the client derives exactly the parity count the host
    /// sends, blocks stay within the code's limits, and the frame survives losing P per block.
    #[test]
    fn client_parity_formula_matches_what_is_sent(
        len in 0usize..700_000,
        packet_units in 2usize..90,
        fec_percent in 0u8..=255,
        min_required in 0u8..=12,
    ) {
        let cfg = VideoConfig {
            packet_size: packet_units * 16,
            fec_percent,
            min_required_fec_packets: min_required,
            encryption_key: None,
        };
        let mut pk = VideoPacketizer::new(cfg.clone()).unwrap();
        let mut out = VideoDatagrams::new();
        let frame = frame_bytes(len, len as u32);
        let info = match pk.packetize(&frame, FrameType::P, 0, 0, &mut out) {
            Ok(info) => info,
            Err(_) => {
                // Only frames beyond four blocks of 1023 packets may be refused.
                prop_assert!((len + 8).div_ceil(cfg.packet_size - 16) > 4 * 1023);
                return Ok(());
            }
        };
        let mut rx = Receiver::new(&cfg);
        let all = collect(&out);
        let got = rx.receive(&all, all.len()).map_err(TestCaseError::fail)?;
        prop_assert_eq!(&got.frame, &frame);
        for (blk, (d, p, pct)) in info.plan.blocks().iter().zip(&got.blocks) {
            prop_assert_eq!((blk.data, blk.parity, blk.percent), (*d, *p, *pct));
            if fec_percent > 0 && *p > 0 {
                prop_assert!(d + p <= 255);
                // The minimum is met unless the 8-bit percentage cannot express it.
                prop_assert!(*p >= min_required as usize || *pct == 255);
            }
        }
        prop_assert_eq!(got.seen.iter().sum::<usize>(), out.len());

        // Lose the first P packets of every block: recovery must still succeed.
        let mut kept = Vec::new();
        let mut base = 0;
        for blk in info.plan.blocks() {
            let total = blk.data + blk.parity;
            kept.extend_from_slice(&all[base + blk.parity..base + total]);
            base += total;
        }
        let mut rx = Receiver::new(&cfg);
        let got = rx.receive(&kept, out.len()).map_err(TestCaseError::fail)?;
        prop_assert_eq!(&got.frame, &frame);
    }
}
