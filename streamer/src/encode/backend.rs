//! Which encoder runs a stream: NVENC, VAAPI or the CPU encoders, chosen at runtime.
//!
//! All three are built everywhere (they are FFmpeg encoders, loaded by name); what a machine can
//! run is only known by trying. [`select`] is the policy, a pure function over probe results:
//! `auto` tries NVENC, then VAAPI, then settles on software; a forced `nvenc` or `vaapi` that
//! does not work falls back to software too, with a warning, so a stream never fails for want
//! of a GPU. [`probe`] is the check behind it: the encoder must be in the FFmpeg build *and* a
//! small one must open and encode a frame. Probes are cached per backend, codec and device,
//! since opening NVENC can take a second.
//!
//! How a picture reaches the encoder is `video.rs`'s business: from CPU memory, or where the
//! compositor renders on a GPU, converted there and handed over on the GPU (CUDA for NVENC, the
//! buffer imported as a VA surface for VAAPI, on the compositor's render node:
//! [`for_frames_on`]).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ffmpeg::encoder;
use ffmpeg_next as ffmpeg;
use tracing::{info, warn};

use super::color::Nv12Frame;
use super::video::{init_ffmpeg, Codec, EncoderOptions, VideoEncoder};

/// Where render nodes live; VAAPI opens the first one unless a device is configured.
const DRI_DIR: &str = "/dev/dri";

/// The encoder family the configuration asks for (`[video] encoder`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EncoderPreference {
    /// NVENC, else VAAPI, else software.
    #[default]
    Auto,
    /// NVENC, else software (with a warning).
    Nvenc,
    /// VAAPI, else software (with a warning).
    Vaapi,
    /// The CPU encoders only.
    Software,
}

impl EncoderPreference {
    /// Every preference, in the order the configuration documents them.
    pub const ALL: [EncoderPreference; 4] = [
        EncoderPreference::Auto,
        EncoderPreference::Nvenc,
        EncoderPreference::Vaapi,
        EncoderPreference::Software,
    ];

    /// The configuration's spelling.
    pub fn name(self) -> &'static str {
        match self {
            EncoderPreference::Auto => "auto",
            EncoderPreference::Nvenc => "nvenc",
            EncoderPreference::Vaapi => "vaapi",
            EncoderPreference::Software => "software",
        }
    }

    /// Parses the configuration's spelling; `None` for anything else.
    pub fn from_name(name: &str) -> Option<EncoderPreference> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The hardware backends to try, in order, before software.
    fn candidates(self) -> &'static [Backend] {
        match self {
            EncoderPreference::Auto => &[Backend::Nvenc, Backend::Vaapi],
            EncoderPreference::Nvenc => &[Backend::Nvenc],
            EncoderPreference::Vaapi => &[Backend::Vaapi],
            EncoderPreference::Software => &[],
        }
    }
}

/// The encoder family that runs a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    /// NVIDIA's encoder through FFmpeg's `*_nvenc`.
    Nvenc,
    /// VA-API (Intel, AMD) through FFmpeg's `*_vaapi`.
    Vaapi,
    /// libx264, libx265 or libaom on the CPU.
    #[default]
    Software,
}

impl Backend {
    /// Lowercase name, as in the configuration and the management API.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Nvenc => "nvenc",
            Backend::Vaapi => "vaapi",
            Backend::Software => "software",
        }
    }

    /// The libavcodec encoder this backend uses for `codec`.
    pub fn encoder_name(self, codec: Codec) -> &'static str {
        match (self, codec) {
            (Backend::Nvenc, Codec::H264) => "h264_nvenc",
            (Backend::Nvenc, Codec::Hevc) => "hevc_nvenc",
            (Backend::Nvenc, Codec::Av1) => "av1_nvenc",
            (Backend::Vaapi, Codec::H264) => "h264_vaapi",
            (Backend::Vaapi, Codec::Hevc) => "hevc_vaapi",
            (Backend::Vaapi, Codec::Av1) => "av1_vaapi",
            (Backend::Software, codec) => codec.encoder_name(),
        }
    }

    /// Name for log lines.
    fn label(self) -> &'static str {
        match self {
            Backend::Nvenc => "NVENC",
            Backend::Vaapi => "VAAPI",
            Backend::Software => "the software encoder",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The host's encoder settings: what to prefer and which VAAPI device to use.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct HardwareOptions {
    /// `[video] encoder`.
    pub preference: EncoderPreference,
    /// `[video] vaapi_device`; `None` means the render node the compositor renders on where
    /// VAAPI encodes there ([`for_frames_on`]), else the first render node in `/dev/dri`.
    pub vaapi_device: Option<PathBuf>,
}

/// A backend that was tried and not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The backend.
    pub backend: Backend,
    /// Why, as FFmpeg or the probe put it.
    pub reason: String,
    /// What was tried next.
    pub next: Backend,
}

/// The outcome of [`select`]: the backend to open and the ones skipped on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The preference it was made for.
    pub preference: EncoderPreference,
    /// The backend to use.
    pub backend: Backend,
    /// Every backend tried before it, in order.
    pub skipped: Vec<Skipped>,
}

impl Selection {
    /// The backend a stream of `codec` runs on, this selection being `codec`'s: `None` where it
    /// is the software encoder and that is not in the FFmpeg build.
    pub fn encodes(&self, codec: Codec) -> Option<Backend> {
        match self.backend {
            Backend::Software => codec.is_available().then_some(Backend::Software),
            hardware => Some(hardware),
        }
    }

    /// One log line per skipped backend. A skip is only a warning when the backend was asked
    /// for by name; under `auto` it is how a machine without that hardware normally looks.
    pub fn messages(&self) -> Vec<String> {
        let forced = self.preference != EncoderPreference::Auto;
        self.skipped
            .iter()
            .map(|s| {
                let next = match s.next {
                    Backend::Software => "using the software encoder".to_string(),
                    other => format!("trying {}", other.label()),
                };
                if forced {
                    format!(
                        "encoder = \"{}\" is configured, but {} is unavailable: {}; {next}",
                        self.preference.name(),
                        s.backend.label(),
                        s.reason
                    )
                } else {
                    format!("{} unavailable: {}; {next}", s.backend.label(), s.reason)
                }
            })
            .collect()
    }

    /// Writes [`Selection::messages`] to the log.
    pub fn log(&self) {
        let forced = self.preference != EncoderPreference::Auto;
        for line in self.messages() {
            if forced {
                warn!("{line}");
            } else {
                info!("{line}");
            }
        }
    }
}

/// Chooses a backend for `preference`, calling `probe` for each hardware backend in order
/// until one works. Software needs no probe and always ends the list.
pub fn select(
    preference: EncoderPreference,
    mut probe: impl FnMut(Backend) -> Result<(), String>,
) -> Selection {
    let candidates = preference.candidates();
    let mut skipped = Vec::new();
    for (i, &backend) in candidates.iter().enumerate() {
        match probe(backend) {
            Ok(()) => {
                return Selection {
                    preference,
                    backend,
                    skipped,
                }
            }
            Err(reason) => skipped.push(Skipped {
                backend,
                reason,
                next: candidates.get(i + 1).copied().unwrap_or(Backend::Software),
            }),
        }
    }
    Selection {
        preference,
        backend: Backend::Software,
        skipped,
    }
}

/// The host's settings `hw` for a stream whose frames the compositor renders on the render node
/// `frames_on`: without a configured VAAPI device, VAAPI runs on that node where `probe` says it
/// works there, so that it takes the frames as they lie (a machine with two GPUs may list the
/// other one first). Unchanged otherwise.
pub fn for_frames_on(
    hw: &HardwareOptions,
    frames_on: Option<&Path>,
    probe: impl FnOnce(&Path) -> Result<(), String>,
) -> HardwareOptions {
    let tries_vaapi = hw.preference.candidates().contains(&Backend::Vaapi);
    let (None, Some(node), true) = (&hw.vaapi_device, frames_on, tries_vaapi) else {
        return hw.clone();
    };
    match probe(node) {
        Ok(()) => {
            info!(node = %node.display(), "VAAPI runs on the compositor's render node");
            HardwareOptions {
                vaapi_device: Some(node.to_path_buf()),
                ..hw.clone()
            }
        }
        Err(reason) => {
            info!(node = %node.display(), %reason, "VAAPI does not encode on the compositor's render node; it runs on the first render node");
            hw.clone()
        }
    }
}

/// [`select`] with the real, cached [`probe`] for `codec`.
pub fn select_for(codec: Codec, hw: &HardwareOptions) -> Selection {
    select_for_stream(codec, hw, None).0
}

/// [`select_for`] for a stream whose frames the compositor renders on `frames_on`: VAAPI, when
/// its turn comes, is tried on that node first ([`for_frames_on`]). Also gives the settings the
/// chosen backend runs with (its VAAPI device).
pub fn select_for_stream(
    codec: Codec,
    hw: &HardwareOptions,
    frames_on: Option<&Path>,
) -> (Selection, HardwareOptions) {
    select_on(hw, frames_on, |backend, device| {
        probe_cached(backend, codec, device)
    })
}

/// [`select_for_stream`] over `probe` (a backend, and for VAAPI the device; `None` is the
/// default one).
fn select_on(
    hw: &HardwareOptions,
    frames_on: Option<&Path>,
    mut probe: impl FnMut(Backend, Option<&Path>) -> Result<(), String>,
) -> (Selection, HardwareOptions) {
    let mut chosen = hw.clone();
    let selection = select(hw.preference, |backend| {
        if backend == Backend::Vaapi {
            chosen = for_frames_on(hw, frames_on, |node| probe(Backend::Vaapi, Some(node)));
        }
        probe(backend, chosen.vaapi_device.as_deref())
    });
    (selection, chosen)
}

/// The backend a stream of `codec` would run on, or `None` when not even the software encoder
/// is in the FFmpeg build. For `/serverinfo`'s codec list; nothing is logged.
pub fn backend_for(codec: Codec, hw: &HardwareOptions) -> Option<Backend> {
    select_for(codec, hw).encodes(codec)
}

/// Whether `backend` can encode `codec` on this machine: the encoder is in the FFmpeg build and
/// a 640x360 one opens and encodes a frame. `Err` says why not. Software is checked for being in
/// the build only.
pub fn probe(backend: Backend, codec: Codec, vaapi_device: Option<&Path>) -> Result<(), String> {
    init_ffmpeg();
    let name = backend.encoder_name(codec);
    if encoder::find_by_name(name).is_none() {
        return Err(format!("FFmpeg was built without {name}"));
    }
    if backend == Backend::Software {
        return Ok(());
    }
    let device = match backend {
        Backend::Vaapi => Some(vaapi_device_path(vaapi_device)?),
        _ => {
            nvidia_driver()?;
            None
        }
    };
    let (w, h) = (640, 360);
    let options = EncoderOptions {
        codec,
        backend,
        vaapi_device: device,
        ..EncoderOptions::new(w, h, 60, 2_000)
    };
    let mut enc = VideoEncoder::new(options).map_err(|e| format!("{e:#}"))?;
    let frame = Nv12Frame::new(w, h).map_err(|e| format!("{e:#}"))?;
    match enc.encode(&frame, true) {
        Ok(Some(au)) if au.is_idr && !au.data.is_empty() => Ok(()),
        Ok(Some(_)) => Err(format!("{name} did not answer an IDR request with an IDR")),
        Ok(None) => Err(format!("{name} held its first frame back")),
        Err(e) => Err(format!("{e:#}")),
    }
}

/// [`probe`], run once per backend, codec and device for the life of the process.
pub fn probe_cached(
    backend: Backend,
    codec: Codec,
    vaapi_device: Option<&Path>,
) -> Result<(), String> {
    type Key = (Backend, Codec, Option<PathBuf>);
    static CACHE: Mutex<Option<HashMap<Key, Result<(), String>>>> = Mutex::new(None);
    // One entry per device, however it was named (the default, a path, a link to it).
    let device = match backend {
        Backend::Vaapi => vaapi_device_path(vaapi_device)
            .ok()
            .map(|p| p.canonicalize().unwrap_or(p)),
        _ => None,
    };
    let key = (
        backend,
        codec,
        device.or_else(|| vaapi_device.map(Path::to_path_buf)),
    );
    // Held while probing, so that two streams starting at once probe only once.
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .get_or_insert_with(HashMap::new)
        .entry(key)
        .or_insert_with(|| probe(backend, codec, vaapi_device))
        .clone()
}

/// The libraries FFmpeg's NVENC wrapper loads at open time. Checking them first turns its
/// bare "Operation not permitted" on a machine without the NVIDIA driver into a reason that
/// says so.
fn nvidia_driver() -> Result<(), String> {
    for lib in [c"libcuda.so.1", c"libnvidia-encode.so.1"] {
        // SAFETY: dlopen with a valid C string; the handle is closed again right away (FFmpeg
        // opens the library itself when the encoder opens).
        let handle = unsafe { libc::dlopen(lib.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(format!(
                "{} cannot be loaded (no NVIDIA driver)",
                lib.to_string_lossy()
            ));
        }
        // SAFETY: a handle dlopen returned, closed once.
        unsafe { libc::dlclose(handle) };
    }
    Ok(())
}

/// The VAAPI device to open: the configured one, else the first render node.
pub(crate) fn vaapi_device_path(configured: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = configured {
        return if path.exists() {
            Ok(path.to_path_buf())
        } else {
            Err(format!("{} does not exist", path.display()))
        };
    }
    let entries = std::fs::read_dir(DRI_DIR).map_err(|e| format!("no {DRI_DIR}: {e}"))?;
    let mut nodes: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("renderD"))
        })
        .collect();
    nodes.sort();
    nodes
        .into_iter()
        .next()
        .ok_or_else(|| format!("no render node in {DRI_DIR}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A probe that answers from a table and records what was asked.
    fn fake<'a>(
        nvenc: Result<(), &'static str>,
        vaapi: Result<(), &'static str>,
        asked: &'a mut Vec<Backend>,
    ) -> impl FnMut(Backend) -> Result<(), String> + 'a {
        move |b| {
            asked.push(b);
            match b {
                Backend::Nvenc => nvenc.map_err(str::to_string),
                Backend::Vaapi => vaapi.map_err(str::to_string),
                Backend::Software => Ok(()),
            }
        }
    }

    #[test]
    fn auto_takes_nvenc_first_and_probes_nothing_else() {
        let mut asked = Vec::new();
        let s = select(EncoderPreference::Auto, fake(Ok(()), Ok(()), &mut asked));
        assert_eq!(s.backend, Backend::Nvenc);
        assert!(s.skipped.is_empty() && s.messages().is_empty());
        assert_eq!(asked, [Backend::Nvenc]);
    }

    #[test]
    fn auto_without_nvidia_takes_vaapi_and_says_why() {
        let mut asked = Vec::new();
        let s = select(
            EncoderPreference::Auto,
            fake(Err("Cannot load libcuda.so.1"), Ok(()), &mut asked),
        );
        assert_eq!(s.backend, Backend::Vaapi);
        assert_eq!(asked, [Backend::Nvenc, Backend::Vaapi]);
        assert_eq!(
            s.messages(),
            ["NVENC unavailable: Cannot load libcuda.so.1; trying VAAPI"]
        );
    }

    #[test]
    fn auto_without_any_gpu_ends_on_software_with_one_line_per_skip() {
        let mut asked = Vec::new();
        let s = select(
            EncoderPreference::Auto,
            fake(
                Err("no driver"),
                Err("no render node in /dev/dri"),
                &mut asked,
            ),
        );
        assert_eq!(s.backend, Backend::Software);
        assert_eq!(
            s.messages(),
            [
                "NVENC unavailable: no driver; trying VAAPI",
                "VAAPI unavailable: no render node in /dev/dri; using the software encoder",
            ]
        );
    }

    #[test]
    fn a_forced_backend_that_fails_falls_back_to_software_not_to_the_other_gpu() {
        let mut asked = Vec::new();
        let s = select(
            EncoderPreference::Nvenc,
            fake(Err("no driver"), Ok(()), &mut asked),
        );
        assert_eq!(s.backend, Backend::Software);
        assert_eq!(asked, [Backend::Nvenc]);
        assert_eq!(
            s.messages(),
            ["encoder = \"nvenc\" is configured, but NVENC is unavailable: no driver; using the software encoder"]
        );
        let mut asked = Vec::new();
        let s = select(EncoderPreference::Vaapi, fake(Ok(()), Ok(()), &mut asked));
        assert_eq!((s.backend, asked), (Backend::Vaapi, vec![Backend::Vaapi]));
    }

    #[test]
    fn software_probes_nothing() {
        let mut asked = Vec::new();
        let s = select(
            EncoderPreference::Software,
            fake(Ok(()), Ok(()), &mut asked),
        );
        assert_eq!(s.backend, Backend::Software);
        assert!(asked.is_empty() && s.skipped.is_empty());
    }

    #[test]
    fn vaapi_runs_on_the_compositors_render_node_where_it_works_there() {
        let node = Path::new("/dev/dri/renderD129");
        let auto = HardwareOptions::default();
        let mut asked = Vec::new();
        let hw = for_frames_on(&auto, Some(node), |n| {
            asked.push(n.to_path_buf());
            Ok(())
        });
        assert_eq!(hw.vaapi_device.as_deref(), Some(node));
        assert_eq!(asked, [node]);
        // Where it does not, VAAPI keeps the first render node.
        let hw = for_frames_on(&auto, Some(node), |_| Err("no VA driver".into()));
        assert_eq!(hw, auto);
        // A configured device, a CPU renderer, or a preference without VAAPI: no probe.
        let configured = HardwareOptions {
            vaapi_device: Some("/dev/dri/renderD128".into()),
            ..auto.clone()
        };
        let nvenc = HardwareOptions {
            preference: EncoderPreference::Nvenc,
            ..auto.clone()
        };
        let unasked = |_: &Path| -> Result<(), String> { panic!("probed") };
        assert_eq!(for_frames_on(&configured, Some(node), unasked), configured);
        assert_eq!(for_frames_on(&auto, None, unasked), auto);
        assert_eq!(for_frames_on(&nvenc, Some(node), unasked), nvenc);
        let vaapi = HardwareOptions {
            preference: EncoderPreference::Vaapi,
            ..auto.clone()
        };
        let hw = for_frames_on(&vaapi, Some(node), |_| Ok(()));
        assert_eq!(hw.vaapi_device.as_deref(), Some(node));
    }

    #[test]
    fn a_stream_probes_vaapi_on_its_node_only_when_vaapi_is_tried() {
        let node = Path::new("/dev/dri/renderD129");
        let auto = HardwareOptions::default();
        // NVENC works: VAAPI is not probed at all.
        let mut asked = Vec::new();
        let (s, hw) = select_on(&auto, Some(node), |b, d| {
            asked.push((b, d.map(Path::to_path_buf)));
            Ok(())
        });
        assert_eq!((s.backend, hw), (Backend::Nvenc, auto.clone()));
        assert_eq!(asked, [(Backend::Nvenc, None)]);
        // No NVENC: VAAPI on the node first, where it works.
        let mut asked = Vec::new();
        let (s, hw) = select_on(&auto, Some(node), |b, d| {
            asked.push((b, d.map(Path::to_path_buf)));
            match b {
                Backend::Nvenc => Err("no driver".into()),
                _ => Ok(()),
            }
        });
        assert_eq!(s.backend, Backend::Vaapi);
        assert_eq!(hw.vaapi_device.as_deref(), Some(node));
        assert_eq!(
            asked.last(),
            Some(&(Backend::Vaapi, Some(node.to_path_buf())))
        );
        // Not there: the default device, as before.
        let (s, hw) = select_on(&auto, Some(node), |b, d| match (b, d) {
            (Backend::Vaapi, None) => Ok(()),
            _ => Err("no".into()),
        });
        assert_eq!((s.backend, hw), (Backend::Vaapi, auto));
    }

    #[test]
    fn preference_names_round_trip() {
        for p in EncoderPreference::ALL {
            assert_eq!(EncoderPreference::from_name(p.name()), Some(p));
        }
        assert_eq!(EncoderPreference::from_name("NVENC"), None);
        assert_eq!(EncoderPreference::from_name("cuda"), None);
    }

    #[test]
    fn encoder_names_per_backend() {
        assert_eq!(Backend::Nvenc.encoder_name(Codec::Hevc), "hevc_nvenc");
        assert_eq!(Backend::Vaapi.encoder_name(Codec::H264), "h264_vaapi");
        assert_eq!(Backend::Software.encoder_name(Codec::H264), "libx264");
    }

    #[test]
    fn a_missing_vaapi_device_is_a_reason_not_a_panic() {
        let err = vaapi_device_path(Some(Path::new("/nonexistent/renderD128"))).unwrap_err();
        assert!(err.contains("/nonexistent/renderD128"), "{err}");
        let err = probe(
            Backend::Vaapi,
            Codec::H264,
            Some(Path::new("/nonexistent/renderD128")),
        )
        .unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
    }
}
