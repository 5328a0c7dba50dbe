//! Virtual sinks and their capture against a real, private `pulseaudio` (skipped where it is not
//! installed): what plays into a session's sink comes out of [`Capture`] on the right channel,
//! in the client's layout, and reads run at the audio rate whether anything plays or not.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use libpulse_binding::channelmap::Map;
use libpulse_binding::sample::{Format, Spec};
use libpulse_binding::stream::Direction;
use libpulse_simple_binding::Simple;
use streamer::audio::{self, Capture, PulseServer, VirtualSink};
use streamer::encode::ChannelLayout;

const RATE: u32 = 48_000;

/// A private server for one test, killed and removed on drop.
struct Server {
    child: Child,
    _dir: tempfile::TempDir,
    address: PulseServer,
}

impl Server {
    fn start() -> Option<Server> {
        let program = std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|d| d.join("pulseaudio"))
            .find(|p| p.is_file())?;
        let dir = tempfile::Builder::new()
            .prefix("pf-pa-")
            .tempdir_in("/tmp")
            .unwrap();
        let socket = dir.path().join("native");
        let child = Command::new(program)
            .args([
                "--daemonize=no",
                "-n",
                "--exit-idle-time=-1",
                "--use-pid-file=no",
            ])
            .args([
                "--realtime=no",
                "--high-priority=no",
                "--log-target=stderr",
                "-L",
            ])
            .arg(format!(
                "module-native-protocol-unix socket={} auth-anonymous=1",
                socket.display()
            ))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("HOME", dir.path())
            .env("XDG_RUNTIME_DIR", dir.path())
            .env("PULSE_STATE_PATH", dir.path().join("state"))
            .env("PULSE_RUNTIME_PATH", dir.path().join("runtime"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let address = PulseServer::at_socket(&socket);
        let server = Server {
            child,
            _dir: dir,
            address,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(socket.exists() && server.address.probe().is_ok()) {
            assert!(Instant::now() < deadline, "pulseaudio did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

macro_rules! server_or_skip {
    () => {
        match Server::start() {
            Some(s) => s,
            None => {
                eprintln!("pulseaudio is not installed; skipping");
                return;
            }
        }
    };
}

/// Plays `seconds` of a `hz` tone on channel `channel` of `layout` into `sink`, from a thread.
fn play_tone(
    server: &PulseServer,
    sink: &VirtualSink,
    layout: ChannelLayout,
    channel: usize,
    hz: f32,
    seconds: f32,
) -> std::thread::JoinHandle<()> {
    let server = server.address().to_owned();
    let sink = sink.name().to_owned();
    std::thread::spawn(move || {
        let channels = layout.channels();
        let spec = Spec {
            format: Format::S16le,
            rate: RATE,
            channels: channels as u8,
        };
        let map = Map::new_from_string(audio::channel_map(layout)).unwrap();
        let out = Simple::new(
            Some(&server),
            "test",
            Direction::Playback,
            Some(&sink),
            "tone",
            &spec,
            Some(&map),
            None,
        )
        .unwrap();
        let frames = (seconds * RATE as f32) as usize;
        let mut bytes = Vec::with_capacity(frames * channels * 2);
        for i in 0..frames {
            for c in 0..channels {
                let v = if c == channel {
                    ((i as f32 / RATE as f32 * hz * std::f32::consts::TAU).sin() * 10_000.0) as i16
                } else {
                    0
                };
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        out.write(&bytes).unwrap();
        out.drain().unwrap();
    })
}

/// Records `packets` packets of `frame` samples per channel; returns the PCM per channel.
fn record(capture: &mut Capture, frame: usize, packets: usize) -> Vec<Vec<f64>> {
    let channels = capture.channels();
    let mut pcm = vec![0i16; frame * channels];
    let mut out = vec![Vec::new(); channels];
    for _ in 0..packets {
        assert!(
            capture.read(&mut pcm, Duration::from_secs(5)).unwrap(),
            "no audio within 5 s"
        );
        for (i, s) in pcm.iter().enumerate() {
            out[i % channels].push(f64::from(*s) / 32768.0);
        }
    }
    out
}

fn rms(x: &[f64]) -> f64 {
    (x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// Amplitude of `hz` in `x` (a single-bin DFT).
fn tone_level(x: &[f64], hz: f64) -> f64 {
    let w = std::f64::consts::TAU * hz / f64::from(RATE);
    let (mut re, mut im) = (0.0, 0.0);
    for (n, v) in x.iter().enumerate() {
        re += v * (w * n as f64).cos();
        im += v * (w * n as f64).sin();
    }
    2.0 * (re * re + im * im).sqrt() / x.len() as f64
}

#[test]
fn a_tone_on_one_speaker_comes_back_on_that_channel_only() {
    let server = server_or_skip!();
    let layout = ChannelLayout::Surround51;
    let sink = VirtualSink::create(&server.address, layout).unwrap();
    let mut capture = Capture::open(&sink.source(), layout, 240).unwrap();
    let player = play_tone(&server.address, &sink, layout, 4, 1000.0, 1.5);
    // Skip the start, keep a second of the middle.
    record(&mut capture, 240, 60);
    let pcm = record(&mut capture, 240, 200);
    player.join().unwrap();
    let bl = tone_level(&pcm[4], 1000.0);
    assert!(
        (bl - 10_000.0 / 32768.0).abs() < 0.02,
        "BL carries the tone at {bl}"
    );
    for (c, ch) in pcm.iter().enumerate().filter(|(c, _)| *c != 4) {
        assert!(
            rms(ch) < 1e-4,
            "channel {c} should be silent: rms {}",
            rms(ch)
        );
    }
}

#[test]
fn a_client_with_fewer_speakers_gets_a_downmix() {
    // A session launched for 5.1, resumed by a stereo client: the server remixes by position.
    let server = server_or_skip!();
    let sink = VirtualSink::create(&server.address, ChannelLayout::Surround51).unwrap();
    let mut capture = Capture::open(&sink.source(), ChannelLayout::Stereo, 240).unwrap();
    let player = play_tone(
        &server.address,
        &sink,
        ChannelLayout::Surround51,
        0,
        700.0,
        1.5,
    );
    record(&mut capture, 240, 60);
    let pcm = record(&mut capture, 240, 200);
    player.join().unwrap();
    let (left, right) = (tone_level(&pcm[0], 700.0), tone_level(&pcm[1], 700.0));
    assert!(left > 0.05, "front-left is heard on the left: {left}");
    assert!(
        right < left / 100.0,
        "and not on the right: {right} vs {left}"
    );
}

#[test]
fn reads_run_at_the_audio_rate_with_or_without_sound() {
    let server = server_or_skip!();
    let sink = VirtualSink::create(&server.address, ChannelLayout::Stereo).unwrap();
    for frame in [240, 480] {
        let mut capture = Capture::open(&sink.source(), ChannelLayout::Stereo, frame).unwrap();
        record(&mut capture, frame, 20);
        let packets = 200;
        let started = Instant::now();
        let pcm = record(&mut capture, frame, packets);
        let took = started.elapsed().as_secs_f64();
        let audio = (packets * frame) as f64 / f64::from(RATE);
        assert!(
            (took - audio).abs() < 0.1 * audio,
            "{packets} reads of {frame} samples took {took:.3} s for {audio:.3} s of audio"
        );
        assert!(
            pcm.iter().all(|ch| rms(ch) == 0.0),
            "an idle sink records silence"
        );
    }
}

#[test]
fn dropping_the_sink_removes_it() {
    let server = server_or_skip!();
    let sink = VirtualSink::create(&server.address, ChannelLayout::Surround71).unwrap();
    let source = sink.source();
    assert!(Capture::open(&source, ChannelLayout::Surround71, 240).is_ok());
    drop(sink);
    assert!(
        Capture::open(&source, ChannelLayout::Surround71, 240).is_err(),
        "the sink is still there"
    );
}

#[test]
fn a_suspended_sink_times_reads_out_instead_of_hanging_them() {
    let server = server_or_skip!();
    let Some(pactl) = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join("pactl"))
        .find(|p| p.is_file())
    else {
        eprintln!("pactl is not installed; skipping");
        return;
    };
    let sink = VirtualSink::create(&server.address, ChannelLayout::Stereo).unwrap();
    let suspend = |on: bool| {
        let ok = Command::new(&pactl)
            .env("PULSE_SERVER", server.address.address())
            .args(["suspend-sink", sink.name(), if on { "1" } else { "0" }])
            .status()
            .unwrap()
            .success();
        assert!(ok, "pactl suspend-sink failed");
    };
    let mut capture = Capture::open(&sink.source(), ChannelLayout::Stereo, 240).unwrap();
    record(&mut capture, 240, 20);
    suspend(true);
    // Whatever was already on its way may still come; then nothing does.
    let mut pcm = vec![0i16; 480];
    let mut timed_out = false;
    for _ in 0..40 {
        let started = Instant::now();
        if !capture.read(&mut pcm, Duration::from_millis(20)).unwrap() {
            let took = started.elapsed();
            assert!(
                took < Duration::from_millis(200),
                "a 20 ms read took {took:?}"
            );
            timed_out = true;
            break;
        }
    }
    assert!(timed_out, "a suspended sink kept delivering");
    suspend(false);
    record(&mut capture, 240, 20);
}

#[test]
fn sinks_of_hosts_that_are_gone_are_removed_and_ours_stay() {
    let server = server_or_skip!();
    let ours = VirtualSink::create(&server.address, ChannelLayout::Stereo).unwrap();
    // A sink as a killed host would have left it: its pid names no process.
    let dead_pid = (900_000..999_999)
        .find(|p| !Path::new(&format!("/proc/{p}")).exists())
        .unwrap();
    let Some(pactl) = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join("pactl"))
        .find(|p| p.is_file())
    else {
        eprintln!("pactl is not installed; skipping");
        return;
    };
    let left = format!("punktfunk-{dead_pid}-1");
    let ok = Command::new(&pactl)
        .env("PULSE_SERVER", server.address.address())
        .args([
            "load-module",
            "module-null-sink",
            &format!("sink_name={left}"),
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "pactl load-module failed");
    let left_source = audio::AudioSource {
        server: server.address.clone(),
        source: format!("{left}.monitor"),
    };
    assert!(Capture::open(&left_source, ChannelLayout::Stereo, 240).is_ok());
    assert_eq!(audio::remove_orphaned_sinks(&server.address).unwrap(), 1);
    assert!(
        Capture::open(&left_source, ChannelLayout::Stereo, 240).is_err(),
        "the leftover stays"
    );
    assert!(
        Capture::open(&ours.source(), ChannelLayout::Stereo, 240).is_ok(),
        "ours went"
    );
}
