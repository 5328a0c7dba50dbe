//! The kiosk window policy, kept free of Wayland types so it can be tested with plain values.
//!
//! Every toplevel is fullscreen on the single output. Mapped windows form a stack: the newest
//! mapped one is on top and owns keyboard and pointer focus; when it goes away, the one below it
//! takes over.
//!
//! Steam's window roles (gamescope's X properties, read in `crate::xwayland::steam`) refine
//! that, see [`KioskStack::layers`]: overlay windows (`STEAM_OVERLAY`) are drawn above the
//! window on screen without becoming it, and Steam can choose the window on screen by app id
//! (`GAMESCOPECTRL_BASELAYER_APPID`) or window (`GAMESCOPECTRL_BASELAYER_WINDOW`). A window
//! without Steam's properties is a plain window: app id 0, no overlay.

/// A window's part in Steam's contract; the default is a plain window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Role {
    /// The Steam app id (`STEAM_GAME`; 769 is Steam's own UI); 0 for none.
    pub(crate) app_id: u32,
    /// The X11 window id, for X11 windows.
    pub(crate) x11_id: Option<u32>,
    /// `STEAM_OVERLAY`: drawn above the window on screen, never on screen itself.
    pub(crate) overlay: Option<OverlayInput>,
}

/// Which input an overlay window takes (`STEAM_INPUT_FOCUS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OverlayInput {
    /// None: keyboard and pointer stay with the window below (0, or the property is absent).
    Passthrough,
    /// Keyboard and pointer (1, or any value but 0 and 2).
    KeyboardAndPointer,
    /// The pointer; the keyboard stays with the window below (2).
    PointerOnly,
}

/// Steam's choice of the window on screen, from the root window's properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BaseLayerControl {
    /// `GAMESCOPECTRL_BASELAYER_WINDOW`: this X11 window, when it is mapped.
    pub(crate) window: Option<u32>,
    /// `GAMESCOPECTRL_BASELAYER_APPID`: app ids in priority order; the first one with a mapped
    /// window wins.
    pub(crate) app_ids: Vec<u32>,
}

/// The outcome of [`KioskStack::layers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layers<W> {
    /// The window on screen: fullscreen, raised above every other non-overlay window.
    pub(crate) base: Option<W>,
    /// Overlay windows, bottom first; drawn above `base`.
    pub(crate) overlays: Vec<W>,
    /// The window with keyboard focus: `base`, unless an overlay takes the keyboard.
    pub(crate) keyboard: Option<W>,
}

impl<W> Default for Layers<W> {
    fn default() -> Self {
        Self {
            base: None,
            overlays: Vec::new(),
            keyboard: None,
        }
    }
}

/// The stack of mapped windows, bottom first.
#[derive(Debug)]
pub(crate) struct KioskStack<W> {
    windows: Vec<W>,
}

impl<W> Default for KioskStack<W> {
    fn default() -> Self {
        Self {
            windows: Vec::new(),
        }
    }
}

impl<W: PartialEq> KioskStack<W> {
    /// Puts a newly mapped window on top. Mapping a window twice moves it to the top.
    pub(crate) fn push(&mut self, window: W) {
        self.windows.retain(|w| *w != window);
        self.windows.push(window);
    }

    /// Removes a window; returns whether it was in the stack.
    pub(crate) fn remove(&mut self, window: &W) -> bool {
        let before = self.windows.len();
        self.windows.retain(|w| w != window);
        before != self.windows.len()
    }

    /// The window that should be on top and focused.
    pub(crate) fn top(&self) -> Option<&W> {
        self.windows.last()
    }

    /// Windows from bottom to top.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &W> {
        self.windows.iter()
    }

    /// Splits the stack into the window on screen, the overlays above it and the keyboard
    /// focus.
    ///
    /// The window on screen is, of the windows that are not overlays:
    /// 1. the X11 window named by `control.window`, when it is in the stack;
    /// 2. else the newest window of the first app id in `control.app_ids` that has one;
    /// 3. else the newest window: the plain kiosk rule, which is also what gamescope does for
    ///    Steam's own UI (769) and a game (the game maps last, and when it goes Steam is the
    ///    newest again).
    ///
    /// Unlike gamescope, a control that matches no window falls back to rule 3 instead of
    /// showing nothing: a window that is not on Steam's list still beats a black screen.
    /// The keyboard goes to the newest overlay that asks for it
    /// ([`OverlayInput::KeyboardAndPointer`]), else to the window on screen.
    pub(crate) fn layers(&self, role: impl Fn(&W) -> Role, control: &BaseLayerControl) -> Layers<W>
    where
        W: Clone,
    {
        let roles: Vec<(&W, Role)> = self.windows.iter().map(|w| (w, role(w))).collect();
        let mut candidates = roles
            .iter()
            .rev()
            .filter(|(_, r)| r.overlay.is_none())
            .map(|(w, r)| (*w, r));
        let by_window = control
            .window
            .and_then(|id| candidates.clone().find(|(_, r)| r.x11_id == Some(id)));
        let by_app = || {
            control
                .app_ids
                .iter()
                .filter(|&&app| app != 0)
                .find_map(|&app| candidates.clone().find(|(_, r)| r.app_id == app))
        };
        let base = by_window
            .or_else(by_app)
            .or_else(|| candidates.next())
            .map(|(w, _)| w.clone());
        let overlays: Vec<W> = roles
            .iter()
            .filter(|(_, r)| r.overlay.is_some())
            .map(|(w, _)| (*w).clone())
            .collect();
        let keyboard = roles
            .iter()
            .rev()
            .find(|(_, r)| r.overlay == Some(OverlayInput::KeyboardAndPointer))
            .map(|(w, _)| (*w).clone())
            .or_else(|| base.clone());
        Layers {
            base,
            overlays,
            keyboard,
        }
    }

    /// Drops windows for which `alive` is false (their client went away).
    pub(crate) fn retain_alive(&mut self, alive: impl FnMut(&W) -> bool) {
        self.windows.retain(alive);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_on_top_and_focus_returns() {
        let mut stack = KioskStack::default();
        assert_eq!(stack.top(), None);
        stack.push('a');
        stack.push('b');
        assert_eq!(stack.top(), Some(&'b'));
        assert!(stack.remove(&'b'));
        assert_eq!(stack.top(), Some(&'a'));
        assert!(!stack.remove(&'b'));
    }

    #[test]
    fn removing_a_lower_window_keeps_the_top() {
        let mut stack = KioskStack::default();
        for w in ['a', 'b', 'c'] {
            stack.push(w);
        }
        stack.remove(&'b');
        assert_eq!(stack.top(), Some(&'c'));
        stack.remove(&'c');
        assert_eq!(stack.top(), Some(&'a'));
    }

    /// Roles by name: `'s'` is Steam (769), digits are games (app id = digit), `'o'`, `'k'`
    /// and `'p'` are overlays (no input, keyboard and pointer, pointer only), the rest plain.
    fn role(w: &char) -> Role {
        let overlay = match w {
            'o' => Some(OverlayInput::Passthrough),
            'k' => Some(OverlayInput::KeyboardAndPointer),
            'p' => Some(OverlayInput::PointerOnly),
            _ => None,
        };
        let app_id = match w {
            's' => 769,
            d if d.is_ascii_digit() => d.to_digit(10).unwrap_or(0),
            _ => 0,
        };
        Role {
            app_id,
            x11_id: Some(u32::from(*w)),
            overlay,
        }
    }

    fn stack(windows: &str) -> KioskStack<char> {
        let mut stack = KioskStack::default();
        for w in windows.chars() {
            stack.push(w);
        }
        stack
    }

    fn control(window: Option<char>, app_ids: &[u32]) -> BaseLayerControl {
        BaseLayerControl {
            window: window.map(u32::from),
            app_ids: app_ids.to_vec(),
        }
    }

    #[test]
    fn without_control_the_newest_window_is_on_screen() {
        let layers = stack("s7a").layers(role, &BaseLayerControl::default());
        assert_eq!(layers.base, Some('a'));
        assert_eq!(layers.keyboard, Some('a'));
        assert!(layers.overlays.is_empty());
        assert_eq!(
            KioskStack::<char>::default().layers(role, &BaseLayerControl::default()),
            Layers::default()
        );
    }

    #[test]
    fn the_first_listed_app_with_a_window_wins() {
        let s = stack("s7");
        assert_eq!(s.layers(role, &control(None, &[769, 7])).base, Some('s'));
        assert_eq!(s.layers(role, &control(None, &[7, 769])).base, Some('7'));
        // Absent apps and 0 are skipped.
        assert_eq!(s.layers(role, &control(None, &[5, 0, 769])).base, Some('s'));
        // Nothing listed is mapped: the newest window, not a black screen.
        assert_eq!(s.layers(role, &control(None, &[5])).base, Some('7'));
        // The newest window of an app with several.
        let s = stack("s7a8s");
        assert_eq!(s.layers(role, &control(None, &[7])).base, Some('7'));
        let s = stack("7s8");
        assert_eq!(s.layers(role, &control(None, &[769])).base, Some('s'));
    }

    #[test]
    fn a_named_window_beats_the_app_list() {
        let s = stack("s7a");
        let layers = s.layers(role, &control(Some('s'), &[7]));
        assert_eq!(layers.base, Some('s'));
        // Not mapped: the app list decides.
        assert_eq!(s.layers(role, &control(Some('x'), &[7])).base, Some('7'));
    }

    #[test]
    fn overlays_are_above_and_never_on_screen() {
        let s = stack("s7op");
        let layers = s.layers(role, &BaseLayerControl::default());
        assert_eq!(layers.base, Some('7'));
        assert_eq!(layers.overlays, vec!['o', 'p']);
        // Neither takes the keyboard.
        assert_eq!(layers.keyboard, Some('7'));
        // An overlay is never chosen by window id either.
        assert_eq!(s.layers(role, &control(Some('o'), &[])).base, Some('7'));
        // Only overlays: nothing on screen, nobody has the keyboard.
        let layers = stack("o").layers(role, &BaseLayerControl::default());
        assert_eq!((layers.base, layers.keyboard), (None, None));
    }

    #[test]
    fn an_overlay_that_asks_for_input_gets_the_keyboard() {
        let s = stack("s7ko");
        let layers = s.layers(role, &BaseLayerControl::default());
        assert_eq!(layers.base, Some('7'));
        assert_eq!(layers.keyboard, Some('k'));
        assert_eq!(layers.overlays, vec!['k', 'o']);
    }

    #[test]
    fn remapping_moves_to_top() {
        let mut stack = KioskStack::default();
        for w in ['a', 'b', 'a'] {
            stack.push(w);
        }
        assert_eq!(stack.iter().copied().collect::<Vec<_>>(), vec!['b', 'a']);
        stack.retain_alive(|w| *w != 'a');
        assert_eq!(stack.top(), Some(&'b'));
    }
}
