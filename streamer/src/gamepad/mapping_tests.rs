use super::*;

fn xbox(prev: Option<&PadState>, next: &PadState) -> Vec<EvdevEvent> {
    let evs = state_events(Layout::Xbox360, prev, next);
    assert!(evs.iter().all(|(r, _)| *r == Role::Main), "{evs:?}");
    evs.into_iter().map(|(_, e)| e).collect()
}

fn pressed(buttons: u32) -> PadState {
    PadState {
        buttons,
        ..Default::default()
    }
}

#[test]
fn every_xbox_button_maps_to_its_code() {
    let table = [
        (bits::A, 0x130),
        (bits::B, 0x131),
        (bits::X, 0x133),
        (bits::Y, 0x134),
        (bits::LB, 0x136),
        (bits::RB, 0x137),
        (bits::BACK, 0x13a),
        (bits::START, 0x13b),
        (bits::HOME, 0x13c),
        (bits::LS_CLK, 0x13d),
        (bits::RS_CLK, 0x13e),
        (bits::PADDLE1, 0x2c4),
        (bits::PADDLE2, 0x2c5),
        (bits::PADDLE3, 0x2c6),
        (bits::PADDLE4, 0x2c7),
        (bits::MISC, 167),
    ];
    let rest = PadState::default();
    for (bit, code) in table {
        assert_eq!(
            xbox(Some(&rest), &pressed(bit)),
            [EvdevEvent::key(code, true), EvdevEvent::syn()],
            "bit {bit:#x}"
        );
        assert_eq!(
            xbox(Some(&pressed(bit)), &rest),
            [EvdevEvent::key(code, false), EvdevEvent::syn()],
            "bit {bit:#x}"
        );
    }
    // An Xbox pad has no touchpad button; it produces nothing.
    assert_eq!(xbox(Some(&rest), &pressed(bits::TOUCHPAD)), []);
}

#[test]
fn every_playstation_button_maps_to_its_code() {
    let table = [
        (bits::A, 0x130),
        (bits::B, 0x131),
        (bits::X, 0x134),
        (bits::Y, 0x133),
        (bits::LB, 0x136),
        (bits::RB, 0x137),
        (bits::BACK, 0x13a),
        (bits::START, 0x13b),
        (bits::HOME, 0x13c),
        (bits::LS_CLK, 0x13d),
        (bits::RS_CLK, 0x13e),
    ];
    let rest = PadState::default();
    for layout in [Layout::DualSense, Layout::DualShock4] {
        for (bit, code) in table {
            assert_eq!(
                state_events(layout, Some(&rest), &pressed(bit)),
                [
                    (Role::Main, EvdevEvent::key(code, true)),
                    (Role::Main, EvdevEvent::syn())
                ]
            );
        }
        assert_eq!(
            state_events(layout, Some(&rest), &pressed(bits::TOUCHPAD)),
            [
                (Role::Touchpad, EvdevEvent::key(btn::LEFT, true)),
                (Role::Touchpad, EvdevEvent::syn())
            ]
        );
    }
}

#[test]
fn buttons_are_diffed_between_states() {
    let a = pressed(bits::A | bits::LB);
    let b = pressed(bits::A | bits::RB);
    assert_eq!(
        xbox(Some(&a), &b),
        [
            EvdevEvent::key(btn::TL, false),
            EvdevEvent::key(btn::TR, true),
            EvdevEvent::syn()
        ]
    );
    assert_eq!(xbox(Some(&b), &b), [], "an unchanged state sends nothing");
}

#[test]
fn dpad_is_a_hat() {
    let rest = PadState::default();
    let cases = [
        (bits::DPAD_UP, vec![EvdevEvent::abs(abs::HAT0Y, -1)]),
        (bits::DPAD_DOWN, vec![EvdevEvent::abs(abs::HAT0Y, 1)]),
        (bits::DPAD_LEFT, vec![EvdevEvent::abs(abs::HAT0X, -1)]),
        (bits::DPAD_RIGHT, vec![EvdevEvent::abs(abs::HAT0X, 1)]),
        (
            bits::DPAD_UP | bits::DPAD_RIGHT,
            vec![
                EvdevEvent::abs(abs::HAT0X, 1),
                EvdevEvent::abs(abs::HAT0Y, -1),
            ],
        ),
        (bits::DPAD_UP | bits::DPAD_DOWN, vec![]),
    ];
    for (bit, mut want) in cases {
        if !want.is_empty() {
            want.push(EvdevEvent::syn());
        }
        assert_eq!(xbox(Some(&rest), &pressed(bit)), want, "bits {bit:#x}");
    }
}

#[test]
fn xbox_sticks_keep_range_and_flip_y() {
    let rest = PadState::default();
    let s = PadState {
        left_x: 1000,
        left_y: 2000,
        right_x: -32768,
        right_y: -32768,
        ..Default::default()
    };
    assert_eq!(
        xbox(Some(&rest), &s),
        [
            EvdevEvent::abs(abs::X, 1000),
            EvdevEvent::abs(abs::Y, -2000),
            EvdevEvent::abs(abs::RX, -32768),
            EvdevEvent::abs(abs::RY, 32767),
            EvdevEvent::syn()
        ]
    );
    let s = PadState {
        left_y: 32767,
        right_y: i16::MIN,
        ..Default::default()
    };
    let evs = xbox(None, &s);
    assert!(evs.contains(&EvdevEvent::abs(abs::Y, -32767)));
    assert!(evs.contains(&EvdevEvent::abs(abs::RY, 32767)));
}

#[test]
fn triggers_are_bytes() {
    let rest = PadState::default();
    let s = PadState {
        left_trigger: 255,
        right_trigger: 17,
        ..Default::default()
    };
    assert_eq!(
        xbox(Some(&rest), &s),
        [
            EvdevEvent::abs(abs::Z, 255),
            EvdevEvent::abs(abs::RZ, 17),
            EvdevEvent::syn()
        ]
    );
    let evs: Vec<_> = state_events(Layout::DualSense, Some(&rest), &s)
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert_eq!(
        evs,
        [
            EvdevEvent::abs(abs::Z, 255),
            EvdevEvent::abs(abs::RZ, 17),
            EvdevEvent::key(btn::TL2, true),
            EvdevEvent::key(btn::TR2, true),
            EvdevEvent::syn()
        ]
    );
}

#[test]
fn playstation_sticks_are_bytes_centred_at_128() {
    let evs: Vec<_> = state_events(Layout::DualSense, None, &PadState::default())
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    for code in [abs::X, abs::Y, abs::RX, abs::RY] {
        assert!(evs.contains(&EvdevEvent::abs(code, 128)), "{code}: {evs:?}");
    }
    let s = PadState {
        left_x: 32767,
        left_y: 32767,
        right_x: -32768,
        right_y: -32768,
        ..Default::default()
    };
    let evs: Vec<_> = state_events(Layout::DualShock4, None, &s)
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert!(evs.contains(&EvdevEvent::abs(abs::X, 255)));
    assert!(
        evs.contains(&EvdevEvent::abs(abs::Y, 0)),
        "stick up is the top"
    );
    assert!(evs.contains(&EvdevEvent::abs(abs::RX, 0)));
    assert!(evs.contains(&EvdevEvent::abs(abs::RY, 255)));
}

#[test]
fn a_new_device_reports_every_axis() {
    let evs = xbox(None, &PadState::default());
    let codes: Vec<u16> = evs
        .iter()
        .filter(|e| e.kind == EV_ABS)
        .map(|e| e.code)
        .collect();
    assert_eq!(
        codes,
        [
            abs::X,
            abs::Y,
            abs::RX,
            abs::RY,
            abs::Z,
            abs::RZ,
            abs::HAT0X,
            abs::HAT0Y
        ]
    );
    assert_eq!(evs.last(), Some(&EvdevEvent::syn()));
}

#[test]
fn device_specs_name_the_real_pads() {
    let x = device_specs(Layout::Xbox360, 0);
    assert_eq!(x.len(), 1);
    assert_eq!(
        (x[0].name.as_str(), x[0].vendor, x[0].product),
        ("Microsoft X-Box 360 pad", 0x045e, 0x028e)
    );
    assert!(x[0].rumble);
    let stick = x[0].axes.iter().find(|a| a.code == abs::X).unwrap();
    assert_eq!(
        (stick.min, stick.max, stick.fuzz, stick.flat),
        (-32768, 32767, 16, 128)
    );
    let trig = x[0].axes.iter().find(|a| a.code == abs::Z).unwrap();
    assert_eq!((trig.min, trig.max), (0, 255));
    let hat = x[0].axes.iter().find(|a| a.code == abs::HAT0Y).unwrap();
    assert_eq!((hat.min, hat.max), (-1, 1));
    assert!(
        !x[0].keys.contains(&btn::TRIGGER_HAPPY5),
        "no paddles unless the pad has them"
    );
    let elite = device_specs(
        Layout::Xbox360,
        bits::PADDLE1 | bits::PADDLE2 | bits::PADDLE3 | bits::PADDLE4,
    );
    assert!(
        elite[0].keys.contains(&btn::TRIGGER_HAPPY5)
            && elite[0].keys.contains(&btn::TRIGGER_HAPPY8)
    );
    assert!(!elite[0].keys.contains(&btn::RECORD));

    let ds = device_specs(Layout::DualSense, 0);
    assert_eq!(
        ds.iter().map(|s| s.role).collect::<Vec<_>>(),
        [Role::Main, Role::Touchpad, Role::Motion]
    );
    assert!(ds.iter().all(|s| (s.vendor, s.product) == (0x054c, 0x0ce6)));
    assert_eq!(
        ds[0].name,
        "Sony Interactive Entertainment DualSense Wireless Controller"
    );
    assert!(ds[1].name.ends_with("Touchpad") && ds[2].name.ends_with("Motion Sensors"));
    assert!(ds[0].rumble && !ds[1].rumble && !ds[2].rumble);
    assert!(ds[2].props.contains(&INPUT_PROP_ACCELEROMETER));
    let ds4 = device_specs(Layout::DualShock4, 0);
    assert!(ds4
        .iter()
        .all(|s| (s.vendor, s.product) == (0x054c, 0x09cc)));
    assert_eq!(
        ds4[0].name,
        "Sony Interactive Entertainment Wireless Controller"
    );
}

#[test]
fn every_reported_code_is_declared() {
    for layout in [Layout::Xbox360, Layout::DualSense, Layout::DualShock4] {
        let specs = device_specs(layout, u32::MAX);
        let all = PadState {
            buttons: u32::MAX,
            left_trigger: 9,
            right_trigger: 9,
            left_x: 5,
            left_y: 5,
            right_x: 5,
            right_y: 5,
        };
        for (role, e) in state_events(layout, None, &all) {
            let spec = specs.iter().find(|s| s.role == role).unwrap();
            match e.kind {
                EV_KEY => assert!(spec.keys.contains(&e.code), "{layout:?} {e:?}"),
                EV_ABS => assert!(
                    spec.axes
                        .iter()
                        .any(|a| a.code == e.code && (a.min..=a.max).contains(&e.value)),
                    "{layout:?} {e:?}"
                ),
                _ => {}
            }
        }
    }
}

#[test]
fn layout_follows_the_controller_type() {
    assert_eq!(
        Layout::for_controller_type(0, Layout::DualSense),
        Layout::Xbox360
    );
    assert_eq!(
        Layout::for_controller_type(1, Layout::DualSense),
        Layout::Xbox360
    );
    assert_eq!(
        Layout::for_controller_type(2, Layout::DualSense),
        Layout::DualSense
    );
    assert_eq!(
        Layout::for_controller_type(2, Layout::DualShock4),
        Layout::DualShock4
    );
    assert_eq!(
        Layout::for_controller_type(3, Layout::DualSense),
        Layout::Xbox360
    );
    assert_eq!(
        Layout::for_controller_type(4, Layout::DualSense),
        Layout::Xbox360
    );
}

#[test]
fn touchpad_tracks_two_fingers() {
    let mut t = Touchpad::default();
    let l = Layout::DualSense;
    assert_eq!(
        t.handle(l, 1, 77, 0.0, 1.0),
        [
            EvdevEvent::abs(abs::MT_SLOT, 0),
            EvdevEvent::abs(abs::MT_TRACKING_ID, 0),
            EvdevEvent::abs(abs::MT_POSITION_X, 0),
            EvdevEvent::abs(abs::MT_POSITION_Y, 1079),
            EvdevEvent::key(btn::TOUCH, true),
            EvdevEvent::key(btn::TOOL_FINGER, true),
            EvdevEvent::syn()
        ]
    );
    let second = t.handle(l, 1, 78, 0.5, 0.5);
    assert_eq!(second[0], EvdevEvent::abs(abs::MT_SLOT, 1));
    assert!(second.contains(&EvdevEvent::key(btn::TOOL_DOUBLETAP, true)));
    assert_eq!(t.handle(l, 1, 79, 0.5, 0.5), [], "a third finger");
    assert_eq!(
        t.handle(l, 3, 77, 2.0, f32::NEG_INFINITY),
        [
            EvdevEvent::abs(abs::MT_SLOT, 0),
            EvdevEvent::abs(abs::MT_POSITION_X, 1919),
            EvdevEvent::abs(abs::MT_POSITION_Y, 0),
            EvdevEvent::syn()
        ]
    );
    assert_eq!(t.handle(l, 3, 77, f32::NAN, 0.5), []);
    assert_eq!(t.handle(l, 3, 5, 0.5, 0.5), [], "move of an unknown finger");
    let up = t.handle(l, 2, 78, 0.0, 0.0);
    assert_eq!(
        &up[..2],
        [
            EvdevEvent::abs(abs::MT_SLOT, 1),
            EvdevEvent::abs(abs::MT_TRACKING_ID, -1)
        ]
    );
    assert!(up.contains(&EvdevEvent::key(btn::TOOL_FINGER, true)));
    let all = t.handle(l, 7, 0, 0.0, 0.0);
    assert!(all.contains(&EvdevEvent::key(btn::TOUCH, false)), "{all:?}");
    assert_eq!(t.release_all(), []);
    // DualShock 4's pad is 942 units high.
    let ds4 = t.handle(Layout::DualShock4, 1, 1, 1.0, 1.0);
    assert!(ds4.contains(&EvdevEvent::abs(abs::MT_POSITION_Y, 941)));
}

#[test]
fn motion_is_scaled_to_driver_units() {
    let evs = motion_events(MOTION_ACCEL, 0.0, 9.80665, -19.6133).unwrap();
    assert_eq!(
        evs,
        [
            EvdevEvent::abs(abs::X, 0),
            EvdevEvent::abs(abs::Y, 8192),
            EvdevEvent::abs(abs::Z, -16384),
            EvdevEvent::syn()
        ]
    );
    let evs = motion_events(MOTION_GYRO, 1.0, -90.0, 1e9).unwrap();
    assert_eq!(
        evs,
        [
            EvdevEvent::abs(abs::RX, 1024),
            EvdevEvent::abs(abs::RY, -92160),
            EvdevEvent::abs(abs::RZ, 2048 * 1024),
            EvdevEvent::syn()
        ]
    );
    assert_eq!(motion_events(3, 0.0, 0.0, 0.0), None);
    assert_eq!(motion_events(MOTION_GYRO, f32::NAN, 0.0, 0.0), None);
}
