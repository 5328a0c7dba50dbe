//! The nvhttp API: query strings in, XML replies out.
//!
//! Moonlight talks to the host with plain `GET` requests whose arguments all sit in the query
//! string (see `docs/protocol/gamestream-session-setup.md` §2). This module parses those query
//! strings ([`Query`], [`LaunchRequest`]) and builds the XML bodies that the client's parser
//! expects ([`ServerInfo`], [`applist_xml`], [`XmlReply`], ...). It does no I/O: the HTTP server
//! lives elsewhere and always answers HTTP 200 with one of these bodies (§2.1).
//!
//! Every reply starts with `<?xml version="1.0" encoding="utf-8"?>` and has a single `<root>`
//! element that carries `status_code` (and optionally `status_message`), exactly as Sunshine's
//! boost property tree writes it.

use std::fmt::Write as _;
use std::net::IpAddr;

/// The `appversion` a Sunshine-style host advertises (§2.5): major 7 selects SHA-256 pairing, the
/// third field >= 404 keeps RTSP on TCP, and the negative fourth field enables every Sunshine
/// extension in the client.
pub const APP_VERSION: &str = "7.1.431.-1";

/// The `GfeVersion` Sunshine advertises. Clients compare it with a list of supported versions.
pub const GFE_VERSION: &str = "3.23.0.74";

/// `MaxLumaPixelsHEVC` to send when HEVC is offered (Sunshine's value). Must be nonzero whenever
/// the [`SCM_HEVC`] bit is set, or moonlight-qt never negotiates HEVC.
pub const MAX_LUMA_PIXELS_HEVC: u64 = 1_869_449_984;

/// The XML declaration every reply starts with.
pub const XML_DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>";

/// `ServerCodecModeSupport` bit: H.264 High 8-bit 4:2:0 (always set).
pub const SCM_H264: u32 = 0x0000_0001;
/// `ServerCodecModeSupport` bit: HEVC Main.
pub const SCM_HEVC: u32 = 0x0000_0100;
/// `ServerCodecModeSupport` bit: HEVC Main10.
pub const SCM_HEVC_MAIN10: u32 = 0x0000_0200;
/// `ServerCodecModeSupport` bit: AV1 Main 8-bit.
pub const SCM_AV1_MAIN8: u32 = 0x0001_0000;
/// `ServerCodecModeSupport` bit: AV1 Main 10-bit.
pub const SCM_AV1_MAIN10: u32 = 0x0002_0000;
/// `ServerCodecModeSupport` bit: H.264 High 4:4:4 8-bit.
pub const SCM_H264_HIGH8_444: u32 = 0x0004_0000;
/// `ServerCodecModeSupport` bit: HEVC RExt 4:4:4 8-bit.
pub const SCM_HEVC_REXT8_444: u32 = 0x0008_0000;
/// `ServerCodecModeSupport` bit: HEVC RExt 4:4:4 10-bit.
pub const SCM_HEVC_REXT10_444: u32 = 0x0010_0000;
/// `ServerCodecModeSupport` bit: AV1 High 4:4:4 8-bit.
pub const SCM_AV1_HIGH8_444: u32 = 0x0020_0000;
/// `ServerCodecModeSupport` bit: AV1 High 4:4:4 10-bit.
pub const SCM_AV1_HIGH10_444: u32 = 0x0040_0000;

/// The default `surroundAudioInfo` (stereo: mask 0x3, 2 channels).
pub const DEFAULT_SURROUND_AUDIO_INFO: u32 = 0x0003_0002;

/// Errors from reading query parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A required parameter is absent.
    #[error("missing parameter {0}")]
    Missing(String),
    /// A parameter is not a number of the expected type and range.
    #[error("invalid number in parameter {0}")]
    InvalidNumber(String),
    /// A parameter is not valid hex.
    #[error("invalid hex in parameter {0}")]
    InvalidHex(String),
    /// A hex parameter decodes to the wrong number of bytes.
    #[error("parameter {name} has {actual} bytes, expected {expected}")]
    WrongLength {
        /// Parameter name.
        name: String,
        /// Required length in bytes.
        expected: usize,
        /// Decoded length in bytes.
        actual: usize,
    },
    /// `mode` is not `<W>x<H>x<FPS>`.
    #[error("invalid mode {0:?}")]
    InvalidMode(String),
}

impl QueryError {
    /// The nvhttp `status_code` for this error (always 400: a bad or missing parameter).
    pub fn status_code(&self) -> i32 {
        400
    }
}

/// Errors from [`hex_decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    /// The input has an odd number of characters.
    #[error("odd hex length")]
    OddLength,
    /// The input contains a character that is not a hex digit.
    #[error("invalid hex digit at {0}")]
    InvalidDigit(usize),
}

/// Decodes hex (either case) into bytes. No whitespace or prefix is accepted.
pub fn hex_decode(s: &str) -> Result<Vec<u8>, HexError> {
    let b = s.as_bytes();
    if b.len() & 1 != 0 {
        return Err(HexError::OddLength);
    }
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(b.len() / 2);
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hi = nibble(pair[0]).ok_or(HexError::InvalidDigit(2 * i))?;
        let lo = nibble(pair[1]).ok_or(HexError::InvalidDigit(2 * i + 1))?;
        out.push(hi << 4 | lo);
    }
    Ok(out)
}

/// Encodes bytes as uppercase hex, the way Sunshine sends binary values.
pub fn hex_encode_upper(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xF)] as char);
    }
    s
}

/// Encodes bytes as lowercase hex, the way Moonlight sends binary values.
pub fn hex_encode_lower(bytes: &[u8]) -> String {
    hex_encode_upper(bytes).to_ascii_lowercase()
}

/// Decodes `%XX` escapes and `+` (as a space). Malformed escapes are kept literally; bytes that
/// do not form UTF-8 are replaced with U+FFFD.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < b.len()
                && b[i + 1].is_ascii_hexdigit()
                && b[i + 2].is_ascii_hexdigit() =>
            {
                let hi = (b[i + 1] as char).to_digit(16).unwrap_or(0) as u8;
                let lo = (b[i + 2] as char).to_digit(16).unwrap_or(0) as u8;
                out.push(hi << 4 | lo);
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A parsed query string: ordered `name=value` pairs, percent-decoded.
///
/// Parsing never fails: empty pairs (`&&`) are skipped, a pair without `=` gets an empty value,
/// and malformed escapes are kept as they are. Lookups return the **first** occurrence of a name
/// and compare names case-sensitively (as Sunshine does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses a query string. A leading `?` is ignored; so is a path before the first `?` when
    /// a whole request target (`/path?query`, starting with `/`) is passed.
    pub fn parse(s: &str) -> Query {
        let s = if s.starts_with('/') || s.starts_with('?') {
            s.split_once('?').map_or("", |(_, q)| q)
        } else {
            s
        };
        let pairs = s
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (percent_decode(k), percent_decode(v)),
                None => (percent_decode(p), String::new()),
            })
            .filter(|(k, _)| !k.is_empty())
            .collect();
        Query { pairs }
    }

    /// The value of the first parameter called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether a parameter called `name` is present (even with an empty value).
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// All pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of `name`, or [`QueryError::Missing`].
    pub fn require(&self, name: &str) -> Result<&str, QueryError> {
        self.get(name)
            .ok_or_else(|| QueryError::Missing(name.to_owned()))
    }

    /// The client's `uniqueid` (not authenticated; see §2.1).
    pub fn uniqueid(&self) -> Result<&str, QueryError> {
        self.require("uniqueid")
    }

    /// `name` as a decimal `i64` (surrounding whitespace allowed).
    pub fn i64(&self, name: &str) -> Result<i64, QueryError> {
        self.require(name)?
            .trim()
            .parse::<i64>()
            .map_err(|_| QueryError::InvalidNumber(name.to_owned()))
    }

    /// `name` as a decimal `i32`.
    pub fn i32(&self, name: &str) -> Result<i32, QueryError> {
        i32::try_from(self.i64(name)?).map_err(|_| QueryError::InvalidNumber(name.to_owned()))
    }

    /// `name` as a decimal `u32`.
    pub fn u32(&self, name: &str) -> Result<u32, QueryError> {
        u32::try_from(self.i64(name)?).map_err(|_| QueryError::InvalidNumber(name.to_owned()))
    }

    /// `name` as a flag: any nonzero integer is `true`.
    pub fn flag(&self, name: &str) -> Result<bool, QueryError> {
        Ok(self.i64(name)? != 0)
    }

    /// `name` if present, parsed with `f`; `Ok(None)` if absent.
    pub fn optional<T>(
        &self,
        name: &str,
        f: impl FnOnce(&Self, &str) -> Result<T, QueryError>,
    ) -> Result<Option<T>, QueryError> {
        if self.contains(name) {
            f(self, name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// `name` decoded from hex (either case).
    pub fn hex(&self, name: &str) -> Result<Vec<u8>, QueryError> {
        hex_decode(self.require(name)?.trim()).map_err(|_| QueryError::InvalidHex(name.to_owned()))
    }

    /// `name` decoded from hex into exactly `N` bytes.
    pub fn hex_array<const N: usize>(&self, name: &str) -> Result<[u8; N], QueryError> {
        let v = self.hex(name)?;
        <[u8; N]>::try_from(v.as_slice()).map_err(|_| QueryError::WrongLength {
            name: name.to_owned(),
            expected: N,
            actual: v.len(),
        })
    }

    /// The launch `rikey`: the 16-byte session AES key.
    pub fn rikey(&self) -> Result<[u8; 16], QueryError> {
        self.hex_array::<16>("rikey")
    }

    /// The launch `rikeyid`. The client sends a **signed** 32-bit decimal (the first 4 bytes of
    /// its remote-input IV, read big-endian); it is reinterpreted as `u32`. Values in
    /// `i32::MIN..=u32::MAX` are accepted.
    pub fn rikeyid(&self) -> Result<u32, QueryError> {
        let v = self.i64("rikeyid")?;
        if let Ok(s) = i32::try_from(v) {
            Ok(s as u32)
        } else {
            u32::try_from(v).map_err(|_| QueryError::InvalidNumber("rikeyid".to_owned()))
        }
    }

    /// The launch `mode` (`<W>x<H>x<FPS>`).
    pub fn mode(&self) -> Result<DisplayMode, QueryError> {
        DisplayMode::parse(self.require("mode")?)
    }
}

/// The highest frame rate a launch may ask for; no display or client goes near it.
pub const MAX_FPS: u32 = 1000;

/// A requested stream mode from `/launch?mode=<W>x<H>x<FPS>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DisplayMode {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frame rate (GFE-era clients may send 0), at most [`MAX_FPS`].
    pub fps: u32,
}

impl DisplayMode {
    /// Parses `<W>x<H>x<FPS>` (decimal; `X` is accepted as separator too); a frame rate above
    /// [`MAX_FPS`] is refused.
    pub fn parse(s: &str) -> Result<DisplayMode, QueryError> {
        let bad = || QueryError::InvalidMode(s.to_owned());
        let mut it = s.trim().split(['x', 'X']);
        let mut next = || -> Result<u32, QueryError> {
            let part = it.next().ok_or_else(bad)?;
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse::<u32>().map_err(|_| bad())
        };
        let mode = DisplayMode {
            width: next()?,
            height: next()?,
            fps: next()?,
        };
        if it.next().is_some() || mode.fps > MAX_FPS {
            return Err(bad());
        }
        Ok(mode)
    }
}

/// Which verb a [`LaunchRequest`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchKind {
    /// `/launch`: start an app and a stream session.
    Launch,
    /// `/resume`: a stream session for the app already running.
    Resume,
}

/// Errors from [`LaunchRequest::parse`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    /// A parameter Sunshine requires is absent (`rikey`, `rikeyid`, plus `localAudioPlayMode`
    /// and `appid` for launch).
    #[error("missing required parameter {0}")]
    Missing(String),
    /// A parameter is present but malformed.
    #[error(transparent)]
    Invalid(#[from] QueryError),
}

impl LaunchError {
    /// The nvhttp `status_code` (400).
    pub fn status_code(&self) -> i32 {
        400
    }

    /// The `status_message` to send, matching Sunshine for missing parameters.
    pub fn status_message(&self, kind: LaunchKind) -> String {
        match self {
            LaunchError::Missing(_) => match kind {
                LaunchKind::Launch => "Missing a required launch parameter".to_owned(),
                LaunchKind::Resume => "Missing a required resume parameter".to_owned(),
            },
            LaunchError::Invalid(e) => format!("Invalid launch parameter: {e}"),
        }
    }

    /// The complete XML reply (`<resume>0</resume>` as Sunshine sends it for these errors).
    pub fn to_xml(&self, kind: LaunchKind) -> String {
        XmlReply::error(self.status_code(), self.status_message(kind))
            .child("resume", "0")
            .to_xml()
    }
}

/// The parameters of `/launch` and `/resume` (§4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchRequest {
    /// `appid` (0 or negative: no app process; Sunshine still creates the session). For
    /// `/resume` it is 0 when absent.
    pub app_id: i32,
    /// `mode`; `0x0x0` when absent (Sunshine's default).
    pub mode: DisplayMode,
    /// `rikey`: the session AES-128 key.
    pub rikey: [u8; 16],
    /// `rikeyid`, reinterpreted as `u32`.
    pub rikeyid: u32,
    /// `localAudioPlayMode`: also play audio on the host. Required for launch, optional for
    /// resume (`None` when absent).
    pub local_audio_play_mode: Option<bool>,
    /// `sops` ("optimize game settings").
    pub sops: bool,
    /// `surroundAudioInfo` = `(channelMask << 16) | channelCount`; stereo when absent.
    pub surround_audio_info: u32,
    /// `gcmap` (falls back to `remoteControllersBitmap`): gamepads attached at launch.
    pub gamepad_mask: u32,
    /// `gcpersist`: keep virtual gamepads after the client disconnects.
    pub gamepad_persist: bool,
    /// `hdrMode=1`: the client can decode 10-bit.
    pub hdr_mode: bool,
    /// `corever`: 1 or more means the client supports encrypted RTSP (`rtspenc://`).
    pub corever: u32,
    /// `surroundParams`: a custom Opus layout (Sunshine extension), echoed in DESCRIBE.
    pub surround_params: Option<String>,
    /// `continuousAudio` (Sunshine extension).
    pub continuous_audio: bool,
}

impl LaunchRequest {
    /// Reads a launch/resume query. Missing required parameters give
    /// [`LaunchError::Missing`]; malformed values give [`LaunchError::Invalid`].
    pub fn parse(q: &Query, kind: LaunchKind) -> Result<LaunchRequest, LaunchError> {
        let mut required = vec!["rikey", "rikeyid"];
        if kind == LaunchKind::Launch {
            required.extend(["localAudioPlayMode", "appid"]);
        }
        if let Some(m) = required.iter().find(|n| !q.contains(n)) {
            return Err(LaunchError::Missing((*m).to_owned()));
        }
        let gamepad_mask = match q.optional("gcmap", Query::u32)? {
            Some(v) => v,
            None => q
                .optional("remoteControllersBitmap", Query::u32)?
                .unwrap_or(0),
        };
        Ok(LaunchRequest {
            app_id: q.optional("appid", Query::i32)?.unwrap_or(0),
            mode: q.optional("mode", |q, _| q.mode())?.unwrap_or_default(),
            rikey: q.rikey()?,
            rikeyid: q.rikeyid()?,
            local_audio_play_mode: q.optional("localAudioPlayMode", Query::flag)?,
            sops: q.optional("sops", Query::flag)?.unwrap_or(false),
            surround_audio_info: q
                .optional("surroundAudioInfo", Query::u32)?
                .unwrap_or(DEFAULT_SURROUND_AUDIO_INFO),
            gamepad_mask,
            gamepad_persist: q.optional("gcpersist", Query::flag)?.unwrap_or(false),
            hdr_mode: q.optional("hdrMode", Query::flag)?.unwrap_or(false),
            corever: q.optional("corever", Query::u32)?.unwrap_or(0),
            surround_params: q
                .get("surroundParams")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            continuous_audio: q.optional("continuousAudio", Query::flag)?.unwrap_or(false),
        })
    }

    /// Whether RTSP must be encrypted (`corever >= 1`, answered with `rtspenc://`).
    pub fn rtsp_encryption(&self) -> bool {
        self.corever >= 1
    }

    /// The channel count from `surroundAudioInfo` (low 16 bits).
    pub fn audio_channels(&self) -> u16 {
        (self.surround_audio_info & 0xFFFF) as u16
    }

    /// The channel mask from `surroundAudioInfo` (high 16 bits).
    pub fn audio_channel_mask(&self) -> u16 {
        (self.surround_audio_info >> 16) as u16
    }

    /// The 16-byte remote-input IV: `BE32(rikeyid)` followed by 12 zero bytes.
    pub fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv[..4].copy_from_slice(&self.rikeyid.to_be_bytes());
        iv
    }
}

/// Escapes text for XML element content and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all are dropped.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// A generic nvhttp reply: `<root status_code=".." [query=".."] [status_message=".."]>` with
/// flat text children in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlReply {
    /// The `status_code` attribute (200 = success; the client reads it as u32 cast to int).
    pub status_code: i32,
    /// The `query` attribute (Sunshine sets it on 401 replies).
    pub query: Option<String>,
    /// The `status_message` attribute, shown to the user on errors.
    pub status_message: Option<String>,
    /// Child elements `<name>value</name>`, in order. Values are escaped on output.
    pub children: Vec<(String, String)>,
}

impl XmlReply {
    /// A `status_code="200"` reply with no children yet.
    pub fn ok() -> XmlReply {
        XmlReply {
            status_code: 200,
            query: None,
            status_message: None,
            children: Vec::new(),
        }
    }

    /// An error reply with `status_code` and `status_message`.
    pub fn error(status_code: i32, message: impl Into<String>) -> XmlReply {
        XmlReply {
            status_code,
            query: None,
            status_message: Some(message.into()),
            children: Vec::new(),
        }
    }

    /// Appends a child element.
    pub fn child(mut self, name: &str, value: impl ToString) -> XmlReply {
        self.children.push((name.to_owned(), value.to_string()));
        self
    }

    /// Sets the `query` attribute.
    pub fn with_query(mut self, query: impl Into<String>) -> XmlReply {
        self.query = Some(query.into());
        self
    }

    /// Serialises the reply: declaration, newline, `<root ...>children</root>` (or `<root .../>`
    /// without children).
    pub fn to_xml(&self) -> String {
        let mut s = String::with_capacity(128 + self.children.len() * 32);
        s.push_str(XML_DECLARATION);
        s.push('\n');
        let _ = write!(s, "<root status_code=\"{}\"", self.status_code);
        if let Some(q) = &self.query {
            let _ = write!(s, " query=\"{}\"", xml_escape(q));
        }
        if let Some(m) = &self.status_message {
            let _ = write!(s, " status_message=\"{}\"", xml_escape(m));
        }
        if self.children.is_empty() {
            s.push_str("/>");
        } else {
            s.push('>');
            for (name, value) in &self.children {
                push_element(&mut s, name, value);
            }
            s.push_str("</root>");
        }
        s
    }
}

fn push_element(s: &mut String, name: &str, value: &str) {
    if value.is_empty() {
        let _ = write!(s, "<{name}/>");
    } else {
        let _ = write!(s, "<{name}>{}</{name}>", xml_escape(value));
    }
}

/// Everything `/serverinfo` reports (§2.4). [`ServerInfo::to_xml`] writes the elements in
/// Sunshine's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// `hostname`: display name.
    pub hostname: String,
    /// `appversion`; keep [`APP_VERSION`].
    pub app_version: String,
    /// `GfeVersion`; keep [`GFE_VERSION`].
    pub gfe_version: String,
    /// `uniqueid`: the host's persistent identity.
    pub unique_id: String,
    /// `HttpsPort` (47984).
    pub https_port: u16,
    /// `ExternalPort`: the HTTP port for WAN access (47989).
    pub external_port: u16,
    /// `ExternalIP`, only sent when set.
    pub external_ip: Option<String>,
    /// `MaxLumaPixelsHEVC`: [`MAX_LUMA_PIXELS_HEVC`] when HEVC is offered, else 0.
    pub max_luma_pixels_hevc: u64,
    /// `mac`: real MAC over HTTPS, `00:00:00:00:00:00` over HTTP.
    pub mac: String,
    /// `LocalIP`: the address the request arrived on (`127.0.0.1` for native IPv6).
    pub local_ip: String,
    /// `ServerCodecModeSupport`: `SCM_*` bits; never 0.
    pub codec_mode_support: u32,
    /// `PairStatus`: true only over HTTPS with a verified, paired client cert.
    pub paired: bool,
    /// `currentgame`: the running app's ID, or 0.
    pub current_game: i32,
}

impl ServerInfo {
    /// A reply with Sunshine's constants, default ports, no HEVC, H.264 only, unpaired and idle.
    pub fn new(hostname: impl Into<String>, unique_id: impl Into<String>) -> ServerInfo {
        ServerInfo {
            hostname: hostname.into(),
            app_version: APP_VERSION.to_owned(),
            gfe_version: GFE_VERSION.to_owned(),
            unique_id: unique_id.into(),
            https_port: 47984,
            external_port: 47989,
            external_ip: None,
            max_luma_pixels_hevc: 0,
            mac: "00:00:00:00:00:00".to_owned(),
            local_ip: "127.0.0.1".to_owned(),
            codec_mode_support: SCM_H264,
            paired: false,
            current_game: 0,
        }
    }

    /// `state`: `SUNSHINE_SERVER_BUSY` while an app runs (`current_game > 0`), otherwise
    /// `SUNSHINE_SERVER_FREE`.
    pub fn state(&self) -> &'static str {
        if self.current_game > 0 {
            "SUNSHINE_SERVER_BUSY"
        } else {
            "SUNSHINE_SERVER_FREE"
        }
    }

    /// The `/serverinfo` XML body.
    pub fn to_xml(&self) -> String {
        let mut r = XmlReply::ok()
            .child("hostname", &self.hostname)
            .child("appversion", &self.app_version)
            .child("GfeVersion", &self.gfe_version)
            .child("uniqueid", &self.unique_id)
            .child("HttpsPort", self.https_port)
            .child("ExternalPort", self.external_port)
            .child("MaxLumaPixelsHEVC", self.max_luma_pixels_hevc)
            .child("mac", &self.mac)
            .child("LocalIP", &self.local_ip)
            .child("ServerCodecModeSupport", self.codec_mode_support);
        if let Some(ip) = &self.external_ip {
            r = r.child("ExternalIP", ip);
        }
        r.child("PairStatus", u8::from(self.paired))
            .child("currentgame", self.current_game)
            .child("state", self.state())
            .to_xml()
    }
}

/// `LocalIP` for a request that arrived on `local`: the address itself, or `127.0.0.1` for a
/// native (not v4-mapped) IPv6 address, as Sunshine does (§2.4).
pub fn local_ip_for(local: IpAddr) -> String {
    match local {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => "127.0.0.1".to_owned(),
        },
    }
}

/// One entry of `/applist`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppEntry {
    /// `ID`: nonzero, fits i32 (see [`app_id`]).
    pub id: i32,
    /// `AppTitle`.
    pub title: String,
    /// `IsHdrSupported`.
    pub hdr_supported: bool,
}

/// The `/applist` body: one `<App>` per entry with `IsHdrSupported`, `AppTitle`, `ID`.
pub fn applist_xml(apps: &[AppEntry]) -> String {
    let mut s = String::new();
    s.push_str(XML_DECLARATION);
    s.push_str("\n<root status_code=\"200\">");
    for app in apps {
        s.push_str("<App>");
        push_element(
            &mut s,
            "IsHdrSupported",
            if app.hdr_supported { "1" } else { "0" },
        );
        push_element(&mut s, "AppTitle", &app.title);
        push_element(&mut s, "ID", &app.id.to_string());
        s.push_str("</App>");
    }
    s.push_str("</root>");
    s
}

/// `sessionUrl0`: `rtsp://` or `rtspenc://`, the local address (IPv6 in brackets), `:port`.
pub fn session_url(encrypted: bool, local: IpAddr, rtsp_port: u16) -> String {
    let scheme = if encrypted { "rtspenc" } else { "rtsp" };
    match local {
        IpAddr::V4(v4) => format!("{scheme}://{v4}:{rtsp_port}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("{scheme}://{v4}:{rtsp_port}"),
            None => format!("{scheme}://[{v6}]:{rtsp_port}"),
        },
    }
}

/// Successful `/launch` reply: `sessionUrl0` and `gamesession=1`.
pub fn launch_xml(session_url: &str) -> String {
    XmlReply::ok()
        .child("sessionUrl0", session_url)
        .child("gamesession", 1)
        .to_xml()
}

/// Successful `/resume` reply: `sessionUrl0` and `resume=1`.
pub fn resume_xml(session_url: &str) -> String {
    XmlReply::ok()
        .child("sessionUrl0", session_url)
        .child("resume", 1)
        .to_xml()
}

/// A failed `/launch` (`gamesession=0`) or `/resume` (`resume=0`) reply.
pub fn launch_error_xml(kind: LaunchKind, status_code: i32, message: &str) -> String {
    let child = match kind {
        LaunchKind::Launch => "gamesession",
        LaunchKind::Resume => "resume",
    };
    XmlReply::error(status_code, message)
        .child(child, 0)
        .to_xml()
}

/// Successful `/cancel` reply: `cancel=1`.
pub fn cancel_xml() -> String {
    XmlReply::ok().child("cancel", 1).to_xml()
}

/// A successful `/pair` step: `paired=1` plus an optional data element (`plaincert`,
/// `challengeresponse`, `pairingsecret`).
pub fn pair_xml(field: Option<(&str, &str)>) -> String {
    let mut r = XmlReply::ok().child("paired", 1);
    if let Some((name, value)) = field {
        r = r.child(name, value);
    }
    r.to_xml()
}

/// A `/pair` step that completed without pairing: `status_code=200`, `paired=0` (Sunshine's
/// answer to a failed stage-4 check).
pub fn pair_rejected_xml() -> String {
    XmlReply::ok().child("paired", 0).to_xml()
}

/// A pairing failure (Sunshine's `fail_pair`): `status_code`, `status_message`, `paired=0`.
pub fn pair_error_xml(status_code: i32, message: &str) -> String {
    XmlReply::error(status_code, message)
        .child("paired", 0)
        .to_xml()
}

/// A generic error reply with `status_code` and `status_message`.
pub fn error_xml(status_code: i32, message: &str) -> String {
    XmlReply::error(status_code, message).to_xml()
}

/// The reply to an HTTPS request whose client certificate is not paired (§3.5):
/// `status_code=401`, `query=<path>` and Sunshine's message.
pub fn unauthorized_xml(path: &str) -> String {
    XmlReply::error(
        401,
        "The client is not authorized. Certificate verification failed.",
    )
    .with_query(path)
    .to_xml()
}

/// The reply for an unknown path: `<root status_code="404"/>`.
pub fn not_found_xml() -> String {
    XmlReply {
        status_code: 404,
        query: None,
        status_message: None,
        children: Vec::new(),
    }
    .to_xml()
}

/// A bare success: `<root status_code="200"/>` (recommended for `/unpair`).
pub fn ok_xml() -> String {
    XmlReply::ok().to_xml()
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as boost's `crc_32_type`.
pub fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

fn crc_to_id(crc: u32) -> i32 {
    match crc as i32 {
        0 => 1,
        i32::MIN => i32::MAX,
        v => v.abs(),
    }
}

/// A stable app ID from the app's name: `abs((i32) CRC32(name))` as Sunshine computes it (without
/// an image), mapped into `1..=i32::MAX` (0 becomes 1, `i32::MIN` becomes `i32::MAX`).
pub fn app_id(name: &str) -> i32 {
    crc_to_id(crc32(name.as_bytes()))
}

/// IDs for a whole app list, in order. Like Sunshine, an app whose [`app_id`] is already taken
/// hashes `name` followed by its list index instead; if that collides too, the index keeps
/// increasing until the ID is free. Every ID is nonzero and unique.
pub fn app_ids<S: AsRef<str>>(names: &[S]) -> Vec<i32> {
    let mut used = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let name = name.as_ref();
        let mut id = app_id(name);
        let mut suffix = i;
        while used.contains(&id) {
            id = crc_to_id(crc32(format!("{name}{suffix}").as_bytes()));
            suffix += names.len().max(1);
        }
        used.insert(id);
        out.push(id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_tolerates_junk() {
        let q = Query::parse("?uniqueid=abc&&uuid=1&=x&flag&name=a+b%20c%2&pct=%zz&x=%41");
        assert_eq!(q.get("uniqueid"), Some("abc"));
        assert_eq!(q.get("uuid"), Some("1"));
        assert_eq!(q.get("flag"), Some(""));
        assert_eq!(q.get("name"), Some("a b c%2"));
        assert_eq!(q.get("pct"), Some("%zz"));
        assert_eq!(q.get("x"), Some("A"));
        assert_eq!(q.get("missing"), None);
        assert_eq!(Query::parse("/pair?a=1").get("a"), Some("1"));
        assert_eq!(Query::parse("/pair").iter().count(), 0);
        assert_eq!(Query::parse("a=1?&b=#2").get("a"), Some("1?"));
        assert_eq!(Query::parse("a=1?&b=#2").get("b"), Some("#2"));
        assert_eq!(Query::parse("").iter().count(), 0);
        assert_eq!(Query::parse("&&&").iter().count(), 0);
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("a%4"), "a%4");
        assert_eq!(percent_decode("%E2%82%AC"), "€");
    }

    #[test]
    fn rikeyid_and_rikey() {
        let q = Query::parse("rikeyid=-1&rikey=000102030405060708090A0B0C0D0E0f");
        assert_eq!(q.rikeyid(), Ok(0xFFFF_FFFF));
        assert_eq!(
            q.rikey().unwrap(),
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
        );
        let q = Query::parse("rikeyid=-2147483648&rikey=00");
        assert_eq!(q.rikeyid(), Ok(0x8000_0000));
        assert!(matches!(q.rikey(), Err(QueryError::WrongLength { .. })));
        assert_eq!(
            Query::parse("rikeyid=4294967296").rikeyid(),
            Err(QueryError::InvalidNumber("rikeyid".into()))
        );
        assert_eq!(
            Query::parse("rikey=zz").rikey(),
            Err(QueryError::InvalidHex("rikey".into()))
        );
    }

    #[test]
    fn mode() {
        assert_eq!(DisplayMode::parse("1280x720x1000").map(|m| m.fps), Ok(1000));
        assert_eq!(
            DisplayMode::parse("1920x1080x60"),
            Ok(DisplayMode {
                width: 1920,
                height: 1080,
                fps: 60
            })
        );
        for bad in [
            "",
            "1920x1080",
            "1920x1080x60x1",
            "axbxc",
            "1920x-1x60",
            "x1x1",
            "1920x1080x1001",
            "1920x1080x4294968",
        ] {
            assert!(DisplayMode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn crc_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn app_ids_are_positive_and_unique() {
        let ids = app_ids(&["Desktop", "Steam Big Picture", "Desktop"]);
        assert_eq!(ids[0], app_id("Desktop"));
        assert!(ids.iter().all(|&i| i > 0));
        assert_ne!(ids[0], ids[2]);
        assert_eq!(ids[2], crc_to_id(crc32(b"Desktop2")));
        assert_eq!(crc_to_id(0), 1);
        assert_eq!(crc_to_id(0x8000_0000), i32::MAX);
        assert_eq!(crc_to_id(0xFFFF_FFFF), 1);
    }

    #[test]
    fn xml_escaping() {
        assert_eq!(xml_escape("a<b>&\"'\u{1}"), "a&lt;b&gt;&amp;&quot;&apos;");
        let x = XmlReply::error(400, "x<y").child("paired", 0).to_xml();
        assert_eq!(
            x,
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<root status_code=\"400\" status_message=\"x&lt;y\"><paired>0</paired></root>"
        );
    }
}
