"""What punktfunk's virtual gamepads look like through evdev, and a small evdev reader.

The device descriptions below are listed once for the end-to-end tests. They mirror
`device_specs` and `button_map` in streamer/src/gamepad/mapping.rs (ranges after the Linux
drivers `xpad` and `hid-playstation`); test_gamepads.py checks that the names and ids still
appear there. Event, key and axis codes are the kernel's (linux/input-event-codes.h).

The evdev part needs no third-party package: device nodes are found through sysfs and read
with `fcntl.ioctl` (EVIOCG*) and `struct` (`struct input_event`), for 64-bit Linux.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

import moonlight

# ----------------------------------------------------------- linux/input-event-codes.h ----
EV_SYN, EV_KEY, EV_ABS, EV_FF = 0x00, 0x01, 0x03, 0x15
SYN_REPORT = 0
BUS_USB = 0x03
FF_RUMBLE = 0x50

ABS_X, ABS_Y, ABS_Z, ABS_RX, ABS_RY, ABS_RZ = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05
ABS_HAT0X, ABS_HAT0Y = 0x10, 0x11
ABS_MT_SLOT, ABS_MT_POSITION_X, ABS_MT_POSITION_Y, ABS_MT_TRACKING_ID = 0x2f, 0x35, 0x36, 0x39

BTN_LEFT = 0x110
BTN_SOUTH, BTN_EAST, BTN_NORTH, BTN_WEST = 0x130, 0x131, 0x133, 0x134
BTN_TL, BTN_TR, BTN_TL2, BTN_TR2 = 0x136, 0x137, 0x138, 0x139
BTN_SELECT, BTN_START, BTN_MODE, BTN_THUMBL, BTN_THUMBR = 0x13a, 0x13b, 0x13c, 0x13d, 0x13e
BTN_TOOL_FINGER, BTN_TOUCH, BTN_TOOL_DOUBLETAP = 0x145, 0x14a, 0x14d
BTN_TRIGGER_HAPPY5, BTN_TRIGGER_HAPPY6 = 0x2c4, 0x2c5
BTN_TRIGGER_HAPPY7, BTN_TRIGGER_HAPPY8 = 0x2c6, 0x2c7
KEY_RECORD = 167

INPUT_PROP_POINTER, INPUT_PROP_BUTTONPAD, INPUT_PROP_ACCELEROMETER = 0x00, 0x02, 0x06

KEY_MAX, ABS_MAX, FF_MAX, INPUT_PROP_MAX = 0x2ff, 0x3f, 0x7f, 0x1f


# ------------------------------------------------------------------- device specs ----
@dataclass(frozen=True)
class Axis:
    code: int
    min: int
    max: int
    fuzz: int = 0
    flat: int = 0
    resolution: int = 0


@dataclass(frozen=True)
class Device:
    """One virtual input device, as `DeviceSpec` in mapping.rs describes it."""

    role: str  # "main", "touchpad" or "motion"
    name: str
    vendor: int
    product: int
    version: int
    keys: frozenset
    axes: tuple  # of Axis
    props: frozenset = frozenset()
    rumble: bool = False

    def axis(self, code: int) -> Axis:
        return next(a for a in self.axes if a.code == code)


@dataclass(frozen=True)
class PadType:
    """A pad the client announces, and the devices the host must create for it."""

    id: str
    controller_type: int  # LI_CTYPE_*
    supported_buttons: int  # what the arrival packet announces
    capabilities: int  # LI_CCAP_*
    buttons: tuple  # (Moonlight button flag, evdev key on the main device)
    devices: tuple  # of Device, main first
    touchpad_click: bool = False  # TOUCHPAD_FLAG clicks BTN_LEFT on the touchpad device
    trigger_buttons: bool = False  # triggers also press BTN_TL2 / BTN_TR2 (hid-playstation)
    # The host's config that makes a client's pad of this type become this pad ("" for none).
    host_config: str = ""

    @property
    def main(self) -> Device:
        return self.devices[0]

    def device(self, role: str) -> Device:
        return next(d for d in self.devices if d.role == role)


def _stick(code: int) -> Axis:
    return Axis(code, -32768, 32767, fuzz=16, flat=128)


def _byte(code: int) -> Axis:
    return Axis(code, 0, 255)


def _hat(code: int) -> Axis:
    return Axis(code, -1, 1)


ML = moonlight
XBOX_BUTTONS = (
    (ML.A_FLAG, BTN_SOUTH), (ML.B_FLAG, BTN_EAST),
    (ML.X_FLAG, BTN_NORTH), (ML.Y_FLAG, BTN_WEST),  # xpad's BTN_X and BTN_Y
    (ML.LB_FLAG, BTN_TL), (ML.RB_FLAG, BTN_TR), (ML.BACK_FLAG, BTN_SELECT),
    (ML.PLAY_FLAG, BTN_START), (ML.SPECIAL_FLAG, BTN_MODE), (ML.LS_CLK_FLAG, BTN_THUMBL),
    (ML.RS_CLK_FLAG, BTN_THUMBR), (ML.PADDLE1_FLAG, BTN_TRIGGER_HAPPY5),
    (ML.PADDLE2_FLAG, BTN_TRIGGER_HAPPY6), (ML.PADDLE3_FLAG, BTN_TRIGGER_HAPPY7),
    (ML.PADDLE4_FLAG, BTN_TRIGGER_HAPPY8), (ML.MISC_FLAG, KEY_RECORD),
)
PLAYSTATION_BUTTONS = (
    (ML.A_FLAG, BTN_SOUTH), (ML.B_FLAG, BTN_EAST),  # cross, circle
    (ML.X_FLAG, BTN_WEST), (ML.Y_FLAG, BTN_NORTH),  # square, triangle
    (ML.LB_FLAG, BTN_TL), (ML.RB_FLAG, BTN_TR), (ML.BACK_FLAG, BTN_SELECT),
    (ML.PLAY_FLAG, BTN_START), (ML.SPECIAL_FLAG, BTN_MODE), (ML.LS_CLK_FLAG, BTN_THUMBL),
    (ML.RS_CLK_FLAG, BTN_THUMBR),
)
DPAD = ML.UP_FLAG | ML.DOWN_FLAG | ML.LEFT_FLAG | ML.RIGHT_FLAG


def _xbox() -> PadType:
    supported = DPAD
    for flag, _ in XBOX_BUTTONS:
        supported |= flag
    main = Device("main", "Microsoft X-Box 360 pad", 0x045e, 0x028e, 0x0114,
                  frozenset(code for _, code in XBOX_BUTTONS),
                  (_stick(ABS_X), _stick(ABS_Y), _byte(ABS_Z), _stick(ABS_RX), _stick(ABS_RY),
                   _byte(ABS_RZ), _hat(ABS_HAT0X), _hat(ABS_HAT0Y)), rumble=True)
    return PadType("xbox360", ML.LI_CTYPE_XBOX, supported,
                   ML.LI_CCAP_ANALOG_TRIGGERS | ML.LI_CCAP_RUMBLE, XBOX_BUTTONS, (main,))


def _playstation(pad_id: str, name: str, product: int, touch_h: int,
                 host_config: str = "") -> PadType:
    supported = DPAD | ML.TOUCHPAD_FLAG
    for flag, _ in PLAYSTATION_BUTTONS:
        supported |= flag
    version = 0x8111
    keys = frozenset([code for _, code in PLAYSTATION_BUTTONS] + [BTN_TL2, BTN_TR2])
    main = Device("main", name, 0x054c, product, version, keys,
                  tuple(_byte(c) for c in (ABS_X, ABS_Y, ABS_Z, ABS_RX, ABS_RY, ABS_RZ))
                  + (_hat(ABS_HAT0X), _hat(ABS_HAT0Y)), rumble=True)
    touchpad = Device("touchpad", f"{name} Touchpad", 0x054c, product, version,
                      frozenset([BTN_LEFT, BTN_TOUCH, BTN_TOOL_FINGER, BTN_TOOL_DOUBLETAP]),
                      (Axis(ABS_MT_SLOT, 0, 1), Axis(ABS_MT_TRACKING_ID, 0, 65535),
                       Axis(ABS_MT_POSITION_X, 0, 1919), Axis(ABS_MT_POSITION_Y, 0, touch_h - 1)),
                      props=frozenset([INPUT_PROP_POINTER, INPUT_PROP_BUTTONPAD]))
    accel = [Axis(c, -4 * 8192, 4 * 8192, fuzz=4, resolution=8192)  # ±4 g in 1/8192 g
             for c in (ABS_X, ABS_Y, ABS_Z)]
    gyro = [Axis(c, -2048 * 1024, 2048 * 1024, fuzz=16, resolution=1024)  # ±2048 °/s
            for c in (ABS_RX, ABS_RY, ABS_RZ)]
    motion = Device("motion", f"{name} Motion Sensors", 0x054c, product, version, frozenset(),
                    tuple(accel + gyro), props=frozenset([INPUT_PROP_ACCELEROMETER]))
    caps = (ML.LI_CCAP_ANALOG_TRIGGERS | ML.LI_CCAP_RUMBLE | ML.LI_CCAP_TOUCHPAD
            | ML.LI_CCAP_ACCEL | ML.LI_CCAP_GYRO)
    return PadType(pad_id, ML.LI_CTYPE_PS, supported, caps, PLAYSTATION_BUTTONS,
                   (main, touchpad, motion), touchpad_click=True, trigger_buttons=True,
                   host_config=host_config)


PAD_TYPES = {
    p.id: p for p in (
        _xbox(),
        _playstation("dualsense", "Sony Interactive Entertainment DualSense Wireless Controller",
                     0x0ce6, 1080),
        _playstation("dualshock4", "Sony Interactive Entertainment Wireless Controller",
                     0x09cc, 942,
                     host_config='[input]\nplaystation_pad = "dualshock4"\n'),
    )
}


# --------------------------------------------------------------- what to send, expect ----
STICK_AXES = (ABS_X, ABS_Y, ABS_RX, ABS_RY)
TRIGGER_AXES = (ABS_Z, ABS_RZ)


def rest_value(axis: Axis) -> int:
    """Where an axis of the main device rests: sticks and hats centred, triggers released."""
    if axis.code in TRIGGER_AXES:
        return axis.min
    return (axis.min + axis.max + 1) // 2


@dataclass
class Step:
    """One LiSendMultiControllerEvent and the state the devices must show after it:
    {(role, EV_KEY or EV_ABS, code): (lowest, highest) accepted value}, for every key and
    axis of the main device (and the touchpad's click)."""

    what: str
    buttons: int = 0
    left_trigger: int = 0
    right_trigger: int = 0
    left_x: int = 0
    left_y: int = 0
    right_x: int = 0
    right_y: int = 0
    expect: dict = field(default_factory=dict)


def rest_state(pad: PadType) -> dict:
    """The expected state of a pad with nothing pressed."""
    state = {("main", EV_KEY, k): (0, 0) for k in pad.main.keys}
    for a in pad.main.axes:
        v = rest_value(a)
        state[("main", EV_ABS, a.code)] = (v, v)
    if pad.touchpad_click:
        state[("touchpad", EV_KEY, BTN_LEFT)] = (0, 0)
    return state


def steps(pad: PadType) -> list[Step]:
    """Every button pressed and released on its own, the d-pad in each direction, each stick
    axis to both ends and back, each trigger fully pressed and released. Stick ends may be one
    unit short of the axis' end: +32767 up is -32767 down."""
    rest = rest_state(pad)
    out: list[Step] = []

    def step(what: str, changes: dict, **sent) -> None:
        expect = dict(rest)
        expect.update(changes)
        out.append(Step(what, expect=expect, **sent))

    def release(what: str) -> None:
        step(f"release {what}", {})

    for flag, code in pad.buttons:
        step(f"button {flag:#x}", {("main", EV_KEY, code): (1, 1)}, buttons=flag)
        release(f"button {flag:#x}")
    if pad.touchpad_click:
        step("touchpad click", {("touchpad", EV_KEY, BTN_LEFT): (1, 1)},
             buttons=ML.TOUCHPAD_FLAG)
        release("touchpad click")
    for flag, code, value in ((ML.UP_FLAG, ABS_HAT0Y, -1), (ML.DOWN_FLAG, ABS_HAT0Y, 1),
                              (ML.LEFT_FLAG, ABS_HAT0X, -1), (ML.RIGHT_FLAG, ABS_HAT0X, 1)):
        step(f"d-pad {flag:#x}", {("main", EV_ABS, code): (value, value)}, buttons=flag)
        release(f"d-pad {flag:#x}")
    # (field of Step, evdev axis, client value, which end of the axis it reaches)
    for fld, code in (("left_x", ABS_X), ("left_y", ABS_Y), ("right_x", ABS_RX),
                      ("right_y", ABS_RY)):
        a = pad.main.axis(code)
        low, high = (a.min, a.min + 1), (a.max - 1, a.max)
        is_y = fld.endswith("_y")
        # client Y points up, evdev Y down
        for sent, end in ((-32768, high if is_y else low), (32767, low if is_y else high)):
            step(f"{fld} {sent}", {("main", EV_ABS, code): end}, **{fld: sent})
        release(fld)
    for fld, code, key in (("left_trigger", ABS_Z, BTN_TL2), ("right_trigger", ABS_RZ, BTN_TR2)):
        a = pad.main.axis(code)
        changes = {("main", EV_ABS, code): (a.max, a.max)}
        if pad.trigger_buttons:
            changes[("main", EV_KEY, key)] = (1, 1)
        step(f"{fld} 255", changes, **{fld: 255})
        release(fld)
    return out


def matches(state: dict, expect: dict) -> bool:
    return all(lo <= state.get(k, lo - 1) <= hi for k, (lo, hi) in expect.items())


def mismatches(state: dict, expect: dict) -> list[str]:
    return [f"{k}: got {state.get(k)}, want {lo}..{hi}" for k, (lo, hi) in expect.items()
            if not lo <= state.get(k, lo - 1) <= hi]


# ------------------------------------------------------------------ ioctl numbers ----
_IOC_NONE, _IOC_WRITE, _IOC_READ = 0, 1, 2


def ioc(direction: int, kind: str, nr: int, size: int) -> int:
    """_IOC() of the generic ioctl layout (x86_64, aarch64, riscv64)."""
    return (direction << 30) | (size << 16) | (ord(kind) << 8) | nr


INPUT_ID = struct.Struct("=HHHH")  # bustype, vendor, product, version
ABSINFO = struct.Struct("=iiiiii")  # value, minimum, maximum, fuzz, flat, resolution
INPUT_EVENT = struct.Struct("=qqHHi")  # struct timeval (64-bit), type, code, value
# struct ff_effect: type, id, direction, trigger {button, interval}, replay {length, delay},
# padding, then the union (32 bytes on 64-bit, 8-aligned) whose rumble view is
# {strong_magnitude, weak_magnitude}.
FF_EFFECT = struct.Struct("=HhHHHHH2xHH28x")

EVIOCGID = ioc(_IOC_READ, "E", 0x02, INPUT_ID.size)
EVIOCRMFF = ioc(_IOC_WRITE, "E", 0x81, 4)
EVIOCSFF = ioc(_IOC_WRITE, "E", 0x80, FF_EFFECT.size)


def EVIOCGNAME(length: int) -> int:  # noqa: N802 (the kernel's name)
    return ioc(_IOC_READ, "E", 0x06, length)


def EVIOCGPROP(length: int) -> int:  # noqa: N802
    return ioc(_IOC_READ, "E", 0x09, length)


def EVIOCGKEY(length: int) -> int:  # noqa: N802
    return ioc(_IOC_READ, "E", 0x18, length)


def EVIOCGBIT(ev: int, length: int) -> int:  # noqa: N802
    return ioc(_IOC_READ, "E", 0x20 + ev, length)


def EVIOCGABS(axis: int) -> int:  # noqa: N802
    return ioc(_IOC_READ, "E", 0x40 + axis, ABSINFO.size)


def bits_of(buf: bytes) -> set[int]:
    """The numbers of the set bits of a kernel bitmask (little-endian longs = bytes in order)."""
    return {i * 8 + b for i, byte in enumerate(buf) for b in range(8) if byte >> b & 1}


def parse_events(buf: bytes) -> list[tuple[int, int, int]]:
    """(type, code, value) of each `struct input_event` in `buf`."""
    n = len(buf) // INPUT_EVENT.size
    return [INPUT_EVENT.unpack_from(buf, i * INPUT_EVENT.size)[2:] for i in range(n)]


def pack_event(kind: int, code: int, value: int) -> bytes:
    return INPUT_EVENT.pack(0, 0, kind, code, value)


def rumble_effect(strong: int, weak: int, length_ms: int, effect_id: int = -1) -> bytearray:
    """A `struct ff_effect` for EVIOCSFF: FF_RUMBLE with the two magnitudes."""
    return bytearray(FF_EFFECT.pack(FF_RUMBLE, effect_id, 0, 0, 0, length_ms, 0, strong, weak))


# ------------------------------------------------------------------ evdev devices ----
def uinput_unavailable() -> str | None:
    """Why this machine cannot create uinput devices, or None if it can."""
    path = "/dev/uinput"
    if not os.path.exists(path):
        return f"{path} does not exist (no uinput module, or the container does not pass it in)"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        return f"cannot open {path} for writing as uid {os.getuid()}: {e.strerror}"
    os.close(fd)
    if struct.calcsize("P") != 8:
        return "the evdev reader here assumes a 64-bit `struct input_event`"
    return None


SYS_INPUT = Path("/sys/class/input")


def event_devices() -> dict[str, str]:
    """{"event5": device name} of every evdev node the kernel has."""
    out = {}
    for d in SYS_INPUT.glob("event*"):
        try:
            out[d.name] = (d / "device" / "name").read_text().rstrip("\n")
        except OSError:
            pass  # gone meanwhile
    return out


def wait_for_devices(before: set[str], names: list[str], timeout: float = 10.0) -> dict[str, str]:
    """{name: "eventN"} for new evdev nodes (not in `before`) with the given names."""
    deadline = time.monotonic() + timeout
    while True:
        found = {name: node for node, name in event_devices().items()
                 if node not in before and name in names}
        if len(found) == len(names) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def node_path(node: str, scratch: Path, timeout: float = 5.0) -> Path:
    """The device file of evdev node `node`; where /dev is not managed (some containers), one
    made in `scratch` from the major:minor in sysfs."""
    dev = Path("/dev/input") / node
    deadline = time.monotonic() + timeout
    while not dev.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if dev.exists():
        return dev
    major, minor = (int(x) for x in (SYS_INPUT / node / "dev").read_text().split(":"))
    made = scratch / node
    os.mknod(made, 0o600 | 0o020000, os.makedev(major, minor))  # S_IFCHR
    return made


class Evdev:
    """One opened evdev device: its identity, capabilities and state, and its events."""

    def __init__(self, path: Path, role: str):
        self.path = path
        self.role = role
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self.events: list[tuple[int, int, int]] = []

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _ioctl(self, request: int, size: int) -> bytes:
        buf = bytearray(size)
        fcntl.ioctl(self.fd, request, buf, True)
        return bytes(buf)

    def name(self) -> str:
        return self._ioctl(EVIOCGNAME(256), 256).split(b"\0", 1)[0].decode()

    def input_id(self) -> tuple[int, int, int, int]:
        return INPUT_ID.unpack(self._ioctl(EVIOCGID, INPUT_ID.size))

    def event_types(self) -> set[int]:
        return bits_of(self._ioctl(EVIOCGBIT(0, 8), 8))

    def codes(self, ev: int, maximum: int) -> set[int]:
        n = (maximum + 8) // 8
        return bits_of(self._ioctl(EVIOCGBIT(ev, n), n))

    def props(self) -> set[int]:
        n = (INPUT_PROP_MAX + 8) // 8
        return bits_of(self._ioctl(EVIOCGPROP(n), n))

    def absinfo(self, axis: int) -> tuple[int, int, int, int, int, int]:
        return ABSINFO.unpack(self._ioctl(EVIOCGABS(axis), ABSINFO.size))

    def pressed(self) -> set[int]:
        n = (KEY_MAX + 8) // 8
        return bits_of(self._ioctl(EVIOCGKEY(n), n))

    def snapshot(self, keys, axes) -> dict:
        """{(role, EV_KEY or EV_ABS, code): value} from the kernel's state of the device."""
        down = self.pressed()
        state = {(self.role, EV_KEY, k): int(k in down) for k in keys}
        for a in axes:
            state[(self.role, EV_ABS, a)] = self.absinfo(a)[0]
        return state

    def read(self) -> list[tuple[int, int, int]]:
        """Every event queued now (never blocks)."""
        out = []
        while True:
            try:
                buf = os.read(self.fd, INPUT_EVENT.size * 64)
            except OSError as e:
                if e.errno == errno.EAGAIN:
                    break
                raise
            if not buf:
                break
            out += parse_events(buf)
        self.events += out
        return out

    def upload_rumble(self, strong: int, weak: int, length_ms: int) -> int:
        """EVIOCSFF: uploads an FF_RUMBLE effect; returns the effect id the kernel gave it."""
        buf = rumble_effect(strong, weak, length_ms)
        fcntl.ioctl(self.fd, EVIOCSFF, buf, True)
        return FF_EFFECT.unpack(bytes(buf))[1]

    def play(self, effect_id: int, count: int = 1) -> None:
        os.write(self.fd, pack_event(EV_FF, effect_id, count))

    def erase(self, effect_id: int) -> None:
        fcntl.ioctl(self.fd, EVIOCRMFF, effect_id)


def apply_events(state: dict, role: str, events: list[tuple[int, int, int]]) -> None:
    """Updates `state` ({(role, type, code): value}) with key and axis events."""
    for kind, code, value in events:
        if kind in (EV_KEY, EV_ABS):
            state[(role, kind, code)] = value
