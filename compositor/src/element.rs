//! What the space holds: a Wayland toplevel or an X11 window from Xwayland.
//!
//! X11 windows are not smithay [`Window`]s because Smithay only renders an [`X11Surface`] whose
//! `wl_surface` it associated itself, which it does for the `xwayland_shell_v1` handshake of
//! Xwayland 23.1 and newer but not for the legacy `WL_SURFACE_ID` message older Xwayland sends.
//! [`X11Window`] carries the association made by `crate::xwayland` for both, so both render,
//! take input and get frame callbacks the same way.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use smithay::backend::renderer::element::surface::{
    render_elements_from_surface_tree, WaylandSurfaceRenderElement,
};
use smithay::backend::renderer::element::{AsRenderElements, Kind};
use smithay::backend::renderer::{ImportAll, Renderer};
use smithay::desktop::space::{RenderZindex, SpaceElement};
use smithay::desktop::utils::{
    bbox_from_surface_tree, output_update, send_frames_surface_tree, under_from_surface_tree,
    with_surfaces_surface_tree,
};
use smithay::desktop::{Window, WindowSurfaceType};
use smithay::output::Output;
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::utils::{IsAlive, Logical, Physical, Point, Rectangle, Scale, Size};
use smithay::wayland::compositor::SurfaceData;
use smithay::wayland::seat::WaylandFocus;
use smithay::wayland::shell::xdg::ToplevelSurface;
use smithay::xwayland::X11Surface;

use crate::kiosk::OverlayInput;

/// A window in the space and the kiosk stack.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WindowElement {
    /// An xdg toplevel.
    Wayland(Window),
    /// A mapped X11 window with the `wl_surface` Xwayland draws it into (boxed: an
    /// `X11Surface` is large).
    X11(Box<X11Window>),
}

/// An X11 window and its `wl_surface`.
#[derive(Debug, Clone)]
pub(crate) struct X11Window {
    pub(crate) x11: X11Surface,
    pub(crate) surface: WlSurface,
    /// Whether it is a Steam overlay and which input it takes, shared by every clone (the
    /// space's and the window manager's): see [`X11Window::set_overlay`].
    overlay: Arc<AtomicU8>,
    /// An overlay's opacity, 0 (invisible) to `u32::MAX` (opaque), shared the same way.
    opacity: Arc<AtomicU32>,
    /// The size of the mode its client set with XRandR (width << 32 | height; 0 for none),
    /// shared the same way: see [`X11Window::set_emulated_mode`].
    emulated_mode: Arc<AtomicU64>,
}

impl PartialEq for X11Window {
    fn eq(&self, other: &Self) -> bool {
        // Compare by ids: X11Surface's own equality is false once the window is dead, and a dead
        // window still has to be found to be removed.
        self.x11.xwm_id() == other.x11.xwm_id() && self.x11.window_id() == other.x11.window_id()
    }
}

impl X11Window {
    /// A plain (not overlay) window.
    pub(crate) fn new(x11: X11Surface, surface: WlSurface) -> Self {
        Self {
            x11,
            surface,
            overlay: Arc::default(),
            opacity: Arc::new(AtomicU32::new(u32::MAX)),
            emulated_mode: Arc::default(),
        }
    }

    /// Whether this is an override-redirect window (menu, tooltip): never managed or focused.
    pub(crate) fn is_override_redirect(&self) -> bool {
        self.x11.is_override_redirect()
    }

    /// Makes the window a Steam overlay (drawn above every managed window; without input it
    /// is left out of pointer picking) or a plain window again. The caller re-sorts the space.
    pub(crate) fn set_overlay(&self, overlay: Option<OverlayInput>) {
        let value = match overlay {
            None => 0,
            Some(OverlayInput::Passthrough) => 1,
            Some(OverlayInput::KeyboardAndPointer) => 2,
            Some(OverlayInput::PointerOnly) => 3,
        };
        self.overlay.store(value, Ordering::Relaxed);
    }

    /// Sets the opacity an overlay is drawn with (`_NET_WM_WINDOW_OPACITY`: 0 is invisible,
    /// `u32::MAX` opaque); other windows are always drawn opaque, as gamescope does. Steam's
    /// overlay has an alpha channel, which both renderers blend alike; a partly transparent
    /// buffer without one is blended by GLES but drawn darker by pixman.
    pub(crate) fn set_opacity(&self, opacity: u32) {
        self.opacity.store(opacity, Ordering::Relaxed);
    }

    /// Sets the size of the mode the window's client set with XRandR (Xwayland's emulated
    /// mode), or none. The window's picture has that mode's aspect ratio even where Xwayland
    /// stretched it to the output.
    pub(crate) fn set_emulated_mode(&self, size: Option<Size<i32, Logical>>) {
        let packed = size.map_or(0, |s| (u64::from(s.w as u32) << 32) | u64::from(s.h as u32));
        self.emulated_mode.store(packed, Ordering::Relaxed);
    }

    /// See [`X11Window::set_emulated_mode`].
    pub(crate) fn emulated_mode(&self) -> Option<Size<i32, Logical>> {
        let packed = self.emulated_mode.load(Ordering::Relaxed);
        (packed != 0).then(|| ((packed >> 32) as i32, packed as u32 as i32).into())
    }

    /// The alpha the window is drawn with.
    fn alpha(&self) -> f32 {
        if self.overlay().is_some() {
            (f64::from(self.opacity.load(Ordering::Relaxed)) / f64::from(u32::MAX)) as f32
        } else {
            1.0
        }
    }

    /// See [`X11Window::set_overlay`].
    pub(crate) fn overlay(&self) -> Option<OverlayInput> {
        match self.overlay.load(Ordering::Relaxed) {
            1 => Some(OverlayInput::Passthrough),
            2 => Some(OverlayInput::KeyboardAndPointer),
            3 => Some(OverlayInput::PointerOnly),
            _ => None,
        }
    }
}

impl WindowElement {
    /// The xdg toplevel, for Wayland windows.
    pub(crate) fn toplevel(&self) -> Option<&ToplevelSurface> {
        match self {
            WindowElement::Wayland(w) => w.toplevel(),
            WindowElement::X11(_) => None,
        }
    }

    /// The smithay window, for Wayland windows.
    pub(crate) fn wayland(&self) -> Option<&Window> {
        match self {
            WindowElement::Wayland(w) => Some(w),
            WindowElement::X11(_) => None,
        }
    }

    /// The X11 window, for windows from Xwayland.
    pub(crate) fn x11(&self) -> Option<&X11Window> {
        match self {
            WindowElement::Wayland(_) => None,
            WindowElement::X11(x) => Some(x),
        }
    }

    /// Whether the window is meant to fill the output: a Wayland toplevel that is not a dialog,
    /// or a managed X11 window that is not a Steam overlay. One that does not take the
    /// output's size is scaled to it (see [`crate::scaling`]).
    pub(crate) fn fills_output(&self) -> bool {
        match self {
            WindowElement::Wayland(w) => w.toplevel().is_some_and(|t| t.parent().is_none()),
            WindowElement::X11(x) => !x.is_override_redirect() && x.overlay().is_none(),
        }
    }

    /// The size of the picture the window shows, where it differs from its size: the mode an
    /// X11 game set, which Xwayland stretches to the output, or the one a fullscreen Wayland
    /// game emulates the same way ([`crate::windows::emulated_mode`]).
    pub(crate) fn content_size(&self) -> Option<Size<i32, Logical>> {
        match self {
            WindowElement::Wayland(w) => w.toplevel().and_then(crate::windows::emulated_mode),
            WindowElement::X11(x) => x.emulated_mode(),
        }
    }

    /// The root surface: the one that gets keyboard focus.
    pub(crate) fn root_surface(&self) -> Option<WlSurface> {
        match self {
            WindowElement::Wayland(w) => w.toplevel().map(|t| t.wl_surface().clone()),
            WindowElement::X11(x) => Some(x.surface.clone()),
        }
    }

    /// Runs `processor` on every surface of the window.
    pub(crate) fn with_surfaces<F>(&self, mut processor: F)
    where
        F: FnMut(&WlSurface, &SurfaceData),
    {
        match self {
            WindowElement::Wayland(w) => w.with_surfaces(processor),
            WindowElement::X11(x) => with_surfaces_surface_tree(&x.surface, &mut processor),
        }
    }

    /// Sends frame callbacks to the window's surfaces (see [`Window::send_frame`]).
    pub(crate) fn send_frame<T, F>(
        &self,
        output: &Output,
        time: T,
        throttle: Option<Duration>,
        primary_scan_out_output: F,
    ) where
        T: Into<Duration>,
        F: FnMut(&WlSurface, &SurfaceData) -> Option<Output> + Copy,
    {
        match self {
            WindowElement::Wayland(w) => {
                w.send_frame(output, time, throttle, primary_scan_out_output)
            }
            WindowElement::X11(x) => send_frames_surface_tree(
                &x.surface,
                output,
                time,
                throttle,
                primary_scan_out_output,
            ),
        }
    }

    /// The topmost surface under `point` (relative to the window) and its location.
    pub(crate) fn surface_under<P: Into<Point<f64, Logical>>>(
        &self,
        point: P,
        surface_type: WindowSurfaceType,
    ) -> Option<(WlSurface, Point<i32, Logical>)> {
        match self {
            WindowElement::Wayland(w) => w.surface_under(point, surface_type),
            WindowElement::X11(x) => {
                under_from_surface_tree(&x.surface, point.into(), (0, 0), surface_type)
            }
        }
    }
}

impl IsAlive for WindowElement {
    fn alive(&self) -> bool {
        match self {
            WindowElement::Wayland(w) => w.alive(),
            WindowElement::X11(x) => x.x11.alive() && x.surface.alive(),
        }
    }
}

impl WaylandFocus for WindowElement {
    fn wl_surface(&self) -> Option<Cow<'_, WlSurface>> {
        match self {
            WindowElement::Wayland(w) => w.wl_surface(),
            WindowElement::X11(x) => Some(Cow::Borrowed(&x.surface)),
        }
    }
}

impl SpaceElement for WindowElement {
    fn geometry(&self) -> Rectangle<i32, Logical> {
        match self {
            WindowElement::Wayland(w) => SpaceElement::geometry(w),
            WindowElement::X11(x) => bbox_from_surface_tree(&x.surface, (0, 0)),
        }
    }

    fn bbox(&self) -> Rectangle<i32, Logical> {
        match self {
            WindowElement::Wayland(w) => SpaceElement::bbox(w),
            WindowElement::X11(x) => bbox_from_surface_tree(&x.surface, (0, 0)),
        }
    }

    fn is_in_input_region(&self, point: &Point<f64, Logical>) -> bool {
        match self {
            WindowElement::Wayland(w) => SpaceElement::is_in_input_region(w, point),
            // An overlay that takes no input lets the pointer through to the window below.
            WindowElement::X11(x) if x.overlay() == Some(OverlayInput::Passthrough) => false,
            WindowElement::X11(x) => {
                under_from_surface_tree(&x.surface, *point, (0, 0), WindowSurfaceType::ALL)
                    .is_some()
            }
        }
    }

    fn z_index(&self) -> u8 {
        match self {
            WindowElement::Wayland(w) => SpaceElement::z_index(w),
            // Menus, tooltips and Steam's overlays above every managed window.
            WindowElement::X11(x) if x.is_override_redirect() || x.overlay().is_some() => {
                RenderZindex::Overlay as u8
            }
            WindowElement::X11(_) => RenderZindex::Shell as u8,
        }
    }

    fn set_activate(&self, activated: bool) {
        match self {
            WindowElement::Wayland(w) => SpaceElement::set_activate(w, activated),
            WindowElement::X11(x) if x.is_override_redirect() => {}
            WindowElement::X11(x) => {
                let _ = x.x11.set_activated(activated);
            }
        }
    }

    fn output_enter(&self, output: &Output, overlap: Rectangle<i32, Logical>) {
        match self {
            WindowElement::Wayland(w) => SpaceElement::output_enter(w, output, overlap),
            WindowElement::X11(x) => output_update(output, Some(overlap), &x.surface),
        }
    }

    fn output_leave(&self, output: &Output) {
        match self {
            WindowElement::Wayland(w) => SpaceElement::output_leave(w, output),
            WindowElement::X11(x) => output_update(output, None, &x.surface),
        }
    }

    fn refresh(&self) {
        if let WindowElement::Wayland(w) = self {
            SpaceElement::refresh(w);
        }
    }
}

impl<R> AsRenderElements<R> for WindowElement
where
    R: Renderer + ImportAll,
    R::TextureId: Clone + 'static,
{
    type RenderElement = WaylandSurfaceRenderElement<R>;

    fn render_elements<C: From<WaylandSurfaceRenderElement<R>>>(
        &self,
        renderer: &mut R,
        location: Point<i32, Physical>,
        scale: Scale<f64>,
        alpha: f32,
    ) -> Vec<C> {
        match self {
            WindowElement::Wayland(w) => {
                AsRenderElements::<R>::render_elements(w, renderer, location, scale, alpha)
            }
            // Not drawn at all rather than drawn invisible: the damage tracker then repaints
            // what it covered.
            WindowElement::X11(x) if x.alpha() <= 0.0 => Vec::new(),
            WindowElement::X11(x) => render_elements_from_surface_tree(
                renderer,
                &x.surface,
                location,
                scale,
                alpha * x.alpha(),
                Kind::Unspecified,
            ),
        }
    }
}
