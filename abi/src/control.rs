//! The control-stream codec: bytes of the QUIC stream in, messages out; client messages encoded
//! into the caller's buffer.
//!
//! The decoder hands out every message as its kind (`PUNKTFUNK_MSG_*`, the type byte) and its
//! raw body (type byte and fields, as on the wire), and decodes the fields of the messages a
//! client receives into flat fields of [`PunktfunkControlMessage`]: `Welcome`, `Reconfigured`,
//! `BitrateChanged`, `ClockEcho`, `Close` and `PairResult`. Other messages (a host's view, the
//! app list, pairing blobs) are read from the body by the caller, as `protocol::native::control`
//! documents them.
//!
//! The encoders write one framed message (`u16` length prefix included) for each message a
//! client sends: `Hello`, `Start`, `Reconfigure`, `RequestKeyframe`, `LossReport`, `SetBitrate`,
//! `ClockProbe` and `Close`.

use protocol::native::control::{
    BitrateReason, Chroma, CloseCode, Codec, Codecs, Hello, Message, Mode, VideoCaps,
    MAX_MESSAGE_LEN,
};

use crate::{
    bytes, code, guard, out_size_from, put, put_prefix, read_sized, PUNKTFUNK_ERR_BUFFER_TOO_SMALL,
    PUNKTFUNK_ERR_CONTROL_MESSAGE, PUNKTFUNK_ERR_CONTROL_STREAM, PUNKTFUNK_ERR_INVALID_ARGUMENT,
    PUNKTFUNK_ERR_NULL, PUNKTFUNK_OK,
};

/// `Hello` (client).
pub const PUNKTFUNK_MSG_HELLO: u32 = 0x01;
/// `Welcome` (host).
pub const PUNKTFUNK_MSG_WELCOME: u32 = 0x02;
/// `Start` (client).
pub const PUNKTFUNK_MSG_START: u32 = 0x03;
/// `Close` (either).
pub const PUNKTFUNK_MSG_CLOSE: u32 = 0x04;
/// `Reconfigure` (client).
pub const PUNKTFUNK_MSG_RECONFIGURE: u32 = 0x10;
/// `Reconfigured` (host).
pub const PUNKTFUNK_MSG_RECONFIGURED: u32 = 0x11;
/// `RequestKeyframe` (client).
pub const PUNKTFUNK_MSG_REQUEST_KEYFRAME: u32 = 0x12;
/// `LossReport` (client).
pub const PUNKTFUNK_MSG_LOSS_REPORT: u32 = 0x13;
/// `SetBitrate` (client).
pub const PUNKTFUNK_MSG_SET_BITRATE: u32 = 0x14;
/// `BitrateChanged` (host).
pub const PUNKTFUNK_MSG_BITRATE_CHANGED: u32 = 0x15;
/// `ClockProbe` (client).
pub const PUNKTFUNK_MSG_CLOCK_PROBE: u32 = 0x16;
/// `ClockEcho` (host).
pub const PUNKTFUNK_MSG_CLOCK_ECHO: u32 = 0x17;
/// The size of [`PunktfunkControlMessage`] in ABI 1.0, which a caller with that header passes:
/// it gets every field but the later ones.
const CONTROL_MESSAGE_SIZE_1_0: usize = std::mem::offset_of!(PunktfunkControlMessage, rumble_low);

/// `Rumble` (host), since ABI 1.1.
pub const PUNKTFUNK_MSG_RUMBLE: u32 = 0x18;
/// `ListApps` (client).
pub const PUNKTFUNK_MSG_LIST_APPS: u32 = 0x20;
/// `Apps` (host).
pub const PUNKTFUNK_MSG_APPS: u32 = 0x21;
/// `PairRequest` (client).
pub const PUNKTFUNK_MSG_PAIR_REQUEST: u32 = 0x30;
/// `PairChallenge` (host).
pub const PUNKTFUNK_MSG_PAIR_CHALLENGE: u32 = 0x31;
/// `PairProof` (client).
pub const PUNKTFUNK_MSG_PAIR_PROOF: u32 = 0x32;
/// `PairResult` (host).
pub const PUNKTFUNK_MSG_PAIR_RESULT: u32 = 0x33;

/// `Close` code: the user ended the stream; the app keeps running.
pub const PUNKTFUNK_CLOSE_NORMAL: u16 = 0;
/// `Close` code: the user quit; stop the app too.
pub const PUNKTFUNK_CLOSE_QUIT_STOP_APP: u16 = 1;
/// `Close` code: the app exited.
pub const PUNKTFUNK_CLOSE_APP_EXITED: u16 = 2;
/// `Close` code: an error; the reason says which.
pub const PUNKTFUNK_CLOSE_ERROR: u16 = 3;
/// `Close` code: the client is not paired.
pub const PUNKTFUNK_CLOSE_NOT_PAIRED: u16 = 4;

/// `Welcome.codec`: H.264.
pub const PUNKTFUNK_CODEC_H264: u8 = 1;
/// `Welcome.codec`: HEVC.
pub const PUNKTFUNK_CODEC_HEVC: u8 = 2;
/// `Welcome.codec`: AV1.
pub const PUNKTFUNK_CODEC_AV1: u8 = 3;

/// A video mode.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct PunktfunkMode {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Refresh rate in millihertz (59 940 for 59.94 Hz).
    pub refresh_mhz: u32,
}

/// The fields of the host's `Welcome`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct PunktfunkWelcome {
    /// The mode the host will send.
    pub mode: PunktfunkMode,
    /// Audio samples per second.
    pub audio_sample_rate: u32,
    /// Length of one audio packet, µs.
    pub audio_frame_us: u32,
    /// What the host can do (bit set: 1 reconfigure, 2 clock sync, 4 set bitrate, 8 synthetic).
    pub host_caps: u32,
    /// The largest shard payload the host will send.
    pub shard_payload: u16,
    /// The host's data-plane UDP port.
    pub udp_port: u16,
    /// The data-plane key: pass it to `punktfunk_reassembler_new`.
    pub data_key: [u8; 16],
    /// The data-plane nonce salt.
    pub data_salt: [u8; 4],
    /// `PUNKTFUNK_CODEC_*`.
    pub codec: u8,
    /// Bits per sample (8 or 10).
    pub bit_depth: u8,
    /// 0 for 4:2:0, 1 for 4:4:4.
    pub chroma: u8,
    /// H.273 colour primaries.
    pub colour_primaries: u8,
    /// H.273 transfer characteristics.
    pub colour_transfer: u8,
    /// H.273 matrix coefficients.
    pub colour_matrix: u8,
    /// 1 for full range.
    pub full_range: u8,
    /// Recovery shards per 100 data shards at the start.
    pub fec_percent: u8,
    /// Audio channels.
    pub audio_channels: u8,
    /// Reserved, zero.
    pub reserved: [u8; 3],
}

/// One decoded control message. Which fields are set depends on `kind`; the others are zero.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PunktfunkControlMessage {
    /// `sizeof(PunktfunkControlMessage)`, set by the caller.
    pub size: u32,
    /// The type byte, `PUNKTFUNK_MSG_*` (also types this library does not know).
    pub kind: u32,
    /// The raw body: type byte and fields, without the length prefix. Owned by the decoder and
    /// valid until its next `punktfunk_control_decoder_poll` or `_free`.
    pub body: *const u8,
    /// Length of `body`.
    pub body_len: usize,
    /// `Close` reason, UTF-8 and NUL-terminated (empty if none); NULL for other kinds. Valid as
    /// long as `body`.
    pub text: *const std::ffi::c_char,
    /// Length of `text` without the NUL.
    pub text_len: usize,
    /// `ClockEcho`: the probe's client time, ns.
    pub t1: u64,
    /// `ClockEcho`: host time at receiving the probe, ns.
    pub t2: u64,
    /// `ClockEcho`: host time at sending the echo, ns.
    pub t3: u64,
    /// `Welcome`.
    pub welcome: PunktfunkWelcome,
    /// `Reconfigured`: the mode now sent.
    pub mode: PunktfunkMode,
    /// `BitrateChanged`: kbit/s.
    pub kbps: u32,
    /// `Close`: the code (`PUNKTFUNK_CLOSE_*` or another value).
    pub close_code: u16,
    /// `Reconfigured`: 1 if the mode changed; `PairResult`: 1 if paired.
    pub accepted: u8,
    /// `BitrateChanged`: 0 requested, 1 congestion, 2 host limit, or another value.
    pub bitrate_reason: u8,
    /// `Rumble` (ABI 1.1): the low-frequency (strong) motor, 0 to 65 535.
    pub rumble_low: u16,
    /// `Rumble` (ABI 1.1): the high-frequency (weak) motor, 0 to 65 535.
    pub rumble_high: u16,
    /// `Rumble` (ABI 1.1): the pad, as the client numbers it in its gamepad input.
    pub rumble_pad: u8,
    /// Reserved, zero.
    pub reserved: [u8; 3],
}

/// The client's `Hello`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PunktfunkHello {
    /// `sizeof(PunktfunkHello)`, set by the caller.
    pub size: u32,
    /// The mode the client wants.
    pub mode: PunktfunkMode,
    /// The bitrate the client wants, kbit/s.
    pub bitrate_kbps: u32,
    /// 0 streams the app; otherwise the host sends a synthetic stream of this many kbit/s.
    pub synthetic_kbps: u32,
    /// The client's name, UTF-8, `client_name_len` bytes (at most 256; NULL if 0).
    pub client_name: *const u8,
    /// Length of `client_name`.
    pub client_name_len: usize,
    /// The app to launch, UTF-8 (empty for the host's default app).
    pub app: *const u8,
    /// Length of `app`.
    pub app_len: usize,
    /// The largest shard payload the client accepts.
    pub max_shard_payload: u16,
    /// Codecs the client decodes (bit set: 1 H.264, 2 HEVC, 4 AV1).
    pub codecs: u8,
    /// What the decoder and display show (bit set: 1 10-bit, 2 HDR, 4 4:4:4).
    pub video_caps: u8,
    /// Audio channels (2, 6 or 8).
    pub audio_channels: u8,
    /// Reserved, zero.
    pub reserved: [u8; 3],
}

/// Splits the control stream into messages. One thread at a time.
pub struct PunktfunkControlDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    start: usize,
    broken: bool,
    /// The body lent out by the last poll.
    body: Vec<u8>,
    /// The text lent out by the last poll, NUL-terminated.
    text: Vec<u8>,
}

/// Creates a control-stream decoder; free it with [`punktfunk_control_decoder_free`].
///
/// # Safety
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn punktfunk_control_decoder_new(
    out: *mut *mut PunktfunkControlDecoder,
) -> i32 {
    guard(|| {
        let d = Box::new(PunktfunkControlDecoder {
            buf: Vec::new(),
            start: 0,
            broken: false,
            body: Vec::new(),
            text: Vec::new(),
        });
        let d = Box::into_raw(d);
        // SAFETY: the caller's contract; NULL is checked.
        match unsafe { put(out, d) } {
            Ok(()) => PUNKTFUNK_OK,
            Err(e) => {
                // SAFETY: just created by Box::into_raw and not handed out.
                drop(unsafe { Box::from_raw(d) });
                e
            }
        }
    })
}

/// Frees a decoder. NULL is ignored.
///
/// # Safety
/// `d` is NULL or a decoder from [`punktfunk_control_decoder_new`] not yet freed.
#[no_mangle]
pub unsafe extern "C" fn punktfunk_control_decoder_free(d: *mut PunktfunkControlDecoder) {
    if !d.is_null() {
        // SAFETY: created by Box::into_raw, freed once.
        drop(unsafe { Box::from_raw(d) });
    }
}

/// Appends bytes received on the control stream, in any pieces. Returns
/// `PUNKTFUNK_ERR_CONTROL_STREAM` once the stream is broken.
///
/// # Safety
/// `d` is a live decoder; `bytes` points to `len` readable bytes (or is NULL with `len` 0).
#[no_mangle]
pub unsafe extern "C" fn punktfunk_control_decoder_push(
    d: *mut PunktfunkControlDecoder,
    data: *const u8,
    len: usize,
) -> i32 {
    guard(|| {
        code((|| {
            // SAFETY: the caller's contract.
            let d = unsafe { d.as_mut() }.ok_or(PUNKTFUNK_ERR_NULL)?;
            // SAFETY: the caller's contract.
            let data = unsafe { bytes(data, len)? };
            if d.broken {
                return Err(PUNKTFUNK_ERR_CONTROL_STREAM);
            }
            if d.start > 0 && (d.start == d.buf.len() || d.start >= 4096) {
                d.buf.drain(..d.start);
                d.start = 0;
            }
            d.buf.extend_from_slice(data);
            Ok(PUNKTFUNK_OK)
        })())
    })
}

/// The next whole message: returns 1 and fills `*out` (`out->size` must be set), 0 when more
/// bytes are needed, `PUNKTFUNK_ERR_CONTROL_MESSAGE` when this message's fields did not decode
/// (`kind` and `body` are still filled; the message is consumed and the stream goes on), or
/// `PUNKTFUNK_ERR_CONTROL_STREAM` when the stream is broken (a length of 0 or over 32 KiB; every
/// later call says so too).
///
/// # Safety
/// `d` is a live decoder; `out` points to a writable message of `out->size` bytes.
#[no_mangle]
pub unsafe extern "C" fn punktfunk_control_decoder_poll(
    d: *mut PunktfunkControlDecoder,
    out: *mut PunktfunkControlMessage,
) -> i32 {
    guard(|| {
        code((|| {
            // SAFETY: the caller's contract.
            let d = unsafe { d.as_mut() }.ok_or(PUNKTFUNK_ERR_NULL)?;
            // SAFETY: the caller's contract.
            let size = unsafe { out_size_from(out, CONTROL_MESSAGE_SIZE_1_0)? };
            if d.broken {
                return Err(PUNKTFUNK_ERR_CONTROL_STREAM);
            }
            let pending = &d.buf[d.start..];
            let Some(prefix) = pending.get(..2) else {
                return Ok(0);
            };
            let len = u16::from_le_bytes([prefix[0], prefix[1]]) as usize;
            if len == 0 || len > MAX_MESSAGE_LEN {
                d.broken = true;
                d.buf = Vec::new();
                d.start = 0;
                return Err(PUNKTFUNK_ERR_CONTROL_STREAM);
            }
            let Some(body) = pending.get(2..2 + len) else {
                return Ok(0);
            };
            d.body.clear();
            d.body.extend_from_slice(body);
            d.start += 2 + len;
            d.text.clear();

            let mut m = PunktfunkControlMessage {
                size,
                kind: d.body[0].into(),
                body: d.body.as_ptr(),
                body_len: d.body.len(),
                text: std::ptr::null(),
                text_len: 0,
                t1: 0,
                t2: 0,
                t3: 0,
                welcome: PunktfunkWelcome::default(),
                mode: PunktfunkMode::default(),
                kbps: 0,
                close_code: 0,
                accepted: 0,
                bitrate_reason: 0,
                rumble_low: 0,
                rumble_high: 0,
                rumble_pad: 0,
                reserved: [0; 3],
            };
            let result = match Message::decode(&d.body) {
                Ok(message) => {
                    fill(&mut m, message, &mut d.text);
                    Ok(1)
                }
                Err(_) => Err(PUNKTFUNK_ERR_CONTROL_MESSAGE),
            };
            // SAFETY: checked by out_size.
            unsafe { put_prefix(out, m, size)? };
            result
        })())
    })
}

/// Encodes `Hello`. Every encoder writes one framed message (length prefix included) into
/// `buf` of `cap` bytes and stores its length in `*written`; when `cap` is too small it stores
/// the length needed and returns `PUNKTFUNK_ERR_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `hello` points to a hello of `hello->size` bytes whose strings are readable; `buf` to `cap`
/// writable bytes; `written` is writable.
#[no_mangle]
pub unsafe extern "C" fn punktfunk_encode_hello(
    hello: *const PunktfunkHello,
    buf: *mut u8,
    cap: usize,
    written: *mut usize,
) -> i32 {
    guard(|| {
        code((|| {
            // SAFETY: the caller's contract.
            let h = unsafe { read_sized(hello)? };
            // SAFETY: the caller's contract for the strings.
            let (client_name, app) = unsafe {
                (
                    string(h.client_name, h.client_name_len)?,
                    string(h.app, h.app_len)?,
                )
            };
            let message = Message::Hello(Hello {
                mode: mode(h.mode),
                bitrate_kbps: h.bitrate_kbps,
                client_name,
                app,
                codecs: Codecs(h.codecs),
                video_caps: VideoCaps(h.video_caps),
                audio_channels: h.audio_channels,
                max_shard_payload: h.max_shard_payload,
                synthetic_kbps: h.synthetic_kbps,
            });
            // SAFETY: the caller's contract.
            unsafe { encode(&message, buf, cap, written) }
        })())
    })
}

/// Encodes `Start` with the client's data-plane UDP port. See [`punktfunk_encode_hello`].
///
/// # Safety
/// As [`punktfunk_encode_hello`].
#[no_mangle]
pub unsafe extern "C" fn punktfunk_encode_start(
    client_udp_port: u16,
    buf: *mut u8,
    cap: usize,
    written: *mut usize,
) -> i32 {
    let message = Message::Start { client_udp_port };
    // SAFETY: the caller's contract.
    guard(|| code(unsafe { encode(&message, buf, cap, written) }))
}

/// Encodes `Reconfigure`. See [`punktfunk_encode_hello`].
///
/// # Safety
/// As [`punktfunk_encode_hello`]; `mode` is readable.
#[no_mangle]
pub unsafe extern "C" fn punktfunk_encode_reconfigure(
    m: *const PunktfunkMode,
    buf: *mut u8,
    cap: usize,
    written: *mut usize,
) -> i32 {
    guard(|| {
        code((|| {
            if m.is_null() {
                return Err(PUNKTFUNK_ERR_NULL);
            }
            // SAFETY: non-NULL and readable by the caller's contract; any bits are a mode.
            let m = unsafe { m.read_unaligned() };
            let message = Message::Reconfigure { mode: mode(m) };
            // SAFETY: the caller's contract.
            unsafe { encode(&message, buf, cap, written) }
        })())
    })
}

/// Encodes `RequestKeyframe`. See [`punktfunk_encode_hello`].
///
/// # Safety
/// As [`punktfunk_encode_hello`].
#[no_mangle]
pub unsafe extern "C" fn punktfunk_encode_request_keyframe(
    buf: *mut u8,
    cap: usize,
    written: *mut usize,
) -> i32 {
    // SAFETY: the caller's contract.
    guard(|| code(unsafe { encode(&Message::RequestKeyframe, buf, cap, written) }))
}

/// Encodes `LossReport`: datagrams lost per million, frames lost and frames recovered over the
/// last interval. See [`punktfunk_encode_hello`].
///
/// # Safety
/// As [`punktfunk_encode_hello`].
#[no_mangle]
pub unsafe extern "C" fn punktfunk_encode_loss_report(
    loss_ppm: u32,
    frames_lost: u32,
    frames_recovered: u32,
    buf: *mut u8,
    cap: usize,
    written: *mut usize,
) -> i32 {
    let message = Message::LossReport {
        loss_ppm,
        frames_lost,
        frames_recovered,
    };
    // SAFETY: the caller's contract.
    guard(|| code(unsafe { encode(&message, buf, cap, written) }))
}

/// Encodes `SetBitrate` (kbit/s). See [`punktfunk_encode_hello`].
///
/// # Safety
/// As [`punktfunk_encode_hello`].
#[no_mangle]
pub unsafe extern "C" fn punktfunk_encode_set_bitrate(
    kbps: u32,
    buf: *mut u8,
    cap: usize,
    written: *mut usize,
) -> i32 {
    let message = Message::SetBitrate { kbps };
    // SAFETY: the caller's contract.
    guard(|| code(unsafe { encode(&message, buf, cap, written) }))
}

/// Encodes `ClockProbe` with the client's clock at sending, ns. See [`punktfunk_encode_hello`].
///
/// # Safety
/// As [`punktfunk_encode_hello`].
#[no_mangle]
pub unsafe extern "C" fn punktfunk_encode_clock_probe(
    t1: u64,
    buf: *mut u8,
    cap: usize,
    written: *mut usize,
) -> i32 {
    let message = Message::ClockProbe { t1 };
    // SAFETY: the caller's contract.
    guard(|| code(unsafe { encode(&message, buf, cap, written) }))
}

/// Encodes `Close` with a code (`PUNKTFUNK_CLOSE_*`) and a UTF-8 reason of `reason_len` bytes
/// (at most 1024; NULL if 0). See [`punktfunk_encode_hello`].
///
/// # Safety
/// As [`punktfunk_encode_hello`]; `reason` points to `reason_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn punktfunk_encode_close(
    close_code: u16,
    reason: *const u8,
    reason_len: usize,
    buf: *mut u8,
    cap: usize,
    written: *mut usize,
) -> i32 {
    guard(|| {
        code((|| {
            // SAFETY: the caller's contract.
            let reason = unsafe { string(reason, reason_len)? };
            let message = Message::Close {
                code: close_from_wire(close_code),
                reason,
            };
            // SAFETY: the caller's contract.
            unsafe { encode(&message, buf, cap, written) }
        })())
    })
}

/// Encodes `message` into the caller's buffer.
///
/// # Safety
/// Non-NULL `buf` is writable for `cap` bytes; non-NULL `written` is writable.
unsafe fn encode(
    message: &Message,
    buf: *mut u8,
    cap: usize,
    written: *mut usize,
) -> Result<i32, i32> {
    if written.is_null() || (buf.is_null() && cap > 0) {
        return Err(PUNKTFUNK_ERR_NULL);
    }
    let mut v = Vec::new();
    // Only fields over their bounds fail to encode.
    message
        .encode(&mut v)
        .map_err(|_| PUNKTFUNK_ERR_INVALID_ARGUMENT)?;
    // SAFETY: checked non-NULL above; writable by the caller's contract.
    unsafe { put(written, v.len())? };
    if v.len() > cap {
        return Err(PUNKTFUNK_ERR_BUFFER_TOO_SMALL);
    }
    // SAFETY: `buf` holds `cap >= v.len()` writable bytes (non-NULL since v is never empty) and
    // cannot overlap the fresh vector.
    unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), buf, v.len()) };
    Ok(PUNKTFUNK_OK)
}

/// A UTF-8 string from the caller's pointer and length.
///
/// # Safety
/// As [`bytes`].
unsafe fn string(ptr: *const u8, len: usize) -> Result<String, i32> {
    // SAFETY: the caller's contract.
    let b = unsafe { bytes(ptr, len)? };
    std::str::from_utf8(b)
        .map(str::to_owned)
        .map_err(|_| PUNKTFUNK_ERR_INVALID_ARGUMENT)
}

fn mode(m: PunktfunkMode) -> Mode {
    Mode {
        width: m.width,
        height: m.height,
        refresh_mhz: m.refresh_mhz,
    }
}

fn c_mode(m: Mode) -> PunktfunkMode {
    PunktfunkMode {
        width: m.width,
        height: m.height,
        refresh_mhz: m.refresh_mhz,
    }
}

fn close_from_wire(c: u16) -> CloseCode {
    match c {
        PUNKTFUNK_CLOSE_NORMAL => CloseCode::Normal,
        PUNKTFUNK_CLOSE_QUIT_STOP_APP => CloseCode::QuitStopApp,
        PUNKTFUNK_CLOSE_APP_EXITED => CloseCode::AppExited,
        PUNKTFUNK_CLOSE_ERROR => CloseCode::Error,
        PUNKTFUNK_CLOSE_NOT_PAIRED => CloseCode::NotPaired,
        c => CloseCode::Other(c),
    }
}

fn close_to_wire(c: CloseCode) -> u16 {
    match c {
        CloseCode::Normal => PUNKTFUNK_CLOSE_NORMAL,
        CloseCode::QuitStopApp => PUNKTFUNK_CLOSE_QUIT_STOP_APP,
        CloseCode::AppExited => PUNKTFUNK_CLOSE_APP_EXITED,
        CloseCode::Error => PUNKTFUNK_CLOSE_ERROR,
        CloseCode::NotPaired => PUNKTFUNK_CLOSE_NOT_PAIRED,
        CloseCode::Other(c) => c,
    }
}

/// Copies the decoded fields a client needs into `m`; `text` keeps the `Close` reason.
fn fill(m: &mut PunktfunkControlMessage, message: Message, text: &mut Vec<u8>) {
    match message {
        Message::Welcome(w) => {
            m.welcome = PunktfunkWelcome {
                mode: c_mode(w.mode),
                audio_sample_rate: w.audio.sample_rate,
                audio_frame_us: w.audio.frame_us,
                host_caps: w.host_caps.0,
                shard_payload: w.shard_payload,
                udp_port: w.udp_port,
                data_key: w.data_key,
                data_salt: w.data_salt,
                codec: match w.codec {
                    Codec::H264 => PUNKTFUNK_CODEC_H264,
                    Codec::Hevc => PUNKTFUNK_CODEC_HEVC,
                    Codec::Av1 => PUNKTFUNK_CODEC_AV1,
                },
                bit_depth: w.bit_depth,
                chroma: match w.chroma {
                    Chroma::Yuv420 => 0,
                    Chroma::Yuv444 => 1,
                },
                colour_primaries: w.colour.primaries,
                colour_transfer: w.colour.transfer,
                colour_matrix: w.colour.matrix,
                full_range: w.colour.full_range.into(),
                fec_percent: w.fec_percent,
                audio_channels: w.audio.channels,
                reserved: [0; 3],
            };
        }
        Message::Reconfigured { accepted, mode } => {
            m.accepted = accepted.into();
            m.mode = c_mode(mode);
        }
        Message::BitrateChanged { kbps, reason } => {
            m.kbps = kbps;
            m.bitrate_reason = match reason {
                BitrateReason::Requested => 0,
                BitrateReason::Congestion => 1,
                BitrateReason::HostLimit => 2,
                BitrateReason::Other(b) => b,
            };
        }
        Message::ClockEcho { t1, t2, t3 } => {
            m.t1 = t1;
            m.t2 = t2;
            m.t3 = t3;
        }
        Message::Close { code, reason } => {
            m.close_code = close_to_wire(code);
            text.extend_from_slice(reason.as_bytes());
            text.push(0);
            m.text = text.as_ptr().cast();
            m.text_len = reason.len();
        }
        Message::PairResult { ok } => m.accepted = ok.into(),
        Message::Rumble { pad, low, high } => {
            m.rumble_pad = pad;
            m.rumble_low = low;
            m.rumble_high = high;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use protocol::native::control::{AudioFormat, Colour, HostCaps, Welcome};

    use super::*;

    fn message() -> PunktfunkControlMessage {
        // SAFETY: all fields are integers, arrays or pointers, for which zero is valid.
        let mut m: PunktfunkControlMessage = unsafe { std::mem::zeroed() };
        m.size = size_of::<PunktfunkControlMessage>() as u32;
        m
    }

    #[test]
    fn host_messages_decode_into_fields() {
        let welcome = Message::Welcome(Welcome {
            mode: Mode {
                width: 2560,
                height: 1440,
                refresh_mhz: 120_000,
            },
            codec: Codec::Hevc,
            bit_depth: 10,
            chroma: Chroma::Yuv420,
            colour: Colour::BT2020_PQ,
            fec_percent: 15,
            shard_payload: 1408,
            audio: AudioFormat {
                sample_rate: 48_000,
                channels: 2,
                frame_us: 5_000,
            },
            data_key: [7; 16],
            data_salt: [1, 2, 3, 4],
            udp_port: 47_998,
            host_caps: HostCaps::RECONFIGURE | HostCaps::CLOCK_SYNC,
        });
        let mut stream = Vec::new();
        welcome.encode(&mut stream).unwrap();
        Message::Rumble {
            pad: 2,
            low: 0xC000,
            high: 0x4000,
        }
        .encode(&mut stream)
        .unwrap();
        Message::Close {
            code: CloseCode::AppExited,
            reason: "bye".into(),
        }
        .encode(&mut stream)
        .unwrap();

        let mut d = std::ptr::null_mut();
        let mut m = message();
        // SAFETY: valid pointers throughout; the decoder is freed at the end.
        unsafe {
            assert_eq!(punktfunk_control_decoder_new(&mut d), 0);
            // Byte by byte, to cross every boundary.
            for b in &stream {
                assert_eq!(punktfunk_control_decoder_push(d, b, 1), 0);
            }
            assert_eq!(punktfunk_control_decoder_poll(d, &mut m), 1);
            assert_eq!(m.kind, PUNKTFUNK_MSG_WELCOME);
            assert_eq!(m.welcome.mode.width, 2560);
            assert_eq!(m.welcome.codec, PUNKTFUNK_CODEC_HEVC);
            assert_eq!(m.welcome.colour_transfer, 16);
            assert_eq!(m.welcome.data_key, [7; 16]);
            assert_eq!(m.welcome.host_caps, 3);
            assert_eq!(punktfunk_control_decoder_poll(d, &mut m), 1);
            assert_eq!(m.kind, PUNKTFUNK_MSG_RUMBLE);
            assert_eq!(
                (m.rumble_pad, m.rumble_low, m.rumble_high),
                (2, 0xC000, 0x4000)
            );
            assert_eq!(punktfunk_control_decoder_poll(d, &mut m), 1);
            assert_eq!(m.kind, PUNKTFUNK_MSG_CLOSE);
            assert_eq!(m.close_code, PUNKTFUNK_CLOSE_APP_EXITED);
            assert_eq!(std::ffi::CStr::from_ptr(m.text).to_str().unwrap(), "bye");
            assert_eq!(punktfunk_control_decoder_poll(d, &mut m), 0);
            punktfunk_control_decoder_free(d);
        }
    }

    #[test]
    fn a_caller_with_the_1_0_header_gets_the_fields_it_knows_and_nothing_past_them() {
        let mut stream = Vec::new();
        Message::BitrateChanged {
            kbps: 7_500,
            reason: BitrateReason::Congestion,
        }
        .encode(&mut stream)
        .unwrap();
        Message::Rumble {
            pad: 1,
            low: 9,
            high: 9,
        }
        .encode(&mut stream)
        .unwrap();
        // The 1.0 struct, and bytes of the caller's own right after it.
        let mut m = message();
        m.size = CONTROL_MESSAGE_SIZE_1_0 as u32;
        m.rumble_low = 0xAAAA;
        m.rumble_pad = 0x55;
        let mut too_small = message();
        too_small.size = CONTROL_MESSAGE_SIZE_1_0 as u32 - 1;
        let mut d = std::ptr::null_mut();
        // SAFETY: valid pointers throughout; the decoder is freed at the end.
        unsafe {
            assert_eq!(punktfunk_control_decoder_new(&mut d), 0);
            assert_eq!(
                punktfunk_control_decoder_push(d, stream.as_ptr(), stream.len()),
                0
            );
            assert_eq!(
                punktfunk_control_decoder_poll(d, &mut too_small),
                crate::PUNKTFUNK_ERR_STRUCT_SIZE
            );
            assert_eq!(punktfunk_control_decoder_poll(d, &mut m), 1);
            assert_eq!(
                (m.kind, m.kbps, m.bitrate_reason),
                (PUNKTFUNK_MSG_BITRATE_CHANGED, 7_500, 1)
            );
            // A message it has no fields for still comes with its kind and body.
            assert_eq!(punktfunk_control_decoder_poll(d, &mut m), 1);
            assert_eq!(m.kind, PUNKTFUNK_MSG_RUMBLE);
            assert_eq!(m.body_len, 6);
            assert_eq!(
                (m.rumble_low, m.rumble_pad),
                (0xAAAA, 0x55),
                "written past its size"
            );
            punktfunk_control_decoder_free(d);
        }
    }

    #[test]
    fn client_messages_encode_as_the_core_does() {
        let name = "tv";
        let hello = PunktfunkHello {
            size: size_of::<PunktfunkHello>() as u32,
            mode: PunktfunkMode {
                width: 1920,
                height: 1080,
                refresh_mhz: 60_000,
            },
            bitrate_kbps: 50_000,
            synthetic_kbps: 0,
            client_name: name.as_ptr(),
            client_name_len: name.len(),
            app: std::ptr::null(),
            app_len: 0,
            max_shard_payload: 1408,
            codecs: 3,
            video_caps: 0,
            audio_channels: 2,
            reserved: [0; 3],
        };
        let mut buf = [0u8; 128];
        let mut n = 0;
        // SAFETY: valid pointers and lengths.
        unsafe {
            assert_eq!(
                punktfunk_encode_hello(&hello, buf.as_mut_ptr(), 4, &mut n),
                PUNKTFUNK_ERR_BUFFER_TOO_SMALL
            );
            assert_eq!(
                punktfunk_encode_hello(&hello, buf.as_mut_ptr(), buf.len(), &mut n),
                0
            );
        }
        let mut want = Vec::new();
        Message::Hello(Hello {
            mode: Mode {
                width: 1920,
                height: 1080,
                refresh_mhz: 60_000,
            },
            bitrate_kbps: 50_000,
            client_name: name.into(),
            app: String::new(),
            codecs: Codecs(3),
            video_caps: VideoCaps(0),
            audio_channels: 2,
            max_shard_payload: 1408,
            synthetic_kbps: 0,
        })
        .encode(&mut want)
        .unwrap();
        assert_eq!(&buf[..n], &want[..]);
    }

    #[test]
    fn a_zero_length_breaks_the_stream_for_good() {
        let mut d = std::ptr::null_mut();
        let mut m = message();
        // SAFETY: valid pointers; freed at the end.
        unsafe {
            assert_eq!(punktfunk_control_decoder_new(&mut d), 0);
            assert_eq!(punktfunk_control_decoder_push(d, [0u8, 0].as_ptr(), 2), 0);
            assert_eq!(
                punktfunk_control_decoder_poll(d, &mut m),
                PUNKTFUNK_ERR_CONTROL_STREAM
            );
            assert_eq!(
                punktfunk_control_decoder_poll(d, &mut m),
                PUNKTFUNK_ERR_CONTROL_STREAM
            );
            punktfunk_control_decoder_free(d);
        }
    }
}
