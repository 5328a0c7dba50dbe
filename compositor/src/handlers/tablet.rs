//! zwp_tablet_manager_v2: the virtual pen tablet (see `crate::tablet`).
//!
//! The manager and tablet seat requests go through Smithay's handlers; on the way the
//! compositor notes which clients have a tablet seat, so that the others get the pen as touch.

use smithay::reexports::wayland_protocols::wp::tablet::zv2::server::zwp_tablet_manager_v2::{
    self, ZwpTabletManagerV2,
};
use smithay::reexports::wayland_protocols::wp::tablet::zv2::server::zwp_tablet_seat_v2::{
    self, ZwpTabletSeatV2,
};
use smithay::reexports::wayland_protocols::wp::tablet::zv2::server::zwp_tablet_tool_v2::ZwpTabletToolV2;
use smithay::reexports::wayland_protocols::wp::tablet::zv2::server::zwp_tablet_v2::ZwpTabletV2;
use smithay::reexports::wayland_server::backend::ClientId;
use smithay::reexports::wayland_server::{
    delegate_dispatch, delegate_global_dispatch, Client, DataInit, Dispatch, DisplayHandle,
};
use smithay::wayland::tablet_manager::{
    TabletManagerState, TabletSeatHandler, TabletSeatUserData, TabletToolUserData, TabletUserData,
};

use crate::state::State;

// Tool cursor images are not drawn: the stream shows the pointer's cursor only.
impl TabletSeatHandler for State {}

impl Dispatch<ZwpTabletManagerV2, ()> for State {
    fn request(
        state: &mut Self,
        client: &Client,
        manager: &ZwpTabletManagerV2,
        request: zwp_tablet_manager_v2::Request,
        data: &(),
        dh: &DisplayHandle,
        data_init: &mut DataInit<'_, Self>,
    ) {
        if let zwp_tablet_manager_v2::Request::GetTabletSeat { .. } = request {
            state.core.input.tablet.seat_bound(client.id());
        }
        <TabletManagerState as Dispatch<ZwpTabletManagerV2, (), Self>>::request(
            state, client, manager, request, data, dh, data_init,
        );
    }
}

impl Dispatch<ZwpTabletSeatV2, TabletSeatUserData> for State {
    fn request(
        state: &mut Self,
        client: &Client,
        seat: &ZwpTabletSeatV2,
        request: zwp_tablet_seat_v2::Request,
        data: &TabletSeatUserData,
        dh: &DisplayHandle,
        data_init: &mut DataInit<'_, Self>,
    ) {
        <TabletManagerState as Dispatch<ZwpTabletSeatV2, TabletSeatUserData, Self>>::request(
            state, client, seat, request, data, dh, data_init,
        );
    }

    fn destroyed(
        state: &mut Self,
        client: ClientId,
        seat: &ZwpTabletSeatV2,
        data: &TabletSeatUserData,
    ) {
        state.core.input.tablet.seat_destroyed(&client);
        <TabletManagerState as Dispatch<ZwpTabletSeatV2, TabletSeatUserData, Self>>::destroyed(
            state, client, seat, data,
        );
    }
}

delegate_global_dispatch!(State: [ZwpTabletManagerV2: ()] => TabletManagerState);
delegate_dispatch!(State: [ZwpTabletToolV2: TabletToolUserData] => TabletManagerState);
delegate_dispatch!(State: [ZwpTabletV2: TabletUserData] => TabletManagerState);
