//! The typed requests and replies of the management API: the host fills them, the API and the
//! console serve them as JSON, and the CLI reads them back. `docs/management-api.yaml`
//! describes the same shapes; a test checks that every route there is served.

use serde::{Deserialize, Serialize};

/// Every error reply: `{"error": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorReply {
    /// What went wrong, in words for the user.
    pub error: String,
}

/// `POST /api/pair`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairRequest {
    /// The four digits the client shows.
    pub pin: String,
    /// The address of the client that shows it, as `GET /api/pairings` lists it; without it
    /// the oldest waiting pairing gets the PIN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// The reply to `POST /api/pair`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairReply {
    /// Always `true`: a PIN that reached no pairing is a 404.
    pub delivered: bool,
    /// The `uniqueid` the pairing client sent.
    pub client: String,
}

/// The reply to `POST /api/native/pair`: the PIN to type on a punktfunk/1 client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NativePin {
    /// Six digits, good for one pairing attempt.
    pub pin: String,
    /// Seconds until it expires.
    pub expires_s: u64,
}

/// A paired client.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Client {
    /// The host's id for it (`"1"`, `"2"`, ...).
    pub id: String,
    /// Its name, `client N` until renamed.
    pub name: String,
    /// The `uniqueid` it sent when it paired.
    pub uniqueid: String,
    /// When it paired, in seconds since the Unix epoch.
    pub paired_at: u64,
}

impl From<&crate::state::PairedClient> for Client {
    /// What the management API and the console show of a paired client (not its certificate).
    fn from(c: &crate::state::PairedClient) -> Self {
        Client {
            id: c.id.clone(),
            name: c.name.clone(),
            uniqueid: c.uniqueid.clone(),
            paired_at: c.paired_at,
        }
    }
}

/// `PATCH /api/clients/{id}`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenameRequest {
    /// 1 to 64 characters, none of them a control character.
    pub name: String,
}

/// The reply to `PATCH /api/clients/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenameReply {
    /// The client's id.
    pub id: String,
    /// Its new name.
    pub name: String,
}

/// The reply to `DELETE /api/clients/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnpairReply {
    /// The id of the client that was removed.
    pub removed: String,
}

/// `POST /api/sessions/{id}/launch`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchRequest {
    /// The name of a catalog app, or of the base app.
    pub app: String,
}

/// The reply to `POST /api/sessions/{id}/launch`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchReply {
    /// The app now on top.
    pub launched: String,
    /// The session.
    pub session: u64,
}

/// The reply to `DELETE /api/sessions/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StopReply {
    /// The session that was ended.
    pub stopped: u64,
}

/// A running game session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// The host's id for it.
    pub id: u64,
    /// The id of the paired client it belongs to.
    pub client: String,
    /// The app on top.
    pub app: Option<String>,
    /// The output's width.
    pub width: u32,
    /// The output's height.
    pub height: u32,
    /// The output's refresh rate, rounded down.
    pub fps: u32,
    /// Whether the client receives the stream.
    pub streaming: bool,
    /// The FEC percentage of the frames sent now.
    pub fec_percent: Option<u8>,
    /// The encoder's target bitrate now.
    pub video_bitrate_kbps: Option<u32>,
    /// `h264`, `hevc` or `av1`.
    pub video_codec: Option<String>,
    /// `4:2:0` or `4:4:4`.
    pub chroma: Option<String>,
    /// 8 or 10.
    pub bit_depth: Option<u32>,
    /// The libavcodec encoder that runs the stream.
    pub video_encoder: Option<String>,
    /// `pixman` or `gles`.
    pub renderer: String,
    /// `cpu`, `software` or the render node.
    pub render_device: String,
}

/// The host's ports that clients reach.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PortsReply {
    /// GameStream HTTP.
    pub http: u16,
    /// GameStream HTTPS.
    pub https: u16,
    /// RTSP.
    pub rtsp: u16,
}

/// The renderer setting and the renderer of the newest session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Renderer {
    /// `[video] renderer`.
    pub setting: String,
    /// `[video] render_node`.
    pub render_node: String,
    /// The newest session's renderer, `None` before the first session.
    pub in_use: Option<RendererInUse>,
}

/// A renderer a compositor runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RendererInUse {
    /// `pixman` or `gles`.
    pub name: String,
    /// `cpu`, `software` or the render node.
    pub device: String,
    /// `GL_RENDERER`; empty for pixman.
    pub description: String,
    /// Why no GPU renders, where `auto` looked for one and fell back to pixman (what the
    /// machine lacks, where that is known); `None` otherwise.
    pub fallback: Option<String>,
}

/// The encoder setting and, per codec, the encoder family a new stream would run on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VideoEncoders {
    /// `[video] encoder`.
    pub setting: String,
    /// `nvenc`, `vaapi`, `software` or `None`: H.264 cannot be encoded here.
    pub h264: Option<String>,
    /// As `h264`, for HEVC.
    pub hevc: Option<String>,
    /// As `h264`, for AV1.
    pub av1: Option<String>,
    /// The GPU encoders the setting would take that do not work here, with why.
    pub unavailable: Vec<UnavailableEncoder>,
}

/// A GPU encoder that does not work on this machine, for the codecs it was probed for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UnavailableEncoder {
    /// `nvenc` or `vaapi`.
    pub encoder: String,
    /// The codecs (`h264`, `hevc`, `av1`) it fails for with this reason.
    pub codecs: Vec<String>,
    /// Why, as the probe found it.
    pub reason: String,
}

/// The reply to `GET /api/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// The host's name.
    pub name: String,
    /// The host's `uniqueid`.
    pub uniqueid: String,
    /// punktfunk's version.
    pub version: String,
    /// The ports.
    pub ports: PortsReply,
    /// The running sessions.
    pub sessions: Vec<Session>,
    /// The renderer.
    pub renderer: Renderer,
    /// The video encoders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_encoders: Option<VideoEncoders>,
    /// The base app's name, on a host with one: only then can apps be launched into a
    /// running session.
    pub base_app: Option<String>,
}

/// One second of a stream, for the console's graphs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StatsSample {
    /// When it was taken, in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// Video frames sent per second.
    pub fps: f64,
    /// Encoded video sent, in kilobits per second (without FEC and headers).
    pub bitrate_kbps: f64,
    /// The FEC percentage at the end of the second.
    pub fec_percent: u8,
    /// Video packets the client reported missing, in percent of those sent in the second.
    pub loss_percent: f64,
    /// Host latency of the newest frame, render to last packet sent, in milliseconds.
    pub host_latency_ms: f64,
}

/// The reply to `GET /api/sessions/{id}/stats`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionStats {
    /// The session.
    pub id: u64,
    /// The last five minutes, one sample a second, oldest first.
    pub samples: Vec<StatsSample>,
}

/// A Moonlight client waiting for its PIN.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingPairing {
    /// The `uniqueid` it sent.
    pub uniqueid: String,
    /// Its address.
    pub address: String,
    /// How long it has waited, in seconds.
    pub waiting_s: u64,
}

/// An app of the catalog, as `GET /api/apps` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppEntry {
    /// The id clients launch it by; `/api/apps/{id}` routes take it.
    pub id: i32,
    /// The title clients show.
    pub name: String,
    /// The program and its arguments.
    pub cmd: Vec<String>,
    /// Extra environment.
    pub env: Vec<crate::config_edit::EnvVar>,
    /// The directory it starts in; empty for the host's.
    pub working_dir: String,
    /// Commands run before it starts and after it ended.
    pub prep: Vec<crate::config_edit::PrepFields>,
    /// Whether it has box art of its own (else punktfunk's).
    pub has_image: bool,
    /// Whether it is where it is by other means than `[[apps]]`: the base app, or the
    /// built-in test pattern of a host without apps. Those cannot be edited here.
    pub fixed: bool,
}

/// The reply to a change of the app catalog.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppSaved {
    /// The app's id after the change (ids follow names); `None` after a delete.
    pub id: Option<i32>,
    /// Its name.
    pub name: String,
}

/// A config key, as the console's Settings page shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Setting {
    /// `table.name`, as in the config file.
    pub key: String,
    /// What it does, from `assets/config.toml`.
    pub doc: String,
    /// Its default; `None` where it is worked out at start (the doc says how).
    pub default: Option<serde_json::Value>,
    /// What the config file sets it to; `None` when the file leaves it to the default.
    pub value: Option<serde_json::Value>,
    /// `boolean`, `integer` or `string`.
    pub kind: crate::settings::Kind,
    /// The values it allows, where it allows only some.
    pub choices: Vec<String>,
    /// `next-session`: a change applies to sessions started after it; `restart`: at the
    /// host's next start.
    pub applies: String,
}

/// `PUT /api/settings/{key}`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SettingRequest {
    /// The new value, of the key's kind.
    pub value: serde_json::Value,
}
