//! The command line: subcommands, and the parsers of its value types (`HOST[:PORT]`, `WxH@R`,
//! `WxH@R@T`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use protocol::native::control::{Codec, Codecs, Mode};

/// GameStream's base port; the native control connection listens 30 above it.
pub(crate) const DEFAULT_PORT: u16 = 47_989 + 30;

/// The reference client of punktfunk/1.
#[derive(Debug, Parser)]
#[command(name = "punktfunk-client", version, about)]
pub(crate) struct Cli {
    /// Where the client keeps its certificate and the hosts it paired with (default
    /// `$XDG_CONFIG_HOME/punktfunk-client`, else `$HOME/.config/punktfunk-client`).
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) state_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Pair with a host: type the PIN the host shows.
    Pair {
        /// The host, `HOST[:PORT]` (port 48019 by default; IPv6 in brackets).
        host: HostArg,
        /// The PIN the host shows.
        #[arg(long)]
        pin: String,
        /// The name the host lists this client under (default: this machine's host name).
        #[arg(long)]
        name: Option<String>,
    },
    /// List the host's apps, one `ID<TAB>NAME` line each.
    List {
        /// The host, `HOST[:PORT]`.
        host: HostArg,
    },
    /// Stream an app, decode it and report what arrived.
    Stream(Box<StreamArgs>),
}

#[derive(Debug, clap::Args)]
pub(crate) struct StreamArgs {
    /// The host, `HOST[:PORT]`.
    pub(crate) host: HostArg,
    /// The app to launch, by name (default: the host's default app).
    #[arg(long, default_value = "")]
    pub(crate) app: String,
    /// The mode, `WIDTHxHEIGHT@REFRESH` (e.g. `1280x720@60`, `1920x1080@59.94`).
    #[arg(long)]
    pub(crate) mode: ModeArg,
    /// The codec to ask for.
    #[arg(long, value_enum, default_value_t = CodecArg::H264)]
    pub(crate) codec: CodecArg,
    /// The bitrate to ask for, in kbit/s.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) bitrate: u32,
    /// How long to stream, counted from the first video frame (default: until the host ends
    /// the stream or Ctrl-C).
    #[arg(long)]
    pub(crate) seconds: Option<f64>,
    /// `WxH@R@T`: T seconds after the first video frame, ask for mode WxH@R. Repeatable.
    #[arg(long = "reconfigure", value_name = "WxH@R@T")]
    pub(crate) reconfigure: Vec<Reconfigure>,
    /// Type this text into the stream 1 s after the first decoded frame. A trailing newline
    /// (or the two characters `\n`) also presses Enter.
    #[arg(long = "type", value_name = "TEXT")]
    pub(crate) type_text: Option<String>,
    /// `FILE.y4m`: every decoded frame of the first resolution; `FILE.png`: the last decoded
    /// frame.
    #[arg(long)]
    pub(crate) output: Option<PathBuf>,
    /// Write the decoded sound to this WAV file (16-bit, the host's channels and rate; lost
    /// packets concealed as a player would).
    #[arg(long, value_name = "FILE.wav")]
    pub(crate) audio_output: Option<PathBuf>,
    /// Write a JSON report of the stream to this file.
    #[arg(long, value_name = "REPORT")]
    pub(crate) json: Option<PathBuf>,
    /// Write every video frame's times to this CSV file, on the host's clock (the clock probes
    /// correct the skew): `pts_ns,reassembled_ns,decoded_ns,encode_us` (`decoded_ns` empty for
    /// a frame not decoded).
    #[arg(long, value_name = "CSV")]
    pub(crate) frame_times: Option<PathBuf>,
    /// Ask for a synthetic stream of this many kbit/s instead of the app's video (not decoded,
    /// only counted).
    #[arg(long, default_value_t = 0)]
    pub(crate) synthetic_kbps: u32,
    /// End with "quit": the host stops the app too.
    #[arg(long)]
    pub(crate) quit: bool,
}

/// A codec on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CodecArg {
    H264,
    Hevc,
    Av1,
}

impl CodecArg {
    pub(crate) fn codecs(self) -> Codecs {
        match self {
            CodecArg::H264 => Codecs::H264,
            CodecArg::Hevc => Codecs::HEVC,
            CodecArg::Av1 => Codecs::AV1,
        }
    }

    pub(crate) fn codec(self) -> Codec {
        match self {
            CodecArg::H264 => Codec::H264,
            CodecArg::Hevc => Codec::Hevc,
            CodecArg::Av1 => Codec::Av1,
        }
    }
}

/// A host and its control port, as typed: `name`, `name:port`, `1.2.3.4[:port]`, `[::1][:port]`
/// or a bare IPv6 literal `::1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostArg {
    /// The name or address, without brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl FromStr for HostArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not HOST[:PORT] (IPv6 addresses in brackets: [::1]:48019)");
        let port = |p: &str| p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(bad);
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad());
            }
            match after {
                "" => (host, DEFAULT_PORT),
                _ => (host, port(after.strip_prefix(':').ok_or_else(bad)?)?),
            }
        } else if s.matches(':').count() > 1 {
            // A bare IPv6 literal: it cannot carry a port.
            s.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
            (s, DEFAULT_PORT)
        } else {
            match s.split_once(':') {
                Some((h, p)) => (h, port(p)?),
                None => (s, DEFAULT_PORT),
            }
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(bad());
        }
        Ok(HostArg {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Display for HostArg {
    /// `host:port`, IPv6 in brackets: the key of the host in `hosts.json`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// `WxH@R`: a mode; R in Hz, fractions allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ModeArg(pub(crate) Mode);

impl FromStr for ModeArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a mode WIDTHxHEIGHT@REFRESH such as 1280x720@60");
        let (size, rate) = s.split_once('@').ok_or_else(bad)?;
        let (w, h) = size.split_once(['x', 'X']).ok_or_else(bad)?;
        let width: u16 = w.parse().map_err(|_| bad())?;
        let height: u16 = h.parse().map_err(|_| bad())?;
        let hz: f64 = rate.parse().map_err(|_| bad())?;
        if width == 0 || height == 0 || !(hz > 0.0 && hz <= 1000.0) {
            return Err(bad());
        }
        Ok(ModeArg(Mode {
            width,
            height,
            refresh_mhz: (hz * 1000.0).round() as u32,
        }))
    }
}

/// `WxH@R@T`: at T seconds after the first video frame, ask for mode WxH@R.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Reconfigure {
    pub(crate) mode: Mode,
    pub(crate) after: Duration,
}

impl FromStr for Reconfigure {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not WIDTHxHEIGHT@REFRESH@SECONDS such as 800x600@60@2");
        let (mode, at) = s.rsplit_once('@').ok_or_else(bad)?;
        let ModeArg(mode) = mode.parse().map_err(|_| bad())?;
        let secs: f64 = at.parse().map_err(|_| bad())?;
        let after = Duration::try_from_secs_f64(secs).map_err(|_| bad())?;
        Ok(Reconfigure { mode, after })
    }
}

/// Formats a mode as `WxH@R` (R in Hz, with a fraction only when it has one).
pub(crate) fn mode_string(m: &Mode) -> String {
    let hz = if m.refresh_mhz % 1000 == 0 {
        (m.refresh_mhz / 1000).to_string()
    } else {
        format!("{:.3}", f64::from(m.refresh_mhz) / 1000.0)
            .trim_end_matches('0')
            .to_string()
    };
    format!("{}x{}@{hz}", m.width, m.height)
}

/// The text to type and whether Enter follows it: a trailing newline, or the two characters
/// `\n` as a shell passes them, mean Enter.
pub(crate) fn split_enter(text: &str) -> (&str, bool) {
    if let Some(t) = text.strip_suffix('\n') {
        (t.strip_suffix('\r').unwrap_or(t), true)
    } else if let Some(t) = text.strip_suffix("\\n") {
        (t, true)
    } else {
        (text, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> Result<(String, u16), String> {
        s.parse::<HostArg>().map(|h| (h.host, h.port))
    }

    #[test]
    fn hosts_with_and_without_ports() {
        assert_eq!(host("gamebox"), Ok(("gamebox".into(), 48019)));
        assert_eq!(host("GameBox:5000"), Ok(("gamebox".into(), 5000)));
        assert_eq!(host("10.0.0.2"), Ok(("10.0.0.2".into(), 48019)));
        assert_eq!(host("10.0.0.2:40030"), Ok(("10.0.0.2".into(), 40030)));
        assert_eq!(host("[::1]"), Ok(("::1".into(), 48019)));
        assert_eq!(host("[::1]:40030"), Ok(("::1".into(), 40030)));
        assert_eq!(host("fe80::1"), Ok(("fe80::1".into(), 48019)));
        for bad in [
            "",
            ":5000",
            "host:",
            "host:0",
            "host:70000",
            "host:x",
            "[::1",
            "[::1]5000",
            "[host]:1",
            "::1::2",
            "a b",
        ] {
            assert!(host(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn host_keys_bracket_ipv6() {
        assert_eq!(
            "[::1]".parse::<HostArg>().unwrap().to_string(),
            "[::1]:48019"
        );
        assert_eq!("::1".parse::<HostArg>().unwrap().to_string(), "[::1]:48019");
        assert_eq!("Box:7".parse::<HostArg>().unwrap().to_string(), "box:7");
    }

    #[test]
    fn modes() {
        let m = |s: &str| s.parse::<ModeArg>().map(|m| m.0);
        assert_eq!(
            m("1280x720@60"),
            Ok(Mode {
                width: 1280,
                height: 720,
                refresh_mhz: 60_000
            })
        );
        assert_eq!(m("1920X1080@59.94").unwrap().refresh_mhz, 59_940);
        for bad in [
            "1280x720",
            "1280@60",
            "0x720@60",
            "1280x0@60",
            "1280x720@0",
            "1280x720@-5",
            "70000x720@60",
            "axb@60",
            "1280x720@60@1",
        ] {
            assert!(m(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(mode_string(&m("800x600@60").unwrap()), "800x600@60");
        assert_eq!(mode_string(&m("800x600@59.94").unwrap()), "800x600@59.94");
    }

    #[test]
    fn reconfigure_schedules() {
        let r: Reconfigure = "800x600@60@2".parse().unwrap();
        assert_eq!(
            (r.mode.width, r.mode.height, r.mode.refresh_mhz),
            (800, 600, 60_000)
        );
        assert_eq!(r.after, Duration::from_secs(2));
        let r: Reconfigure = "640x360@59.94@0.5".parse().unwrap();
        assert_eq!(r.mode.refresh_mhz, 59_940);
        assert_eq!(r.after, Duration::from_millis(500));
        for bad in [
            "800x600@60",
            "800x600@60@",
            "800x600@60@-1",
            "800x600@@2",
            "@2",
        ] {
            assert!(bad.parse::<Reconfigure>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn the_command_line_parses() {
        let cli = Cli::try_parse_from([
            "punktfunk-client",
            "stream",
            "[::1]:40030",
            "--mode",
            "640x360@30",
            "--reconfigure",
            "800x600@60@2",
            "--reconfigure",
            "320x240@30@4",
            "--codec",
            "hevc",
            "--seconds",
            "5",
        ])
        .unwrap();
        let Command::Stream(s) = cli.command else {
            panic!("not stream");
        };
        assert_eq!(s.host.to_string(), "[::1]:40030");
        assert_eq!(s.reconfigure.len(), 2);
        assert_eq!(s.codec, CodecArg::Hevc);
        assert_eq!(s.bitrate, 10_000);
        assert_eq!(s.seconds, Some(5.0));
        assert!(!s.quit);
        assert!(Cli::try_parse_from(["punktfunk-client", "pair", "h"]).is_err());
    }

    #[test]
    fn enter_after_text() {
        assert_eq!(split_enter("hello\n"), ("hello", true));
        assert_eq!(split_enter("hello\\n"), ("hello", true));
        assert_eq!(split_enter("hello"), ("hello", false));
    }
}
