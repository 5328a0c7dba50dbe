//! Tablet tools (`zwp_tablet_tool_v2`): every tool event is printed as a line named after it,
//! with the tool's type (`pen`, `eraser`, ...) as `tool`.

use std::sync::Mutex;

use wayland_client::globals::GlobalList;
use wayland_client::protocol::wl_seat;
use wayland_client::{event_created_child, Connection, Dispatch, QueueHandle, WEnum};
use wayland_protocols::wp::tablet::zv2::client::{
    zwp_tablet_manager_v2, zwp_tablet_seat_v2, zwp_tablet_tool_v2, zwp_tablet_v2,
};

use super::State;
use crate::events::{self, emit};

/// Binds the tablet manager, if the compositor has one, and asks for the seat's tablet seat.
pub(super) fn bind(globals: &GlobalList, qh: &QueueHandle<State>, seat: &wl_seat::WlSeat) {
    let manager: Result<zwp_tablet_manager_v2::ZwpTabletManagerV2, _> = globals.bind(qh, 1..=1, ());
    if let Ok(manager) = manager {
        manager.get_tablet_seat(seat, qh, ());
    }
}

/// A tool's type name, filled in by its `type` event.
#[derive(Debug, Default)]
pub(super) struct ToolType(Mutex<&'static str>);

fn type_name(tool_type: WEnum<zwp_tablet_tool_v2::Type>) -> &'static str {
    use zwp_tablet_tool_v2::Type;
    match tool_type {
        WEnum::Value(Type::Pen) => "pen",
        WEnum::Value(Type::Eraser) => "eraser",
        WEnum::Value(Type::Brush) => "brush",
        WEnum::Value(Type::Pencil) => "pencil",
        WEnum::Value(Type::Airbrush) => "airbrush",
        WEnum::Value(Type::Finger) => "finger",
        WEnum::Value(Type::Mouse) => "mouse",
        WEnum::Value(Type::Lens) => "lens",
        _ => "unknown",
    }
}

wayland_client::delegate_noop!(State: ignore zwp_tablet_manager_v2::ZwpTabletManagerV2);
wayland_client::delegate_noop!(State: ignore zwp_tablet_v2::ZwpTabletV2);

impl Dispatch<zwp_tablet_seat_v2::ZwpTabletSeatV2, ()> for State {
    fn event(
        _: &mut Self,
        _: &zwp_tablet_seat_v2::ZwpTabletSeatV2,
        _: zwp_tablet_seat_v2::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }

    event_created_child!(State, zwp_tablet_seat_v2::ZwpTabletSeatV2, [
        zwp_tablet_seat_v2::EVT_TABLET_ADDED_OPCODE => (zwp_tablet_v2::ZwpTabletV2, ()),
        zwp_tablet_seat_v2::EVT_TOOL_ADDED_OPCODE =>
            (zwp_tablet_tool_v2::ZwpTabletToolV2, ToolType::default()),
    ]);
}

impl Dispatch<zwp_tablet_tool_v2::ZwpTabletToolV2, ToolType> for State {
    fn event(
        _: &mut Self,
        _: &zwp_tablet_tool_v2::ZwpTabletToolV2,
        event: zwp_tablet_tool_v2::Event,
        tool_type: &ToolType,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        use zwp_tablet_tool_v2::Event as E;
        let mut name = tool_type.0.lock().unwrap_or_else(|e| e.into_inner());
        let tool = *name;
        let line = match event {
            E::Type { tool_type } => {
                *name = type_name(tool_type);
                return;
            }
            E::ProximityIn { .. } => events::tablet("tablet_proximity_in", tool),
            E::ProximityOut => events::tablet("tablet_proximity_out", tool),
            E::Down { .. } => events::tablet("tablet_down", tool),
            E::Up => events::tablet("tablet_up", tool),
            E::Motion { x, y } => events::tablet_xy("tablet_motion", tool, x, y),
            E::Tilt { tilt_x, tilt_y } => events::tablet_xy("tablet_tilt", tool, tilt_x, tilt_y),
            E::Pressure { pressure } => events::tablet_value("tablet_pressure", tool, pressure),
            E::Distance { distance } => events::tablet_value("tablet_distance", tool, distance),
            E::Rotation { degrees } => events::tablet_value("tablet_rotation", tool, degrees),
            E::Button { button, state, .. } => {
                let state = match state {
                    WEnum::Value(zwp_tablet_tool_v2::ButtonState::Pressed) => "pressed",
                    _ => "released",
                };
                events::tablet_button(tool, button, state)
            }
            _ => return,
        };
        emit(line);
    }
}
