"""End-to-end gamepads: a pad that a stock Moonlight client announces becomes a virtual evdev
device on the host with the right identity and capabilities; every button, stick and trigger
sent with LiSendMultiControllerEvent reads back through evdev; rumble that a game plays on the
device reaches the client; and the device goes away with the pad.

The device test needs /dev/uinput. Where it is missing or not writable (CI containers) it is
skipped with the reason (scripts/test.sh runs pytest with -rs, which prints it). The mapping
from packets to evdev events is tested as pure functions in
streamer/src/gamepad/mapping_tests.rs and manager_tests.rs; the helpers of this test (ioctl
numbers, struct layouts, the expected-state tables) are tested below and run everywhere.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

import gamepads as gp
import scenario
from conftest import make_client, pair_with_cli, random_pin

REPO = Path(__file__).resolve().parents[2]
MAPPING_RS = REPO / "streamer" / "src" / "gamepad" / "mapping.rs"


# ------------------------------------------------------------ helpers, run everywhere ----
def test_ioctl_numbers():
    # The values linux/input.h gives on x86_64 and aarch64.
    assert gp.EVIOCGID == 0x80084502
    assert gp.EVIOCGNAME(256) == 0x81004506
    assert gp.EVIOCGBIT(0, 8) == 0x80084520
    assert gp.EVIOCGBIT(gp.EV_KEY, 96) == 0x80604521
    assert gp.EVIOCGKEY(96) == 0x80604518
    assert gp.EVIOCGPROP(4) == 0x80044509
    assert gp.EVIOCGABS(gp.ABS_X) == 0x80184540
    assert gp.EVIOCGABS(gp.ABS_HAT0Y) == 0x80184551
    assert gp.EVIOCSFF == 0x40304580
    assert gp.EVIOCRMFF == 0x40044581


def test_struct_layouts():
    assert gp.INPUT_EVENT.size == 24
    assert gp.ABSINFO.size == 24
    assert gp.INPUT_ID.size == 8
    assert gp.FF_EFFECT.size == 48
    ev = gp.pack_event(gp.EV_FF, 3, 1)
    assert len(ev) == 24 and ev[16:] == bytes([0x15, 0, 3, 0, 1, 0, 0, 0])
    raw = (gp.INPUT_EVENT.pack(5, 6, gp.EV_ABS, gp.ABS_RY, -32768)
           + gp.INPUT_EVENT.pack(5, 6, gp.EV_SYN, gp.SYN_REPORT, 0) + b"\x01\x02")
    assert gp.parse_events(raw) == [(gp.EV_ABS, gp.ABS_RY, -32768), (gp.EV_SYN, 0, 0)]
    eff = gp.rumble_effect(0xC000, 0x4000, 500)
    assert len(eff) == 48
    assert eff[0:2] == bytes([0x50, 0]) and eff[2:4] == b"\xff\xff"  # FF_RUMBLE, id -1
    assert eff[10:12] == (500).to_bytes(2, "little")  # replay.length
    assert eff[16:20] == bytes([0x00, 0xC0, 0x00, 0x40])  # strong, weak
    assert not any(eff[20:])


def test_bitmask_parsing():
    assert gp.bits_of(b"") == set()
    assert gp.bits_of(bytes([0b101, 0, 0x80])) == {0, 2, 23}
    mask = bytearray(96)
    for code in (gp.BTN_SOUTH, gp.KEY_RECORD, gp.BTN_TRIGGER_HAPPY8):
        mask[code // 8] |= 1 << code % 8
    assert gp.bits_of(bytes(mask)) == {gp.BTN_SOUTH, gp.KEY_RECORD, gp.BTN_TRIGGER_HAPPY8}


def test_state_tracking():
    state = {}
    gp.apply_events(state, "main", [(gp.EV_KEY, gp.BTN_SOUTH, 1), (gp.EV_SYN, 0, 0),
                                    (gp.EV_FF, 0, 1), (gp.EV_ABS, gp.ABS_X, 7)])
    assert state == {("main", gp.EV_KEY, gp.BTN_SOUTH): 1, ("main", gp.EV_ABS, gp.ABS_X): 7}
    assert gp.matches(state, {("main", gp.EV_ABS, gp.ABS_X): (6, 7)})
    assert not gp.matches(state, {("main", gp.EV_ABS, gp.ABS_Y): (0, 0)})
    assert gp.mismatches(state, {("main", gp.EV_KEY, gp.BTN_SOUTH): (0, 0)})


@pytest.mark.parametrize("pad_id", list(gp.PAD_TYPES))
def test_specs_match_the_rust_mapping(pad_id):
    """The names and ids listed in gamepads.py still appear in mapping.rs."""
    src = MAPPING_RS.read_text()
    pad = gp.PAD_TYPES[pad_id]
    base = pad.main.name
    assert f'"{base}"' in src, f"{base!r} is not in {MAPPING_RS.relative_to(REPO)}"
    for d in pad.devices[1:]:
        suffix = d.name[len(base):]
        assert d.name.startswith(base) and f'format!("{{name}}{suffix}")' in src, d.name
    for number in (pad.main.vendor, pad.main.product, pad.main.version):
        assert re.search(rf"\b0x{number:04x}\b", src), f"{number:#06x} not in mapping.rs"


def rust_consts(src: str, module: str) -> dict[str, int]:
    """`pub const NAME: uNN = VALUE;` of `pub mod <module> { ... }` in mapping.rs."""
    body = re.search(rf"pub mod {module} \{{(.*?)\n\}}", src, re.S).group(1)
    return {name: int(value.replace("_", ""), 0) for name, value in
            re.findall(r"pub const (\w+): u\d+ = (0x[0-9a-fA-F_]+|\d+);", body)}


def rust_button_map(src: str, table: str) -> set[tuple[int, int]]:
    """The (Moonlight bit, evdev code) pairs of `const <table>` in `button_map`."""
    bits, btn = rust_consts(src, "bits"), rust_consts(src, "btn")
    body = re.search(rf"const {table}: &\[\(u32, u16\)\] = &\[(.*?)\];", src, re.S).group(1)
    return {(bits[b], btn[k]) for b, k in re.findall(r"\(bits::(\w+),\s*btn::(\w+)\)", body)}


def test_button_maps_match_the_rust_mapping():
    src = MAPPING_RS.read_text()
    assert set(gp.XBOX_BUTTONS) == rust_button_map(src, "XBOX")
    assert set(gp.PLAYSTATION_BUTTONS) == rust_button_map(src, "PLAYSTATION")
    assert rust_consts(src, "abs")["HAT0Y"] == gp.ABS_HAT0Y
    for pad in gp.PAD_TYPES.values():
        if pad.touchpad_click:
            touch = pad.device("touchpad")
            w = touch.axis(gp.ABS_MT_POSITION_X).max + 1
            h = touch.axis(gp.ABS_MT_POSITION_Y).max + 1
            assert f"({w}, {h})" in src, f"{pad.id}: touchpad size {w}x{h} not in mapping.rs"


@pytest.mark.parametrize("pad_id", list(gp.PAD_TYPES))
def test_steps_cover_every_button_and_axis(pad_id):
    pad = gp.PAD_TYPES[pad_id]
    all_steps = gp.steps(pad)
    rest = gp.rest_state(pad)
    pressed = {code for s in all_steps for (role, kind, code), (lo, _) in s.expect.items()
               if role == "main" and kind == gp.EV_KEY and lo == 1}
    assert pressed == set(pad.main.keys)
    for a in pad.main.axes:
        seen = [s.expect[("main", gp.EV_ABS, a.code)] for s in all_steps]
        assert any(lo <= a.min <= hi for lo, hi in seen), a
        assert any(lo <= a.max <= hi for lo, hi in seen), a
        assert rest[("main", gp.EV_ABS, a.code)][0] in (a.min, 0, (a.min + a.max + 1) // 2)
    # Every button press is followed by a step back to rest, and the pad ends at rest.
    for i, s in enumerate(all_steps):
        if s.buttons:
            assert all_steps[i + 1].expect == rest, s.what
    assert all_steps[-1].expect == rest
    # A stick to one end is a single change against rest.
    for s in all_steps:
        assert len([k for k in s.expect if s.expect[k] != rest[k]]) <= 2, s.what
    assert gp.rest_value(pad.main.axis(gp.ABS_Z)) == 0
    assert gp.rest_value(pad.main.axis(gp.ABS_HAT0X)) == 0


def test_stick_ends_follow_the_drivers():
    xbox = {s.what: s.expect for s in gp.steps(gp.PAD_TYPES["xbox360"])}
    ds = {s.what: s.expect for s in gp.steps(gp.PAD_TYPES["dualsense"])}
    y = ("main", gp.EV_ABS, gp.ABS_Y)
    assert xbox["left_y 32767"][y] == (-32768, -32767)  # up is negative in evdev
    assert xbox["left_y -32768"][y] == (32766, 32767)
    assert ds["left_y 32767"][y] == (0, 1)
    assert ds["release left_y"][y] == (128, 128)
    assert ds["left_trigger 255"][("main", gp.EV_KEY, gp.BTN_TL2)] == (1, 1)
    assert ("main", gp.EV_KEY, gp.BTN_TL2) not in xbox["left_trigger 255"]


def test_skip_reason_names_uinput():
    reason = gp.uinput_unavailable()
    assert reason is None or "/dev/uinput" in reason


@pytest.mark.parametrize("setting,layout", [(None, "DualSense"), ("dualshock4", "DualShock4")])
def test_a_playstation_pad_becomes_the_configured_pad(setting, layout, host_factory, data_dir,
                                                      port_base, tmp_path):
    """Runs everywhere: the host names the pad it makes (or fails to make, without uinput)."""
    config = None
    if setting is not None:
        config = tmp_path / "config.toml"
        config.write_text(f'[input]\nplaystation_pad = "{setting}"\n')
    host = host_factory(data_dir, port_base, config=config).start()
    client = make_client(host, tmp_path / "client")
    pin = random_pin()
    assert pair_with_cli(host, client, pin) is None
    session = scenario.start_session(client, scenario.TEST_PATTERN, 1280, 720, 60)
    try:
        ps = gp.PAD_TYPES["dualsense"]
        session.stream.send_controller_arrival(0, 0x1, ps.controller_type, ps.supported_buttons,
                                               ps.capabilities)
        deadline = time.monotonic() + 10
        pattern = re.compile(rf"gamepad.*layout={layout}\b|layout={layout}\b.*gamepad")
        while not pattern.search(host.log_text()):
            assert time.monotonic() < deadline, f"no {layout} pad in the log:\n{host.log_text()[-3000:]}"
            session.stream.drain()
            time.sleep(0.1)
    finally:
        session.stream.stop()


# ------------------------------------------------------------ the devices, with uinput ----
@pytest.fixture
def uinput():
    """Skips (with the reason) where virtual input devices cannot be created."""
    reason = gp.uinput_unavailable()
    if reason is not None:
        print(f"\n[e2e] SKIP: /dev/uinput not available: {reason}")
        pytest.skip(f"/dev/uinput not available: {reason}")


def wait_state(devs: dict, state: dict, expect: dict, what: str, stream,
               timeout: float = 5.0) -> None:
    """Reads events of every device into `state` until it matches `expect`."""
    deadline = time.monotonic() + timeout
    while True:
        for d in devs.values():
            gp.apply_events(state, d.role, d.read())
        if gp.matches(state, expect):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: the devices' events never reached the expected state:"
                                 f"\n" + "\n".join(gp.mismatches(state, expect)))
        stream.drain()
        time.sleep(0.01)


def check_identity(dev: gp.Evdev, spec: gp.Device) -> None:
    assert dev.name() == spec.name
    assert dev.input_id() == (gp.BUS_USB, spec.vendor, spec.product, spec.version), \
        f"{spec.name}: bus, vendor, product, version"
    want_types = {gp.EV_SYN}
    if spec.keys:
        want_types.add(gp.EV_KEY)
    if spec.axes:
        want_types.add(gp.EV_ABS)
    if spec.rumble:
        want_types.add(gp.EV_FF)
    assert dev.event_types() == want_types, spec.name
    assert dev.codes(gp.EV_KEY, gp.KEY_MAX) == set(spec.keys), spec.name
    assert dev.codes(gp.EV_ABS, gp.ABS_MAX) == {a.code for a in spec.axes}, spec.name
    for a in spec.axes:
        _, lo, hi, fuzz, flat, res = dev.absinfo(a.code)
        assert (lo, hi, fuzz, flat, res) == (a.min, a.max, a.fuzz, a.flat, a.resolution), \
            f"{spec.name}: axis {a.code:#x}"
    assert dev.props() == set(spec.props), spec.name
    if spec.rumble:
        assert gp.FF_RUMBLE in dev.codes(gp.EV_FF, gp.FF_MAX), spec.name


def wait_rumble(stream, since: int, pred, what: str, timeout: float = 5.0) -> tuple:
    deadline = time.monotonic() + timeout
    while True:
        hits = [r for r in stream.rumbles[since:] if pred(r)]
        if hits:
            return hits[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} reached the client; rumbles: {stream.rumbles}")
        stream.drain()
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("pad_id", list(gp.PAD_TYPES))
def test_gamepad_devices(uinput, pad_id, host_factory, data_dir, port_base, tmp_path):
    pad = gp.PAD_TYPES[pad_id]
    config = None
    if pad.host_config:
        config = tmp_path / "config.toml"
        config.write_text(pad.host_config)
    host = host_factory(data_dir, port_base, config=config).start()
    client = make_client(host, tmp_path / "client")
    pin = random_pin()
    err = pair_with_cli(host, client, pin)
    assert err is None, f"pairing with PIN {pin} failed: {err!r}"
    session = scenario.start_session(client, scenario.TEST_PATTERN, 1280, 720, 60)
    stream = session.stream
    devs: dict[str, gp.Evdev] = {}
    try:
        # The pad arrives: its devices appear.
        before = set(gp.event_devices())
        stream.send_controller_arrival(0, 0x1, pad.controller_type, pad.supported_buttons,
                                       pad.capabilities)
        names = [d.name for d in pad.devices]
        found = gp.wait_for_devices(before, names)
        assert set(found) == set(names), \
            f"devices after the arrival: {found}; all: {gp.event_devices()}"
        for spec in pad.devices:
            devs[spec.role] = gp.Evdev(gp.node_path(found[spec.name], tmp_path), spec.role)
            check_identity(devs[spec.role], spec)

        # It starts at rest (the host reports the centre positions once).
        main = devs["main"]
        rest = gp.rest_state(pad)
        state = main.snapshot(pad.main.keys, [a.code for a in pad.main.axes])
        if pad.touchpad_click:
            state.update(devs["touchpad"].snapshot([gp.BTN_LEFT], []))
        wait_state(devs, state, rest, "a new pad", stream)

        # Every button, the d-pad, the sticks and the triggers.
        for step in gp.steps(pad):
            stream.send_controller(0, 0x1, step.buttons, step.left_trigger, step.right_trigger,
                                   step.left_x, step.left_y, step.right_x, step.right_y)
            wait_state(devs, state, step.expect, step.what, stream)
        # What the events said is what the kernel holds.
        held = main.snapshot(pad.main.keys, [a.code for a in pad.main.axes])
        assert gp.mismatches(held, {k: v for k, v in rest.items() if k[0] == "main"}) == []

        # A game plays rumble on the device: the client gets it, and its end.
        mark = len(stream.rumbles)
        effect = main.upload_rumble(0xC000, 0x4000, 300)
        main.play(effect)
        _, controller, low, high = wait_rumble(stream, mark, lambda r: r[2] or r[3], "rumble")
        assert (controller, low, high) == (0, 0xC000, 0x4000), \
            "FF_RUMBLE strong/weak must arrive as low/high frequency motor"
        wait_rumble(stream, mark, lambda r: r[1] == 0 and not r[2] and not r[3],
                    "rumble stop after the effect's 300 ms")
        main.erase(effect)

        # The pad leaves: its devices vanish.
        for d in devs.values():
            d.close()
        nodes = set(found.values())
        stream.send_controller(0, 0x0)
        deadline = time.monotonic() + 5
        while nodes & set(gp.event_devices()):
            assert time.monotonic() < deadline, \
                f"devices still there after the pad left: {nodes & set(gp.event_devices())}"
            stream.drain()
            time.sleep(0.05)
    finally:
        for d in devs.values():
            d.close()
        stream.stop()
