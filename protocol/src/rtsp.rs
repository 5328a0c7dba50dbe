//! The RTSP handshake on TCP 48010 (§5 of `docs/protocol/gamestream-session-setup.md`).
//!
//! - [`parse_request`] reads one request from a byte buffer (returning `None` until it is
//!   complete) and [`Response::to_bytes`] writes a reply the client's strict parser accepts.
//! - [`seal`] / [`unseal`] (and [`RtspCipher`]) implement the `rtspenc://` framing: a 24-byte
//!   header and AES-128-GCM with the session `rikey`.
//! - [`describe_body`] builds the DESCRIBE capabilities, [`parse_announce`] turns the client's
//!   ANNOUNCE SDP into [`StreamParams`].
//! - [`RtspHandler`] answers the requests of one launch session and reports
//!   [`RtspEvent`]s (ANNOUNCE's parameters, PLAY).
//!
//! The client opens one TCP connection per request: the host sends exactly one response and
//! then closes the socket. Nothing here does I/O.

use openssl::error::ErrorStack;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};

/// The largest request (headers and body) [`parse_request`] accepts, and the largest encrypted
/// payload [`encrypted_frame_len`] accepts: 64 KiB.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;
/// The most header lines a request may have.
pub const MAX_HEADERS: usize = 64;
/// The size of the `rtspenc://` frame header: type-and-length, sequence number, GCM tag.
pub const ENCRYPTED_HEADER_LEN: usize = 24;
/// The bit of `typeAndLength` that marks an encrypted message.
pub const ENCRYPTED_FLAG: u32 = 0x8000_0000;

/// `x-ss-general.encryptionSupported`/`Requested`/`Enabled` bit: encrypted control stream v2.
pub const SS_ENC_CONTROL_V2: u32 = 0x01;
/// Encryption bit: video payloads (AES-GCM).
pub const SS_ENC_VIDEO: u32 = 0x02;
/// Encryption bit: audio payloads (AES-CBC).
pub const SS_ENC_AUDIO: u32 = 0x04;
/// `x-ml-general.featureFlags` bit: the client sends FEC status messages.
pub const ML_FF_FEC_STATUS: u32 = 0x01;
/// `x-ml-general.featureFlags` bit: the client uses `X-SS-Ping-Payload`/`X-SS-Connect-Data`.
pub const ML_FF_SESSION_ID_V1: u32 = 0x02;
/// `x-ss-general.featureFlags` bit (host): pen and touch events supported.
pub const LI_FF_PEN_TOUCH_EVENTS: u32 = 0x01;
/// `x-ss-general.featureFlags` bit (host): controller touchpad events supported.
pub const LI_FF_CONTROLLER_TOUCH_EVENTS: u32 = 0x02;
/// `x-nv-general.featureFlags` bit that legacy clients use for "audio encryption on".
pub const NVFF_AUDIO_ENCRYPTION: u32 = 0x20;

/// Errors from reading RTSP messages and from the encrypted framing.
#[derive(Debug, thiserror::Error)]
pub enum RtspError {
    /// The message exceeds [`MAX_MESSAGE_LEN`].
    #[error("message too large")]
    TooLarge,
    /// The header block is not UTF-8.
    #[error("headers are not utf-8")]
    NotUtf8,
    /// The request line is not `METHOD target RTSP/1.x`.
    #[error("malformed request line")]
    BadRequestLine,
    /// A header line has no `:` or an empty or invalid name.
    #[error("malformed header line")]
    BadHeader,
    /// More than [`MAX_HEADERS`] headers.
    #[error("too many headers")]
    TooManyHeaders,
    /// `Content-length` is not a decimal number, or two differ.
    #[error("invalid content-length")]
    BadContentLength,
    /// A plaintext parser got an encrypted frame (first byte has the top bit set).
    #[error("unexpected encrypted message")]
    UnexpectedEncrypted,
    /// An encrypted frame lacks the encrypted flag.
    #[error("message is not encrypted")]
    NotEncrypted,
    /// An encrypted frame's length field does not match the bytes given.
    #[error("encrypted length mismatch")]
    LengthMismatch,
    /// An encrypted frame's plaintext is not one complete request.
    #[error("incomplete request")]
    Incomplete,
    /// AES-GCM authentication failed.
    #[error("decryption failed")]
    DecryptFailed,
    /// OpenSSL failed while encrypting.
    #[error("crypto failure: {0}")]
    Crypto(#[from] ErrorStack),
}

/// A parsed RTSP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method (`OPTIONS`, `DESCRIBE`, `SETUP`, `ANNOUNCE`, `PLAY`, ...), case as sent.
    pub method: String,
    /// The request target (URL, `streamid=...` or `/`).
    pub target: String,
    /// The protocol version (`RTSP/1.0`).
    pub version: String,
    /// Headers in order; values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-length` bytes; empty without that header).
    pub body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `CSeq` as a number (0 if absent or not a number).
    pub fn cseq(&self) -> u32 {
        self.header("CSeq")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Serialises the request the way moonlight-common-c does (used by tests and tools).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} {}\r\n", self.method, self.target, self.version).into_bytes();
        for (k, v) in &self.headers {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

fn find_header_end(buf: &[u8]) -> Option<(usize, usize)> {
    // Returns (end of header block, start of body). Accepts CRLF or bare LF line endings.
    let mut line_start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            let line = &buf[line_start..i];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() && line_start > 0 {
                return Some((line_start, i + 1));
            }
            line_start = i + 1;
        }
    }
    None
}

fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!#$%&'*+^`|~".contains(&b))
}

fn parse_request_line(line: &str) -> Result<(String, String, String), RtspError> {
    let mut parts = line.split_ascii_whitespace();
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RtspError::BadRequestLine);
    };
    if !valid_token(method) || !version.starts_with("RTSP/1.") {
        return Err(RtspError::BadRequestLine);
    }
    Ok((method.to_owned(), target.to_owned(), version.to_owned()))
}

/// Reads one request from the start of `buf`.
///
/// Returns `Ok(None)` while more bytes are needed, or the request and the number of bytes it
/// used. Leading empty lines are skipped. Line endings may be CRLF or LF. The body is
/// `Content-length` bytes (header name in any case); without it the request has no body. The
/// request line is checked as soon as it is complete, so garbage fails fast; anything above
/// [`MAX_MESSAGE_LEN`] is [`RtspError::TooLarge`]. Never panics.
pub fn parse_request(buf: &[u8]) -> Result<Option<(Request, usize)>, RtspError> {
    let mut start = 0;
    while start < buf.len() && (buf[start] == b'\r' || buf[start] == b'\n') {
        start += 1;
    }
    let rest = &buf[start..];
    if let Some(&first) = rest.first() {
        if first & 0x80 != 0 {
            return Err(RtspError::UnexpectedEncrypted);
        }
    }
    // Check the request line early.
    if let Some(nl) = rest.iter().position(|&b| b == b'\n') {
        let line = std::str::from_utf8(&rest[..nl]).map_err(|_| RtspError::NotUtf8)?;
        parse_request_line(line.trim_end_matches('\r'))?;
    }
    let Some((head_end, body_start)) = find_header_end(rest) else {
        if buf.len() > MAX_MESSAGE_LEN {
            return Err(RtspError::TooLarge);
        }
        return Ok(None);
    };
    if start + body_start > MAX_MESSAGE_LEN {
        return Err(RtspError::TooLarge);
    }
    let head = std::str::from_utf8(&rest[..head_end]).map_err(|_| RtspError::NotUtf8)?;
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let (method, target, version) = parse_request_line(lines.next().unwrap_or(""))?;

    let mut headers = Vec::new();
    let mut content_length: Option<usize> = None;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(RtspError::BadHeader)?;
        let name = name.trim();
        if !valid_token(name) {
            return Err(RtspError::BadHeader);
        }
        let value = value.trim();
        if name.eq_ignore_ascii_case("Content-length") {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(RtspError::BadContentLength);
            }
            let n: usize = value.parse().map_err(|_| RtspError::TooLarge)?;
            if content_length.is_some_and(|c| c != n) {
                return Err(RtspError::BadContentLength);
            }
            content_length = Some(n);
        }
        if headers.len() == MAX_HEADERS {
            return Err(RtspError::TooManyHeaders);
        }
        headers.push((name.to_owned(), value.to_owned()));
    }
    let len = content_length.unwrap_or(0);
    let total = (start + body_start)
        .checked_add(len)
        .ok_or(RtspError::TooLarge)?;
    if total > MAX_MESSAGE_LEN {
        return Err(RtspError::TooLarge);
    }
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some((
        Request {
            method,
            target,
            version,
            headers,
            body: buf[start + body_start..total].to_vec(),
        },
        total,
    )))
}

/// An RTSP response. [`Response::to_bytes`] writes
/// `RTSP/1.0 <code> <reason>\r\n`, `CSeq: <n>\r\n`, the other headers as `Name: value\r\n`, a
/// blank line and the body: the form moonlight-common-c's parser requires (at least one
/// header, exactly one space after the colon).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code (200, 400, 403, 404, 405, 500).
    pub status: u16,
    /// Reason phrase (`OK`, `BAD REQUEST`, ...).
    pub reason: String,
    /// `CSeq`, echoed from the request (always written first).
    pub cseq: u32,
    /// Further headers, in order. Names are case-sensitive for the client.
    pub headers: Vec<(String, String)>,
    /// The body (DESCRIBE only).
    pub body: Vec<u8>,
}

impl Response {
    /// A response with no extra headers or body.
    pub fn new(status: u16, reason: &str, cseq: u32) -> Response {
        Response {
            status,
            reason: reason.to_owned(),
            cseq,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `200 OK`.
    pub fn ok(cseq: u32) -> Response {
        Response::new(200, "OK", cseq)
    }

    /// `400 BAD REQUEST` (also the answer to a request that could not be parsed; use CSeq 0).
    pub fn bad_request(cseq: u32) -> Response {
        Response::new(400, "BAD REQUEST", cseq)
    }

    /// Appends a header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    /// The first extra header called `name` (exact case, as the client compares).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The bytes to send (CR and LF inside the reason, names or values become spaces).
    pub fn to_bytes(&self) -> Vec<u8> {
        fn clean(s: &str) -> String {
            s.replace(['\r', '\n'], " ")
        }
        let mut out = format!(
            "RTSP/1.0 {} {}\r\nCSeq: {}\r\n",
            self.status,
            clean(&self.reason),
            self.cseq
        );
        for (k, v) in &self.headers {
            out.push_str(&clean(k));
            out.push_str(": ");
            out.push_str(&clean(v));
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Who sent an encrypted RTSP message; selects byte 10 of the GCM IV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Host to client (`'H'`).
    HostToClient,
    /// Client to host (`'C'`).
    ClientToHost,
}

fn rtsp_iv(seq: u32, dir: Direction) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[..4].copy_from_slice(&seq.to_le_bytes());
    iv[10] = match dir {
        Direction::HostToClient => b'H',
        Direction::ClientToHost => b'C',
    };
    iv[11] = b'R';
    iv
}

/// Whether a message starts like an encrypted frame (first byte has its top bit set). Plaintext
/// RTSP always starts with an ASCII letter.
pub fn is_encrypted(first_bytes: &[u8]) -> bool {
    first_bytes.first().is_some_and(|b| b & 0x80 != 0)
}

/// The total length (header + ciphertext) of the encrypted frame at the start of `buf`:
/// `Ok(None)` while fewer than 24 bytes are there, an error if the flag is missing or the
/// payload is longer than [`MAX_MESSAGE_LEN`].
pub fn encrypted_frame_len(buf: &[u8]) -> Result<Option<usize>, RtspError> {
    if !buf.is_empty() && !is_encrypted(buf) {
        return Err(RtspError::NotEncrypted);
    }
    let Some(head) = buf.get(..4) else {
        return Ok(None);
    };
    let len = (u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & !ENCRYPTED_FLAG) as usize;
    if len > MAX_MESSAGE_LEN {
        return Err(RtspError::TooLarge);
    }
    if buf.len() < ENCRYPTED_HEADER_LEN {
        return Ok(None);
    }
    Ok(Some(ENCRYPTED_HEADER_LEN + len))
}

/// Encrypts one message in the given direction (see [`seal`]).
pub fn seal_as(
    dir: Direction,
    key: &[u8; 16],
    seq: u32,
    plaintext: &[u8],
) -> Result<Vec<u8>, RtspError> {
    if plaintext.len() as u64 >= u64::from(ENCRYPTED_FLAG) {
        return Err(RtspError::TooLarge);
    }
    let mut tag = [0u8; 16];
    let ct = encrypt_aead(
        Cipher::aes_128_gcm(),
        key,
        Some(&rtsp_iv(seq, dir)),
        &[],
        plaintext,
        &mut tag,
    )?;
    let mut out = Vec::with_capacity(ENCRYPTED_HEADER_LEN + ct.len());
    out.extend_from_slice(&(ENCRYPTED_FLAG | plaintext.len() as u32).to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&tag);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Decrypts exactly one frame sent in the given direction (see [`unseal`]).
pub fn unseal_as(
    dir: Direction,
    key: &[u8; 16],
    message: &[u8],
) -> Result<(u32, Vec<u8>), RtspError> {
    if message.len() < ENCRYPTED_HEADER_LEN {
        return Err(RtspError::LengthMismatch);
    }
    let tl = u32::from_be_bytes([message[0], message[1], message[2], message[3]]);
    if tl & ENCRYPTED_FLAG == 0 {
        return Err(RtspError::NotEncrypted);
    }
    let len = (tl & !ENCRYPTED_FLAG) as usize;
    if ENCRYPTED_HEADER_LEN + len != message.len() {
        return Err(RtspError::LengthMismatch);
    }
    let seq = u32::from_be_bytes([message[4], message[5], message[6], message[7]]);
    let tag = &message[8..24];
    let pt = decrypt_aead(
        Cipher::aes_128_gcm(),
        key,
        Some(&rtsp_iv(seq, dir)),
        &[],
        &message[ENCRYPTED_HEADER_LEN..],
        tag,
    )
    .map_err(|_| RtspError::DecryptFailed)?;
    Ok((seq, pt))
}

/// Encrypts a host→client message (§5.6): `BE32(0x80000000 | len)`, `BE32(seq)`, the 16-byte
/// GCM tag, then the ciphertext. The IV is `LE32(seq)`, six zero bytes, `'H'`, `'R'`; no AAD.
pub fn seal(key: &[u8; 16], seq: u32, plaintext: &[u8]) -> Result<Vec<u8>, RtspError> {
    seal_as(Direction::HostToClient, key, seq, plaintext)
}

/// Decrypts one client→host frame (IV byte 10 = `'C'`). `message` must be exactly one frame:
/// its length field must match. Returns the client's sequence number and the plaintext.
pub fn unseal(key: &[u8; 16], message: &[u8]) -> Result<(u32, Vec<u8>), RtspError> {
    unseal_as(Direction::ClientToHost, key, message)
}

/// The `rtspenc://` state of one launch session: the key and the host's sequence counter
/// (starts at 0, incremented before each response, so the first response uses 1).
#[derive(Debug, Clone)]
pub struct RtspCipher {
    key: [u8; 16],
    host_seq: u32,
}

impl RtspCipher {
    /// A cipher for the session key `rikey`.
    pub fn new(key: [u8; 16]) -> RtspCipher {
        RtspCipher { key, host_seq: 0 }
    }

    /// Seals a response with the next host sequence number.
    pub fn seal_response(&mut self, response: &Response) -> Result<Vec<u8>, RtspError> {
        self.host_seq = self.host_seq.wrapping_add(1);
        seal(&self.key, self.host_seq, &response.to_bytes())
    }

    /// Unseals a client frame and parses the request inside. The plaintext must hold exactly
    /// one complete request.
    pub fn open_request(&self, frame: &[u8]) -> Result<Request, RtspError> {
        let (_, pt) = unseal(&self.key, frame)?;
        match parse_request(&pt)? {
            Some((req, _)) => Ok(req),
            None => Err(RtspError::Incomplete),
        }
    }
}

/// The video codec the client chose (`x-nv-vqos[0].bitStreamFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitstreamFormat {
    /// 0: H.264.
    H264,
    /// 1: HEVC.
    Hevc,
    /// 2: AV1.
    Av1,
}

/// The stream's dynamic range (`x-nv-video[0].dynamicRangeMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DynamicRange {
    /// 0: 8-bit SDR.
    Sdr,
    /// 1: 10-bit (Moonlight's HDR option; the client negotiated a 10-bit format).
    Hdr,
}

/// Errors from [`parse_announce`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The body is not UTF-8.
    #[error("sdp is not utf-8")]
    NotUtf8,
    /// A required attribute is absent.
    #[error("missing attribute {0}")]
    MissingAttribute(&'static str),
    /// An attribute's value is not a number in range.
    #[error("invalid value {value:?} for {attribute}")]
    InvalidValue {
        /// The attribute.
        attribute: &'static str,
        /// The value as sent.
        value: String,
    },
}

/// The client's stream parameters from the ANNOUNCE SDP (§5.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamParams {
    /// `x-nv-video[0].clientViewportWd`.
    pub width: u32,
    /// `x-nv-video[0].clientViewportHt`.
    pub height: u32,
    /// `x-nv-video[0].maxFPS`.
    pub fps: u32,
    /// `x-nv-video[0].packetSize`: video bytes after the RTP header (already reduced for
    /// encryption by the client).
    pub packet_size: u32,
    /// `x-nv-vqos[0].bw.maximumBitrateKbps`: the client's target video bitrate.
    pub max_bitrate_kbps: u32,
    /// `x-ml-video.configuredBitrateKbps`: the user's total bitrate (0 if not sent).
    pub configured_bitrate_kbps: u32,
    /// `x-nv-vqos[0].fec.minRequiredFecPackets`.
    pub min_fec_packets: u32,
    /// `x-ss-general.encryptionEnabled`, with the legacy [`NVFF_AUDIO_ENCRYPTION`] bit of
    /// `x-nv-general.featureFlags` folded in as [`SS_ENC_AUDIO`] (as Sunshine does).
    pub encryption_enabled: u32,
    /// `x-nv-general.featureFlags` as sent.
    pub nv_feature_flags: u32,
    /// `x-ml-general.featureFlags` (`ML_FF_*`).
    pub ml_feature_flags: u32,
    /// `x-nv-general.useReliableUdp`: the control protocol (13 for current clients).
    pub control_protocol: u32,
    /// `x-nv-audio.surround.numChannels`.
    pub audio_channels: u32,
    /// `x-nv-audio.surround.channelMask`.
    pub audio_channel_mask: u32,
    /// `x-nv-audio.surround.AudioQuality`. For stereo, [`RtspHandler`] replaces it with the
    /// `Host` header rule (§5.2).
    pub audio_high_quality: bool,
    /// `x-nv-aqos.packetDuration`: Opus frame length in ms.
    pub audio_packet_duration_ms: u32,
    /// `x-nv-vqos[0].bitStreamFormat`.
    pub bitstream_format: BitstreamFormat,
    /// `x-nv-video[0].dynamicRangeMode`.
    pub dynamic_range: DynamicRange,
    /// `x-ss-video[0].chromaSamplingType` = 1: YUV 4:4:4.
    pub chroma_444: bool,
    /// `x-nv-video[0].encoderCscMode`: `(colorSpace << 1) | colorRange`.
    pub csc_mode: u32,
    /// `x-nv-video[0].videoEncoderSlicesPerFrame`.
    pub slices_per_frame: u32,
    /// `x-nv-video[0].maxNumReferenceFrames`: 0 = no limit, 1 = single reference frame.
    pub max_ref_frames: u32,
    /// `x-nv-video[0].clientRefreshRateX100` as sent (see
    /// [`StreamParams::effective_refresh_x100`]).
    pub client_refresh_x100: u32,
    /// `x-nv-vqos[0].qosTrafficType`: nonzero = DSCP-tag video.
    pub video_qos_type: u32,
    /// `x-nv-aqos.qosTrafficType`: nonzero = DSCP-tag audio.
    pub audio_qos_type: u32,
    /// `x-ss-video[0].intraRefresh` (Sunshine extension).
    pub intra_refresh: bool,
}

impl StreamParams {
    /// Whether video payloads are encrypted.
    pub fn video_encrypted(&self) -> bool {
        self.encryption_enabled & SS_ENC_VIDEO != 0
    }

    /// Whether audio payloads are encrypted.
    pub fn audio_encrypted(&self) -> bool {
        self.encryption_enabled & SS_ENC_AUDIO != 0
    }

    /// Whether the control stream uses v2 encryption.
    pub fn control_encrypted(&self) -> bool {
        self.encryption_enabled & SS_ENC_CONTROL_V2 != 0
    }

    /// Whether the client's pings carry `X-SS-Ping-Payload` (and ENet connect data).
    pub fn session_id_v1(&self) -> bool {
        self.ml_feature_flags & ML_FF_SESSION_ID_V1 != 0
    }

    /// Whether the client sends FEC status messages.
    pub fn fec_status(&self) -> bool {
        self.ml_feature_flags & ML_FF_FEC_STATUS != 0
    }

    /// Colour space from the CSC mode: 0 = Rec.601, 1 = Rec.709, 2 = Rec.2020.
    pub fn color_space(&self) -> u32 {
        self.csc_mode >> 1
    }

    /// Whether the colour range is full (otherwise limited).
    pub fn full_range(&self) -> bool {
        self.csc_mode & 1 != 0
    }

    /// The client refresh rate ×100, kept only if it lies within ±1 % of `fps` (Sunshine's
    /// rule); `None` otherwise.
    pub fn effective_refresh_x100(&self) -> Option<u32> {
        if self.client_refresh_x100 == 0 || self.fps == 0 {
            return None;
        }
        let ratio = f64::from(self.client_refresh_x100) / 100.0 / f64::from(self.fps);
        (0.99..=1.01)
            .contains(&ratio)
            .then_some(self.client_refresh_x100)
    }

    /// The video encoder bitrate in kbps. Without `configuredBitrateKbps` it is
    /// `maximumBitrateKbps`. Otherwise Sunshine's formula: take out the FEC share
    /// (`fec_percentage` <= 80), then the audio (256 kbps per channel in high quality, 96
    /// otherwise; at most 20 %), then 500 kbps of overhead (at most 10 %).
    pub fn encoder_bitrate_kbps(&self, fec_percentage: u32) -> u32 {
        if self.configured_bitrate_kbps == 0 {
            return self.max_bitrate_kbps;
        }
        let mut b = i64::from(self.configured_bitrate_kbps);
        if fec_percentage <= 80 {
            b = (b as f64 / (100.0 / f64::from(100 - fec_percentage))) as i64;
        }
        let per_channel = if self.audio_high_quality { 256 } else { 96 };
        b -= (per_channel * i64::from(self.audio_channels)).min(b / 5);
        b -= 500.min(b / 10);
        b.clamp(0, i64::from(u32::MAX)) as u32
    }
}

/// Splits an SDP body into its `a=name:value` attributes the way Sunshine does: lines end at
/// CR or LF, the name runs to the first `:`, one trailing space (and any surrounding
/// whitespace) is trimmed from the value. Later duplicates do not replace earlier ones.
pub fn sdp_attributes(body: &str) -> Vec<(&str, &str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for line in body.split(['\r', '\n']) {
        let Some(rest) = line.strip_prefix("a=") else {
            continue;
        };
        let Some((name, value)) = rest.split_once(':') else {
            continue;
        };
        if !out.iter().any(|(n, _)| *n == name) {
            out.push((name, value.trim()));
        }
    }
    out
}

/// Parses the ANNOUNCE SDP into [`StreamParams`]. Attributes Sunshine requires give
/// [`SdpError::MissingAttribute`] when absent; the others take Sunshine's defaults. Values are
/// decimal integers (negative or out-of-range values are [`SdpError::InvalidValue`]).
pub fn parse_announce(body: &[u8]) -> Result<StreamParams, SdpError> {
    let body = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
    let attrs = sdp_attributes(body);
    let lookup = |name: &'static str| attrs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let num = |name: &'static str, value: &str| -> Result<u32, SdpError> {
        value.parse::<u32>().map_err(|_| SdpError::InvalidValue {
            attribute: name,
            value: value.to_owned(),
        })
    };
    let req = |name: &'static str| -> Result<u32, SdpError> {
        num(name, lookup(name).ok_or(SdpError::MissingAttribute(name))?)
    };
    let opt = |name: &'static str, default: u32| -> Result<u32, SdpError> {
        lookup(name).map_or(Ok(default), |v| num(name, v))
    };

    let nv_feature_flags = opt("x-nv-general.featureFlags", 135)?;
    let mut encryption_enabled = opt("x-ss-general.encryptionEnabled", 0)?;
    if nv_feature_flags & NVFF_AUDIO_ENCRYPTION != 0 {
        encryption_enabled |= SS_ENC_AUDIO;
    }
    let format_attr = "x-nv-vqos[0].bitStreamFormat";
    let bitstream_format = match opt(format_attr, 0)? {
        0 => BitstreamFormat::H264,
        1 => BitstreamFormat::Hevc,
        2 => BitstreamFormat::Av1,
        v => {
            return Err(SdpError::InvalidValue {
                attribute: format_attr,
                value: v.to_string(),
            })
        }
    };
    let range_attr = "x-nv-video[0].dynamicRangeMode";
    let dynamic_range = match opt(range_attr, 0)? {
        0 => DynamicRange::Sdr,
        1 => DynamicRange::Hdr,
        v => {
            return Err(SdpError::InvalidValue {
                attribute: range_attr,
                value: v.to_string(),
            })
        }
    };

    Ok(StreamParams {
        audio_channels: req("x-nv-audio.surround.numChannels")?,
        audio_channel_mask: req("x-nv-audio.surround.channelMask")?,
        audio_packet_duration_ms: opt("x-nv-aqos.packetDuration", 5)?,
        audio_high_quality: req("x-nv-audio.surround.AudioQuality")? != 0,
        control_protocol: opt("x-nv-general.useReliableUdp", 1)?,
        packet_size: req("x-nv-video[0].packetSize")?,
        min_fec_packets: opt("x-nv-vqos[0].fec.minRequiredFecPackets", 0)?,
        ml_feature_flags: opt("x-ml-general.featureFlags", 0)?,
        audio_qos_type: opt("x-nv-aqos.qosTrafficType", 4)?,
        video_qos_type: opt("x-nv-vqos[0].qosTrafficType", 5)?,
        encryption_enabled,
        nv_feature_flags,
        height: req("x-nv-video[0].clientViewportHt")?,
        width: req("x-nv-video[0].clientViewportWd")?,
        fps: req("x-nv-video[0].maxFPS")?,
        client_refresh_x100: opt("x-nv-video[0].clientRefreshRateX100", 0)?,
        max_bitrate_kbps: req("x-nv-vqos[0].bw.maximumBitrateKbps")?,
        slices_per_frame: req("x-nv-video[0].videoEncoderSlicesPerFrame")?,
        max_ref_frames: req("x-nv-video[0].maxNumReferenceFrames")?,
        csc_mode: opt("x-nv-video[0].encoderCscMode", 0)?,
        bitstream_format,
        dynamic_range,
        chroma_444: opt("x-ss-video[0].chromaSamplingType", 0)? != 0,
        intra_refresh: opt("x-ss-video[0].intraRefresh", 0)? != 0,
        configured_bitrate_kbps: opt("x-ml-video.configuredBitrateKbps", 0)?,
    })
}

/// The surround-params lines the host offers, in order: stereo, HQ stereo, 5.1, HQ 5.1, 7.1,
/// HQ 7.1. The normal-quality 5.1 and 7.1 mappings are rotated left by one from index 3 over
/// the whole channel range, so that after the client's GFE fix-up it uses the identity mapping
/// (`gamestream-media.md` §3.3; the 7.1 line corrects Sunshine's `85301245367`).
pub const SURROUND_PARAMS: [&str; 6] = [
    "21101",
    "21101",
    "642012453",
    "660012345",
    "85301245673",
    "88001234567",
];

/// What the host advertises in the DESCRIBE body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DescribeConfig {
    /// `x-ss-general.featureFlags` (`LI_FF_*`).
    pub feature_flags: u32,
    /// `x-ss-general.encryptionSupported` (`SS_ENC_*`).
    pub encryption_supported: u32,
    /// `x-ss-general.encryptionRequested` (`SS_ENC_*`). Media bits here are enforced at
    /// ANNOUNCE (403 if the client does not enable them).
    pub encryption_requested: u32,
    /// Advertise reference frame invalidation.
    pub ref_pic_invalidation: bool,
    /// Offer HEVC (`sprop-parameter-sets=AAAAAU`); ANNOUNCE with HEVC is 400 otherwise.
    pub hevc: bool,
    /// Offer AV1 (`AV1/90000`); ANNOUNCE with AV1 is 400 otherwise.
    pub av1: bool,
    /// A custom layout from `/launch?surroundParams=`, printed twice before the standard lines.
    pub surround_params: Option<String>,
}

impl DescribeConfig {
    /// Sunshine's defaults for a LAN client: control v2 and audio encryption supported, video
    /// supported too, control v2 requested.
    pub fn sunshine_defaults() -> DescribeConfig {
        DescribeConfig {
            feature_flags: 0,
            encryption_supported: SS_ENC_CONTROL_V2 | SS_ENC_VIDEO | SS_ENC_AUDIO,
            encryption_requested: SS_ENC_CONTROL_V2,
            ref_pic_invalidation: false,
            hevc: false,
            av1: false,
            surround_params: None,
        }
    }
}

/// The DESCRIBE body (§5.4): one line per capability, `\n` line endings. Never empty.
pub fn describe_body(cfg: &DescribeConfig) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "a=x-ss-general.featureFlags:{}\n",
        cfg.feature_flags
    ));
    s.push_str(&format!(
        "a=x-ss-general.encryptionSupported:{}\n",
        cfg.encryption_supported
    ));
    s.push_str(&format!(
        "a=x-ss-general.encryptionRequested:{}\n",
        cfg.encryption_requested
    ));
    if cfg.ref_pic_invalidation {
        s.push_str("a=x-nv-video[0].refPicInvalidation:1\n");
    }
    if cfg.hevc {
        s.push_str("sprop-parameter-sets=AAAAAU\n");
    }
    if cfg.av1 {
        s.push_str("a=rtpmap:98 AV1/90000\n");
    }
    if let Some(p) = cfg
        .surround_params
        .as_deref()
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        for _ in 0..2 {
            s.push_str(&format!("a=fmtp:97 surround-params={p}\n"));
        }
    }
    for p in SURROUND_PARAMS {
        s.push_str(&format!("a=fmtp:97 surround-params={p}\n"));
    }
    s
}

/// The per-launch values the RTSP handler hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtspConfig {
    /// UDP audio port (48000).
    pub audio_port: u16,
    /// UDP video port (47998).
    pub video_port: u16,
    /// UDP control (ENet) port (47999).
    pub control_port: u16,
    /// `X-SS-Ping-Payload`: 16 printable ASCII bytes (Sunshine: 8 random bytes as uppercase
    /// hex, see [`ping_payload_from_random`]).
    pub ping_payload: [u8; 16],
    /// `X-SS-Connect-Data`: the ENet connect data (random).
    pub connect_data: u32,
    /// The opaque `Session` ID (Sunshine: `DEADBEEFCAFE`). Printable ASCII without `;`.
    pub session_id: String,
    /// What DESCRIBE advertises, and what ANNOUNCE must respect.
    pub describe: DescribeConfig,
}

/// A ping payload from 8 random bytes: their uppercase hex (Sunshine's form).
pub fn ping_payload_from_random(random: [u8; 8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(crate::nvhttp::hex_encode_upper(&random).as_bytes());
    out
}

/// Errors from [`RtspHandler::new`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtspConfigError {
    /// The ping payload has a byte that is not printable ASCII.
    #[error("ping payload is not printable ascii")]
    PingPayload,
    /// The session ID is empty or has a byte that is not printable ASCII, or a `;`.
    #[error("invalid session id")]
    SessionId,
}

/// The media streams a SETUP can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// `streamid=audio/...`.
    Audio,
    /// `streamid=video/...`.
    Video,
    /// `streamid=control/...`.
    Control,
}

/// What a request means for the session, beyond its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtspEvent {
    /// A SETUP was answered. After the audio one the client starts pinging the audio port.
    Setup(StreamKind),
    /// ANNOUNCE was accepted: the stream parameters. Start the stream session (wait for pings
    /// and the ENet connect).
    Announced(StreamParams),
    /// PLAY was answered. It does not wait for pings.
    Play,
}

/// Answers the RTSP requests of one launch session (Sunshine's `cmd_*`).
#[derive(Debug, Clone)]
pub struct RtspHandler {
    config: RtspConfig,
    ping_payload: String,
    announced: Option<StreamParams>,
}

impl RtspHandler {
    /// A handler for one launch session.
    pub fn new(config: RtspConfig) -> Result<RtspHandler, RtspConfigError> {
        let printable = |b: u8| b.is_ascii_graphic();
        if !config.ping_payload.iter().all(|&b| printable(b)) {
            return Err(RtspConfigError::PingPayload);
        }
        if config.session_id.is_empty()
            || !config.session_id.bytes().all(|b| printable(b) && b != b';')
        {
            return Err(RtspConfigError::SessionId);
        }
        let ping_payload = String::from_utf8_lossy(&config.ping_payload).into_owned();
        Ok(RtspHandler {
            config,
            ping_payload,
            announced: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RtspConfig {
        &self.config
    }

    /// The parameters of the accepted ANNOUNCE, if any.
    pub fn announced(&self) -> Option<&StreamParams> {
        self.announced.as_ref()
    }

    /// Answers one request. Methods are matched case-sensitively, as Sunshine does:
    /// `OPTIONS`, `DESCRIBE`, `SETUP`, `ANNOUNCE`, `PLAY`; anything else is
    /// `405 METHOD NOT ALLOWED`.
    pub fn handle_request(&mut self, req: &Request) -> (Response, Option<RtspEvent>) {
        let cseq = req.cseq();
        match req.method.as_str() {
            "OPTIONS" => (Response::ok(cseq), None),
            "DESCRIBE" => (
                Response::ok(cseq).with_body(describe_body(&self.config.describe)),
                None,
            ),
            "SETUP" => self.setup(req, cseq),
            "ANNOUNCE" => self.announce(req, cseq),
            "PLAY" => (Response::ok(cseq), Some(RtspEvent::Play)),
            _ => (Response::new(405, "METHOD NOT ALLOWED", cseq), None),
        }
    }

    fn setup(&self, req: &Request, cseq: u32) -> (Response, Option<RtspEvent>) {
        // The stream type is the text between the first '=' and the next '/'.
        let kind = req
            .target
            .split_once('=')
            .map(|(_, rest)| rest.split('/').next().unwrap_or(""))
            .and_then(|t| match t {
                "audio" => Some(StreamKind::Audio),
                "video" => Some(StreamKind::Video),
                "control" => Some(StreamKind::Control),
                _ => None,
            });
        let Some(kind) = kind else {
            return (Response::new(404, "NOT FOUND", cseq), None);
        };
        let port = match kind {
            StreamKind::Audio => self.config.audio_port,
            StreamKind::Video => self.config.video_port,
            StreamKind::Control => self.config.control_port,
        };
        let mut resp = Response::ok(cseq)
            .with_header(
                "Session",
                format!("{};timeout = 90", self.config.session_id),
            )
            .with_header("Transport", format!("server_port={port}"));
        resp = match kind {
            StreamKind::Control => {
                resp.with_header("X-SS-Connect-Data", self.config.connect_data.to_string())
            }
            _ => resp.with_header("X-SS-Ping-Payload", self.ping_payload.clone()),
        };
        (resp, Some(RtspEvent::Setup(kind)))
    }

    fn announce(&mut self, req: &Request, cseq: u32) -> (Response, Option<RtspEvent>) {
        let Ok(mut params) = parse_announce(&req.body) else {
            return (Response::bad_request(cseq), None);
        };
        // For stereo the Host header decides the audio quality: anything but 0.0.0.0 means
        // high quality (§5.2).
        if params.audio_channels == 2 {
            if let Some(host) = req.header("Host") {
                params.audio_high_quality = !host.contains("0.0.0.0");
            }
        }
        let d = &self.config.describe;
        let codec_ok = match params.bitstream_format {
            BitstreamFormat::H264 => true,
            BitstreamFormat::Hevc => d.hevc,
            BitstreamFormat::Av1 => d.av1,
        };
        if !codec_ok {
            return (Response::bad_request(cseq), None);
        }
        let required_media = d.encryption_requested & (SS_ENC_VIDEO | SS_ENC_AUDIO);
        if params.encryption_enabled & required_media != required_media {
            return (Response::new(403, "Forbidden", cseq), None);
        }
        self.announced = Some(params.clone());
        (Response::ok(cseq), Some(RtspEvent::Announced(params)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_bytes() {
        let r = Response::ok(3)
            .with_header("Transport", "server_port=48000")
            .with_body("x");
        assert_eq!(
            r.to_bytes(),
            b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nTransport: server_port=48000\r\n\r\nx"
        );
        let r = Response::ok(1).with_header("A", "b\r\nInjected: 1");
        assert_eq!(
            r.to_bytes(),
            b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nA: b  Injected: 1\r\n\r\n"
        );
    }

    #[test]
    fn parse_incremental() {
        let msg = b"ANNOUNCE streamid=control/13/0 RTSP/1.0\r\nCSeq: 6\r\nContent-LENGTH: 5\r\n\r\nhelloEXTRA";
        for n in 0..msg.len() - 10 {
            assert!(parse_request(&msg[..n]).unwrap().is_none(), "{n}");
        }
        let (r, used) = parse_request(msg).unwrap().unwrap();
        assert_eq!(used, msg.len() - 5);
        assert_eq!(r.body, b"hello");
        assert_eq!(r.cseq(), 6);
        assert_eq!(r.header("content-length"), Some("5"));
    }

    #[test]
    fn iv_layout() {
        assert_eq!(
            rtsp_iv(0x0102_0304, Direction::ClientToHost),
            [4, 3, 2, 1, 0, 0, 0, 0, 0, 0, b'C', b'R']
        );
    }

    #[test]
    fn surround_lines_decode_to_identity() {
        // The client's GFE fix-up on normal-quality mappings: R[3] = A[N-1], R[4..] = A[3..N-1].
        for line in [SURROUND_PARAMS[2], SURROUND_PARAMS[4]] {
            let d: Vec<u8> = line.bytes().map(|b| b - b'0').collect();
            let n = d[0] as usize;
            let a = &d[3..];
            assert_eq!(a.len(), n);
            let mut r = a[..3].to_vec();
            r.push(a[n - 1]);
            r.extend_from_slice(&a[3..n - 1]);
            assert_eq!(r, (0..n as u8).collect::<Vec<_>>(), "{line}");
        }
    }
}
