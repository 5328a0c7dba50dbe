//! Tablet tools for the test client in [`super::wl`]: binds a tablet seat (and the seat's
//! touch, to see that the pen does not arrive twice) and records what the tools report.

use wayland_client::protocol::wl_touch;
use wayland_client::{event_created_child, Connection, Dispatch, QueueHandle, WEnum};
use wayland_protocols::wp::tablet::zv2::client::{
    zwp_tablet_manager_v2, zwp_tablet_seat_v2, zwp_tablet_tool_v2, zwp_tablet_v2,
};

use super::wl::{App, WlClient};

/// What the tablet seat announced and every tool event since, in order.
#[derive(Debug, Default)]
pub struct TabletLog {
    /// Names of the tablets.
    pub tablets: Vec<String>,
    tablet_proxies: Vec<zwp_tablet_v2::ZwpTabletV2>,
    pub tools: Vec<ToolInfo>,
    tool_proxies: Vec<zwp_tablet_tool_v2::ZwpTabletToolV2>,
    pub events: Vec<ToolEvent>,
    /// wl_touch down events: (surface x, surface y).
    pub touch_downs: Vec<(f64, f64)>,
}

/// A tool as announced.
#[derive(Debug, Default, Clone)]
pub struct ToolInfo {
    pub tool_type: Option<zwp_tablet_tool_v2::Type>,
    pub capabilities: Vec<zwp_tablet_tool_v2::Capability>,
    pub done: bool,
}

/// A tool event; `tool` is the index into [`TabletLog::tools`].
#[derive(Debug, Clone, PartialEq)]
pub enum ToolEvent {
    /// The tool entered `window` (a [`WlClient`] window index) of tablet `tablet`.
    ProximityIn {
        tool: usize,
        tablet: usize,
        window: Option<usize>,
    },
    ProximityOut {
        tool: usize,
    },
    Motion {
        tool: usize,
        x: f64,
        y: f64,
    },
    Pressure {
        tool: usize,
        pressure: u32,
    },
    Distance {
        tool: usize,
        distance: u32,
    },
    Tilt {
        tool: usize,
        x: f64,
        y: f64,
    },
    Rotation {
        tool: usize,
        degrees: f64,
    },
    Down {
        tool: usize,
    },
    Up {
        tool: usize,
    },
    Button {
        tool: usize,
        button: u32,
        pressed: bool,
    },
    Frame {
        tool: usize,
    },
}

impl WlClient {
    /// Binds `zwp_tablet_manager_v2`, gets the tablet seat of the seat and the seat's touch,
    /// and waits until the compositor has announced its tablets and tools.
    pub fn bind_tablet_seat(&mut self) {
        let manager: zwp_tablet_manager_v2::ZwpTabletManagerV2 = self.bind(1);
        manager.get_tablet_seat(&self.app.seat, &self.app.qh, ());
        self.app.seat.get_touch(&self.app.qh, ());
        self.roundtrip();
        self.roundtrip();
    }

    /// The index of the first announced tool of `tool_type`.
    pub fn tablet_tool(&self, tool_type: zwp_tablet_tool_v2::Type) -> Option<usize> {
        self.app
            .tablet
            .tools
            .iter()
            .position(|t| t.tool_type == Some(tool_type))
    }
}

impl TabletLog {
    fn tool_of(&self, tool: &zwp_tablet_tool_v2::ZwpTabletToolV2) -> usize {
        self.tool_proxies
            .iter()
            .position(|t| t == tool)
            .expect("an announced tool")
    }
}

impl Dispatch<zwp_tablet_manager_v2::ZwpTabletManagerV2, ()> for App {
    fn event(
        _: &mut Self,
        _: &zwp_tablet_manager_v2::ZwpTabletManagerV2,
        _: zwp_tablet_manager_v2::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

impl Dispatch<zwp_tablet_seat_v2::ZwpTabletSeatV2, ()> for App {
    fn event(
        app: &mut Self,
        _: &zwp_tablet_seat_v2::ZwpTabletSeatV2,
        event: zwp_tablet_seat_v2::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            zwp_tablet_seat_v2::Event::TabletAdded { id } => {
                app.tablet.tablet_proxies.push(id);
                app.tablet.tablets.push(String::new());
            }
            zwp_tablet_seat_v2::Event::ToolAdded { id } => {
                app.tablet.tool_proxies.push(id);
                app.tablet.tools.push(ToolInfo::default());
            }
            _ => {}
        }
    }

    event_created_child!(App, zwp_tablet_seat_v2::ZwpTabletSeatV2, [
        zwp_tablet_seat_v2::EVT_TABLET_ADDED_OPCODE => (zwp_tablet_v2::ZwpTabletV2, ()),
        zwp_tablet_seat_v2::EVT_TOOL_ADDED_OPCODE => (zwp_tablet_tool_v2::ZwpTabletToolV2, ()),
    ]);
}

impl Dispatch<zwp_tablet_v2::ZwpTabletV2, ()> for App {
    fn event(
        app: &mut Self,
        tablet: &zwp_tablet_v2::ZwpTabletV2,
        event: zwp_tablet_v2::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let zwp_tablet_v2::Event::Name { name } = event {
            let log = &mut app.tablet;
            if let Some(i) = log.tablet_proxies.iter().position(|t| t == tablet) {
                log.tablets[i] = name;
            }
        }
    }
}

impl Dispatch<zwp_tablet_tool_v2::ZwpTabletToolV2, ()> for App {
    fn event(
        app: &mut Self,
        proxy: &zwp_tablet_tool_v2::ZwpTabletToolV2,
        event: zwp_tablet_tool_v2::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        use zwp_tablet_tool_v2::Event as E;
        let tool = app.tablet.tool_of(proxy);
        let recorded = match event {
            E::Type {
                tool_type: WEnum::Value(t),
            } => {
                app.tablet.tools[tool].tool_type = Some(t);
                None
            }
            E::Capability {
                capability: WEnum::Value(c),
            } => {
                app.tablet.tools[tool].capabilities.push(c);
                None
            }
            E::Done => {
                app.tablet.tools[tool].done = true;
                None
            }
            E::ProximityIn {
                tablet, surface, ..
            } => Some(ToolEvent::ProximityIn {
                tool,
                tablet: app
                    .tablet
                    .tablet_proxies
                    .iter()
                    .position(|t| *t == tablet)
                    .expect("an announced tablet"),
                window: app.windows.iter().position(|w| w.surface == surface),
            }),
            E::ProximityOut => Some(ToolEvent::ProximityOut { tool }),
            E::Motion { x, y } => Some(ToolEvent::Motion { tool, x, y }),
            E::Pressure { pressure } => Some(ToolEvent::Pressure { tool, pressure }),
            E::Distance { distance } => Some(ToolEvent::Distance { tool, distance }),
            E::Tilt { tilt_x, tilt_y } => Some(ToolEvent::Tilt {
                tool,
                x: tilt_x,
                y: tilt_y,
            }),
            E::Rotation { degrees } => Some(ToolEvent::Rotation { tool, degrees }),
            E::Down { .. } => Some(ToolEvent::Down { tool }),
            E::Up => Some(ToolEvent::Up { tool }),
            E::Button { button, state, .. } => Some(ToolEvent::Button {
                tool,
                button,
                pressed: state == WEnum::Value(zwp_tablet_tool_v2::ButtonState::Pressed),
            }),
            E::Frame { .. } => Some(ToolEvent::Frame { tool }),
            _ => None,
        };
        app.tablet.events.extend(recorded);
    }
}

impl Dispatch<wl_touch::WlTouch, ()> for App {
    fn event(
        app: &mut Self,
        _: &wl_touch::WlTouch,
        event: wl_touch::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_touch::Event::Down { x, y, .. } = event {
            app.tablet.touch_downs.push((x, y));
        }
    }
}
