//! GameStream's video and audio packetizers with every setting a client's ANNOUNCE can ask for
//! (packet size, FEC share and minimum, encryption) and frames of any size and content.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::audio::{AudioConfig, AudioDatagrams, AudioEncryption, AudioPacketizer};
use protocol::video::{FrameType, VideoConfig, VideoDatagrams, VideoPacketizer};
use punktfunk_fuzz::Choices;

fuzz_target!(|data: &[u8]| {
    let mut c = Choices::new(data);
    if c.bool() {
        let config = AudioConfig {
            packet_duration_ms: c.u8() as u32,
            encryption: c.bool().then(|| AudioEncryption {
                key: [7; 16],
                rikeyid: c.u32(),
            }),
        };
        let Ok(mut p) = AudioPacketizer::new(config) else {
            return;
        };
        let mut out = AudioDatagrams::new();
        while !c.is_empty() {
            let opus = c.short_bytes();
            let _ = p.packetize(opus, &mut out);
        }
        return;
    }
    let config = VideoConfig {
        packet_size: c.u16() as usize,
        fec_percent: c.u8(),
        min_required_fec_packets: c.u8(),
        encryption_key: c.bool().then_some([9; 16]),
    };
    let Ok(mut p) = VideoPacketizer::new(config) else {
        return;
    };
    let mut out = VideoDatagrams::new();
    while !c.is_empty() {
        let frame_type = if c.bool() {
            FrameType::Idr
        } else {
            FrameType::P
        };
        let len = c.u16() as usize;
        let frame = c.bytes(len);
        let expected = p.datagram_count(frame.len());
        if p.packetize(frame, frame_type, c.u32() as u64, c.u32(), &mut out)
            .is_ok()
        {
            assert_eq!(expected.ok(), Some(out.len()));
        }
    }
});
