//! A punktfunk/1 stream on loopback, received with the protocol crate's reassembler: the test
//! pattern encoded and sealed, a mode change mid-stream, and a synthetic stream at a high rate.

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use compositor::{Compositor, CompositorHandle, CompositorOptions, Mode};
use protocol::native::crypto::DataKey;
use protocol::native::header::Plane;
use protocol::native::reassembly::{Event, Reassembler, ReassemblyConfig};
use streamer::encode::{EncoderOptions, HardwareOptions};
use streamer::native::{NativeConfig, NativeStream};
use streamer::pipeline::AudioSettings;
use streamer::StreamHandle;

const KEY: [u8; 16] = *b"native-test-key!";
const SALT: [u8; 4] = [1, 2, 3, 4];

fn compositor(width: u32, height: u32) -> Arc<CompositorHandle> {
    let comp = Compositor::spawn(CompositorOptions::new(Mode {
        width,
        height,
        refresh_mhz: 60_000,
    }))
    .expect("the compositor starts");
    Arc::new(comp)
}

fn config(
    dest: std::net::SocketAddr,
    width: u32,
    height: u32,
    synthetic_kbps: u32,
) -> NativeConfig {
    NativeConfig {
        key: DataKey::new(KEY, SALT).unwrap(),
        dest,
        encoder: EncoderOptions::new(width, height, 60, 4000),
        hardware: HardwareOptions::default(),
        fec_percent: 10,
        shard_payload: 1408,
        audio: None,
        audio_settings: AudioSettings {
            channels: 2,
            high_quality: false,
            packet_duration_ms: 5,
        },
        synthetic_kbps,
        gamepads: Default::default(),
    }
}

/// What arrived on the video plane.
#[derive(Default, Debug)]
struct Received {
    /// (index, keyframe, bytes) of each frame, in order.
    frames: Vec<(u32, bool, usize)>,
    lost: u32,
}

/// The client's side of the data plane: one reassembler per plane, kept across calls.
struct Receiver {
    socket: UdpSocket,
    video: Reassembler,
    audio: Reassembler,
    got: Received,
}

impl Receiver {
    fn bind() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        // The test runs next to the host's threads on a small machine: a deep buffer, so that
        // a slow moment of this receiver drops nothing (root may exceed rmem_max).
        let size: libc::c_int = 64 << 20;
        // SAFETY: setsockopt reads one c_int from the pointer we pass, on a socket we own.
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&socket),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let key = DataKey::new(KEY, SALT).unwrap();
        Self {
            socket,
            video: Reassembler::new(&key, Plane::Video, ReassemblyConfig::default()),
            audio: Reassembler::new(&key, Plane::Audio, ReassemblyConfig::default()),
            got: Received::default(),
        }
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.socket.local_addr().unwrap()
    }

    /// Receives until `until` holds or `limit` passes; returns everything received so far.
    fn until(&mut self, limit: Duration, mut until: impl FnMut(&Received) -> bool) -> &Received {
        let mut buf = vec![0u8; 65536];
        let end = Instant::now() + limit;
        while Instant::now() < end && !until(&self.got) {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let now = Instant::now();
                // The audio plane shares the port; its datagrams carry another magic byte.
                if self.video.handle_datagram(now, &buf[..n]).is_err() {
                    let _ = self.audio.handle_datagram(now, &buf[..n]);
                }
            }
            self.video.handle_timeout(Instant::now());
            while let Some(ev) = self.video.poll_event() {
                match ev {
                    Event::Frame {
                        index,
                        keyframe,
                        data,
                        ..
                    } => self.got.frames.push((index, keyframe, data.len())),
                    Event::Lost { first, last } => self.got.lost += last - first + 1,
                }
            }
        }
        &self.got
    }
}

fn assert_no_gaps(got: &Received) {
    assert_eq!(got.lost, 0, "frames lost: {got:?}");
    for (i, (index, _, _)) in got.frames.iter().enumerate() {
        assert_eq!(*index as usize, i, "frame numbers skip: {:?}", got.frames);
    }
}

#[test]
fn the_test_pattern_streams_sealed_and_changes_mode_with_a_keyframe() {
    let comp = compositor(640, 360);
    std::env::set_var("WAYLAND_DISPLAY", comp.socket_name());
    std::env::set_var("XDG_RUNTIME_DIR", comp.runtime_dir());
    std::thread::spawn(|| {
        testpattern::run(testpattern::Options {
            exit_after: Some(Duration::from_secs(60)),
            ..Default::default()
        })
    });
    let mut rx = Receiver::bind();
    let stream = NativeStream::start(config(rx.addr(), 640, 360, 0), comp.clone(), |_| {}).unwrap();
    let got = rx.until(Duration::from_secs(20), |g| g.frames.len() >= 30);
    assert!(got.frames.len() >= 30, "too few frames: {got:?}");
    assert!(got.frames[0].1, "the first frame is not a keyframe");
    assert_no_gaps(got);

    // A new mode: the output and the stream change; the first frame after is a keyframe.
    comp.set_mode(Mode {
        width: 800,
        height: 600,
        refresh_mhz: 60_000,
    });
    stream.reconfigure(800, 600, 60);
    let before = got.frames.len() as u32;
    let after = rx.until(Duration::from_secs(20), |g| {
        g.frames[before as usize..].iter().any(|f| f.1) && g.frames.len() >= before as usize + 10
    });
    assert!(
        after.frames[before as usize..].iter().any(|f| f.1),
        "no keyframe after the mode change: {after:?}"
    );
    assert_no_gaps(after);
    let sent = stream.stats().frames_sent;
    assert!(sent >= u64::from(before) + 10, "{sent} sent, {after:?}");
    Box::new(stream).stop();
}

#[test]
fn a_synthetic_stream_at_30_mbits_arrives_whole_on_loopback() {
    let comp = compositor(1280, 720);
    let mut rx = Receiver::bind();
    let stream = NativeStream::start(config(rx.addr(), 1280, 720, 30_000), comp, |_| {}).unwrap();
    let got = rx.until(Duration::from_secs(20), |g| g.frames.len() >= 120);
    assert!(got.frames.len() >= 120, "{} frames", got.frames.len());
    assert_no_gaps(got);
    // 30 Mbit/s at 60 fps: frames of 62 500 bytes.
    assert_eq!(got.frames[5].2, 62_500);
    assert_eq!(stream.send_failures(), 0);
    Box::new(stream).stop();
}
