//! Sweeps datagram loss over GameStream's GF(2^8) FEC blocks and punktfunk/1's GF(2^16) frames,
//! and prints how many frames each scheme delivers per loss rate.
//!
//! ```text
//! cargo run --release -p punktfunk-abi --bin loss-harness -- [--seed N] [--frames N]
//!     [--sizes 100000,500000,2000000] [--fec 10,20]
//! ```
//!
//! Both schemes run through the sans-I/O cores, as a receiver would see them:
//!
//! - **GF(2^8)**: `protocol::video::VideoPacketizer` (1392-byte packets, at least 2 parity packets
//!   per block) cuts each frame into at most four blocks of at most 255 packets; a frame too large
//!   for four FEC blocks goes out without FEC, as the reference host does. The receiver groups
//!   the datagrams that arrived by their `fecInfo`, rebuilds missing data packets with
//!   `protocol::fec::ReedSolomon::reconstruct` and checks the frame is byte-identical.
//! - **GF(2^16)**: `protocol::native::FrameSealer` (1408-byte shards) seals each frame as one block;
//!   `protocol::native::Reassembler` opens, recovers and delivers it on a fake clock at 60 frames
//!   a second, and the bytes are compared with what was sent.
//!
//! Loss models act on the stream of datagrams of all frames in sending order: random loss with a
//! seeded generator (reproducible with `--seed`), every k-th datagram, and bursts of n datagrams
//! at a fixed period. Each scheme sees the same model from the same seed.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use protocol::fec::ReedSolomon;
use protocol::native::{
    DataKey, Event, FrameInfo, FrameLayout, FrameSealer, Plane, Protection, Reassembler,
    ReassemblyConfig,
};
use protocol::video::{
    client_parity_count, FecPlan, FrameType, VideoConfig, VideoDatagrams, VideoPacketizer,
};

const GAMESTREAM_PACKET_SIZE: usize = 1392;
const NATIVE_SHARD_PAYLOAD: u16 = 1408;

fn main() {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loss-harness: {e}");
            eprintln!(
                "usage: loss-harness [--seed N] [--frames N] [--sizes B,B,..] [--fec P,P,..]"
            );
            std::process::exit(2);
        }
    };
    print!("{}", report(&args, &default_models()));
}

/// A loss model over the datagram stream.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Model {
    /// Each datagram lost with this probability, independently.
    Random(f64),
    /// Every k-th datagram lost.
    EveryKth(u64),
    /// `len` consecutive datagrams lost at the start of every `period` datagrams.
    Burst { len: u64, period: u64 },
}

impl Model {
    fn label(&self) -> String {
        match self {
            Model::Random(p) => format!("random {:.0} %", p * 100.0),
            Model::EveryKth(k) => format!("every {k}th"),
            Model::Burst { len, period } => format!("burst {len} per {period}"),
        }
    }

    /// The share of datagrams it loses in the long run, in parts per million: what the host's
    /// loss control measures from the client's reports.
    fn loss_ppm(&self) -> u32 {
        let rate = match *self {
            Model::Random(p) => p,
            Model::EveryKth(k) => 1.0 / k.max(1) as f64,
            Model::Burst { len, period } => len.min(period) as f64 / period.max(1) as f64,
        };
        (rate * 1e6).round() as u32
    }
}

/// Decides, datagram by datagram, what the model loses.
struct Loss {
    model: Model,
    rng: SplitMix,
    /// Datagrams seen so far.
    n: u64,
}

impl Loss {
    fn new(model: Model, seed: u64) -> Self {
        Self {
            model,
            rng: SplitMix(seed),
            n: 0,
        }
    }

    fn drops(&mut self) -> bool {
        let i = self.n;
        self.n += 1;
        match self.model {
            Model::Random(p) => self.rng.unit() < p,
            Model::EveryKth(k) => (i + 1) % k == 0,
            Model::Burst { len, period } => i % period < len,
        }
    }
}

/// SplitMix64: small, seedable, and the same on every platform and version.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Frames delivered by one scheme under one model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tally {
    frames: usize,
    /// Delivered byte-identical (with or without recovery).
    complete: usize,
    /// Of those, the ones that needed FEC.
    recovered: usize,
}

/// The content of frame `index`: pseudo-random, so nothing compresses or repeats.
fn frame_bytes(len: usize, seed: u64, index: u32) -> Vec<u8> {
    let mut rng = SplitMix(seed ^ (u64::from(index) << 32) ^ len as u64);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next().to_le_bytes());
    }
    v.truncate(len);
    v
}

/// GameStream video with GF(2^8) FEC blocks.
fn run_gf8(size: usize, fec: u8, model: Model, frames: usize, seed: u64) -> Tally {
    let config = VideoConfig {
        packet_size: GAMESTREAM_PACKET_SIZE,
        fec_percent: fec,
        min_required_fec_packets: 2,
        encryption_key: None,
    };
    // The configuration is in range: packet size 1392, no key.
    let mut packetizer = VideoPacketizer::new(config).expect("valid video config");
    let mut out = VideoDatagrams::new();
    let mut loss = Loss::new(model, seed);
    let mut tally = Tally {
        frames,
        ..Tally::default()
    };
    for f in 0..frames {
        let frame = frame_bytes(size, seed, f as u32);
        if packetizer
            .packetize(&frame, FrameType::P, 0, f as u32 * 1500, &mut out)
            .is_err()
        {
            // Beyond four blocks of 1023 packets: the host cannot send it at all.
            continue;
        }
        let arrived: Vec<&[u8]> = out.iter().filter(|_| !loss.drops()).collect();
        if let Some((bytes, recovered)) = gamestream_receive(&arrived) {
            if bytes == frame {
                tally.complete += 1;
                tally.recovered += usize::from(recovered);
            }
        }
    }
    tally
}

/// Rebuilds a GameStream frame from the (unencrypted) datagrams that arrived, as a client does:
/// blocks from `fecInfo` and `multiFecBlocks`, missing data packets from parity. Returns the
/// frame and whether FEC was needed, or `None` when it cannot be rebuilt.
fn gamestream_receive(arrived: &[&[u8]]) -> Option<(Vec<u8>, bool)> {
    struct Block {
        data: usize,
        parity: usize,
        shards: Vec<Option<Vec<u8>>>,
    }
    let b = arrived.first()?.len();
    let chunk = b - 32;
    let mut blocks: Vec<Option<Block>> = Vec::new();
    let mut block_count = 0;
    for p in arrived {
        let mfb = p[27];
        let (bi, last) = (((mfb >> 4) & 3) as usize, ((mfb >> 6) & 3) as usize);
        block_count = last + 1;
        let fec_info = u32::from_le_bytes([p[28], p[29], p[30], p[31]]);
        let data = (fec_info >> 22) as usize;
        let idx = ((fec_info >> 12) & 0x3FF) as usize;
        let parity = client_parity_count(data, ((fec_info >> 4) & 0xFF) as u8);
        if blocks.len() <= bi {
            blocks.resize_with(bi + 1, || None);
        }
        let block = blocks[bi].get_or_insert_with(|| Block {
            data,
            parity,
            shards: vec![None; data + parity],
        });
        *block.shards.get_mut(idx)? = Some(p.to_vec());
    }
    if blocks.len() != block_count {
        return None;
    }
    let mut stream = Vec::new();
    let mut recovered = false;
    for block in blocks {
        // A block nothing arrived for cannot be rebuilt.
        let mut block = block?;
        let present: Vec<bool> = block.shards.iter().map(Option::is_some).collect();
        if present[..block.data].iter().any(|p| !p) {
            if present.iter().filter(|&&p| p).count() < block.data {
                return None;
            }
            let rs = ReedSolomon::video(block.data, block.parity).ok()?;
            let mut bufs: Vec<Vec<u8>> = block
                .shards
                .iter_mut()
                .map(|s| s.take().unwrap_or_else(|| vec![0; b]))
                .collect();
            let mut refs: Vec<&mut [u8]> = bufs.iter_mut().map(Vec::as_mut_slice).collect();
            rs.reconstruct(&mut refs, &present).ok()?;
            block.shards = bufs.into_iter().map(Some).collect();
            recovered = true;
        }
        for shard in block.shards.iter().take(block.data) {
            stream.extend_from_slice(&shard.as_ref()?[32..32 + chunk]);
        }
    }
    // The 8-byte frame header: type, latency, frame type, length of the last packet's payload.
    let last_len = u16::from_le_bytes([*stream.get(4)?, *stream.get(5)?]) as usize;
    let packets = stream.len() / chunk;
    let end = (packets - 1) * chunk + last_len;
    Some((stream.get(8..end)?.to_vec(), recovered))
}

/// punktfunk/1 with one GF(2^16) block per frame, through the sealer and the reassembler.
fn run_gf16(size: usize, fec: Protection, model: Model, frames: usize, seed: u64) -> Tally {
    // A fixed non-zero key: the harness measures FEC, not key handling.
    let key = DataKey::new([0x5A; 16], [1, 2, 3, 4]).expect("non-zero key");
    let mut sealer =
        FrameSealer::new(&key, Plane::Video, NATIVE_SHARD_PAYLOAD).expect("valid shard payload");
    let mut reassembler = Reassembler::new(&key, Plane::Video, ReassemblyConfig::default());
    let mut out = protocol::native::Datagrams::new();
    let mut loss = Loss::new(model, seed);
    let mut tally = Tally {
        frames,
        ..Tally::default()
    };
    let start = Instant::now();
    let frame_time = Duration::from_micros(16_667);
    let check = |reassembler: &mut Reassembler, tally: &mut Tally| {
        while let Some(event) = reassembler.poll_event() {
            if let Event::Frame {
                index,
                data,
                recovered,
                ..
            } = event
            {
                if data == frame_bytes(size, seed, index) {
                    tally.complete += 1;
                    tally.recovered += usize::from(recovered);
                }
            }
        }
    };
    for f in 0..frames {
        let now = start + frame_time * f as u32;
        let frame = frame_bytes(size, seed, f as u32);
        if sealer
            .seal_frame(&frame, FrameInfo::new(f as u32, 0, false), fec, &mut out)
            .is_err()
        {
            continue;
        }
        for d in out.iter() {
            if !loss.drops() {
                // Drops of a lost frame's late shards are expected; the tally counts frames.
                let _ = reassembler.handle_datagram(now, d);
            }
        }
        reassembler.handle_timeout(now);
        check(&mut reassembler, &mut tally);
    }
    reassembler.handle_timeout(start + frame_time * frames as u32 + Duration::from_secs(1));
    check(&mut reassembler, &mut tally);
    tally
}

/// The loss models of the sweep.
fn default_models() -> Vec<Model> {
    let mut models: Vec<Model> = [
        0.0, 0.01, 0.02, 0.03, 0.05, 0.07, 0.10, 0.15, 0.20, 0.25, 0.30,
    ]
    .into_iter()
    .map(Model::Random)
    .collect();
    models.extend([
        Model::EveryKth(50),
        Model::EveryKth(20),
        Model::EveryKth(10),
    ]);
    models.extend([
        Model::Burst {
            len: 8,
            period: 200,
        },
        Model::Burst {
            len: 32,
            period: 1000,
        },
        Model::Burst {
            len: 64,
            period: 1000,
        },
    ]);
    models
}

/// How each scheme lays out a frame, for the table's heading.
fn layouts(size: usize, fec: u8) -> (String, String) {
    let chunk = GAMESTREAM_PACKET_SIZE - 16;
    let n = (8 + size).div_ceil(chunk);
    let gf8 = match FecPlan::new(n, fec, 2) {
        Ok(plan) => plan
            .blocks()
            .iter()
            .map(|b| format!("{}+{}", b.data, b.parity))
            .collect::<Vec<_>>()
            .join(", "),
        Err(_) => "too large".into(),
    };
    let gf16 = match FrameLayout::plan(size, NATIVE_SHARD_PAYLOAD, fec) {
        Ok(l) => format!("{}+{}", l.data_shards(), l.recovery_shards()),
        Err(_) => "too large".into(),
    };
    (gf8, gf16)
}

/// Runs the sweep and renders it as Markdown tables.
fn report(args: &Args, models: &[Model]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "seed {}, {} frames per cell; cells: frames delivered byte-identical (of which recovered \
         by FEC)\n",
        args.seed, args.frames
    );
    for &size in &args.sizes {
        for &fec in &args.fec {
            let (gf8, gf16) = layouts(size, fec);
            let _ = writeln!(
                s,
                "### {} KB frames, FEC {fec} %\n\nGF(2^8) blocks (data+parity): {gf8}; GF(2^16) \
                 block: {gf16}\n",
                size / 1000
            );
            let _ = writeln!(
                s,
                "| loss | GF(2^8) GameStream | GF(2^16) punktfunk/1 | GF(2^16), recovery sized \
                 for the loss rate |"
            );
            let _ = writeln!(s, "|---|---:|---:|---:|");
            for &model in models {
                let a = run_gf8(size, fec, model, args.frames, args.seed);
                let b = run_gf16(size, fec.into(), model, args.frames, args.seed);
                let sized = Protection {
                    percent: fec,
                    loss_ppm: model.loss_ppm(),
                };
                let c = run_gf16(size, sized, model, args.frames, args.seed);
                let _ = writeln!(
                    s,
                    "| {} | {}/{} ({}) | {}/{} ({}) | {}/{} ({}, {} recovery shards) |",
                    model.label(),
                    a.complete,
                    a.frames,
                    a.recovered,
                    b.complete,
                    b.frames,
                    b.recovered,
                    c.complete,
                    c.frames,
                    c.recovered,
                    FrameLayout::plan(size, NATIVE_SHARD_PAYLOAD, sized)
                        .map_or(0, |l| l.recovery_shards())
                );
            }
            let _ = writeln!(s);
        }
    }
    s
}

#[derive(Debug, Clone)]
struct Args {
    seed: u64,
    frames: usize,
    sizes: Vec<usize>,
    fec: Vec<u8>,
}

impl Args {
    fn parse(mut it: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut a = Args {
            seed: 1,
            frames: 30,
            sizes: vec![100_000, 500_000, 2_000_000],
            fec: vec![10, 20],
        };
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let bad = |_| format!("bad value {value:?} for {flag}");
            match flag.as_str() {
                "--seed" => a.seed = value.parse().map_err(bad)?,
                "--frames" => a.frames = value.parse().map_err(bad)?,
                "--sizes" => {
                    a.sizes = value
                        .split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()
                        .map_err(bad)?
                }
                "--fec" => {
                    a.fec = value
                        .split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()
                        .map_err(bad)?
                }
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_loss_every_frame_arrives_whole() {
        for size in [1, 100_000, 2_000_000] {
            let model = Model::Random(0.0);
            let want = Tally {
                frames: 3,
                complete: 3,
                recovered: 0,
            };
            assert_eq!(
                run_gf8(size, 10, model, 3, 7),
                want,
                "GF(2^8), {size} bytes"
            );
            assert_eq!(
                run_gf16(size, 10.into(), model, 3, 7),
                want,
                "GF(2^16), {size} bytes"
            );
        }
    }

    #[test]
    fn loss_within_a_block_budget_is_recovered_by_both() {
        // 100 KB at 20 %: one GF(2^8) block of 73+15 and a GF(2^16) block of 72+15; one
        // datagram in 20 is lost, 4 or 5 per frame.
        let model = Model::EveryKth(20);
        let a = run_gf8(100_000, 20, model, 4, 3);
        let b = run_gf16(100_000, 20.into(), model, 4, 3);
        assert_eq!((a.complete, a.recovered), (4, 4));
        assert_eq!((b.complete, b.recovered), (4, 4));
    }

    #[test]
    fn a_large_frame_survives_random_loss_only_as_one_gf16_block() {
        // 2 MB at 10 % FEC: too large for four GF(2^8) blocks with parity, so GameStream sends it
        // without FEC and 5 % loss takes every frame; one GF(2^16) block of 1421+143 shards
        // absorbs the ~78 losses of each frame.
        let model = Model::Random(0.05);
        for seed in [1, 2] {
            let a = run_gf8(2_000_000, 10, model, 3, seed);
            let b = run_gf16(2_000_000, 10.into(), model, 3, seed);
            assert_eq!(a.complete, 0, "seed {seed}: {a:?}");
            assert_eq!((b.complete, b.recovered), (3, 3), "seed {seed}: {b:?}");
        }
    }

    #[test]
    fn random_loss_is_reproducible_from_the_seed() {
        let mut a = Loss::new(Model::Random(0.1), 42);
        let mut b = Loss::new(Model::Random(0.1), 42);
        let da: Vec<bool> = (0..1000).map(|_| a.drops()).collect();
        let db: Vec<bool> = (0..1000).map(|_| b.drops()).collect();
        assert_eq!(da, db);
        let lost = da.iter().filter(|&&d| d).count();
        assert!((60..140).contains(&lost), "{lost} of 1000 at 10 %");
    }

    #[test]
    fn arguments_parse() {
        let args = ["--seed", "9", "--sizes", "1000,2000", "--fec", "5"];
        let a = Args::parse(args.iter().map(|s| s.to_string())).unwrap();
        assert_eq!((a.seed, a.sizes, a.fec), (9, vec![1000, 2000], vec![5]));
        assert!(Args::parse(["--bogus", "1"].iter().map(|s| s.to_string())).is_err());
    }
}
