use proptest::prelude::*;

use super::*;

fn hello() -> Hello {
    Hello {
        mode: Mode {
            width: 2560,
            height: 1440,
            refresh_mhz: 143_912,
        },
        bitrate_kbps: 150_000,
        client_name: "Wohnzimmer-PC".into(),
        app: "Steam Big Picture".into(),
        codecs: Codecs::HEVC | Codecs::AV1,
        video_caps: VideoCaps::TEN_BIT | VideoCaps::HDR,
        audio_channels: 2,
        max_shard_payload: 1408,
        synthetic_kbps: 0,
    }
}

fn welcome() -> Welcome {
    Welcome {
        mode: hello().mode,
        codec: Codec::Hevc,
        bit_depth: 10,
        chroma: Chroma::Yuv420,
        colour: Colour::BT2020_PQ,
        fec_percent: 20,
        shard_payload: 1408,
        audio: AudioFormat {
            sample_rate: 48_000,
            channels: 2,
            frame_us: 5_000,
        },
        data_key: [0x11; 16],
        data_salt: [1, 2, 3, 4],
        udp_port: 47_999,
        host_caps: HostCaps::RECONFIGURE | HostCaps::CLOCK_SYNC,
    }
}

/// One of every message.
fn every_message() -> Vec<Message> {
    let mode = Mode {
        width: 1920,
        height: 1080,
        refresh_mhz: 60_000,
    };
    vec![
        Message::Hello(hello()),
        Message::Welcome(welcome()),
        Message::Start {
            client_udp_port: 50_000,
        },
        Message::Close {
            code: CloseCode::QuitStopApp,
            reason: "user quit".into(),
        },
        Message::Close {
            code: CloseCode::Other(999),
            reason: String::new(),
        },
        Message::Reconfigure { mode },
        Message::Reconfigured {
            accepted: true,
            mode,
        },
        Message::RequestKeyframe,
        Message::LossReport {
            loss_ppm: 1_250,
            frames_lost: 2,
            frames_recovered: 17,
        },
        Message::SetBitrate { kbps: 80_000 },
        Message::BitrateChanged {
            kbps: 60_000,
            reason: BitrateReason::Congestion,
        },
        Message::BitrateChanged {
            kbps: 1,
            reason: BitrateReason::Other(77),
        },
        Message::ClockProbe { t1: 123_456_789 },
        Message::ClockEcho {
            t1: 1,
            t2: u64::MAX,
            t3: 3,
        },
        Message::Rumble {
            pad: 3,
            low: 0xC000,
            high: 0x4000,
        },
        Message::ListApps,
        Message::Apps {
            entries: vec![
                AppEntry {
                    id: 1,
                    name: "Desktop".into(),
                },
                AppEntry {
                    id: 0xdead_beef,
                    name: "Spiel über Grenzen".into(),
                },
            ],
        },
        Message::Apps { entries: vec![] },
        Message::PairRequest {
            name: "Steam Deck".into(),
            spake_a: vec![0xa0; 33],
        },
        Message::PairChallenge {
            spake_b: vec![0xb0; 33],
            confirm: vec![0xc0; 32],
        },
        Message::PairProof {
            confirm: vec![0xd0; 32],
        },
        Message::PairResult { ok: true },
        Message::PairResult { ok: false },
    ]
}

fn framed(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode(&mut out).unwrap();
    out
}

#[test]
fn every_message_round_trips() {
    for m in every_message() {
        let bytes = framed(&m);
        let len = u16::from_le_bytes([bytes[0], bytes[1]]) as usize;
        assert_eq!(len + 2, bytes.len(), "{m:?}");
        assert_eq!(bytes[2], m.kind());
        assert_eq!(Message::decode(&bytes[2..]), Ok(m.clone()));
    }
}

#[test]
fn bytes_are_as_documented() {
    assert_eq!(framed(&Message::RequestKeyframe), [1, 0, 0x12]);
    assert_eq!(
        framed(&Message::SetBitrate { kbps: 0x0102_0304 }),
        [5, 0, 0x14, 4, 3, 2, 1]
    );
    assert_eq!(
        framed(&Message::Close {
            code: CloseCode::AppExited,
            reason: "ok".into()
        }),
        [7, 0, 0x04, 2, 0, 2, 0, b'o', b'k']
    );
    assert_eq!(
        framed(&Message::Reconfigure {
            mode: Mode {
                width: 1280,
                height: 720,
                refresh_mhz: 120_000
            }
        }),
        [9, 0, 0x10, 0x00, 0x05, 0xd0, 0x02, 0xc0, 0xd4, 0x01, 0x00]
    );
    assert_eq!(
        framed(&Message::Rumble {
            pad: 1,
            low: 0xC000,
            high: 0x0040
        }),
        [6, 0, 0x18, 1, 0x00, 0xc0, 0x40, 0x00]
    );
}

#[test]
fn a_stream_decodes_in_any_pieces() {
    let messages = every_message();
    let stream: Vec<u8> = messages.iter().flat_map(framed).collect();
    for piece in [1, 2, 3, 7, 64, stream.len()] {
        let mut d = MessageDecoder::new();
        let mut got = Vec::new();
        for chunk in stream.chunks(piece) {
            d.handle_bytes(chunk);
            while let Some(m) = d.poll_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, messages, "pieces of {piece}");
        assert_eq!(d.buffered(), 0);
    }
}

#[test]
fn an_old_decoder_skips_unknown_types_and_ignores_appended_fields() {
    let mut stream = Vec::new();
    // A message type from a later version, with a body.
    stream.extend_from_slice(&[4, 0, 0x7e, 1, 2, 3]);
    // A later SetBitrate with an appended field.
    stream.extend_from_slice(&[7, 0, 0x14, 0x10, 0x27, 0, 0, 0xff, 0xff]);
    // A later Hello with an appended field after the optional one.
    let mut h = framed(&Message::Hello(hello()));
    h.extend_from_slice(&[9, 9, 9]);
    let len = u16::from_le_bytes([h[0], h[1]]) + 3;
    h[..2].copy_from_slice(&len.to_le_bytes());
    stream.extend_from_slice(&h);
    let mut d = MessageDecoder::new();
    d.handle_bytes(&stream);
    assert_eq!(d.poll_message(), Ok(Some(Message::Unknown { kind: 0x7e })));
    assert_eq!(
        d.poll_message(),
        Ok(Some(Message::SetBitrate { kbps: 10_000 }))
    );
    assert_eq!(d.poll_message(), Ok(Some(Message::Hello(hello()))));
    assert_eq!(d.poll_message(), Ok(None));
}

#[test]
fn a_new_decoder_fills_missing_optional_fields_with_defaults() {
    // Hello without the synthetic rate, Welcome without host caps, LossReport without
    // frames recovered, Close without a reason.
    let cut = |m: &Message, n: usize| {
        let f = framed(m);
        Message::decode(&f[2..f.len() - n])
    };
    let mut h = hello();
    h.synthetic_kbps = 5_000;
    let mut expected = h.clone();
    expected.synthetic_kbps = 0;
    assert_eq!(cut(&Message::Hello(h), 4), Ok(Message::Hello(expected)));
    let mut expected = welcome();
    expected.host_caps = HostCaps::default();
    assert_eq!(
        cut(&Message::Welcome(welcome()), 4),
        Ok(Message::Welcome(expected))
    );
    let report = Message::LossReport {
        loss_ppm: 5,
        frames_lost: 6,
        frames_recovered: 7,
    };
    assert_eq!(
        cut(&report, 4),
        Ok(Message::LossReport {
            loss_ppm: 5,
            frames_lost: 6,
            frames_recovered: 0
        })
    );
    let close = Message::Close {
        code: CloseCode::NotPaired,
        reason: "x".into(),
    };
    assert_eq!(
        cut(&close, 3),
        Ok(Message::Close {
            code: CloseCode::NotPaired,
            reason: String::new()
        })
    );
    // A required field missing is an error, and so is an optional one cut in half.
    assert_eq!(
        cut(&report, 8),
        Err(ControlError::Truncated {
            kind: kind::LOSS_REPORT
        })
    );
    assert_eq!(
        cut(&report, 2),
        Err(ControlError::Truncated {
            kind: kind::LOSS_REPORT
        })
    );
}

#[test]
fn malformed_messages_are_refused_and_the_stream_goes_on() {
    let mut d = MessageDecoder::new();
    // Bad UTF-8 in a PairRequest name, an invalid bool, an unknown codec.
    d.handle_bytes(&[6, 0, 0x30, 2, 0, 0xff, 0xfe, 0]);
    d.handle_bytes(&[2, 0, 0x33, 2]);
    let mut w = framed(&Message::Welcome(welcome()));
    w[2 + 1 + 8] = 9;
    d.handle_bytes(&w);
    d.handle_bytes(&framed(&Message::ListApps));
    assert_eq!(
        d.poll_message(),
        Err(ControlError::Utf8 {
            kind: kind::PAIR_REQUEST
        })
    );
    assert!(matches!(
        d.poll_message(),
        Err(ControlError::InvalidValue { field: "bool", .. })
    ));
    assert!(matches!(
        d.poll_message(),
        Err(ControlError::InvalidValue {
            field: "codec",
            value: 9,
            ..
        })
    ));
    assert_eq!(d.poll_message(), Ok(Some(Message::ListApps)));
}

#[test]
fn lengths_over_the_limit_end_the_stream() {
    let mut d = MessageDecoder::with_max_len(100);
    d.handle_bytes(&framed(&Message::RequestKeyframe));
    d.handle_bytes(&[101, 0]);
    assert_eq!(d.poll_message(), Ok(Some(Message::RequestKeyframe)));
    let e = ControlError::TooLong { len: 101, max: 100 };
    assert_eq!(d.poll_message(), Err(e.clone()));
    d.handle_bytes(&framed(&Message::RequestKeyframe));
    assert_eq!(d.poll_message(), Err(e));
    assert_eq!(d.buffered(), 0);

    let mut d = MessageDecoder::new();
    d.handle_bytes(&[0, 0]);
    assert_eq!(d.poll_message(), Err(ControlError::Empty));
    assert_eq!(Message::decode(&[]), Err(ControlError::Empty));
}

#[test]
fn the_encoder_refuses_what_the_decoder_would() {
    let mut out = vec![0xaa];
    let long = Message::PairRequest {
        name: "n".repeat(MAX_NAME_LEN + 1),
        spake_a: vec![],
    };
    assert!(matches!(
        long.encode(&mut out),
        Err(ControlError::FieldTooLong { .. })
    ));
    let many = Message::Apps {
        entries: (0..200)
            .map(|id| AppEntry {
                id,
                name: "a".repeat(200),
            })
            .collect(),
    };
    assert!(matches!(
        many.encode(&mut out),
        Err(ControlError::TooLong { .. })
    ));
    assert_eq!(out, [0xaa]);
    // The limit itself is fine.
    let at_limit = Message::Close {
        code: CloseCode::Error,
        reason: "r".repeat(MAX_REASON_LEN),
    };
    assert!(at_limit.encode(&mut out).is_ok());
}

#[test]
fn an_app_count_the_body_cannot_hold_is_refused() {
    assert_eq!(
        Message::decode(&[kind::APPS, 0xff, 0xff, 0, 0]),
        Err(ControlError::Truncated { kind: kind::APPS })
    );
}

fn any_string(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..24).prop_map(move |c| {
        let mut s: String = c.into_iter().collect();
        while s.len() > max {
            s.pop();
        }
        s
    })
}

fn any_mode() -> impl Strategy<Value = Mode> {
    (any::<u16>(), any::<u16>(), any::<u32>()).prop_map(|(width, height, refresh_mhz)| Mode {
        width,
        height,
        refresh_mhz,
    })
}

fn any_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            any_mode(),
            any::<u32>(),
            any_string(MAX_NAME_LEN),
            any_string(MAX_NAME_LEN),
            any::<(u8, u8, u8, u16, u32)>(),
        )
            .prop_map(|(mode, bitrate_kbps, client_name, app, (c, v, a, s, k))| {
                Message::Hello(Hello {
                    mode,
                    bitrate_kbps,
                    client_name,
                    app,
                    codecs: Codecs(c),
                    video_caps: VideoCaps(v),
                    audio_channels: a,
                    max_shard_payload: s,
                    synthetic_kbps: k,
                })
            }),
        (any_mode(), any::<[u8; 16]>(), any::<u32>(), any::<bool>()).prop_map(
            |(mode, data_key, caps, full_range)| {
                let mut w = welcome();
                w.mode = mode;
                w.data_key = data_key;
                w.host_caps = HostCaps(caps);
                w.colour.full_range = full_range;
                w.codec = if full_range { Codec::Av1 } else { Codec::H264 };
                Message::Welcome(w)
            }
        ),
        (any::<u16>(), any_string(MAX_REASON_LEN)).prop_map(|(c, reason)| Message::Close {
            code: CloseCode::from_wire(c),
            reason
        }),
        (any::<bool>(), any_mode())
            .prop_map(|(accepted, mode)| Message::Reconfigured { accepted, mode }),
        any::<(u32, u32, u32)>().prop_map(|(a, b, c)| Message::LossReport {
            loss_ppm: a,
            frames_lost: b,
            frames_recovered: c
        }),
        (any::<u32>(), any::<u8>()).prop_map(|(kbps, r)| Message::BitrateChanged {
            kbps,
            reason: BitrateReason::from_wire(r)
        }),
        any::<(u64, u64, u64)>().prop_map(|(t1, t2, t3)| Message::ClockEcho { t1, t2, t3 }),
        any::<(u8, u16, u16)>().prop_map(|(pad, low, high)| Message::Rumble { pad, low, high }),
        proptest::collection::vec((any::<u32>(), any_string(MAX_NAME_LEN)), 0..20).prop_map(|e| {
            Message::Apps {
                entries: e
                    .into_iter()
                    .map(|(id, name)| AppEntry { id, name })
                    .collect(),
            }
        }),
        (
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(spake_b, confirm)| Message::PairChallenge { spake_b, confirm }),
    ]
}

proptest! {
    #[test]
    fn messages_round_trip(m in any_message()) {
        let f = framed(&m);
        prop_assert_eq!(Message::decode(&f[2..]), Ok(m));
    }

    #[test]
    fn appended_bytes_are_ignored(m in any_message(), extra in proptest::collection::vec(any::<u8>(), 1..16)) {
        let mut f = framed(&m);
        f.extend_from_slice(&extra);
        prop_assert_eq!(Message::decode(&f[2..]), Ok(m));
    }

    #[test]
    fn random_streams_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..8)) {
        let mut d = MessageDecoder::with_max_len(200);
        for c in &chunks {
            d.handle_bytes(c);
            for _ in 0..8 {
                match d.poll_message() {
                    Ok(Some(_)) | Err(ControlError::Truncated { .. } | ControlError::Utf8 { .. }
                        | ControlError::InvalidValue { .. } | ControlError::FieldTooLong { .. }) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
        prop_assert!(d.buffered() <= chunks.iter().map(Vec::len).sum::<usize>());
    }
}
