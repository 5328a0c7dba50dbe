//! Input packets built byte by byte the way moonlight-common-c sends them.

use proptest::prelude::*;
use protocol::input::{vk_to_evdev, ControllerState, InputError, InputPacket, MouseButton};

/// BE32 size, LE32 magic, then the body.
fn packet(magic: u32, body: &[u8]) -> Vec<u8> {
    let mut p = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    p.extend_from_slice(&magic.to_le_bytes());
    p.extend_from_slice(body);
    p
}

#[test]
fn keyboard_a_down_with_high_byte_flag() {
    // flags 0, keyCode 0x8041 LE, modifiers SHIFT, two zero bytes.
    let p = packet(3, &[0x00, 0x41, 0x80, 0x01, 0x00, 0x00]);
    assert_eq!(p, [0, 0, 0, 10, 3, 0, 0, 0, 0, 0x41, 0x80, 0x01, 0, 0]);
    assert_eq!(
        InputPacket::parse(&p),
        Ok(InputPacket::KeyDown {
            vk: 0x41,
            modifiers: 1,
            flags: 0
        })
    );
    assert_eq!(vk_to_evdev(0x41), Some(30));
    let up = packet(4, &[0x01, 0x5A, 0x00, 0x00, 0x00, 0x00]);
    assert_eq!(
        InputPacket::parse(&up),
        Ok(InputPacket::KeyUp {
            vk: 0x5A,
            modifiers: 0,
            flags: 1
        })
    );
}

#[test]
fn mouse_packets() {
    // Absolute at (640, 360) in a 1280x720 reference: width/height sent minus one, big-endian.
    let abs = packet(5, &[0x02, 0x80, 0x01, 0x68, 0, 0, 0x04, 0xFF, 0x02, 0xCF]);
    assert_eq!(abs.len(), 18);
    assert_eq!(
        InputPacket::parse(&abs),
        Ok(InputPacket::MouseMoveAbs {
            x: 640,
            y: 360,
            ref_width: 1280,
            ref_height: 720
        })
    );
    let zero_ref = packet(5, &[0, 1, 0, 1, 0, 0, 0, 0, 0x02, 0xCF]);
    assert_eq!(
        InputPacket::parse(&zero_ref),
        Err(InputError::InvalidReferenceSize)
    );

    let rel = packet(7, &[0xFF, 0xFF, 0x00, 0x01]);
    assert_eq!(
        InputPacket::parse(&rel),
        Ok(InputPacket::MouseMoveRel { dx: -1, dy: 1 })
    );

    let down = packet(8, &[3]);
    assert_eq!(
        InputPacket::parse(&down),
        Ok(InputPacket::MouseButton {
            button: MouseButton::Right,
            pressed: true
        })
    );
    let up = packet(9, &[5]);
    assert_eq!(
        InputPacket::parse(&up),
        Ok(InputPacket::MouseButton {
            button: MouseButton::X2,
            pressed: false
        })
    );
    assert_eq!(
        InputPacket::parse(&packet(8, &[6])),
        Err(InputError::InvalidButton(6))
    );
    assert_eq!(MouseButton::Left.evdev_code(), 0x110);
    assert_eq!(MouseButton::X1.evdev_code(), 0x113);

    let scroll = packet(0x0A, &[0xFF, 0x88, 0xFF, 0x88, 0, 0]);
    assert_eq!(
        InputPacket::parse(&scroll),
        Ok(InputPacket::ScrollVertical { amount: -120 })
    );
    let hscroll = packet(0x5500_0001, &[0x00, 0x78]);
    assert_eq!(
        InputPacket::parse(&hscroll),
        Ok(InputPacket::ScrollHorizontal { amount: 120 })
    );
}

#[test]
fn text_and_haptics() {
    let text = packet(0x17, "é".as_bytes());
    assert_eq!(
        InputPacket::parse(&text),
        Ok(InputPacket::Utf8Text("é".into()))
    );
    assert_eq!(
        InputPacket::parse(&packet(0x17, &[0xFF])),
        Err(InputError::InvalidText)
    );
    assert_eq!(
        InputPacket::parse(&packet(0x17, &[])),
        Err(InputError::InvalidText)
    );
    assert_eq!(
        InputPacket::parse(&packet(0x0D, &[1, 0])),
        Ok(InputPacket::EnableHaptics)
    );
}

#[test]
fn gamepad_packets() {
    let mut body = Vec::new();
    for v in [0x001Au16, 1, 0b11, 0x0014, 0x1010] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    body.extend_from_slice(&[200, 10]);
    for v in [-32768i16, 32767, 5, -5] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    for v in [0x009Cu16, 0x0010, 0x0055] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    let p = packet(0x0C, &body);
    assert_eq!(p.len(), 34);
    assert_eq!(
        InputPacket::parse(&p),
        Ok(InputPacket::MultiController(ControllerState {
            controller: 1,
            active_mask: 0b11,
            buttons: 0x0010_1010,
            left_trigger: 200,
            right_trigger: 10,
            left_stick_x: -32768,
            left_stick_y: 32767,
            right_stick_x: 5,
            right_stick_y: -5,
        }))
    );

    let arrival = packet(0x5500_0004, &[2, 2, 0x3F, 0x01, 0xFF, 0xF7, 0x3F, 0x00]);
    assert_eq!(
        InputPacket::parse(&arrival),
        Ok(InputPacket::ControllerArrival {
            controller: 2,
            controller_type: 2,
            capabilities: 0x013F,
            supported_buttons: 0x003F_F7FF,
        })
    );

    let mut motion = vec![1, 2, 0, 0];
    for v in [0.5f32, -1.0, 9.81] {
        motion.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(
        InputPacket::parse(&packet(0x5500_0006, &motion)),
        Ok(InputPacket::ControllerMotion {
            controller: 1,
            motion_type: 2,
            x: 0.5,
            y: -1.0,
            z: 9.81
        })
    );

    let mut touch = vec![0, 1, 0, 1];
    touch.extend_from_slice(&7u32.to_le_bytes());
    for v in [0.25f32, 0.75, 1.0] {
        touch.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(
        InputPacket::parse(&packet(0x5500_0005, &touch)),
        Ok(InputPacket::ControllerTouch {
            controller: 0,
            event_type: 1,
            touchpad: 1,
            pointer_id: 7,
            x: 0.25,
            y: 0.75,
            pressure: 1.0,
        })
    );

    assert_eq!(
        InputPacket::parse(&packet(0x5500_0007, &[3, 3, 80, 0])),
        Ok(InputPacket::ControllerBattery {
            controller: 3,
            state: 3,
            percentage: 80
        })
    );
}

#[test]
fn touch_and_pen() {
    let mut touch = vec![1, 0];
    touch.extend_from_slice(&0xFFFFu16.to_le_bytes());
    touch.extend_from_slice(&42u32.to_le_bytes());
    for v in [0.1f32, 0.2, 0.3, 0.04, 0.05] {
        touch.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(
        InputPacket::parse(&packet(0x5500_0002, &touch)),
        Ok(InputPacket::Touch {
            event_type: 1,
            rotation: 0xFFFF,
            pointer_id: 42,
            x: 0.1,
            y: 0.2,
            pressure_or_distance: 0.3,
            contact_area_major: 0.04,
            contact_area_minor: 0.05,
        })
    );

    let mut pen = vec![3, 1, 0x01, 0];
    for v in [0.5f32, 0.6, 0.7] {
        pen.extend_from_slice(&v.to_le_bytes());
    }
    pen.extend_from_slice(&90u16.to_le_bytes());
    pen.extend_from_slice(&[45, 0]);
    for v in [0.01f32, 0.02] {
        pen.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(
        InputPacket::parse(&packet(0x5500_0003, &pen)),
        Ok(InputPacket::Pen {
            event_type: 3,
            tool_type: 1,
            pen_buttons: 1,
            x: 0.5,
            y: 0.6,
            pressure_or_distance: 0.7,
            rotation: 90,
            tilt: 45,
            contact_area_major: 0.01,
            contact_area_minor: 0.02,
        })
    );
}

#[test]
fn malformed_packets_are_rejected() {
    let key = packet(3, &[0, 0x41, 0, 0, 0, 0]);
    assert_eq!(InputPacket::parse(&key[..7]), Err(InputError::TooShort(7)));
    assert!(matches!(
        InputPacket::parse(&key[..13]),
        Err(InputError::SizeMismatch { .. })
    ));
    let mut oversized = key.clone();
    oversized.push(0);
    assert!(matches!(
        InputPacket::parse(&oversized),
        Err(InputError::SizeMismatch { .. })
    ));
    // Size field consistent but the body is not the fixed length of the type.
    let short_key = packet(3, &[0, 0x41, 0, 0, 0]);
    assert_eq!(
        InputPacket::parse(&short_key),
        Err(InputError::BadLength {
            magic: 3,
            expected: 14,
            got: 13
        })
    );
    assert_eq!(
        InputPacket::parse(&packet(0x06, &[0, 0, 0, 0])),
        Err(InputError::UnknownMagic(6))
    );
}

#[test]
fn vk_table() {
    let cases = [
        (0x08, 14),
        (0x0D, 28),
        (0x1B, 1),
        (0x30, 11),
        (0x31, 2),
        (0x39, 10),
        (0x42, 48),
        (0x5A, 44),
        (0x60, 82),
        (0x69, 73),
        (0x70, 59),
        (0x79, 68),
        (0x7A, 87),
        (0x7B, 88),
        (0x7C, 183),
        (0x85, 192),
        (0x87, 194),
        (0xA5, 100),
        (0xC0, 41),
        (0xE2, 86),
        (0x5D, 127),
        (0xAC, 172),
    ];
    for (vk, code) in cases {
        assert_eq!(vk_to_evdev(vk), Some(code), "vk {vk:#x}");
    }
    assert_eq!(vk_to_evdev(0x2B), None);
    assert_eq!(vk_to_evdev(0xFF), None);
    // Generic modifiers map like their left-hand variants.
    assert_eq!(vk_to_evdev(0x10), vk_to_evdev(0xA0));
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
        let _ = InputPacket::parse(&bytes);
    }

    #[test]
    fn random_bodies_with_valid_size_never_panic(
        magic in prop_oneof![0u32..0x20, 0x5500_0000u32..0x5500_0010],
        body in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let _ = InputPacket::parse(&packet(magic, &body));
    }
}
