//! The RTSP handshake as a stock Moonlight client (moonlight-common-c, appversion 7.1.431.-1)
//! performs it, plain and `rtspenc://`, against `RtspHandler`; plus the framing vectors and
//! malformed input.

use std::path::PathBuf;

use proptest::prelude::*;
use protocol::nvhttp::hex_decode;
use protocol::rtsp::{
    describe_body, encrypted_frame_len, is_encrypted, parse_announce, parse_request,
    ping_payload_from_random, seal, seal_as, unseal, unseal_as, BitstreamFormat, DescribeConfig,
    Direction, DynamicRange, Request, Response, RtspCipher, RtspConfig, RtspError, RtspEvent,
    RtspHandler, SdpError, StreamKind, MAX_MESSAGE_LEN, SS_ENC_AUDIO, SS_ENC_CONTROL_V2,
    SS_ENC_VIDEO,
};

fn vector(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/setup")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn vector_hex(name: &str) -> Vec<u8> {
    hex_decode(String::from_utf8(vector(name)).unwrap().trim()).unwrap()
}

fn announce_sdp() -> Vec<u8> {
    vector("announce_1280x720.sdp")
}

/// A request serialised as moonlight-common-c's `serializeRtspMessage` does.
fn client_request(
    method: &str,
    target: &str,
    cseq: u32,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut headers = vec![
        ("CSeq".to_owned(), cseq.to_string()),
        ("X-GS-ClientVersion".to_owned(), "14".to_owned()),
        ("Host".to_owned(), "0.0.0.0".to_owned()),
    ];
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    if !body.is_empty() {
        headers.push(("Content-length".to_owned(), body.len().to_string()));
    }
    Request {
        method: method.to_owned(),
        target: target.to_owned(),
        version: "RTSP/1.0".to_owned(),
        headers,
        body: body.to_vec(),
    }
    .to_bytes()
}

/// The client's view of a response, following `parseRtspMessage` (RtspParser.c): protocol
/// must be `RTSP/1.0`, at least one header, the header end must follow a header, one character
/// after the colon is dropped, names are compared case-sensitively.
struct ClientResponse {
    status: i32,
    options: Vec<(String, String)>,
    payload: Vec<u8>,
}

impl ClientResponse {
    fn parse(raw: &[u8]) -> ClientResponse {
        let text = std::str::from_utf8(raw).expect("utf-8 response");
        let (head, payload) = text.split_once("\r\n\r\n").expect("end of headers");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(parts.next(), Some("RTSP/1.0"));
        let status: i32 = parts.next().unwrap().parse().unwrap();
        assert!(!parts.next().unwrap().is_empty(), "status string");
        let mut options = Vec::new();
        for line in lines {
            let colon = line.find(':').expect("option name");
            let name = &line[..colon];
            assert!(!name.contains(' '), "{line}");
            let content = &line[colon + 1..];
            assert!(
                content.starts_with(' '),
                "exactly one space after the colon: {line}"
            );
            options.push((name.to_owned(), content[1..].to_owned()));
        }
        assert!(!options.is_empty(), "the client needs at least one header");
        ClientResponse {
            status,
            options,
            payload: payload.as_bytes().to_vec(),
        }
    }

    fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `strtol` right after `server_port=`.
    fn server_port(&self) -> u16 {
        let t = self.option("Transport").unwrap();
        let i = t.find("server_port=").unwrap() + "server_port=".len();
        let digits: String = t[i..].chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse().unwrap()
    }
}

fn config() -> RtspConfig {
    RtspConfig {
        audio_port: 48000,
        video_port: 47998,
        control_port: 47999,
        ping_payload: ping_payload_from_random([0xDE, 0xAD, 0xBE, 0xEF, 0x01, 0x23, 0x45, 0x67]),
        connect_data: 0x9ABC_DEF0,
        session_id: "DEADBEEFCAFE".to_owned(),
        describe: DescribeConfig {
            hevc: true,
            ..DescribeConfig::sunshine_defaults()
        },
    }
}

/// The seven requests of §5.3 with moonlight's targets and headers.
fn handshake_requests(url: &str) -> Vec<Vec<u8>> {
    let sdp = announce_sdp();
    let session = [("Session", "DEADBEEFCAFE")];
    let setup_extra = |with_session: bool| {
        let mut v = Vec::new();
        if with_session {
            v.push(("Session", "DEADBEEFCAFE"));
        }
        v.push(("Transport", "unicast;X-GS-ClientPort=50000-50001"));
        v.push(("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT"));
        v
    };
    vec![
        client_request("OPTIONS", url, 1, &[], b""),
        client_request(
            "DESCRIBE",
            url,
            2,
            &[
                ("Accept", "application/sdp"),
                ("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT"),
            ],
            b"",
        ),
        client_request("SETUP", "streamid=audio/0/0", 3, &setup_extra(false), b""),
        client_request("SETUP", "streamid=video/0/0", 4, &setup_extra(true), b""),
        client_request("SETUP", "streamid=control/13/0", 5, &setup_extra(true), b""),
        client_request(
            "ANNOUNCE",
            "streamid=control/13/0",
            6,
            &[session[0], ("Content-type", "application/sdp")],
            &sdp,
        ),
        client_request("PLAY", "/", 7, &session, b""),
    ]
}

fn check_handshake_responses(responses: &[(ClientResponse, Option<RtspEvent>)]) {
    assert_eq!(responses.len(), 7);
    for (i, (r, _)) in responses.iter().enumerate() {
        assert_eq!(r.status, 200, "request {}", i + 1);
        assert_eq!(r.option("CSeq"), Some((i + 1).to_string().as_str()));
    }
    // DESCRIBE: non-empty, HEVC marker, no AV1.
    let body = String::from_utf8(responses[1].0.payload.clone()).unwrap();
    assert!(body.contains("sprop-parameter-sets=AAAAAU"));
    assert!(!body.contains("AV1/90000"));
    assert!(body.contains("a=x-ss-general.encryptionSupported:7\n"));
    assert!(body.contains("a=x-ss-general.encryptionRequested:1\n"));
    // SETUP audio / video: port, 16-byte ping payload, session id.
    for (i, port, kind) in [(2, 48000, StreamKind::Audio), (3, 47998, StreamKind::Video)] {
        let (r, ev) = &responses[i];
        assert_eq!(r.server_port(), port);
        assert_eq!(r.option("X-SS-Ping-Payload"), Some("DEADBEEF01234567"));
        assert_eq!(r.option("X-SS-Ping-Payload").unwrap().len(), 16);
        let session = r.option("Session").unwrap();
        assert_eq!(session, "DEADBEEFCAFE;timeout = 90");
        assert_eq!(session.split(';').next(), Some("DEADBEEFCAFE"));
        assert_eq!(ev, &Some(RtspEvent::Setup(kind)));
    }
    let (r, ev) = &responses[4];
    assert_eq!(r.server_port(), 47999);
    assert_eq!(r.option("X-SS-Connect-Data"), Some("2596069104"));
    assert_eq!(r.option("X-SS-Ping-Payload"), None);
    assert_eq!(ev, &Some(RtspEvent::Setup(StreamKind::Control)));
    match &responses[5].1 {
        Some(RtspEvent::Announced(p)) => {
            assert_eq!((p.width, p.height, p.fps), (1280, 720, 60));
            assert!(!p.audio_high_quality, "Host 0.0.0.0 means normal quality");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(responses[6].1, Some(RtspEvent::Play));
}

#[test]
fn announce_vector_parses() {
    let p = parse_announce(&announce_sdp()).unwrap();
    assert_eq!(p.width, 1280);
    assert_eq!(p.height, 720);
    assert_eq!(p.fps, 60);
    assert_eq!(p.packet_size, 1392);
    assert_eq!(p.max_bitrate_kbps, 8000);
    assert_eq!(p.configured_bitrate_kbps, 10000);
    assert_eq!(p.min_fec_packets, 2);
    assert_eq!(p.encryption_enabled, SS_ENC_CONTROL_V2);
    assert!(p.control_encrypted() && !p.video_encrypted() && !p.audio_encrypted());
    assert_eq!(p.nv_feature_flags, 135);
    assert_eq!(p.ml_feature_flags, 3);
    assert!(p.session_id_v1() && p.fec_status());
    assert_eq!(p.control_protocol, 13);
    assert_eq!(p.audio_channels, 2);
    assert_eq!(p.audio_channel_mask, 3);
    assert!(!p.audio_high_quality);
    assert_eq!(p.audio_packet_duration_ms, 5);
    assert_eq!(p.bitstream_format, BitstreamFormat::H264);
    assert_eq!(p.dynamic_range, DynamicRange::Sdr);
    assert!(!p.chroma_444);
    assert_eq!(p.csc_mode, 2);
    assert_eq!((p.color_space(), p.full_range()), (1, false));
    assert_eq!(p.slices_per_frame, 1);
    assert_eq!(p.max_ref_frames, 0);
    assert_eq!(p.client_refresh_x100, 5994);
    assert_eq!(p.effective_refresh_x100(), Some(5994));
    assert_eq!((p.video_qos_type, p.audio_qos_type), (5, 4));
    assert!(!p.intra_refresh);
    // Sunshine's formula with 20 % FEC: 10000 * 0.8 = 8000; - 2*96 = 7808; - 500 = 7308.
    assert_eq!(p.encoder_bitrate_kbps(20), 7308);
}

#[test]
fn announce_defaults_and_errors() {
    let sdp = String::from_utf8(announce_sdp()).unwrap();
    // Every required attribute, when removed, is named in the error.
    for attr in [
        "x-nv-video[0].clientViewportWd",
        "x-nv-video[0].clientViewportHt",
        "x-nv-video[0].maxFPS",
        "x-nv-video[0].packetSize",
        "x-nv-vqos[0].bw.maximumBitrateKbps",
        "x-nv-video[0].videoEncoderSlicesPerFrame",
        "x-nv-video[0].maxNumReferenceFrames",
        "x-nv-audio.surround.numChannels",
        "x-nv-audio.surround.channelMask",
        "x-nv-audio.surround.AudioQuality",
    ] {
        let cut: String = sdp
            .split_inclusive("\r\n")
            .filter(|l| !l.starts_with(&format!("a={attr}:")))
            .collect();
        let e = parse_announce(cut.as_bytes()).unwrap_err();
        assert_eq!(e, SdpError::MissingAttribute(attr));
        assert_eq!(e.to_string(), format!("missing attribute {attr}"));
    }
    // Optional ones fall back to Sunshine's defaults.
    let minimal = "a=x-nv-video[0].clientViewportWd:640\na=x-nv-video[0].clientViewportHt:480\n\
        a=x-nv-video[0].maxFPS:30\na=x-nv-video[0].packetSize:1024\n\
        a=x-nv-vqos[0].bw.maximumBitrateKbps:1000\na=x-nv-video[0].videoEncoderSlicesPerFrame:1\n\
        a=x-nv-video[0].maxNumReferenceFrames:1\na=x-nv-audio.surround.numChannels:6\n\
        a=x-nv-audio.surround.channelMask:63\na=x-nv-audio.surround.AudioQuality:1\n\
        a=x-nv-general.featureFlags:167";
    let p = parse_announce(minimal.as_bytes()).unwrap();
    assert_eq!(p.audio_packet_duration_ms, 5);
    assert_eq!(p.control_protocol, 1);
    assert_eq!(p.min_fec_packets, 0);
    assert_eq!(p.configured_bitrate_kbps, 0);
    assert_eq!(p.encoder_bitrate_kbps(20), 1000);
    // Legacy NVFF audio-encryption bit folds into SS_ENC_AUDIO.
    assert_eq!(p.encryption_enabled, SS_ENC_AUDIO);
    assert_eq!(p.bitstream_format, BitstreamFormat::H264);
    assert_eq!(p.effective_refresh_x100(), None);

    for (bad, attr) in [
        ("x-nv-video[0].maxFPS:60 ", "x-nv-video[0].maxFPS:-60 "),
        (
            "x-nv-video[0].packetSize:1392 ",
            "x-nv-video[0].packetSize:13a2 ",
        ),
        (
            "x-nv-vqos[0].bitStreamFormat:0 ",
            "x-nv-vqos[0].bitStreamFormat:7 ",
        ),
        (
            "x-nv-video[0].dynamicRangeMode:0 ",
            "x-nv-video[0].dynamicRangeMode:2 ",
        ),
    ] {
        let s = sdp.replace(bad, attr);
        assert!(
            matches!(
                parse_announce(s.as_bytes()),
                Err(SdpError::InvalidValue { .. })
            ),
            "{attr}"
        );
    }
    let s = sdp.replace("bitStreamFormat:0 ", "bitStreamFormat:2 ");
    assert_eq!(
        parse_announce(s.as_bytes()).unwrap().bitstream_format,
        BitstreamFormat::Av1
    );
    assert_eq!(parse_announce(b"\xff\xfe"), Err(SdpError::NotUtf8));
}

#[test]
fn plain_handshake() {
    let mut h = RtspHandler::new(config()).unwrap();
    let mut out = Vec::new();
    for raw in handshake_requests("rtsp://192.0.2.10:48010") {
        let (req, used) = parse_request(&raw).unwrap().unwrap();
        assert_eq!(used, raw.len());
        let (resp, ev) = h.handle_request(&req);
        out.push((ClientResponse::parse(&resp.to_bytes()), ev));
    }
    check_handshake_responses(&out);
    assert_eq!(h.announced().unwrap().width, 1280);
}

#[test]
fn encrypted_handshake() {
    let key: [u8; 16] = std::array::from_fn(|i| (i * 17) as u8);
    let mut h = RtspHandler::new(config()).unwrap();
    let mut host = RtspCipher::new(key);
    let mut out = Vec::new();
    for (i, raw) in handshake_requests("rtspenc://192.0.2.10:48010")
        .into_iter()
        .enumerate()
    {
        let seq = i as u32 + 1;
        let frame = seal_as(Direction::ClientToHost, &key, seq, &raw).unwrap();
        assert!(is_encrypted(&frame));
        assert_eq!(
            encrypted_frame_len(&frame[..24]).unwrap(),
            Some(frame.len())
        );
        assert!(matches!(
            parse_request(&frame),
            Err(RtspError::UnexpectedEncrypted)
        ));
        let req = host.open_request(&frame).unwrap();
        let (resp, ev) = h.handle_request(&req);
        let sealed = host.seal_response(&resp).unwrap();
        // The client's check: length field == bytes received - 24.
        let len = u32::from_be_bytes(sealed[..4].try_into().unwrap());
        assert_eq!((len & 0x7FFF_FFFF) as usize + 24, sealed.len());
        let (host_seq, plain) = unseal_as(Direction::HostToClient, &key, &sealed).unwrap();
        assert_eq!(host_seq, seq, "host counter starts at 1");
        out.push((ClientResponse::parse(&plain), ev));
    }
    check_handshake_responses(&out);
}

#[test]
fn encrypted_fixed_vectors() {
    let key: [u8; 16] = vector_hex("rtspenc/key.hex").try_into().unwrap();
    let host_plain = vector("rtspenc/host_plain.txt");
    assert_eq!(
        seal(&key, 1, &host_plain).unwrap(),
        vector_hex("rtspenc/host_seq1.hex")
    );
    assert_eq!(host_plain, Response::ok(1).to_bytes());
    let client_frame = vector_hex("rtspenc/client_seq1.hex");
    let (seq, plain) = unseal(&key, &client_frame).unwrap();
    assert_eq!(seq, 1);
    assert_eq!(plain, vector("rtspenc/client_plain.txt"));
    let req = RtspCipher::new(key).open_request(&client_frame).unwrap();
    assert_eq!(req.method, "OPTIONS");
    assert_eq!(req.header("Host"), Some("192.0.2.10"));

    // Wrong direction, tampering and framing errors.
    assert!(matches!(
        unseal_as(Direction::HostToClient, &key, &client_frame),
        Err(RtspError::DecryptFailed)
    ));
    for idx in [4, 8, 23, 24, client_frame.len() - 1] {
        let mut t = client_frame.clone();
        t[idx] ^= 0x01;
        assert!(
            matches!(unseal(&key, &t), Err(RtspError::DecryptFailed)),
            "{idx}"
        );
    }
    let mut long = client_frame.clone();
    long.push(0);
    assert!(matches!(
        unseal(&key, &long),
        Err(RtspError::LengthMismatch)
    ));
    assert!(matches!(
        unseal(&key, &client_frame[..client_frame.len() - 1]),
        Err(RtspError::LengthMismatch)
    ));
    assert!(matches!(
        unseal(&key, &client_frame[..10]),
        Err(RtspError::LengthMismatch)
    ));
    let mut plainflag = client_frame.clone();
    plainflag[0] &= 0x7F;
    assert!(matches!(
        unseal(&key, &plainflag),
        Err(RtspError::NotEncrypted)
    ));
    assert!(matches!(
        encrypted_frame_len(b"OPTIONS"),
        Err(RtspError::NotEncrypted)
    ));
    assert_eq!(encrypted_frame_len(&client_frame[..3]).unwrap(), None);
    assert_eq!(encrypted_frame_len(&[]).unwrap(), None);
    assert!(matches!(
        encrypted_frame_len(&[0xFF, 0xFF, 0xFF, 0xFF]),
        Err(RtspError::TooLarge)
    ));
    assert!(!is_encrypted(b"OPTIONS"));
    assert!(!is_encrypted(b""));
    // Empty plaintext round trip.
    let f = seal(&key, 7, b"").unwrap();
    assert_eq!(f.len(), 24);
    assert_eq!(
        unseal_as(Direction::HostToClient, &key, &f).unwrap(),
        (7, vec![])
    );
}

#[test]
fn truncated_requests_need_more() {
    let full = handshake_requests("rtsp://192.0.2.10:48010").remove(5);
    for n in 0..full.len() {
        assert!(parse_request(&full[..n]).unwrap().is_none(), "prefix {n}");
    }
    let (req, used) = parse_request(&full).unwrap().unwrap();
    assert_eq!(used, full.len());
    assert_eq!(req.body, announce_sdp());
    // Two pipelined requests: the first is returned with its length.
    let mut two = full.clone();
    two.extend_from_slice(b"PLAY / RTSP/1.0\r\nCSeq: 7\r\n\r\n");
    let (_, used) = parse_request(&two).unwrap().unwrap();
    assert_eq!(used, full.len());
    let (play, n) = parse_request(&two[used..]).unwrap().unwrap();
    assert_eq!((play.method.as_str(), n), ("PLAY", 28));
    // Bare LF line endings and leading blank lines are tolerated.
    let (r, _) = parse_request(b"\r\nOPTIONS * RTSP/1.0\nCSeq: 9\n\n")
        .unwrap()
        .unwrap();
    assert_eq!(r.cseq(), 9);
}

#[test]
fn malformed_requests() {
    let cases: &[(&[u8], &str)] = &[
        (b"OPTIONS\r\n\r\n", "malformed request line"),
        (b"OPTIONS rtsp://x\r\n", "malformed request line"),
        (
            b"OPTIONS rtsp://x HTTP/1.1\r\n\r\n",
            "malformed request line",
        ),
        (b"OPT(IONS * RTSP/1.0\r\n\r\n", "malformed request line"),
        (
            b"OPTIONS * RTSP/1.0 extra\r\n\r\n",
            "malformed request line",
        ),
        (
            b"OPTIONS * RTSP/1.0\r\nNoColon\r\n\r\n",
            "malformed header line",
        ),
        (
            b"OPTIONS * RTSP/1.0\r\n: empty\r\n\r\n",
            "malformed header line",
        ),
        (
            b"OPTIONS * RTSP/1.0\r\nContent-length: -1\r\n\r\n",
            "invalid content-length",
        ),
        (
            b"OPTIONS * RTSP/1.0\r\nContent-length: 12x\r\n\r\n",
            "invalid content-length",
        ),
        (
            b"OPTIONS * RTSP/1.0\r\nContent-length: 1\r\ncontent-LENGTH: 2\r\n\r\n",
            "invalid content-length",
        ),
        (
            b"OPTIONS * RTSP/1.0\r\nContent-length: 99999999999999999999999\r\n\r\n",
            "message too large",
        ),
        (
            b"OPTIONS * RTSP/1.0\r\nContent-length: 70000\r\n\r\n",
            "message too large",
        ),
        (
            b"OPTIONS * RTSP/1.0\r\nX: \xff\r\n\r\n",
            "headers are not utf-8",
        ),
        (b"OPT\xffIONS * RTSP/1.0\r\n", "headers are not utf-8"),
        (b"\x80\x00\x00\x10", "unexpected encrypted message"),
    ];
    for (raw, msg) in cases {
        match parse_request(raw) {
            Err(e) => assert_eq!(e.to_string(), *msg, "{:?}", String::from_utf8_lossy(raw)),
            Ok(r) => panic!("{:?} parsed: {r:?}", String::from_utf8_lossy(raw)),
        }
    }
    // Too many headers.
    let mut many = b"OPTIONS * RTSP/1.0\r\n".to_vec();
    for i in 0..65 {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert!(matches!(
        parse_request(&many),
        Err(RtspError::TooManyHeaders)
    ));
    // Headers that never end.
    let mut endless = b"OPTIONS * RTSP/1.0\r\n".to_vec();
    while endless.len() <= MAX_MESSAGE_LEN {
        endless.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    assert!(matches!(parse_request(&endless), Err(RtspError::TooLarge)));
}

#[test]
fn handler_errors() {
    let mut h = RtspHandler::new(config()).unwrap();
    let req = |raw: Vec<u8>| parse_request(&raw).unwrap().unwrap().0;

    let (r, ev) = h.handle_request(&req(client_request(
        "SETUP",
        "streamid=mic/0/0",
        3,
        &[],
        b"",
    )));
    assert_eq!((r.status, ev), (404, None));
    assert_eq!(r.to_bytes(), b"RTSP/1.0 404 NOT FOUND\r\nCSeq: 3\r\n\r\n");
    let (r, _) = h.handle_request(&req(client_request("SETUP", "nostream", 3, &[], b"")));
    assert_eq!(r.status, 404);
    let (r, ev) = h.handle_request(&req(client_request("TEARDOWN", "/", 9, &[], b"")));
    assert_eq!((r.status, ev), (405, None));
    assert_eq!(
        ClientResponse::parse(&r.to_bytes()).option("CSeq"),
        Some("9")
    );

    // ANNOUNCE with a bad SDP.
    let (r, ev) = h.handle_request(&req(client_request(
        "ANNOUNCE",
        "streamid=control/13/0",
        6,
        &[],
        b"v=0\r\na=x-nv-video[0].maxFPS:60 \r\n",
    )));
    assert_eq!(
        (r.status, r.reason.as_str(), ev),
        (400, "BAD REQUEST", None)
    );
    assert!(h.announced().is_none());

    // AV1 when not offered: 400. HEVC is offered in config().
    let sdp = String::from_utf8(announce_sdp()).unwrap();
    let av1 = sdp.replace("bitStreamFormat:0 ", "bitStreamFormat:2 ");
    let (r, _) = h.handle_request(&req(client_request(
        "ANNOUNCE",
        "x",
        6,
        &[],
        av1.as_bytes(),
    )));
    assert_eq!(r.status, 400);
    let hevc = sdp.replace("bitStreamFormat:0 ", "bitStreamFormat:1 ");
    let (r, ev) = h.handle_request(&req(client_request(
        "ANNOUNCE",
        "x",
        6,
        &[],
        hevc.as_bytes(),
    )));
    assert_eq!(r.status, 200);
    assert!(
        matches!(ev, Some(RtspEvent::Announced(p)) if p.bitstream_format == BitstreamFormat::Hevc)
    );

    // Mandatory media encryption: 403 unless the client enabled it.
    let mut cfg = config();
    cfg.describe.encryption_requested = SS_ENC_CONTROL_V2 | SS_ENC_VIDEO | SS_ENC_AUDIO;
    let mut strict = RtspHandler::new(cfg).unwrap();
    let (r, _) = strict.handle_request(&req(client_request(
        "ANNOUNCE",
        "x",
        6,
        &[],
        sdp.as_bytes(),
    )));
    assert_eq!(r.status, 403);
    let enc = sdp.replace("encryptionEnabled:1 ", "encryptionEnabled:7 ");
    let (r, _) = strict.handle_request(&req(client_request(
        "ANNOUNCE",
        "x",
        6,
        &[],
        enc.as_bytes(),
    )));
    assert_eq!(r.status, 200);

    // Stereo audio quality follows the Host header.
    let hq = {
        let mut raw = client_request("ANNOUNCE", "x", 6, &[], sdp.as_bytes());
        let s = String::from_utf8(raw.clone()).unwrap().replacen(
            "Host: 0.0.0.0",
            "Host: 192.0.2.10",
            1,
        );
        raw = s.into_bytes();
        req(raw)
    };
    let (_, ev) = h.handle_request(&hq);
    assert!(matches!(ev, Some(RtspEvent::Announced(p)) if p.audio_high_quality));

    // Bad configurations.
    let mut cfg = config();
    cfg.ping_payload[3] = b' ';
    assert!(RtspHandler::new(cfg).is_err());
    let mut cfg = config();
    cfg.session_id = "A;B".into();
    assert!(RtspHandler::new(cfg).is_err());
}

#[test]
fn describe_lines() {
    let all = describe_body(&DescribeConfig {
        feature_flags: 3,
        encryption_supported: 7,
        encryption_requested: 1,
        ref_pic_invalidation: true,
        hevc: true,
        av1: true,
        surround_params: Some("642014523".into()),
    });
    assert_eq!(
        all,
        "a=x-ss-general.featureFlags:3\n\
         a=x-ss-general.encryptionSupported:7\n\
         a=x-ss-general.encryptionRequested:1\n\
         a=x-nv-video[0].refPicInvalidation:1\n\
         sprop-parameter-sets=AAAAAU\n\
         a=rtpmap:98 AV1/90000\n\
         a=fmtp:97 surround-params=642014523\n\
         a=fmtp:97 surround-params=642014523\n\
         a=fmtp:97 surround-params=21101\n\
         a=fmtp:97 surround-params=21101\n\
         a=fmtp:97 surround-params=642012453\n\
         a=fmtp:97 surround-params=660012345\n\
         a=fmtp:97 surround-params=85301245673\n\
         a=fmtp:97 surround-params=88001234567\n"
    );
    let none = describe_body(&DescribeConfig::default());
    assert!(!none.contains("AAAAAU") && !none.contains("AV1/90000") && !none.contains("refPic"));
    // The client takes the first "surround-params=8" as normal quality, the second as HQ.
    let i = none.find("surround-params=8").unwrap();
    assert!(none[i..].starts_with("surround-params=85301245673"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_request(&data);
        let _ = parse_announce(&data);
        let _ = encrypted_frame_len(&data);
        let _ = unseal(&[0; 16], &data);
        let _ = protocol::nvhttp::Query::parse(&String::from_utf8_lossy(&data));
    }

    #[test]
    fn mutated_requests_never_panic(
        idx in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut raw = handshake_requests("rtsp://192.0.2.10:48010").remove(5);
        for (i, b) in idx {
            let at = i.index(raw.len());
            raw[at] = b;
        }
        let end = cut.index(raw.len() + 1);
        if let Ok(Some((req, used))) = parse_request(&raw[..end]) {
            prop_assert!(used <= end);
            let mut h = RtspHandler::new(config()).unwrap();
            let (resp, _) = h.handle_request(&req);
            let _ = resp.to_bytes();
        }
    }

    #[test]
    fn seal_round_trip(key in any::<[u8; 16]>(), seq in any::<u32>(), pt in proptest::collection::vec(any::<u8>(), 0..512)) {
        let f = seal(&key, seq, &pt).unwrap();
        prop_assert_eq!(encrypted_frame_len(&f).unwrap(), Some(f.len()));
        prop_assert_eq!(unseal_as(Direction::HostToClient, &key, &f).unwrap(), (seq, pt.clone()));
        let c = seal_as(Direction::ClientToHost, &key, seq, &pt).unwrap();
        prop_assert_eq!(unseal(&key, &c).unwrap(), (seq, pt));
    }
}
