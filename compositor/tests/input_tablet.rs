//! The pen as a tablet tool: a client with a tablet seat gets proximity, motion, tip, pressure,
//! tilt, rotation and buttons on the surface under the tool, in that surface's coordinates; a
//! client without one (wev) gets the pen as a touch point.

mod common;

use std::time::Duration;

use common::tablet::ToolEvent;
use common::wl::WlClient;
use common::{have, Client, Fixture, MODE};
use compositor::{InputEvent, TabletAxes, TabletTool};
use wayland_protocols::wp::tablet::zv2::client::zwp_tablet_tool_v2::{Capability, Type};
use wayland_protocols::xdg::shell::client::xdg_positioner::ConstraintAdjustment;

const T: Duration = Duration::from_secs(5);
/// evdev `BTN_STYLUS`.
const BTN_STYLUS: u32 = 0x14b;

fn socket(f: &Fixture) -> std::path::PathBuf {
    f.handle.runtime_dir().join(f.handle.socket_name())
}

/// Waits until the client has recorded `n` tool events; returns those after `skip` without
/// the frame events.
fn tool_events(c: &mut WlClient, skip: usize, n: usize) -> Vec<ToolEvent> {
    let done = c.wait_until(T, |app| {
        app.tablet
            .events
            .iter()
            .skip(skip)
            .filter(|e| !matches!(e, ToolEvent::Frame { .. }))
            .count()
            >= n
    });
    // Anything the compositor sent beyond what was waited for shows up in the assertion.
    c.roundtrip();
    let events: Vec<ToolEvent> = c
        .app
        .tablet
        .events
        .iter()
        .skip(skip)
        .filter(|e| !matches!(e, ToolEvent::Frame { .. }))
        .cloned()
        .collect();
    assert!(done, "only {events:?}");
    events
}

#[test]
fn a_tablet_client_sees_the_pen_on_the_surface_under_it() {
    let f = Fixture::new(MODE);
    let mut c = WlClient::connect(&socket(&f));
    c.bind_tablet_seat();
    assert_eq!(c.app.tablet.tablets, ["punktfunk pen tablet"]);
    let pen = c.tablet_tool(Type::Pen).expect("a pen");
    let eraser = c.tablet_tool(Type::Eraser).expect("an eraser");
    for tool in [pen, eraser] {
        let info = &c.app.tablet.tools[tool];
        assert!(info.done);
        for cap in [
            Capability::Pressure,
            Capability::Distance,
            Capability::Tilt,
            Capability::Rotation,
        ] {
            assert!(info.capabilities.contains(&cap), "{info:?} lacks {cap:?}");
        }
    }

    // A window filling the output, and a popup on it at an offset.
    let parent = c.create_toplevel(0xffff_0000, None);
    c.commit(parent);
    c.wait_mapped(parent);
    let popup = c.create_popup(
        parent,
        0xff00_ff00,
        (100, 80),
        (200, 150, 1, 1),
        ConstraintAdjustment::empty(),
    );
    c.wait_mapped(popup);
    let (px, py, _, _) = c.app.windows[popup].popup_geometry.unwrap();
    let (px, py) = (f64::from(px), f64::from(py));
    assert_eq!((px, py), (201.0, 151.0));

    // Into proximity over the parent.
    f.handle.send_input(InputEvent::TabletProximityIn {
        tool: TabletTool::Pen,
        x: 50.5,
        y: 40.25,
    });
    assert_eq!(
        tool_events(&mut c, 0, 2),
        [
            ToolEvent::ProximityIn {
                tool: pen,
                tablet: 0,
                window: Some(parent)
            },
            ToolEvent::Motion {
                tool: pen,
                x: 50.5,
                y: 40.25
            },
        ]
    );

    // Hovering onto the popup: the parent loses the tool, the popup gets it in its own
    // coordinates, with the hover distance.
    let skip = c.app.tablet.events.len();
    f.handle.send_input(InputEvent::TabletMotion {
        tool: TabletTool::Pen,
        x: px + 10.5,
        y: py + 20.0,
        axes: TabletAxes {
            pressure: Some(0),
            distance: Some(30_000),
            ..TabletAxes::default()
        },
    });
    assert_eq!(
        tool_events(&mut c, skip, 6),
        [
            ToolEvent::ProximityOut { tool: pen },
            ToolEvent::ProximityIn {
                tool: pen,
                tablet: 0,
                window: Some(popup)
            },
            ToolEvent::Motion {
                tool: pen,
                x: 10.5,
                y: 20.0
            },
            ToolEvent::Motion {
                tool: pen,
                x: 10.5,
                y: 20.0
            },
            ToolEvent::Pressure {
                tool: pen,
                pressure: 0
            },
            ToolEvent::Distance {
                tool: pen,
                distance: 30_000
            },
        ]
    );

    // Touching down with pressure, tilt and rotation, a barrel button, lifting, leaving.
    let skip = c.app.tablet.events.len();
    f.handle.send_input(InputEvent::TabletMotion {
        tool: TabletTool::Pen,
        x: px + 12.0,
        y: py + 22.0,
        axes: TabletAxes {
            pressure: Some(40_000),
            distance: Some(0),
            tilt: Some((-30.0, 15.5)),
            rotation: Some(45.0),
        },
    });
    f.handle.send_input(InputEvent::TabletTip {
        tool: TabletTool::Pen,
        down: true,
    });
    f.handle.send_input(InputEvent::TabletButton {
        tool: TabletTool::Pen,
        button: BTN_STYLUS,
        pressed: true,
    });
    f.handle.send_input(InputEvent::TabletTip {
        tool: TabletTool::Pen,
        down: false,
    });
    f.handle.send_input(InputEvent::TabletProximityOut {
        tool: TabletTool::Pen,
    });
    assert_eq!(
        tool_events(&mut c, skip, 9),
        [
            ToolEvent::Motion {
                tool: pen,
                x: 12.0,
                y: 22.0
            },
            ToolEvent::Pressure {
                tool: pen,
                pressure: 40_000
            },
            ToolEvent::Distance {
                tool: pen,
                distance: 0
            },
            ToolEvent::Tilt {
                tool: pen,
                x: -30.0,
                y: 15.5
            },
            ToolEvent::Rotation {
                tool: pen,
                degrees: 45.0
            },
            ToolEvent::Down { tool: pen },
            ToolEvent::Button {
                tool: pen,
                button: BTN_STYLUS,
                pressed: true
            },
            ToolEvent::Up { tool: pen },
            ToolEvent::ProximityOut { tool: pen },
        ]
    );

    // The eraser is a tool of its own.
    let skip = c.app.tablet.events.len();
    f.handle.send_input(InputEvent::TabletProximityIn {
        tool: TabletTool::Eraser,
        x: 300.0,
        y: 400.0,
    });
    assert_eq!(
        tool_events(&mut c, skip, 2),
        [
            ToolEvent::ProximityIn {
                tool: eraser,
                tablet: 0,
                window: Some(parent)
            },
            ToolEvent::Motion {
                tool: eraser,
                x: 300.0,
                y: 400.0
            },
        ]
    );
    // This client has a tablet seat: the tip was never a touch point.
    assert_eq!(c.app.tablet.touch_downs, []);
}

fn expect_line(client: &Client, skip: usize, needle: &str) -> String {
    client.wait_line_after(skip, needle, T).unwrap_or_else(|| {
        panic!(
            "{} never printed {needle:?}; output:\n{}",
            client.name,
            client.output()
        )
    })
}

#[test]
fn a_client_without_tablet_support_gets_the_pen_as_touch() {
    if !have("wev") {
        return;
    }
    let f = Fixture::new(MODE);
    let wev = f.spawn_client("wev", &[]);
    expect_line(&wev, 0, "wl_keyboard] enter");

    // Hovering is not a touch.
    f.handle.send_input(InputEvent::TabletProximityIn {
        tool: TabletTool::Pen,
        x: 100.0,
        y: 60.0,
    });
    f.handle.send_input(InputEvent::TabletMotion {
        tool: TabletTool::Pen,
        x: 120.0,
        y: 80.0,
        axes: TabletAxes {
            pressure: Some(50_000),
            ..TabletAxes::default()
        },
    });
    f.handle.send_input(InputEvent::TabletTip {
        tool: TabletTool::Pen,
        down: true,
    });
    let down = expect_line(&wev, 0, "wl_touch] down");
    assert!(down.contains("x, y: 120.000000, 80.000000"), "{down}");
    assert!(
        !wev.output().contains("wl_touch] motion"),
        "hovering moved a touch point:\n{}",
        wev.output()
    );

    f.handle.send_input(InputEvent::TabletMotion {
        tool: TabletTool::Pen,
        x: 130.5,
        y: 90.0,
        axes: TabletAxes::default(),
    });
    let motion = expect_line(&wev, 0, "wl_touch] motion");
    assert!(motion.contains("x, y: 130.500000, 90.000000"), "{motion}");
    f.handle.send_input(InputEvent::TabletTip {
        tool: TabletTool::Pen,
        down: false,
    });
    expect_line(&wev, 0, "wl_touch] up");

    // Leaving proximity with the tip down abandons the stroke: the touch is cancelled.
    let skip = wev.line_count();
    f.handle.send_input(InputEvent::TabletTip {
        tool: TabletTool::Pen,
        down: true,
    });
    expect_line(&wev, skip, "wl_touch] down");
    f.handle.send_input(InputEvent::TabletProximityOut {
        tool: TabletTool::Pen,
    });
    expect_line(&wev, skip, "wl_touch] cancel");
}
