//! The kiosk window policy, kept free of Wayland types so it can be tested with plain values.
//!
//! Every toplevel is fullscreen on the single output. Mapped windows form a stack: the newest
//! mapped one is on top and owns keyboard and pointer focus; when it goes away, the one below it
//! takes over.

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
    pub(crate) fn iter(&self) -> impl Iterator<Item = &W> {
        self.windows.iter()
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
