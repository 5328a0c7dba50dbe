//! FEC encode throughput of [`protocol::fec::ReedSolomon`], optionally next to nanors, the
//! Reed-Solomon library Moonlight clients decode with, on the same shards.
//!
//! ```text
//! cargo run --release -p protocol --example fec_throughput -- \
//!     --data 212 --parity 43 --len 1408 [--audio] [--input SHARDS] [--parity-out FILE] \
//!     [--nanors path/to/libmoonlight-common-c.so] [--rounds 31] [--round-ms 20] [--kernel avx2]
//! ```
//!
//! `--kernel` runs our side with one kernel (`gfni`, `gfniavx2`, `avx512`, `avx2`, `ssse3` or
//! `scalar`, see [`protocol::fec::Kernel`]) instead of the one [`Kernel::detect`] picks, so one
//! machine can time the paths of CPUs with fewer features; it fails if the CPU lacks it.
//! `--input` holds the data shards back to back (`data * len` bytes); without it the shards are
//! pseudo-random. `--audio` uses the fixed 4 + 2 audio code instead of the video (Cauchy) code.
//! `--parity-out` receives the parity shards back to back, so a script can check them against
//! another implementation.
//!
//! nanors is only ever loaded at run time with `dlopen` from the path given (the benchmark
//! script finds it in the test-only Python client package); nothing here links against it. The
//! client library exports nanors' functions as pointers that `reed_solomon_init` fills in. For
//! the audio code the parity rows of nanors' 4 + 2 matrix are replaced by the audio matrix, as
//! the client does.
//!
//! Each round times `k` back-to-back block encodes of one implementation, then of the other
//! (the order alternates between rounds), with `k` picked so a round takes about `--round-ms`.
//! Our side is timed the way the packetizers call it (see `ours_encode`). One JSON object on
//! stdout: medians and p99 over rounds of the per-block wall time, MB/s of data shards
//! (1 MB = 10^6 bytes), the median per-block CPU time of the thread (which leaves out the time
//! the thread waited for a core on a loaded machine), the same-run ratios ours / nanors, and
//! whether nanors' parity was byte-identical to ours.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::hint::black_box;
use std::time::{Duration, Instant};

use protocol::fec::{Kernel, ReedSolomon, AUDIO_MATRIX};

/// Start of shard `k` in the arena: shards are 64-byte aligned for both implementations.
struct Arena {
    buf: Vec<u8>,
    base: usize,
    stride: usize,
    len: usize,
    total: usize,
}

impl Arena {
    fn new(total: usize, len: usize) -> Self {
        let stride = len.div_ceil(64) * 64;
        let buf = vec![0u8; total * stride + 64];
        let base = buf.as_ptr().align_offset(64);
        Self {
            buf,
            base,
            stride,
            len,
            total,
        }
    }

    fn shard(&self, k: usize) -> &[u8] {
        &self.buf[self.base + k * self.stride..][..self.len]
    }

    fn shard_mut(&mut self, k: usize) -> &mut [u8] {
        &mut self.buf[self.base + k * self.stride..][..self.len]
    }

    fn pointers(&mut self) -> Vec<*mut u8> {
        let base = self.buf.as_mut_ptr();
        (0..self.total)
            // SAFETY: every offset is inside `buf` (see `new`).
            .map(|k| unsafe { base.add(self.base + k * self.stride) })
            .collect()
    }
}

extern "C" {
    fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn dlerror() -> *const c_char;
    fn clock_gettime(clock: c_int, ts: *mut Timespec) -> c_int;
}
const RTLD_NOW: c_int = 2;
const CLOCK_THREAD_CPUTIME_ID: c_int = 3;

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

/// CPU time this thread has run, in nanoseconds.
fn thread_cpu_ns() -> f64 {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `ts` is a valid timespec for the call to fill in.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.sec as f64 * 1e9 + ts.nsec as f64
}

type NewFn = unsafe extern "C" fn(c_int, c_int) -> *mut c_void;
type ReleaseFn = unsafe extern "C" fn(*mut c_void);
type EncodeFn = unsafe extern "C" fn(*mut c_void, *mut *mut u8, c_int, c_int) -> c_int;

/// nanors as exported by the Moonlight client library.
struct Nanors {
    rs: *mut c_void,
    release: ReleaseFn,
    encode: EncodeFn,
}

impl Nanors {
    fn load(path: &str, data: usize, parity: usize, audio: bool) -> Result<Self, String> {
        let cpath = CString::new(path).map_err(|e| e.to_string())?;
        // SAFETY: plain dlopen/dlsym; the symbols' types are those of nanors' rs.h and the
        // client library's wrapper (function pointers filled in by `reed_solomon_init`).
        unsafe {
            let lib = dlopen(cpath.as_ptr(), RTLD_NOW);
            if lib.is_null() {
                return Err(CStr::from_ptr(dlerror()).to_string_lossy().into_owned());
            }
            let sym = |name: &str| -> Result<*mut c_void, String> {
                let c = CString::new(name).unwrap();
                let p = dlsym(lib, c.as_ptr());
                if p.is_null() {
                    Err(format!("{name} not found in {path}"))
                } else {
                    Ok(p)
                }
            };
            let init: unsafe extern "C" fn() = std::mem::transmute(sym("reed_solomon_init")?);
            init();
            let fn_ptr = |name: &str| -> Result<*const c_void, String> {
                let p = *(sym(name)? as *const *const c_void);
                if p.is_null() {
                    Err(format!("{name} is not set after reed_solomon_init"))
                } else {
                    Ok(p)
                }
            };
            let new: NewFn = std::mem::transmute(fn_ptr("reed_solomon_new_fn")?);
            let release: ReleaseFn = std::mem::transmute(fn_ptr("reed_solomon_release_fn")?);
            let encode: EncodeFn = std::mem::transmute(fn_ptr("reed_solomon_encode_fn")?);
            let rs = new(data as c_int, parity as c_int);
            if rs.is_null() {
                return Err(format!("reed_solomon_new({data}, {parity}) failed"));
            }
            // The parity rows follow three ints (data, parity, total shards). Check that layout
            // against our Cauchy coefficients before touching it.
            let rows = (rs as *mut u8).add(12);
            let cauchy = ReedSolomon::video(data, parity).map_err(|e| e.to_string())?;
            for j in 0..parity {
                for i in 0..data {
                    if *rows.add(j * data + i) != cauchy.coefficient(j, i) {
                        release(rs);
                        return Err("nanors' matrix layout is not the expected one".into());
                    }
                }
            }
            if audio {
                std::ptr::copy_nonoverlapping(AUDIO_MATRIX.as_ptr(), rows, AUDIO_MATRIX.len());
            }
            Ok(Self {
                rs,
                release,
                encode,
            })
        }
    }

    /// Encodes the parity shards of `arena` in place.
    fn encode(&self, ptrs: &mut [*mut u8], len: usize) {
        // SAFETY: `ptrs` holds data + parity pointers to shards of `len` bytes each.
        let rc = unsafe {
            (self.encode)(
                self.rs,
                ptrs.as_mut_ptr(),
                ptrs.len() as c_int,
                len as c_int,
            )
        };
        assert_eq!(rc, 0, "reed_solomon_encode failed");
    }
}

impl Drop for Nanors {
    fn drop(&mut self) {
        // SAFETY: `rs` came from reed_solomon_new and is released once.
        unsafe { (self.release)(self.rs) }
    }
}

/// Our encode the way the packetizers call it: the video packetizer encodes its datagram buffer
/// in place (`encode_strided`), the audio packetizer passes four and two slices.
fn ours_encode(rs: &ReedSolomon, arena: &mut Arena, data: usize) {
    let (stride, base, len) = (arena.stride, arena.base, arena.len);
    let buf = &mut arena.buf[base..];
    if rs.data_shards() == 4 && rs.parity_shards() == 2 {
        let (d, p) = buf.split_at_mut(4 * stride);
        let data_refs: [&[u8]; 4] = std::array::from_fn(|k| &d[k * stride..][..len]);
        let (p0, p1) = p.split_at_mut(stride);
        rs.encode(&data_refs, &mut [&mut p0[..len], &mut p1[..len]])
            .unwrap();
    } else {
        let total = data + rs.parity_shards();
        rs.encode_strided(&mut buf[..total * stride], stride, 0, len)
            .unwrap();
    }
}

fn percentile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn main() {
    let mut data = 212usize;
    let mut parity = 43usize;
    let mut len = 1408usize;
    let mut audio = false;
    let mut input = None;
    let mut parity_out = None;
    let mut nanors_path = None;
    let mut rounds = 31usize;
    let mut round_ms = 20u64;
    let mut kernel = Kernel::detect();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().expect("missing value");
        match a.as_str() {
            "--data" => data = val().parse().unwrap(),
            "--parity" => parity = val().parse().unwrap(),
            "--len" => len = val().parse().unwrap(),
            "--audio" => audio = true,
            "--input" => input = Some(val()),
            "--parity-out" => parity_out = Some(val()),
            "--nanors" => nanors_path = Some(val()),
            "--rounds" => rounds = val().parse().unwrap(),
            "--round-ms" => round_ms = val().parse().unwrap(),
            "--kernel" => {
                let name = val();
                kernel = Kernel::ALL
                    .into_iter()
                    .find(|k| format!("{k:?}").eq_ignore_ascii_case(&name))
                    .unwrap_or_else(|| panic!("unknown kernel {name}"));
                assert!(
                    kernel.is_available(),
                    "this CPU lacks the {kernel:?} kernel"
                );
            }
            other => panic!("unknown argument {other}"),
        }
    }
    let rs = if audio {
        assert!(data == 4 && parity == 2, "the audio code is 4 + 2");
        ReedSolomon::audio()
    } else {
        ReedSolomon::video(data, parity).unwrap()
    }
    .with_kernel(kernel);

    let mut arena = Arena::new(data + parity, len);
    let bytes = match &input {
        Some(path) => std::fs::read(path).expect("reading --input"),
        None => {
            let mut s = 0x2545_f491_u32;
            (0..data * len)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 17;
                    s ^= s << 5;
                    s as u8
                })
                .collect()
        }
    };
    assert_eq!(
        bytes.len(),
        data * len,
        "--input must hold data * len bytes"
    );
    for k in 0..data {
        arena.shard_mut(k).copy_from_slice(&bytes[k * len..][..len]);
    }

    // Correctness first: our parity, then (if loaded) nanors' parity on the same data.
    ours_encode(&rs, &mut arena, data);
    let ours_parity: Vec<u8> = (data..data + parity)
        .flat_map(|k| arena.shard(k).to_vec())
        .collect();
    if let Some(path) = &parity_out {
        std::fs::write(path, &ours_parity).expect("writing --parity-out");
    }
    let nanors = nanors_path
        .as_deref()
        .map(|p| Nanors::load(p, data, parity, audio).unwrap_or_else(|e| panic!("nanors: {e}")));
    let identical = nanors.as_ref().map(|n| {
        for k in data..data + parity {
            arena.shard_mut(k).fill(0);
        }
        let mut ptrs = arena.pointers();
        n.encode(&mut ptrs, len);
        let theirs: Vec<u8> = (data..data + parity)
            .flat_map(|k| arena.shard(k).to_vec())
            .collect();
        theirs == ours_parity
    });

    // Calibrate the encodes per round on our side; both sides use the same count.
    let t = Instant::now();
    let mut calib = 0u32;
    while t.elapsed() < Duration::from_millis(round_ms) || calib < 3 {
        ours_encode(&rs, &mut arena, data);
        calib += 1;
    }
    let per_round = calib.max(1);
    // (wall, thread CPU) nanoseconds per block, one pair per round.
    let mut ours_ns: Vec<(f64, f64)> = Vec::with_capacity(rounds);
    let mut theirs_ns: Vec<(f64, f64)> = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let time_ours = |arena: &mut Arena| {
            let (t, cpu) = (Instant::now(), thread_cpu_ns());
            for _ in 0..per_round {
                ours_encode(&rs, arena, data);
                black_box(arena.shard(data)[0]);
            }
            let n = f64::from(per_round);
            (
                t.elapsed().as_nanos() as f64 / n,
                (thread_cpu_ns() - cpu) / n,
            )
        };
        let time_theirs = |n: &Nanors, arena: &mut Arena| {
            let mut ptrs = arena.pointers();
            let (t, cpu) = (Instant::now(), thread_cpu_ns());
            for _ in 0..per_round {
                n.encode(&mut ptrs, len);
                // SAFETY: the first parity shard, written by the encode just above.
                black_box(unsafe { ptrs[data].read_volatile() });
            }
            let k = f64::from(per_round);
            (
                t.elapsed().as_nanos() as f64 / k,
                (thread_cpu_ns() - cpu) / k,
            )
        };
        match &nanors {
            Some(n) if round % 2 == 1 => {
                theirs_ns.push(time_theirs(n, &mut arena));
                ours_ns.push(time_ours(&mut arena));
            }
            Some(n) => {
                ours_ns.push(time_ours(&mut arena));
                theirs_ns.push(time_theirs(n, &mut arena));
            }
            None => ours_ns.push(time_ours(&mut arena)),
        }
    }

    let mb = (data * len) as f64 / 1e6;
    // Per-block times of one side: wall clock (`.0`) or thread CPU time (`.1`).
    let wall = |v: &[(f64, f64)]| v.iter().map(|x| x.0).collect::<Vec<_>>();
    let cpu = |v: &[(f64, f64)]| v.iter().map(|x| x.1).collect::<Vec<_>>();
    let summary = |v: &[(f64, f64)]| {
        let med = percentile(&wall(v), 50.0);
        format!(
            "{{\"median_ns\":{:.0},\"p99_ns\":{:.0},\"mb_s\":{:.1},\"cpu_median_ns\":{:.0}}}",
            med,
            percentile(&wall(v), 99.0),
            mb / (med / 1e9),
            percentile(&cpu(v), 50.0),
        )
    };
    let (theirs, ratio) = if theirs_ns.is_empty() {
        ("null".to_string(), "null".to_string())
    } else {
        // Throughput ratio ours / nanors: nanors' median block time over ours, this run.
        let wall_ratio = percentile(&wall(&theirs_ns), 50.0) / percentile(&wall(&ours_ns), 50.0);
        let cpu_ratio = percentile(&cpu(&theirs_ns), 50.0) / percentile(&cpu(&ours_ns), 50.0);
        (
            summary(&theirs_ns),
            format!("{{\"wall\":{wall_ratio:.3},\"cpu\":{cpu_ratio:.3}}}"),
        )
    };
    let identical = match identical {
        Some(b) => b.to_string(),
        None => "null".into(),
    };
    println!(
        "{{\"data\":{data},\"parity\":{parity},\"len\":{len},\"code\":\"{}\",\"kernel\":\"{:?}\",\
         \"rounds\":{rounds},\"encodes_per_round\":{per_round},\"ours\":{},\"nanors\":{theirs},\
         \"ratio\":{ratio},\"parity_identical\":{identical}}}",
        if audio { "audio" } else { "video" },
        kernel,
        summary(&ours_ns),
    );
}
