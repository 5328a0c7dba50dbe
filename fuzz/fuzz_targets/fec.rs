//! GameStream's Reed-Solomon codes: any shape a client's FEC settings allow, any erasures.
//! Every kernel this CPU has must write the same parity, and whatever the code can recover must
//! come back byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::fec::{Kernel, ReedSolomon};
use punktfunk_fuzz::Choices;

fuzz_target!(|data: &[u8]| {
    let mut c = Choices::new(data);
    let audio = c.u8() < 32;
    let code = if audio {
        ReedSolomon::audio()
    } else {
        let d = 1 + c.u8() as usize % 64;
        let p = c.u8() as usize % 64;
        match ReedSolomon::video(d, p) {
            Ok(code) => code,
            Err(_) => return,
        }
    };
    let (d, p) = (code.data_shards(), code.parity_shards());
    let len = 1 + c.u8() as usize % 200;
    let fill = c.rest();
    let data: Vec<Vec<u8>> = (0..d)
        .map(|i| {
            (0..len)
                .map(|j| {
                    fill.get((i * len + j) % fill.len().max(1))
                        .copied()
                        .unwrap_or(0)
                        ^ i as u8
                })
                .collect()
        })
        .collect();
    let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();

    let mut parity = vec![vec![0u8; len]; p];
    {
        let mut out: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
        code.encode(&refs, &mut out).expect("encode");
    }
    for kernel in Kernel::ALL.into_iter().filter(|k| k.is_available()) {
        let mut other = vec![vec![0u8; len]; p];
        let mut out: Vec<&mut [u8]> = other.iter_mut().map(Vec::as_mut_slice).collect();
        code.with_kernel(kernel)
            .encode(&refs, &mut out)
            .expect("encode");
        assert_eq!(other, parity, "{kernel:?} disagrees");
    }

    // Erase shards chosen by the input's first bytes, as many as the code can take or one more.
    let mut shards: Vec<Vec<u8>> = data.iter().chain(parity.iter()).cloned().collect();
    let total = d + p;
    let mut present = vec![true; total];
    let erase = (fill.first().copied().unwrap_or(0) as usize) % (p + 2);
    for k in 0..erase {
        let at = fill.get(1 + k).copied().unwrap_or(k as u8) as usize % total;
        present[at] = false;
        shards[at].iter_mut().for_each(|b| *b = 0xAA);
    }
    let missing = present.iter().filter(|&&x| !x).count();
    let mut views: Vec<&mut [u8]> = shards.iter_mut().map(Vec::as_mut_slice).collect();
    match code.reconstruct(&mut views, &present) {
        Ok(()) => {
            assert!(missing <= p);
            for (i, shard) in shards.iter().take(d).enumerate() {
                assert_eq!(shard, &data[i], "data shard {i} recovered wrong");
            }
        }
        Err(_) => assert!(
            missing > p,
            "{missing} erasures of {p} parity should recover"
        ),
    }
});
