//! Protocol handlers: one file per protocol, each with its handler impl and delegate call.
//! Globals without a handler trait are delegated here.

mod compositor;
mod cursor_shape;
mod data_device;
mod decoration;
pub(crate) mod dmabuf;
mod fractional_scale;
mod idle_inhibit;
mod output;
mod pointer_constraints;
mod presentation;
mod primary_selection;
mod relative_pointer;
mod seat;
mod shm;
mod tablet;
mod wl_drm;
mod xdg_activation;
mod xdg_shell;
mod xwm;

use smithay::{delegate_single_pixel_buffer, delegate_viewporter};

use crate::state::State;

delegate_viewporter!(State);
delegate_single_pixel_buffer!(State);
