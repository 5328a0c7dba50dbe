//! RTSP: the request stream of one connection (plain, or `rtspenc` framed and sealed), and the
//! ANNOUNCE SDP a stream's parameters come from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::rtsp;

const KEY: [u8; 16] = *b"fuzzing-rtsp-key";

fuzz_target!(|data: &[u8]| {
    if rtsp::is_encrypted(data) {
        let cipher = rtsp::RtspCipher::new(KEY);
        if let Ok(Some(len)) = rtsp::encrypted_frame_len(data) {
            if let Some(frame) = data.get(..len) {
                if let Ok(request) = cipher.open_request(frame) {
                    check(&request);
                }
            }
        }
        let _ = rtsp::unseal(&KEY, data);
        return;
    }
    let mut buf = data;
    while let Ok(Some((request, used))) = rtsp::parse_request(buf) {
        assert!(
            used > 0 && used <= buf.len(),
            "a request must consume input"
        );
        check(&request);
        buf = &buf[used..];
    }
    if let Ok(body) = std::str::from_utf8(data) {
        let _ = rtsp::sdp_attributes(body);
    }
    if let Ok(params) = rtsp::parse_announce(data) {
        let _ = (
            params.video_encrypted(),
            params.audio_encrypted(),
            params.control_encrypted(),
            params.color_space(),
            params.full_range(),
        );
    }
});

fn check(request: &rtsp::Request) {
    let _ = request.cseq();
    let _ = request.header("Transport");
    let _ = rtsp::parse_announce(&request.body);
    let bytes = request.to_bytes();
    let (again, used) = rtsp::parse_request(&bytes)
        .expect("a parsed request, written again, parses")
        .expect("whole");
    assert_eq!(used, bytes.len());
    assert_eq!(&again, request);
}
