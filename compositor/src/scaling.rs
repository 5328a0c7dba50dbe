//! Windows that keep their own size, scaled to the output.
//!
//! The kiosk policy gives every window the output's size. A game that cannot or will not take
//! it (a fixed-size window, or one that keeps drawing at its own size) keeps its size, and its
//! picture is scaled to the output the way [`Scaling`] says, as gamescope does. The same
//! [`View`] places the window for rendering and maps pointer and touch positions back into it,
//! so what is drawn and what is clicked never disagree.

use smithay::desktop::space::SpaceElement;
use smithay::desktop::Space;
use smithay::output::Output;
use smithay::utils::{Logical, Point, Rectangle, Scale, Size};

use crate::element::WindowElement;

/// How a window that keeps its own size is fitted to the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scaling {
    /// As large as fits with the window's aspect ratio, centred, black bars around it.
    #[default]
    Fit,
    /// Stretched to the whole output, aspect ratio ignored.
    Stretch,
    /// As small as covers the whole output with the window's aspect ratio, centred; what
    /// reaches past the output is cut off.
    Fill,
    /// The largest whole multiple of the window's size that fits, centred (a window larger
    /// than the output is fitted instead).
    Integer,
}

/// How a scaled window's pixels are sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScaleFilter {
    /// Bilinear: smooth.
    #[default]
    Linear,
    /// Nearest neighbour: sharp pixels, for pixel art and integer scaling.
    Nearest,
}

/// Where a window of `size` is shown on an output of `output`'s size, in output coordinates.
/// Whole pixels, so that the picture's edges are sharp.
pub(crate) fn scaled_rect(
    scaling: Scaling,
    size: Size<i32, Logical>,
    output: Size<i32, Logical>,
) -> Rectangle<i32, Logical> {
    if size.w <= 0 || size.h <= 0 {
        return Rectangle::from_size(output);
    }
    let (w, h) = (f64::from(size.w), f64::from(size.h));
    let (ow, oh) = (f64::from(output.w), f64::from(output.h));
    let fit = (ow / w).min(oh / h);
    let scale = match scaling {
        Scaling::Stretch => return Rectangle::from_size(output),
        Scaling::Fit => fit,
        Scaling::Fill => (ow / w).max(oh / h),
        Scaling::Integer if fit >= 1.0 => fit.floor(),
        Scaling::Integer => fit,
    };
    // Rounded so that the bars on both sides differ by at most one pixel, and a fitted side
    // meets the output's edges exactly.
    let dw = ((w * scale).round() as i32).max(1);
    let dh = ((h * scale).round() as i32).max(1);
    let dw = if scaling == Scaling::Fit && ow / w <= oh / h {
        output.w
    } else {
        dw
    };
    let dh = if scaling == Scaling::Fit && oh / h <= ow / w {
        output.h
    } else {
        dh
    };
    Rectangle::new(
        ((output.w - dw).div_euclid(2), (output.h - dh).div_euclid(2)).into(),
        (dw, dh).into(),
    )
}

/// A scale and offset: coordinates `p` of some space appear at `origin + p * scale` on the
/// output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct View {
    /// Where (0, 0) of the space is on the output.
    pub(crate) origin: Point<f64, Logical>,
    pub(crate) scale: Scale<f64>,
}

impl Default for View {
    /// Output coordinates themselves.
    fn default() -> Self {
        Self {
            origin: (0.0, 0.0).into(),
            scale: Scale::from(1.0),
        }
    }
}

impl View {
    /// Whether it scales.
    pub(crate) fn is_scaled(self) -> bool {
        self.scale.x != 1.0 || self.scale.y != 1.0
    }

    /// An output position in this space's coordinates.
    pub(crate) fn to_window(self, p: Point<f64, Logical>) -> Point<f64, Logical> {
        (
            (p.x - self.origin.x) / self.scale.x,
            (p.y - self.origin.y) / self.scale.y,
        )
            .into()
    }

    /// A position in this space's coordinates on the output.
    pub(crate) fn to_output(self, p: Point<f64, Logical>) -> Point<f64, Logical> {
        (
            self.origin.x + p.x * self.scale.x,
            self.origin.y + p.y * self.scale.y,
        )
            .into()
    }
}

/// Where a window is shown, and in which coordinates its input is given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Placement {
    /// The space pointer and touch positions over the window are given to Smithay's seat in:
    /// output coordinates for a window drawn at its own size; the window's own (or, for an X11
    /// window, the X screen's) coordinates for a scaled one, so that a click lands where the
    /// client drew what the user aimed at.
    pub(crate) input: View,
    /// Where the window's surface origin is in `input`'s coordinates.
    pub(crate) location: Point<f64, Logical>,
}

impl Placement {
    /// How the window is drawn: its coordinates to the output's.
    pub(crate) fn view(self) -> View {
        View {
            origin: self.input.to_output(self.location),
            scale: self.input.scale,
        }
    }
}

/// The windows on `output`, topmost first (by z-index, then newest first, as Smithay's space
/// draws them), each with its [`Placement`].
///
/// A window meant to fill the output ([`WindowElement::fills_output`]) whose size is not the
/// output's is scaled to it by `scaling`; windows below it do not show, and the bars around it
/// stay black. X11 menus and tooltips of the client of a scaled X11 window are scaled with it:
/// they are placed in the same X screen. An X11 dialog (transient for another mapped window) is
/// never scaled on its own.
pub(crate) fn visible_windows<'a>(
    space: &'a Space<WindowElement>,
    output: &Output,
    scaling: Scaling,
) -> Vec<(&'a WindowElement, Placement)> {
    let Some(output_geo) = space.output_geometry(output) else {
        return Vec::new();
    };
    let mut windows: Vec<&WindowElement> = space.elements().rev().collect();
    windows.sort_by_key(|w| std::cmp::Reverse(w.z_index()));
    // Where the window's surface origin is in the space, relative to the output.
    let location = |window: &WindowElement| {
        let location = space.element_location(window)?;
        Some((location - window.geometry().loc - output_geo.loc).to_f64())
    };
    // An X11 window transient for another window on the output: a dialog.
    let x11_ids: Vec<u32> = windows
        .iter()
        .filter_map(|w| w.x11().map(|x| x.x11.window_id()))
        .collect();
    let x11_dialog = |window: &WindowElement| {
        let parent = window.x11().and_then(|x| x.x11.is_transient_for());
        parent.is_some_and(|parent| x11_ids.contains(&parent))
    };
    let fills = |window: &WindowElement| window.fills_output() && !x11_dialog(window);
    // The placement of a window that is scaled, and the view of the picture it shows (its X
    // screen, for an X11 window: where Xwayland stretched an emulated mode to the output, the
    // window's own coordinates are not the X screen's).
    let scaled = |window: &WindowElement| {
        let geometry = window.geometry();
        // The picture's size: the window's, or the mode an X11 game set (which Xwayland may
        // have stretched to the whole output already).
        let content = window.content_size().unwrap_or(geometry.size);
        let whole = geometry.size == output_geo.size && content == output_geo.size;
        if !fills(window) || whole || geometry.is_empty() {
            return None;
        }
        let rect = scaled_rect(scaling, content, output_geo.size);
        let scale = Scale {
            x: f64::from(rect.size.w) / f64::from(geometry.size.w),
            y: f64::from(rect.size.h) / f64::from(geometry.size.h),
        };
        let origin = rect.loc.to_f64()
            - Point::from((
                f64::from(geometry.loc.x) * scale.x,
                f64::from(geometry.loc.y) * scale.y,
            ));
        let screen = View {
            origin: rect.loc.to_f64(),
            scale: Scale {
                x: f64::from(rect.size.w) / f64::from(content.w),
                y: f64::from(rect.size.h) / f64::from(content.h),
            },
        };
        let placement = Placement {
            input: View { origin, scale },
            location: (0.0, 0.0).into(),
        };
        Some((placement, screen))
    };
    // The X11 window on screen, when it is scaled: its client's menus go with it.
    let x11_base = windows.iter().find(|w| fills(w)).and_then(|w| {
        let x11 = w.x11()?;
        Some((scaled(w)?.1, location(w)?, x11.x11.pid()))
    });
    let mut visible = Vec::new();
    for window in windows {
        if let Some((placement, _)) = scaled(window) {
            visible.push((window, placement));
            // Nothing below shows through the bars.
            break;
        }
        let Some(location) = location(window) else {
            continue;
        };
        let placement = match (window.x11(), x11_base) {
            // In the X screen's coordinates, relative to the window on screen; a menu of
            // another client (Steam's, over its overlay) stays as it is.
            (Some(x11), Some((screen, base, pid)))
                if x11.is_override_redirect()
                    && (pid.is_none() || x11.x11.pid().is_none() || x11.x11.pid() == pid) =>
            {
                Placement {
                    input: screen,
                    location: location - base,
                }
            }
            _ => Placement {
                input: View::default(),
                location,
            },
        };
        let view = placement.view();
        let bbox = window.bbox();
        let shown = Rectangle::<f64, Logical>::new(
            view.to_output(bbox.loc.to_f64()),
            (
                f64::from(bbox.size.w) * view.scale.x,
                f64::from(bbox.size.h) * view.scale.y,
            )
                .into(),
        );
        if shown.overlaps(Rectangle::from_size(output_geo.size.to_f64())) {
            visible.push((window, placement));
        }
    }
    visible
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(scaling: Scaling, size: (i32, i32), output: (i32, i32)) -> (i32, i32, i32, i32) {
        let r = scaled_rect(scaling, size.into(), output.into());
        (r.loc.x, r.loc.y, r.size.w, r.size.h)
    }

    #[test]
    fn fit_keeps_the_aspect_ratio_and_centres() {
        // 4:3 on 16:9: bars left and right.
        assert_eq!(
            rect(Scaling::Fit, (800, 600), (1280, 720)),
            (160, 0, 960, 720)
        );
        // Wider than the output: bars above and below.
        assert_eq!(
            rect(Scaling::Fit, (400, 100), (1280, 720)),
            (0, 200, 1280, 320)
        );
        // Larger than the output: scaled down.
        assert_eq!(
            rect(Scaling::Fit, (2560, 1440), (1280, 720)),
            (0, 0, 1280, 720)
        );
        // An odd mode: the fitted side meets both edges.
        assert_eq!(
            rect(Scaling::Fit, (640, 480), (1366, 768)),
            (171, 0, 1024, 768)
        );
        assert_eq!(
            rect(Scaling::Fit, (333, 333), (1000, 701)),
            (149, 0, 701, 701)
        );
    }

    #[test]
    fn stretch_fill_and_integer() {
        assert_eq!(
            rect(Scaling::Stretch, (400, 300), (1280, 720)),
            (0, 0, 1280, 720)
        );
        // Fill: covers the output, cut off above and below.
        assert_eq!(
            rect(Scaling::Fill, (400, 300), (1280, 720)),
            (0, -120, 1280, 960)
        );
        // Integer: 2x fits (2.4x would), centred.
        assert_eq!(
            rect(Scaling::Integer, (400, 300), (1280, 720)),
            (240, 60, 800, 600)
        );
        assert_eq!(
            rect(Scaling::Integer, (640, 360), (1280, 720)),
            (0, 0, 1280, 720)
        );
        // Larger than the output: fitted.
        assert_eq!(
            rect(Scaling::Integer, (1600, 1200), (1280, 720)),
            (160, 0, 960, 720)
        );
        // An empty window never divides by zero.
        assert_eq!(rect(Scaling::Fit, (0, 10), (1280, 720)), (0, 0, 1280, 720));
    }

    #[test]
    fn a_view_maps_both_ways() {
        let view = View {
            origin: (160.0, 0.0).into(),
            scale: Scale { x: 1.2, y: 1.2 },
        };
        assert!(view.is_scaled());
        let p = view.to_window((400.0, 360.0).into());
        assert_eq!((p.x.round(), p.y), (200.0, 300.0));
        let back = view.to_output(p);
        assert!((back.x - 400.0).abs() < 1e-9 && (back.y - 360.0).abs() < 1e-9);
        // A menu at (100, 50) of the X screen is drawn scaled, from the scaled position.
        let menu = Placement {
            input: view,
            location: (100.0, 50.0).into(),
        };
        assert_eq!(menu.view().origin, Point::from((280.0, 60.0)));
        assert!(!View::default().is_scaled());
    }
}
