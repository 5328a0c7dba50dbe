//! The virtual pen tablet: one `zwp_tablet_v2` covering the output, with a pen and an eraser.
//!
//! A tool goes to the surface under it, the way the pointer does: it enters proximity there,
//! and when it moves onto another surface it leaves the old one and enters the new one.
//! Clients that bound a tablet seat (`zwp_tablet_manager_v2.get_tablet_seat`) get tablet tool
//! events. Clients that did not still see the pen: while the tip is down on one of their
//! surfaces it is one touch point, as a touch screen pen would be.

use std::collections::HashMap;

use smithay::backend::input::{
    ButtonState, TabletToolCapabilities, TabletToolDescriptor, TabletToolType,
};
use smithay::input::Seat;
use smithay::reexports::wayland_server::backend::ClientId;
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::reexports::wayland_server::{DisplayHandle, Resource};
use smithay::utils::{Logical, Point, SERIAL_COUNTER};
use smithay::wayland::tablet_manager::{
    TabletDescriptor, TabletHandle, TabletManagerState, TabletSeatTrait, TabletToolHandle,
};
use tracing::{debug, trace};

use crate::input::{TabletAxes, TabletTool};
use crate::state::State;

/// The tablet's name as clients see it.
pub(crate) const TABLET_NAME: &str = "punktfunk pen tablet";

/// Touch point id of a pen shown to a client without tablet support; far from the small
/// counters real touch contacts use.
pub(crate) const PEN_TOUCH_ID: u32 = 0xFFFF_FF00;

/// Tablet globals and what the tool is doing.
pub(crate) struct TabletState {
    _manager: TabletManagerState,
    tablet: TabletHandle,
    /// Clients by how many tablet seats they have bound.
    seat_clients: HashMap<ClientId, usize>,
    /// The tool in proximity and where it is, in output coordinates.
    active: Option<(TabletTool, Point<f64, Logical>)>,
    /// The surface the tool is over.
    focus: Option<WlSurface>,
    tip_down: bool,
    /// The tip is down on a client without tablet support: it is a touch point there.
    touch_emulation: bool,
}

impl TabletState {
    pub(crate) fn new(dh: &DisplayHandle, seat: &Seat<State>) -> Self {
        let manager = TabletManagerState::new::<State>(dh);
        let tablet = seat.tablet_seat().add_tablet::<State>(
            dh,
            &TabletDescriptor {
                name: TABLET_NAME.into(),
                usb_id: None,
                syspath: None,
            },
        );
        Self {
            _manager: manager,
            tablet,
            seat_clients: HashMap::new(),
            active: None,
            focus: None,
            tip_down: false,
            touch_emulation: false,
        }
    }

    /// A client bound a tablet seat.
    pub(crate) fn seat_bound(&mut self, client: ClientId) {
        *self.seat_clients.entry(client).or_default() += 1;
    }

    /// A client's tablet seat was destroyed (by the client, or because it disconnected).
    pub(crate) fn seat_destroyed(&mut self, client: &ClientId) {
        if let Some(count) = self.seat_clients.get_mut(client) {
            *count -= 1;
            if *count == 0 {
                self.seat_clients.remove(client);
            }
        }
    }

    fn has_tablet_seat(&self, client: &ClientId) -> bool {
        self.seat_clients.contains_key(client)
    }
}

/// What the protocol says about each tool: both report pressure, distance, tilt and rotation.
fn descriptor(tool: TabletTool) -> TabletToolDescriptor {
    TabletToolDescriptor {
        tool_type: match tool {
            TabletTool::Pen => TabletToolType::Pen,
            TabletTool::Eraser => TabletToolType::Eraser,
        },
        hardware_serial: 0,
        hardware_id_wacom: 0,
        capabilities: TabletToolCapabilities::PRESSURE
            | TabletToolCapabilities::DISTANCE
            | TabletToolCapabilities::TILT
            | TabletToolCapabilities::ROTATION,
    }
}

impl State {
    /// The handle of `tool`, announcing the tool to every tablet seat the first time.
    fn tablet_tool(&mut self, tool: TabletTool) -> TabletToolHandle {
        let dh = self.core.display_handle.clone();
        let seat = self.core.seat.tablet_seat();
        seat.add_tool::<State>(self, &dh, &descriptor(tool))
    }

    /// Announces both tools, so that clients know them before the first pen event.
    pub(crate) fn add_tablet_tools(&mut self) {
        self.tablet_tool(TabletTool::Pen);
        self.tablet_tool(TabletTool::Eraser);
    }

    pub(crate) fn tablet_proximity_in(&mut self, tool: TabletTool, x: f64, y: f64, time: u32) {
        self.tablet_motion(tool, x, y, TabletAxes::default(), time);
    }

    pub(crate) fn tablet_proximity_out(&mut self, tool: TabletTool, time: u32) {
        let tablet = &mut self.core.input.tablet;
        if tablet.active.map(|(t, _)| t) != Some(tool) {
            trace!(?tool, "proximity out of a tool not in proximity");
            return;
        }
        tablet.active = None;
        tablet.focus = None;
        tablet.tip_down = false;
        if std::mem::take(&mut tablet.touch_emulation) {
            // Leaving with the tip down abandons the stroke.
            self.touch_cancel();
        }
        // Lifts the tip first if it is down.
        self.tablet_tool(tool).proximity_out(time);
    }

    /// Moves `tool` to (`x`, `y`) in output pixels with the axes that changed; brings it into
    /// proximity first if it is not, and takes another tool out of proximity.
    pub(crate) fn tablet_motion(
        &mut self,
        tool: TabletTool,
        x: f64,
        y: f64,
        axes: TabletAxes,
        time: u32,
    ) {
        if let Some((other, _)) = self.core.input.tablet.active {
            if other != tool {
                self.tablet_proximity_out(other, time);
            }
        }
        let location = self.core.clamp_to_output((x, y).into());
        let under = self.core.surface_under(location);
        let focus_surface = under.as_ref().map(|u| u.surface.clone());
        // In the coordinates of the window under the tool (see `crate::scaling`).
        let tool_location = under
            .as_ref()
            .map_or(location, |u| u.input.to_window(location));
        let focus = under.map(|u| u.focus());
        let state = &mut self.core.input.tablet;
        // Coming into proximity, or onto another surface, sends proximity_in with a motion of
        // its own; the axes only go with the motion after that.
        let entering = state.active.is_none() || state.focus != focus_surface;
        state.active = Some((tool, location));
        state.focus = focus_surface;
        let tablet = state.tablet.clone();
        let handle = self.tablet_tool(tool);
        if entering {
            handle.motion(
                tool_location,
                focus.clone(),
                &tablet,
                SERIAL_COUNTER.next_serial(),
                time,
            );
        }
        let mut axes_changed = false;
        if let Some(pressure) = axes.pressure {
            handle.pressure(f64::from(pressure) / 65535.0);
            axes_changed = true;
        }
        if let Some(distance) = axes.distance {
            handle.distance(f64::from(distance) / 65535.0);
            axes_changed = true;
        }
        if let Some(tilt) = axes.tilt {
            handle.tilt(tilt);
            axes_changed = true;
        }
        if let Some(rotation) = axes.rotation {
            handle.rotation(rotation);
            axes_changed = true;
        }
        if !entering || axes_changed {
            handle.motion(
                tool_location,
                focus,
                &tablet,
                SERIAL_COUNTER.next_serial(),
                time,
            );
        }
        if self.core.input.tablet.touch_emulation {
            self.touch_motion(PEN_TOUCH_ID, location.x, location.y, time);
        }
    }

    pub(crate) fn tablet_tip(&mut self, tool: TabletTool, down: bool, time: u32) {
        let Some((active, location)) = self.core.input.tablet.active else {
            debug!(?tool, down, "tip event of a tool not in proximity, dropped");
            return;
        };
        if active != tool {
            debug!(
                ?tool,
                ?active,
                "tip event of a tool not in proximity, dropped"
            );
            return;
        }
        if self.core.input.tablet.tip_down == down {
            trace!(down, "tip already in that state");
            return;
        }
        self.core.input.tablet.tip_down = down;
        let handle = self.tablet_tool(tool);
        if down {
            handle.tip_down(SERIAL_COUNTER.next_serial(), time);
            let client = self
                .core
                .surface_under(location)
                .and_then(|under| self.client_of(&under.surface));
            let tablet_client = client.is_some_and(|c| self.core.input.tablet.has_tablet_seat(&c));
            if !tablet_client {
                self.core.input.tablet.touch_emulation = true;
                self.touch_down(PEN_TOUCH_ID, location.x, location.y, time);
            }
        } else {
            handle.tip_up(time);
            if std::mem::take(&mut self.core.input.tablet.touch_emulation) {
                self.touch_up(PEN_TOUCH_ID, time);
            }
        }
    }

    pub(crate) fn tablet_button(
        &mut self,
        tool: TabletTool,
        button: u32,
        pressed: bool,
        time: u32,
    ) {
        if self.core.input.tablet.active.map(|(t, _)| t) != Some(tool) {
            debug!(?tool, button, "button of a tool not in proximity, dropped");
            return;
        }
        let state = if pressed {
            ButtonState::Pressed
        } else {
            ButtonState::Released
        };
        self.tablet_tool(tool)
            .button(button, state, SERIAL_COUNTER.next_serial(), time);
    }

    fn client_of(&self, surface: &WlSurface) -> Option<ClientId> {
        self.core
            .display_handle
            .get_client(surface.id())
            .ok()
            .map(|c| c.id())
    }
}
