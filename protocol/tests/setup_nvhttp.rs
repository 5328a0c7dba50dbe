//! nvhttp replies byte for byte, and the query strings moonlight-qt sends.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use protocol::nvhttp::{
    app_id, applist_xml, cancel_xml, error_xml, launch_error_xml, launch_xml, local_ip_for,
    not_found_xml, ok_xml, pair_xml, resume_xml, session_url, unauthorized_xml, AppEntry,
    DisplayMode, LaunchError, LaunchKind, LaunchRequest, Query, ServerInfo, MAX_LUMA_PIXELS_HEVC,
    SCM_H264, SCM_HEVC, SCM_HEVC_MAIN10,
};

const DECL: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n";

#[test]
fn serverinfo_matches_the_documented_example() {
    let mut info = ServerInfo::new("punktfunk", "0e7c");
    info.max_luma_pixels_hevc = MAX_LUMA_PIXELS_HEVC;
    info.local_ip = "192.0.2.10".into();
    // The document's example sends 259 and calls it H264 | HEVC | HEVC_MAIN10, but with
    // moonlight-common-c's SCM_* values (Limelight.h) that mask is 0x301 = 769; 259 = 0x103
    // is not a meaningful mask. The bytes of the example are reproduced as written.
    assert_eq!(SCM_H264 | SCM_HEVC | SCM_HEVC_MAIN10, 769);
    info.codec_mode_support = 259;
    assert_eq!(
        info.to_xml(),
        format!(
            "{DECL}<root status_code=\"200\"><hostname>punktfunk</hostname><appversion>7.1.431.-1</appversion><GfeVersion>3.23.0.74</GfeVersion><uniqueid>0e7c</uniqueid><HttpsPort>47984</HttpsPort><ExternalPort>47989</ExternalPort><MaxLumaPixelsHEVC>1869449984</MaxLumaPixelsHEVC><mac>00:00:00:00:00:00</mac><LocalIP>192.0.2.10</LocalIP><ServerCodecModeSupport>259</ServerCodecModeSupport><PairStatus>0</PairStatus><currentgame>0</currentgame><state>SUNSHINE_SERVER_FREE</state></root>"
        )
    );

    // Paired, busy, external IP, a hostname that needs escaping.
    info.hostname = "Tom & Jerry's <PC>".into();
    info.paired = true;
    info.current_game = 881_448_767;
    info.external_ip = Some("203.0.113.5".into());
    let x = info.to_xml();
    assert!(x.contains("<hostname>Tom &amp; Jerry&apos;s &lt;PC&gt;</hostname>"));
    assert!(x.contains("<ServerCodecModeSupport>259</ServerCodecModeSupport><ExternalIP>203.0.113.5</ExternalIP><PairStatus>1</PairStatus><currentgame>881448767</currentgame><state>SUNSHINE_SERVER_BUSY</state></root>"));
    assert!(!x.contains("MJOLNIR"));
}

#[test]
fn local_ip_and_session_url() {
    let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
    let v6 = IpAddr::V6("2001:db8::1".parse::<Ipv6Addr>().unwrap());
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 10).to_ipv6_mapped());
    assert_eq!(local_ip_for(v4), "192.0.2.10");
    assert_eq!(local_ip_for(v6), "127.0.0.1");
    assert_eq!(local_ip_for(mapped), "192.0.2.10");
    assert_eq!(session_url(true, v4, 48010), "rtspenc://192.0.2.10:48010");
    assert_eq!(session_url(false, v6, 48010), "rtsp://[2001:db8::1]:48010");
    assert_eq!(session_url(false, mapped, 48010), "rtsp://192.0.2.10:48010");
}

#[test]
fn applist_and_simple_replies() {
    let apps = [
        AppEntry {
            id: app_id("Desktop"),
            title: "Desktop".into(),
            hdr_supported: true,
        },
        AppEntry {
            id: 7,
            title: String::new(),
            hdr_supported: false,
        },
    ];
    assert_eq!(
        applist_xml(&apps),
        format!(
            "{DECL}<root status_code=\"200\"><App><IsHdrSupported>1</IsHdrSupported><AppTitle>Desktop</AppTitle><ID>{}</ID></App><App><IsHdrSupported>0</IsHdrSupported><AppTitle/><ID>7</ID></App></root>",
            app_id("Desktop")
        )
    );
    assert!(app_id("Desktop") > 0);
    assert_eq!(
        applist_xml(&[]),
        format!("{DECL}<root status_code=\"200\"></root>")
    );

    assert_eq!(
        launch_xml("rtspenc://192.0.2.10:48010"),
        format!("{DECL}<root status_code=\"200\"><sessionUrl0>rtspenc://192.0.2.10:48010</sessionUrl0><gamesession>1</gamesession></root>")
    );
    assert_eq!(
        resume_xml("rtsp://192.0.2.10:48010"),
        format!("{DECL}<root status_code=\"200\"><sessionUrl0>rtsp://192.0.2.10:48010</sessionUrl0><resume>1</resume></root>")
    );
    assert_eq!(
        cancel_xml(),
        format!("{DECL}<root status_code=\"200\"><cancel>1</cancel></root>")
    );
    assert_eq!(
        pair_xml(Some(("plaincert", "2D2D"))),
        format!(
            "{DECL}<root status_code=\"200\"><paired>1</paired><plaincert>2D2D</plaincert></root>"
        )
    );
    assert_eq!(
        unauthorized_xml("/serverinfo"),
        format!("{DECL}<root status_code=\"401\" query=\"/serverinfo\" status_message=\"The client is not authorized. Certificate verification failed.\"/>")
    );
    assert_eq!(
        not_found_xml(),
        format!("{DECL}<root status_code=\"404\"/>")
    );
    assert_eq!(ok_xml(), format!("{DECL}<root status_code=\"200\"/>"));
    assert_eq!(
        error_xml(503, "No running app to resume"),
        format!("{DECL}<root status_code=\"503\" status_message=\"No running app to resume\"/>")
    );
    assert_eq!(
        launch_error_xml(LaunchKind::Resume, 503, "No running app to resume"),
        format!("{DECL}<root status_code=\"503\" status_message=\"No running app to resume\"><resume>0</resume></root>")
    );
    assert_eq!(
        launch_error_xml(LaunchKind::Launch, 400, "An app is already running on this host"),
        format!("{DECL}<root status_code=\"400\" status_message=\"An app is already running on this host\"><gamesession>0</gamesession></root>")
    );
    assert_eq!(
        error_xml(-1, "Invalid"),
        format!("{DECL}<root status_code=\"-1\" status_message=\"Invalid\"/>")
    );
}

const MOONLIGHT_LAUNCH: &str = "/launch?uniqueid=0123456789ABCDEF&uuid=5c1d8c1e0a2b4e6f8a9b0c1d2e3f4a5b&appid=881448767&mode=1920x1080x120&additionalStates=1&sops=0&rikey=00112233445566778899AABBCCDDEEFF&rikeyid=-1737894012&hdrMode=1&clientHdrCapVersion=0&clientHdrCapSupportedFlagsInUint32=0&clientHdrCapMetaDataId=NV_STATIC_METADATA_TYPE_1&clientHdrCapDisplayData=0x0x0x0x0x0x0x0x0x0x0&localAudioPlayMode=0&surroundAudioInfo=104792072&remoteControllersBitmap=3&gcmap=3&gcpersist=0&corever=1";

#[test]
fn launch_query_from_moonlight() {
    let q = Query::parse(MOONLIGHT_LAUNCH);
    assert_eq!(q.uniqueid(), Ok("0123456789ABCDEF"));
    let l = LaunchRequest::parse(&q, LaunchKind::Launch).unwrap();
    assert_eq!(l.app_id, 881_448_767);
    assert_eq!(
        l.mode,
        DisplayMode {
            width: 1920,
            height: 1080,
            fps: 120
        }
    );
    assert_eq!(
        l.rikey,
        [
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD,
            0xEE, 0xFF
        ]
    );
    assert_eq!(l.rikeyid, (-1_737_894_012i32) as u32);
    assert_eq!(l.iv()[..4], l.rikeyid.to_be_bytes());
    assert_eq!(l.iv()[4..], [0u8; 12]);
    assert_eq!(l.local_audio_play_mode, Some(false));
    assert!(!l.sops);
    assert!(l.hdr_mode);
    assert_eq!(l.surround_audio_info, 104_792_072);
    assert_eq!((l.audio_channels(), l.audio_channel_mask()), (8, 0x63F));
    assert_eq!(l.gamepad_mask, 3);
    assert!(!l.gamepad_persist);
    assert_eq!(l.corever, 1);
    assert!(l.rtsp_encryption());
    assert_eq!(l.surround_params, None);
    assert!(!l.continuous_audio);

    // Resume does not need localAudioPlayMode or appid.
    let r = LaunchRequest::parse(
        &Query::parse("rikey=00112233445566778899aabbccddeeff&rikeyid=5"),
        LaunchKind::Resume,
    )
    .unwrap();
    assert_eq!((r.app_id, r.local_audio_play_mode, r.corever), (0, None, 0));
    assert_eq!(r.mode, DisplayMode::default());
    assert_eq!((r.audio_channels(), r.audio_channel_mask()), (2, 3));
}

#[test]
fn launch_query_errors() {
    for drop in ["rikey", "rikeyid", "localAudioPlayMode", "appid"] {
        let q: String = MOONLIGHT_LAUNCH
            .split('&')
            .filter(|p| !p.starts_with(&format!("{drop}=")))
            .collect::<Vec<_>>()
            .join("&");
        let e = LaunchRequest::parse(&Query::parse(&q), LaunchKind::Launch).unwrap_err();
        assert_eq!(e, LaunchError::Missing(drop.to_owned()));
        assert_eq!(
            e.to_xml(LaunchKind::Launch),
            format!("{DECL}<root status_code=\"400\" status_message=\"Missing a required launch parameter\"><resume>0</resume></root>")
        );
    }
    let e = LaunchRequest::parse(&Query::parse("rikey=00"), LaunchKind::Resume).unwrap_err();
    assert_eq!(
        e.status_message(LaunchKind::Resume),
        "Missing a required resume parameter"
    );

    for (bad, good) in [
        ("mode=1920x1080x120", "mode=1920x1080"),
        ("rikey=00112233445566778899AABBCCDDEEFF", "rikey=0011"),
        ("rikeyid=-1737894012", "rikeyid=abc"),
        ("appid=881448767", "appid=99999999999"),
    ] {
        let q = MOONLIGHT_LAUNCH.replace(bad, good);
        let e = LaunchRequest::parse(&Query::parse(&q), LaunchKind::Launch).unwrap_err();
        assert!(matches!(e, LaunchError::Invalid(_)), "{good}: {e:?}");
        assert_eq!(e.status_code(), 400);
    }
}
