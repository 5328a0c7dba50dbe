use std::sync::{Arc, Mutex};

use protocol::input::ControllerState;

use super::mapping::{abs, bits, btn, EV_KEY};
use super::*;

/// What the mock devices saw: (controller, device name, events) per write, and drops.
#[derive(Default)]
struct Log {
    created: Vec<(u16, String)>,
    writes: Vec<(String, Vec<EvdevEvent>)>,
    dropped: Vec<String>,
}

struct MockBackend {
    log: Arc<Mutex<Log>>,
    fail: bool,
    attempts: Arc<Mutex<usize>>,
}

struct MockDevice {
    name: String,
    log: Arc<Mutex<Log>>,
}

impl DeviceBackend for MockBackend {
    fn create(
        &mut self,
        spec: &DeviceSpec,
        controller: u16,
        _feedback: FeedbackSink,
    ) -> anyhow::Result<Box<dyn VirtualDevice>> {
        *self.attempts.lock().unwrap() += 1;
        if self.fail {
            anyhow::bail!("cannot open /dev/uinput");
        }
        self.log
            .lock()
            .unwrap()
            .created
            .push((controller, spec.name.clone()));
        Ok(Box::new(MockDevice {
            name: spec.name.clone(),
            log: self.log.clone(),
        }))
    }
}

impl VirtualDevice for MockDevice {
    fn emit(&mut self, events: &[EvdevEvent]) -> std::io::Result<()> {
        self.log
            .lock()
            .unwrap()
            .writes
            .push((self.name.clone(), events.to_vec()));
        Ok(())
    }
}

impl Drop for MockDevice {
    fn drop(&mut self) {
        self.log.lock().unwrap().dropped.push(self.name.clone());
    }
}

struct Fixture {
    manager: GamepadManager,
    log: Arc<Mutex<Log>>,
    attempts: Arc<Mutex<usize>>,
}

fn fixture(fail: bool) -> Fixture {
    let log = Arc::new(Mutex::new(Log::default()));
    let attempts = Arc::new(Mutex::new(0));
    let backend = MockBackend {
        log: log.clone(),
        fail,
        attempts: attempts.clone(),
    };
    let manager = GamepadManager::new(
        GamepadOptions::default(),
        Box::new(backend),
        Arc::new(|_| {}),
    );
    Fixture {
        manager,
        log,
        attempts,
    }
}

impl Fixture {
    fn take_writes(&self) -> Vec<(String, Vec<EvdevEvent>)> {
        std::mem::take(&mut self.log.lock().unwrap().writes)
    }
}

fn state(controller: u16, mask: u16, buttons: u32) -> InputPacket {
    InputPacket::MultiController(ControllerState {
        controller,
        active_mask: mask,
        buttons,
        left_trigger: 0,
        right_trigger: 0,
        left_stick_x: 0,
        left_stick_y: 0,
        right_stick_x: 0,
        right_stick_y: 0,
    })
}

fn arrival(controller: u8, controller_type: u8) -> InputPacket {
    InputPacket::ControllerArrival {
        controller,
        controller_type,
        capabilities: 0x3F,
        supported_buttons: 0xFFFF,
    }
}

#[test]
fn legacy_state_creates_an_xbox_pad_and_presses() {
    let mut f = fixture(false);
    f.manager.handle(&state(0, 0b1, bits::A));
    assert_eq!(
        f.log.lock().unwrap().created,
        [(0, "Microsoft X-Box 360 pad".to_string())]
    );
    let writes = f.take_writes();
    // first the resting axes, then the press
    assert_eq!(writes.len(), 2);
    assert!(writes[0].1.contains(&EvdevEvent::abs(abs::HAT0Y, 0)));
    assert_eq!(
        writes[1].1,
        [EvdevEvent::key(btn::SOUTH, true), EvdevEvent::syn()]
    );
    f.manager.handle(&state(0, 0b1, bits::A));
    assert!(
        f.take_writes().is_empty(),
        "a repeated state writes nothing"
    );
    f.manager.handle(&state(0, 0b1, 0));
    assert_eq!(
        f.take_writes()[0].1,
        [EvdevEvent::key(btn::SOUTH, false), EvdevEvent::syn()]
    );
    assert_eq!(f.manager.pads(), [(0, Layout::Xbox360)]);
}

#[test]
fn arrival_picks_the_layout_and_a_cleared_mask_removes_the_pad() {
    let mut f = fixture(false);
    f.manager.handle(&arrival(3, 2));
    f.manager.handle(&arrival(1, 1));
    assert_eq!(
        f.manager.pads(),
        [(1, Layout::Xbox360), (3, Layout::DualSense)]
    );
    let created: Vec<String> = f
        .log
        .lock()
        .unwrap()
        .created
        .iter()
        .map(|(_, n)| n.clone())
        .collect();
    assert_eq!(created.len(), 4, "{created:?}");
    f.manager.handle(&state(3, 0b1010, bits::B));
    f.take_writes();
    // bit 3 cleared: pad 3 goes, after returning to rest; pad 1 stays
    f.manager.handle(&state(3, 0b0010, 0));
    assert_eq!(f.manager.pads(), [(1, Layout::Xbox360)]);
    let writes = f.take_writes();
    assert!(
        writes
            .iter()
            .any(|(_, evs)| evs.contains(&EvdevEvent::key(btn::EAST, false))),
        "{writes:?}"
    );
    assert_eq!(f.log.lock().unwrap().dropped.len(), 3);
    // the pad of a stream that ends vanishes
    f.manager.clear();
    assert_eq!(f.log.lock().unwrap().dropped.len(), 4);
    assert!(f.manager.pads().is_empty());
}

#[test]
fn out_of_range_and_unknown_controllers_are_dropped() {
    let mut f = fixture(false);
    f.manager.handle(&state(16, 0xFFFF, bits::A));
    f.manager.handle(&state(400, 0xFFFF, bits::A));
    f.manager.handle(&arrival(16, 1));
    f.manager.handle(&arrival(255, 2));
    f.manager.handle(&InputPacket::ControllerMotion {
        controller: 2,
        motion_type: 1,
        x: 0.0,
        y: 0.0,
        z: 0.0,
    });
    f.manager.handle(&InputPacket::ControllerTouch {
        controller: 2,
        event_type: 1,
        touchpad: 0,
        pointer_id: 0,
        x: 0.5,
        y: 0.5,
        pressure: 1.0,
    });
    f.manager.handle(&InputPacket::ControllerBattery {
        controller: 2,
        state: 2,
        percentage: 40,
    });
    assert!(f.manager.pads().is_empty());
    assert_eq!(*f.attempts.lock().unwrap(), 0);
    // A state whose own bit is clear creates nothing.
    f.manager.handle(&state(2, 0b1, bits::A));
    assert!(f.manager.pads().is_empty());
    // pad 15 is the last one that exists
    f.manager.handle(&state(15, 0x8000, 0));
    assert_eq!(f.manager.pads(), [(15, Layout::Xbox360)]);
}

#[test]
fn touchpad_and_motion_reach_the_playstation_devices() {
    let mut f = fixture(false);
    f.manager.handle(&arrival(0, 2));
    f.take_writes();
    f.manager.handle(&InputPacket::ControllerTouch {
        controller: 0,
        event_type: 1,
        touchpad: 0,
        pointer_id: 9,
        x: 0.5,
        y: 0.5,
        pressure: 1.0,
    });
    f.manager.handle(&InputPacket::ControllerMotion {
        controller: 0,
        motion_type: 2,
        x: 1.0,
        y: 0.0,
        z: 0.0,
    });
    let writes = f.take_writes();
    assert_eq!(writes.len(), 2);
    assert!(writes[0].0.ends_with("Touchpad"));
    assert!(writes[0]
        .1
        .contains(&EvdevEvent::abs(abs::MT_POSITION_X, 960)));
    assert!(writes[1].0.ends_with("Motion Sensors"));
    assert_eq!(writes[1].1[0], EvdevEvent::abs(abs::RX, 1024));
    // second touchpad index and Xbox pads get nothing
    f.manager.handle(&InputPacket::ControllerTouch {
        controller: 0,
        event_type: 1,
        touchpad: 1,
        pointer_id: 1,
        x: 0.5,
        y: 0.5,
        pressure: 1.0,
    });
    f.manager.handle(&arrival(1, 1));
    f.take_writes();
    f.manager.handle(&InputPacket::ControllerMotion {
        controller: 1,
        motion_type: 2,
        x: 1.0,
        y: 0.0,
        z: 0.0,
    });
    assert!(f.take_writes().is_empty());
    // the touch that is still down is lifted when the pad goes
    f.manager.handle(&state(0, 0b10, 0));
    let writes = f.take_writes();
    assert!(
        writes
            .iter()
            .any(|(n, evs)| n.ends_with("Touchpad")
                && evs.contains(&EvdevEvent::key(btn::TOUCH, false))),
        "{writes:?}"
    );
}

#[test]
fn a_failing_backend_is_tried_once() {
    let mut f = fixture(true);
    f.manager.handle(&arrival(0, 1));
    f.manager.handle(&state(0, 1, bits::A));
    f.manager.handle(&state(1, 3, bits::A));
    assert_eq!(*f.attempts.lock().unwrap(), 1);
    assert!(f.manager.pads().is_empty());
}

#[test]
fn every_button_of_a_full_state_is_written_once() {
    let mut f = fixture(false);
    f.manager.handle(&state(0, 1, 0));
    f.take_writes();
    f.manager.handle(&state(0, 1, 0xFFFF));
    let writes = f.take_writes();
    let keys: Vec<u16> = writes[0]
        .1
        .iter()
        .filter(|e| e.kind == EV_KEY)
        .map(|e| e.code)
        .collect();
    assert_eq!(keys.len(), 11, "{keys:?}");
}

/// Creates a real uinput pad where the host allows it.
#[test]
fn uinput_device_creation() {
    if !uinput::available() {
        println!("SKIPPED: /dev/uinput not available");
        let spec = &mapping::device_specs(Layout::Xbox360, 0)[0];
        let err = uinput::UinputDevice::create(spec, 0, Arc::new(|_| {}))
            .err()
            .expect("creation must fail");
        assert!(format!("{err:#}").contains("/dev/uinput"), "{err:#}");
        return;
    }
    let mut manager = GamepadManager::with_uinput(GamepadOptions::default(), Arc::new(|_| {}));
    manager.handle(&arrival(0, 2));
    manager.handle(&state(0, 1, bits::A));
    assert_eq!(manager.pads(), [(0, Layout::DualSense)]);
    let names = std::fs::read_to_string("/proc/bus/input/devices").unwrap_or_default();
    assert!(names.contains("DualSense Wireless Controller"), "{names}");
    manager.clear();
}

#[test]
fn a_native_pad_drives_the_same_device_as_a_gamestream_pad_in_the_same_state() {
    use protocol::native::input::{gamepad, GamepadState};

    let native = [
        GamepadState {
            index: 2,
            buttons: gamepad::A | gamepad::DPAD_LEFT | gamepad::RIGHT_SHOULDER,
            left_trigger: 200,
            right_trigger: 10,
            left_x: -20_000,
            left_y: 12_000,
            right_x: 300,
            right_y: -32_768,
        },
        GamepadState {
            index: 2,
            buttons: gamepad::B,
            ..GamepadState::default()
        },
    ];
    let mut over_native = fixture(false);
    let mut over_gamestream = fixture(false);
    for pad in &native {
        over_native.manager.handle(&native_pad_state(pad));
        over_gamestream
            .manager
            .handle(&InputPacket::MultiController(ControllerState {
                controller: 2,
                active_mask: 0b100,
                buttons: pad.buttons,
                left_trigger: pad.left_trigger,
                right_trigger: pad.right_trigger,
                left_stick_x: pad.left_x,
                left_stick_y: pad.left_y,
                right_stick_x: pad.right_x,
                right_stick_y: pad.right_y,
            }));
    }
    let created = over_native.log.lock().unwrap().created.clone();
    assert_eq!(created, [(2, "Microsoft X-Box 360 pad".to_string())]);
    let writes = over_native.take_writes();
    assert!(
        writes
            .iter()
            .any(|(_, w)| w.contains(&EvdevEvent::key(btn::SOUTH, true))),
        "{writes:?}"
    );
    assert_eq!(writes, over_gamestream.take_writes());
    // An index past the last pad is ignored.
    over_native.manager.handle(&native_pad_state(&GamepadState {
        index: 200,
        ..GamepadState::default()
    }));
    assert_eq!(over_native.manager.pads().len(), 1);
}
