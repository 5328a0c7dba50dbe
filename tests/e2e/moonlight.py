"""Reference GameStream client: moonlight-common-c driven through cffi (ABI mode).

The library comes prebuilt inside the test-only pip package ``moonlight-python``; this module
only dlopens its ``libmoonlight-common-c.so`` and binds the exported ``Li*`` functions that the
end-to-end tests need. Declarations follow moonlight-common-c's ``src/Limelight.h``.

moonlight-common-c keeps its connection state in globals, so only one ``Stream`` may be
connected per process at a time.
"""

from __future__ import annotations

import collections
import glob
import os
import queue
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cffi
import numpy as np

CDEF = r"""
typedef struct _STREAM_CONFIGURATION {
    int width;
    int height;
    int fps;
    int bitrate;
    int packetSize;
    int streamingRemotely;
    int audioConfiguration;
    int supportedVideoFormats;
    int clientRefreshRateX100;
    int colorSpace;
    int colorRange;
    int encryptionFlags;
    char remoteInputAesKey[16];
    char remoteInputAesIv[16];
} STREAM_CONFIGURATION;

typedef struct _LENTRY {
    struct _LENTRY* next;
    char* data;
    int length;
    int bufferType;
} LENTRY;

typedef struct _DECODE_UNIT {
    int frameNumber;
    int frameType;
    uint16_t frameHostProcessingLatency;
    uint64_t receiveTimeUs;
    uint64_t enqueueTimeUs;
    uint64_t presentationTimeUs;
    uint32_t rtpTimestamp;
    int fullLength;
    LENTRY* bufferList;
    bool hdrActive;
    uint8_t colorspace;
} DECODE_UNIT;

typedef int (*DecoderRendererSetup)(int videoFormat, int width, int height, int redrawRate,
                                    void* context, int drFlags);
typedef struct _DECODER_RENDERER_CALLBACKS {
    DecoderRendererSetup setup;
    void* start;
    void* stop;
    void* cleanup;
    void* submitDecodeUnit;
    int capabilities;
} DECODER_RENDERER_CALLBACKS;

typedef struct _OPUS_MULTISTREAM_CONFIGURATION {
    int sampleRate;
    int channelCount;
    int streams;
    int coupledStreams;
    int samplesPerFrame;
    unsigned char mapping[8];
} OPUS_MULTISTREAM_CONFIGURATION;

typedef struct _AUDIO_RENDERER_CALLBACKS {
    int (*init)(int audioConfiguration, const OPUS_MULTISTREAM_CONFIGURATION* opusConfig,
                void* context, int arFlags);
    void (*start)(void);
    void (*stop)(void);
    void (*cleanup)(void);
    void (*decodeAndPlaySample)(char* sampleData, int sampleLength);
    int capabilities;
} AUDIO_RENDERER_CALLBACKS;

typedef struct _CONNECTION_LISTENER_CALLBACKS {
    void (*stageStarting)(int stage);
    void (*stageComplete)(int stage);
    void (*stageFailed)(int stage, int errorCode);
    void (*connectionStarted)(void);
    void (*connectionTerminated)(int errorCode);
    void* logMessage;
    void (*rumble)(unsigned short controllerNumber, unsigned short lowFreqMotor,
                   unsigned short highFreqMotor);
    void (*connectionStatusUpdate)(int connectionStatus);
    void* setHdrMode;
    void (*rumbleTriggers)(uint16_t controllerNumber, uint16_t leftTriggerMotor,
                           uint16_t rightTriggerMotor);
    void (*setMotionEventState)(uint16_t controllerNumber, uint8_t motionType,
                                uint16_t reportRateHz);
    void (*setControllerLED)(uint16_t controllerNumber, uint8_t r, uint8_t g, uint8_t b);
    void* setAdaptiveTriggers;
} CONNECTION_LISTENER_CALLBACKS;

typedef struct _SERVER_INFORMATION {
    const char* address;
    const char* serverInfoAppVersion;
    const char* serverInfoGfeVersion;
    const char* rtspSessionUrl;
    int serverCodecModeSupport;
} SERVER_INFORMATION;

const char* LiGetLaunchUrlQueryParameters(void);
void LiInitializeStreamConfiguration(STREAM_CONFIGURATION* streamConfig);
void LiInitializeVideoCallbacks(DECODER_RENDERER_CALLBACKS* drCallbacks);
void LiInitializeAudioCallbacks(AUDIO_RENDERER_CALLBACKS* arCallbacks);
void LiInitializeConnectionCallbacks(CONNECTION_LISTENER_CALLBACKS* clCallbacks);
void LiInitializeServerInformation(SERVER_INFORMATION* serverInfo);
int LiStartConnection(SERVER_INFORMATION* serverInfo, STREAM_CONFIGURATION* streamConfig,
    CONNECTION_LISTENER_CALLBACKS* clCallbacks, DECODER_RENDERER_CALLBACKS* drCallbacks,
    AUDIO_RENDERER_CALLBACKS* arCallbacks, void* renderContext, int drFlags,
    void* audioContext, int arFlags);
void LiStopConnection(void);
void LiInterruptConnection(void);
const char* LiGetStageName(int stage);
uint32_t LiGetHostFeatureFlags(void);

typedef void* VIDEO_FRAME_HANDLE;
bool LiWaitForNextVideoFrame(VIDEO_FRAME_HANDLE* frameHandle, DECODE_UNIT** decodeUnit);
bool LiPollNextVideoFrame(VIDEO_FRAME_HANDLE* frameHandle, DECODE_UNIT** decodeUnit);
void LiWakeWaitForVideoFrame(void);
void LiCompleteVideoFrame(VIDEO_FRAME_HANDLE handle, int drStatus);
void LiRequestIdrFrame(void);

int LiSendKeyboardEvent(short keyCode, char keyAction, char modifiers);
int LiSendKeyboardEvent2(short keyCode, char keyAction, char modifiers, char flags);
int LiSendUtf8TextEvent(const char* text, unsigned int length);
int LiSendMouseMoveEvent(short deltaX, short deltaY);
int LiSendMousePositionEvent(short x, short y, short referenceWidth, short referenceHeight);
int LiSendMouseButtonEvent(char action, int button);
int LiSendScrollEvent(signed char scrollClicks);
int LiSendHighResScrollEvent(short scrollAmount);
int LiSendHScrollEvent(signed char scrollClicks);
int LiSendHighResHScrollEvent(short scrollAmount);
int LiSendMultiControllerEvent(short controllerNumber, short activeGamepadMask,
    int buttonFlags, unsigned char leftTrigger, unsigned char rightTrigger,
    short leftStickX, short leftStickY, short rightStickX, short rightStickY);
int LiSendControllerArrivalEvent(uint8_t controllerNumber, uint16_t activeGamepadMask,
    uint8_t type, uint32_t supportedButtonFlags, uint16_t capabilities);

/* Library globals (exported data symbols). */
extern int NegotiatedVideoFormat;

/* Reed-Solomon FEC (portable implementation). Only creation is bound here; the encode and
   decode entry points are checked for presence (see RS_SYMBOLS) and bound by the benchmarks. */
void reed_solomon_init(void);
void* reed_solomon_new_def(int data_shards, int parity_shards);
void reed_solomon_release_def(void* rs);
"""

# Every function bound above; the self-check makes sure the .so exports each of them.
BOUND_FUNCTIONS = [
    "LiGetLaunchUrlQueryParameters", "LiInitializeStreamConfiguration",
    "LiInitializeVideoCallbacks", "LiInitializeAudioCallbacks",
    "LiInitializeConnectionCallbacks", "LiInitializeServerInformation", "LiStartConnection",
    "LiStopConnection", "LiInterruptConnection", "LiGetStageName", "LiGetHostFeatureFlags",
    "LiWaitForNextVideoFrame", "LiPollNextVideoFrame", "LiWakeWaitForVideoFrame",
    "LiCompleteVideoFrame", "LiRequestIdrFrame", "LiSendKeyboardEvent", "LiSendKeyboardEvent2",
    "LiSendUtf8TextEvent", "LiSendMouseMoveEvent", "LiSendMousePositionEvent",
    "LiSendMouseButtonEvent", "LiSendScrollEvent", "LiSendHighResScrollEvent",
    "LiSendHScrollEvent", "LiSendHighResHScrollEvent", "LiSendMultiControllerEvent",
    "LiSendControllerArrivalEvent",
    "reed_solomon_init", "reed_solomon_new_def", "reed_solomon_release_def",
]
RS_SYMBOLS = ["reed_solomon_init", "reed_solomon_new_def", "reed_solomon_release_def",
              "reed_solomon_encode_def", "reed_solomon_decode_def"]
BOUND_VARIABLES = ["NegotiatedVideoFormat"]

# Limelight.h constants
STREAM_CFG_LOCAL = 0
ENCFLG_NONE = 0x00000000
ENCFLG_AUDIO = 0x00000001
ENCFLG_VIDEO = 0x00000002
ENCFLG_ALL = 0xFFFFFFFF
VIDEO_FORMAT_H264 = 0x0001
VIDEO_FORMAT_H265 = 0x0100
VIDEO_FORMAT_AV1_MAIN8 = 0x1000
VIDEO_FORMAT_H265_MAIN10 = 0x0200
VIDEO_FORMAT_AV1_MAIN10 = 0x2000
CAPABILITY_DIRECT_SUBMIT = 0x01
CAPABILITY_PULL_RENDERER = 0x20
CAPABILITY_SLOW_OPUS_DECODER = 0x08  # audio renderer: 10 ms packets, never high quality


def make_audio_configuration(channels: int, mask: int) -> int:
    """MAKE_AUDIO_CONFIGURATION: what STREAM_CONFIGURATION.audioConfiguration holds."""
    return (mask << 16) | (channels << 8) | 0xCA


def surround_audio_info(audio_configuration: int) -> int:
    """SURROUNDAUDIOINFO_FROM_AUDIO_CONFIGURATION: the /launch `surroundAudioInfo` value."""
    return ((audio_configuration >> 16) << 16) | ((audio_configuration >> 8) & 0xFF)


AUDIO_CONFIGURATION_STEREO = make_audio_configuration(2, 0x3)
AUDIO_CONFIGURATION_51 = make_audio_configuration(6, 0x3F)
AUDIO_CONFIGURATION_71 = make_audio_configuration(8, 0x63F)
DR_OK = 0
DR_NEED_IDR = -1
FRAME_TYPE_PFRAME = 0
FRAME_TYPE_IDR = 1
KEY_ACTION_DOWN = 0x03
KEY_ACTION_UP = 0x04
MODIFIER_SHIFT = 0x01
MODIFIER_CTRL = 0x02
MODIFIER_ALT = 0x04
MODIFIER_META = 0x08
BUTTON_ACTION_PRESS = 0x07
BUTTON_ACTION_RELEASE = 0x08
BUTTON_LEFT, BUTTON_MIDDLE, BUTTON_RIGHT, BUTTON_X1, BUTTON_X2 = 1, 2, 3, 4, 5

# Gamepad button flags (buttonFlags of LiSendMultiControllerEvent; the high 16 bits are
# Sunshine's extended buttons).
UP_FLAG, DOWN_FLAG, LEFT_FLAG, RIGHT_FLAG = 0x0001, 0x0002, 0x0004, 0x0008
PLAY_FLAG, BACK_FLAG, LS_CLK_FLAG, RS_CLK_FLAG = 0x0010, 0x0020, 0x0040, 0x0080
LB_FLAG, RB_FLAG, SPECIAL_FLAG = 0x0100, 0x0200, 0x0400
A_FLAG, B_FLAG, X_FLAG, Y_FLAG = 0x1000, 0x2000, 0x4000, 0x8000
PADDLE1_FLAG, PADDLE2_FLAG, PADDLE3_FLAG, PADDLE4_FLAG = 0x010000, 0x020000, 0x040000, 0x080000
TOUCHPAD_FLAG, MISC_FLAG = 0x100000, 0x200000
# Controller types and capabilities of LiSendControllerArrivalEvent.
LI_CTYPE_UNKNOWN, LI_CTYPE_XBOX, LI_CTYPE_PS, LI_CTYPE_NINTENDO = 0x00, 0x01, 0x02, 0x03
LI_CCAP_ANALOG_TRIGGERS, LI_CCAP_RUMBLE, LI_CCAP_TRIGGER_RUMBLE = 0x01, 0x02, 0x04
LI_CCAP_TOUCHPAD, LI_CCAP_ACCEL, LI_CCAP_GYRO = 0x08, 0x10, 0x20
LI_CCAP_BATTERY_STATE, LI_CCAP_RGB_LED = 0x40, 0x80

# Windows virtual-key codes (what Moonlight clients send, interpreted on a US layout).
VK_BACK, VK_TAB, VK_RETURN, VK_SPACE = 0x08, 0x09, 0x0D, 0x20
VK_LSHIFT, VK_LCONTROL, VK_LMENU = 0xA0, 0xA2, 0xA4
VK_OEM_MINUS, VK_OEM_PERIOD, VK_OEM_2 = 0xBD, 0xBE, 0xBF  # '-', '.', '/'

# Characters that the tests type, as (VK code, needs shift).
_CHAR_TO_VK: dict[str, tuple[int, bool]] = {" ": (VK_SPACE, False), "\n": (VK_RETURN, False),
                                            "-": (VK_OEM_MINUS, False), ".": (VK_OEM_PERIOD, False),
                                            "/": (VK_OEM_2, False), "_": (VK_OEM_MINUS, True),
                                            "\t": (VK_TAB, False)}
for _c in "abcdefghijklmnopqrstuvwxyz":
    _CHAR_TO_VK[_c] = (ord(_c.upper()), False)
    _CHAR_TO_VK[_c.upper()] = (ord(_c.upper()), True)
for _c in "0123456789":
    _CHAR_TO_VK[_c] = (ord(_c), False)


def vk_for_char(ch: str) -> tuple[int, bool]:
    """(VK code, shift) for a character on a US layout; KeyError if unsupported."""
    return _CHAR_TO_VK[ch]


def library_path() -> str:
    """Path of libmoonlight-common-c.so; $PUNKTFUNK_MOONLIGHT_LIB overrides the lookup."""
    env = os.environ.get("PUNKTFUNK_MOONLIGHT_LIB")
    if env:
        return env
    import importlib.util

    spec = importlib.util.find_spec("moonlight_python")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the moonlight-python package is not installed "
                                "(pip install -r tests/e2e/requirements.txt)")
    for d in spec.submodule_search_locations:
        hits = sorted(glob.glob(os.path.join(d, "libmoonlight-common-c*.so*")))
        if hits:
            return hits[0]
    raise FileNotFoundError("libmoonlight-common-c.so not found in moonlight-python")


_ffi: cffi.FFI | None = None
_lib = None
_lib_lock = threading.Lock()


def load() -> tuple[cffi.FFI, object]:
    """(ffi, lib), loading the library once per process."""
    global _ffi, _lib
    with _lib_lock:
        if _lib is None:
            ffi = cffi.FFI()
            ffi.cdef(CDEF)
            _lib = ffi.dlopen(library_path())
            _ffi = ffi
    return _ffi, _lib


def launch_url_query_parameters() -> str:
    """What moonlight-common-c wants appended to /launch and /resume (e.g. '&corever=1')."""
    ffi, lib = load()
    p = lib.LiGetLaunchUrlQueryParameters()
    return "" if p == ffi.NULL else ffi.string(p).decode()


def remote_input_iv(rikeyid: int) -> bytes:
    """The 16-byte remote-input IV: BE32(rikeyid) followed by 12 zero bytes."""
    return struct.pack(">i", rikeyid) + bytes(12)


class StreamError(RuntimeError):
    pass


class H264Decoder:
    """Access units (Annex-B H.264/HEVC, or AV1 OBUs) in, numpy pictures out (PyAV /
    FFmpeg), one picture per unit: single-threaded and low-delay, so that nothing is held
    back for reordering."""

    # By codec family (VIDEO_FORMAT_MASK_*): every profile of a codec has the same decoder.
    CODECS = {0x000F: "h264", 0x0F00: "hevc", 0xF000: "libdav1d"}

    def __init__(self, video_format: int = VIDEO_FORMAT_H264) -> None:
        import av  # imported lazily: loading the library must not need PyAV

        self._av = av
        name = next((n for mask, n in self.CODECS.items() if video_format & mask), "h264")
        try:
            self.ctx = av.CodecContext.create(name, "r")
        except Exception:
            # PyAV builds without dav1d still decode AV1 with FFmpeg's own decoder.
            self.ctx = av.CodecContext.create("av1" if name == "libdav1d" else name, "r")
        self.ctx.thread_count = 1
        try:
            self.ctx.flags |= av.codec.context.Flags.low_delay
        except Exception:
            pass

    def decode(self, data: bytes, fmt: str | None = "rgb24") -> list:
        """Decode one access unit; pictures as (H, W, 3) uint8 arrays for fmt="rgb24",
        (H, W) for "gray", or the raw av.VideoFrame objects for fmt=None."""
        pics = self.ctx.decode(self._av.Packet(data))
        if fmt is None:
            return list(pics)
        return [p.to_ndarray(format=fmt) for p in pics]


@dataclass
class StreamParams:
    """Everything LiStartConnection needs; the host part comes from serverinfo and /launch."""

    rtsp_session_url: str
    app_version: str
    gfe_version: str
    server_codec_mode_support: int
    rikey: bytes
    rikeyid: int
    width: int = 1280
    height: int = 720
    fps: int = 60
    bitrate_kbps: int = 10000
    packet_size: int = 1392
    encryption_flags: int = ENCFLG_ALL
    supported_video_formats: int = VIDEO_FORMAT_H264
    audio_configuration: int = AUDIO_CONFIGURATION_STEREO
    audio_capabilities: int = 0  # CAPABILITY_* of the audio renderer, besides direct submit
    address: str = "127.0.0.1"


@dataclass
class Frame:
    """One decoded picture: RGB pixels plus the decode unit's metadata."""

    number: int  # moonlight-common-c's frame number of the decode unit
    frame_type: int
    rgb: np.ndarray  # (H, W, 3) uint8
    receive_time_us: int = 0

    @property
    def height(self) -> int:
        return self.rgb.shape[0]

    @property
    def width(self) -> int:
        return self.rgb.shape[1]


@dataclass
class _Unit:
    number: int
    frame_type: int
    data: bytes
    receive_time_us: int
    # CLOCK_MONOTONIC ns when the library handed the unit to the pull loop (for benchmarks),
    # and the host's processing latency the frame header carried (units of 0.1 ms, 0 if none).
    handed_ns: int = 0
    host_latency: int = 0
    enqueue_time_us: int = 0  # the library's clock (microseconds) when the frame was complete


@dataclass
class StreamStats:
    stages_completed: list = field(default_factory=list)
    failed_stage: str | None = None
    failed_error: int = 0
    terminated: bool = False
    termination_error: int | None = None
    audio_packets: int = 0
    audio_lost: int = 0
    opus_channels: int = 0
    units: int = 0
    bytes: int = 0
    size_mismatches: int = 0
    decoder_setup: tuple | None = None  # (videoFormat, width, height, redrawRate)


class Stream:
    """One moonlight-common-c connection with a pull renderer and a PyAV H.264 decoder."""

    def __init__(self) -> None:
        self.ffi, self.lib = load()
        self.stats = StreamStats()
        self._keep: list = []
        self._units: "queue.Queue[_Unit | None]" = queue.Queue()
        self._connected = False
        self._stop = threading.Event()
        self._puller: threading.Thread | None = None
        self._decoder = None
        self._terminated = threading.Event()
        self.params: StreamParams | None = None
        # What the audio renderer got: the layout from init, then (receive time, Opus packet or
        # None for a lost one) per decodeAndPlaySample, the last minute of them.
        self.opus_config = None
        self.audio: "collections.deque[tuple[float, bytes | None]]" = \
            collections.deque(maxlen=12000)
        # Gamepad feedback from the host, as the library reports it, with the monotonic time it
        # arrived: (t, controller, low, high) per rumble, (t, controller, left, right) per
        # trigger rumble, (t, controller, motion type, rate Hz) per motion request and
        # (t, controller, r, g, b) per LED colour.
        self.rumbles: list[tuple] = []
        self.trigger_rumbles: list[tuple] = []
        self.motion_requests: list[tuple] = []
        self.leds: list[tuple] = []

    # ---- connection -------------------------------------------------------------------
    def start(self, params: StreamParams, timeout: float = 30.0) -> None:
        ffi, lib = self.ffi, self.lib
        self.params = params
        if len(params.rikey) != 16:
            raise ValueError("rikey must be 16 bytes")

        si = ffi.new("SERVER_INFORMATION*")
        lib.LiInitializeServerInformation(si)
        strings = [ffi.new("char[]", s.encode()) for s in
                   (params.address, params.app_version, params.gfe_version or "",
                    params.rtsp_session_url)]
        self._keep += strings
        si.address, si.serverInfoAppVersion = strings[0], strings[1]
        si.serverInfoGfeVersion = strings[2] if params.gfe_version else ffi.NULL
        si.rtspSessionUrl = strings[3]
        si.serverCodecModeSupport = params.server_codec_mode_support

        sc = ffi.new("STREAM_CONFIGURATION*")
        lib.LiInitializeStreamConfiguration(sc)
        sc.width, sc.height, sc.fps = params.width, params.height, params.fps
        sc.bitrate = params.bitrate_kbps
        sc.packetSize = params.packet_size
        sc.streamingRemotely = STREAM_CFG_LOCAL
        sc.audioConfiguration = params.audio_configuration
        sc.supportedVideoFormats = params.supported_video_formats
        # the field is a C int: reinterpret 0xFFFFFFFF as -1
        sc.encryptionFlags = struct.unpack("<i", struct.pack("<I", params.encryption_flags))[0]
        ffi.memmove(sc.remoteInputAesKey, params.rikey, 16)
        ffi.memmove(sc.remoteInputAesIv, remote_input_iv(params.rikeyid), 16)

        cl = self._connection_callbacks()
        dr = self._video_callbacks()
        ar = self._audio_callbacks()
        self._keep += [si, sc, cl, dr, ar]

        result: dict = {}

        def run() -> None:
            result["rc"] = lib.LiStartConnection(si, sc, cl, dr, ar, ffi.NULL, 0, ffi.NULL, 0)

        t = threading.Thread(target=run, name="LiStartConnection", daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            lib.LiInterruptConnection()
            t.join(20)
            raise StreamError(f"LiStartConnection did not finish within {timeout:.0f} s "
                              f"(stages completed: {self.stats.stages_completed})")
        rc = result.get("rc", -1)
        if rc != 0:
            raise StreamError(f"LiStartConnection failed: rc={rc}, failed stage="
                              f"{self.stats.failed_stage!r} error={self.stats.failed_error}, "
                              f"completed={self.stats.stages_completed}")
        self._connected = True
        self._decoder = H264Decoder(self.negotiated_video_format)
        self._puller = threading.Thread(target=self._pull_loop, name="video-pull", daemon=True)
        self._puller.start()

    def stop(self) -> None:
        """LiStopConnection (idempotent)."""
        if not self._connected:
            return
        self._stop.set()
        self.lib.LiWakeWaitForVideoFrame()
        if self._puller is not None:
            self._puller.join(5)
        self.lib.LiStopConnection()
        self._connected = False
        self._units.put(None)

    def interrupt(self) -> None:
        self.lib.LiInterruptConnection()

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def connected(self) -> bool:
        return self._connected and not self._terminated.is_set()

    @property
    def negotiated_video_format(self) -> int:
        return int(self.lib.NegotiatedVideoFormat)

    def _connection_callbacks(self):
        ffi, lib = self.ffi, self.lib
        cl = ffi.new("CONNECTION_LISTENER_CALLBACKS*")
        lib.LiInitializeConnectionCallbacks(cl)

        def stage_name(stage: int) -> str:
            p = lib.LiGetStageName(stage)
            return ffi.string(p).decode() if p != ffi.NULL else str(stage)

        @ffi.callback("void(int)")
        def stage_complete(stage):
            self.stats.stages_completed.append(stage_name(stage))

        @ffi.callback("void(int, int)")
        def stage_failed(stage, err):
            self.stats.failed_stage = stage_name(stage)
            self.stats.failed_error = err

        @ffi.callback("void(int)")
        def terminated(err):
            self.stats.terminated = True
            self.stats.termination_error = err
            self._terminated.set()
            self._units.put(None)

        @ffi.callback("void(unsigned short, unsigned short, unsigned short)")
        def rumble(controller, low, high):
            self.rumbles.append((time.monotonic(), controller, low, high))

        @ffi.callback("void(uint16_t, uint16_t, uint16_t)")
        def rumble_triggers(controller, left, right):
            self.trigger_rumbles.append((time.monotonic(), controller, left, right))

        @ffi.callback("void(uint16_t, uint8_t, uint16_t)")
        def motion_state(controller, motion_type, rate_hz):
            self.motion_requests.append((time.monotonic(), controller, motion_type, rate_hz))

        @ffi.callback("void(uint16_t, uint8_t, uint8_t, uint8_t)")
        def controller_led(controller, r, g, b):
            self.leds.append((time.monotonic(), controller, r, g, b))

        cl.stageComplete = stage_complete
        cl.stageFailed = stage_failed
        cl.connectionTerminated = terminated
        cl.rumble = rumble
        cl.rumbleTriggers = rumble_triggers
        cl.setMotionEventState = motion_state
        cl.setControllerLED = controller_led
        self._keep += [stage_complete, stage_failed, terminated, rumble, rumble_triggers,
                       motion_state, controller_led]
        return cl

    def _video_callbacks(self):
        ffi, lib = self.ffi, self.lib
        dr = ffi.new("DECODER_RENDERER_CALLBACKS*")
        lib.LiInitializeVideoCallbacks(dr)

        @ffi.callback("int(int, int, int, int, void*, int)")
        def setup(video_format, width, height, redraw_rate, context, flags):
            self.stats.decoder_setup = (video_format, width, height, redraw_rate)
            return 0

        dr.setup = setup
        dr.capabilities = CAPABILITY_PULL_RENDERER
        self._keep.append(setup)
        return dr

    def _audio_callbacks(self):
        ffi, lib = self.ffi, self.lib
        ar = ffi.new("AUDIO_RENDERER_CALLBACKS*")
        lib.LiInitializeAudioCallbacks(ar)

        @ffi.callback("int(int, const OPUS_MULTISTREAM_CONFIGURATION*, void*, int)")
        def init(audio_config, opus, context, flags):
            from opus import OpusConfig

            self.stats.opus_channels = opus.channelCount
            self.opus_config = OpusConfig(
                opus.sampleRate, opus.channelCount, opus.streams, opus.coupledStreams,
                opus.samplesPerFrame, tuple(opus.mapping[i] for i in range(opus.channelCount)))
            return 0

        @ffi.callback("void(char*, int)")
        def sample(data, length):
            if length <= 0:
                self.stats.audio_lost += 1
                self.audio.append((time.monotonic(), None))
            else:
                self.stats.audio_packets += 1
                self.audio.append((time.monotonic(), ffi.buffer(data, length)[:]))

        ar.init = init
        ar.decodeAndPlaySample = sample
        ar.capabilities = CAPABILITY_DIRECT_SUBMIT | self.params.audio_capabilities
        self._keep += [init, sample]
        return ar

    # ---- video ------------------------------------------------------------------------
    def _pull_loop(self) -> None:
        """Take decode units off the library's queue at once (so it never overflows)."""
        ffi, lib = self.ffi, self.lib
        handle = ffi.new("VIDEO_FRAME_HANDLE*")
        du_p = ffi.new("DECODE_UNIT**")
        while not self._stop.is_set():
            if not lib.LiWaitForNextVideoFrame(handle, du_p):
                if self._stop.is_set() or self._terminated.is_set():
                    break
                continue
            handed = time.monotonic_ns()
            du = du_p[0]
            chunks = []
            e = du.bufferList
            while e != ffi.NULL:
                chunks.append(ffi.buffer(e.data, e.length)[:])
                e = e.next
            data = b"".join(chunks)
            if len(data) != du.fullLength:
                self.stats.size_mismatches += 1
            self.stats.units += 1
            self.stats.bytes += len(data)
            unit = _Unit(du.frameNumber, du.frameType, data, du.receiveTimeUs, handed,
                         du.frameHostProcessingLatency, du.enqueueTimeUs)
            lib.LiCompleteVideoFrame(handle[0], DR_OK)
            self._units.put(unit)
        self._units.put(None)

    def frames(self, duration: float | None = None, timeout: float = 10.0,
               rgb: bool = True) -> Iterator[Frame]:
        """Decoded frames in order. Stops after `duration` seconds (from the first frame),
        when the connection ends, or raises StreamError if no unit arrives for `timeout` s."""
        first = None
        while True:
            try:
                unit = self._units.get(timeout=timeout)
            except queue.Empty:
                raise StreamError(f"no video for {timeout:.0f} s (units so far: "
                                  f"{self.stats.units}, terminated={self.stats.terminated}, "
                                  f"error={self.stats.termination_error})") from None
            if unit is None:
                if self.stats.terminated and self.stats.termination_error not in (0, None):
                    raise StreamError(f"connection terminated with error "
                                      f"{self.stats.termination_error}")
                return
            try:
                pictures = self._decoder.decode(unit.data, "rgb24" if rgb else "gray")
            except Exception as e:
                raise StreamError(f"H.264 decode of frame {unit.number} failed: {e}") from e
            for arr in pictures:
                yield Frame(unit.number, unit.frame_type, arr, unit.receive_time_us)
            now = time.monotonic()
            if first is None:
                first = now
            if duration is not None and now - first >= duration:
                return

    def next_unit(self, timeout: float) -> "_Unit | None":
        """The next reassembled decode unit, undecoded; None after `timeout` s without one or
        once the connection has ended."""
        try:
            unit = self._units.get(timeout=timeout)
        except queue.Empty:
            return None
        if unit is None:
            self._units.put(None)
        return unit

    def drain(self) -> int:
        """Decode (without colour conversion) every unit queued so far, so that the next
        frame from frames() is fresh. Returns how many units were skipped."""
        n = 0
        while True:
            try:
                unit = self._units.get_nowait()
            except queue.Empty:
                return n
            if unit is None:
                self._units.put(None)
                return n
            self._decoder.decode(unit.data, None)
            n += 1

    def request_idr(self) -> None:
        self.lib.LiRequestIdrFrame()

    # ---- input ------------------------------------------------------------------------
    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            raise StreamError(f"{what} returned {rc}")

    def send_key(self, vk: int, action: int, modifiers: int = 0) -> None:
        """LiSendKeyboardEvent with the 0x8000 flag that stock clients set on the VK code."""
        code = struct.unpack("<h", struct.pack("<H", 0x8000 | (vk & 0xFF)))[0]
        self._check(self.lib.LiSendKeyboardEvent(code, bytes([action]), bytes([modifiers])),
                    "LiSendKeyboardEvent")

    def tap_key(self, vk: int, modifiers: int = 0, hold: float = 0.02) -> None:
        self.send_key(vk, KEY_ACTION_DOWN, modifiers)
        time.sleep(hold)
        self.send_key(vk, KEY_ACTION_UP, modifiers)

    def type_char(self, ch: str, gap: float = 0.02) -> None:
        vk, shift = vk_for_char(ch)
        if shift:
            self.send_key(VK_LSHIFT, KEY_ACTION_DOWN, MODIFIER_SHIFT)
            time.sleep(gap)
            self.tap_key(vk, MODIFIER_SHIFT)
            time.sleep(gap)
            self.send_key(VK_LSHIFT, KEY_ACTION_UP, 0)
        else:
            self.tap_key(vk)
        time.sleep(gap)

    def type_text(self, text: str, gap: float = 0.02) -> None:
        for ch in text:
            self.type_char(ch, gap)

    def send_text(self, text: str) -> None:
        raw = text.encode()
        self._check(self.lib.LiSendUtf8TextEvent(raw, len(raw)), "LiSendUtf8TextEvent")

    def send_mouse_position(self, x: int, y: int, ref_w: int, ref_h: int) -> None:
        self._check(self.lib.LiSendMousePositionEvent(x, y, ref_w, ref_h),
                    "LiSendMousePositionEvent")

    def send_mouse_move(self, dx: int, dy: int) -> None:
        self._check(self.lib.LiSendMouseMoveEvent(dx, dy), "LiSendMouseMoveEvent")

    def send_mouse_button(self, action: int, button: int) -> None:
        self._check(self.lib.LiSendMouseButtonEvent(bytes([action]), button),
                    "LiSendMouseButtonEvent")

    def send_scroll(self, clicks: int) -> None:
        self._check(self.lib.LiSendScrollEvent(clicks), "LiSendScrollEvent")

    def send_high_res_scroll(self, amount: int) -> None:
        self._check(self.lib.LiSendHighResScrollEvent(amount), "LiSendHighResScrollEvent")

    def send_controller(self, controller: int, active_mask: int, buttons: int = 0,
                        left_trigger: int = 0, right_trigger: int = 0, left_x: int = 0,
                        left_y: int = 0, right_x: int = 0, right_y: int = 0) -> None:
        """LiSendMultiControllerEvent: one pad's full state (sticks -32768..32767 with Y up,
        triggers 0..255); a mask without the pad's bit removes it."""
        self._check(self.lib.LiSendMultiControllerEvent(
            controller, active_mask, buttons, left_trigger, right_trigger, left_x, left_y,
            right_x, right_y), "LiSendMultiControllerEvent")

    def send_controller_arrival(self, controller: int, active_mask: int, controller_type: int,
                                supported_buttons: int, capabilities: int) -> None:
        """LiSendControllerArrivalEvent: announces a pad with its type and capabilities."""
        self._check(self.lib.LiSendControllerArrivalEvent(
            controller, active_mask, controller_type, supported_buttons, capabilities),
            "LiSendControllerArrivalEvent")


def exported_symbols(path: str | None = None) -> set[str]:
    """Dynamic symbols the library defines (via `nm -D --defined-only`)."""
    import subprocess

    out = subprocess.run(["nm", "-D", "--defined-only", path or library_path()],
                         check=True, capture_output=True, text=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def library_dir() -> Path:
    return Path(library_path()).parent
