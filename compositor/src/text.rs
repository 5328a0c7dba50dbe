//! Typing arbitrary text: each character becomes a key press that produces its keysym.
//!
//! Characters the current keymap can type (plain, with Shift, with AltGr or both) are typed with
//! those keys. The rest get a temporary keymap: the current one plus the missing keysyms on
//! keycodes that have a name but no symbols. The focused client receives that keymap, the keys,
//! and then the original keymap again.

use std::collections::HashMap;

use smithay::backend::input::KeyState;
use smithay::input::keyboard::{xkb, FilterResult, Keycode, Keysym};
use smithay::utils::SERIAL_COUNTER;
use tracing::{debug, warn};

use crate::state::State;

/// One typed character: press `mods` in order, tap `key`, release `mods`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stroke {
    pub(crate) mods: Vec<u32>,
    pub(crate) key: u32,
}

/// Keystrokes that share one keymap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    /// Keysyms added to spare keycodes for this segment: (key name, keysym).
    pub(crate) extra: Vec<(String, Keysym)>,
    pub(crate) strokes: Vec<Stroke>,
}

/// The keysym a character should produce.
fn keysym_for_char(c: char) -> Keysym {
    match c {
        '\n' | '\r' => Keysym::Return,
        '\t' => Keysym::Tab,
        '\u{8}' => Keysym::BackSpace,
        _ => xkb::utf32_to_keysym(u32::from(c)),
    }
}

/// The first keycode whose unmodified keysym is `sym`.
fn keycode_with_sym(keymap: &xkb::Keymap, layout: u32, sym: Keysym) -> Option<u32> {
    let mut state = xkb::State::new(keymap);
    state.update_mask(0, 0, 0, 0, 0, layout);
    (keymap.min_keycode().raw()..=keymap.max_keycode().raw())
        .find(|&kc| state.key_get_one_sym(kc.into()) == sym)
}

/// Where each keysym of `keymap` (in `layout`) is: keycode and modifier keys to hold.
fn reachable_keysyms(keymap: &xkb::Keymap, layout: u32) -> HashMap<Keysym, Stroke> {
    let shift = keycode_with_sym(keymap, layout, Keysym::Shift_L);
    let level3 = keycode_with_sym(keymap, layout, Keysym::ISO_Level3_Shift);
    let mut combos: Vec<Vec<u32>> = vec![Vec::new()];
    combos.extend(shift.map(|s| vec![s]));
    combos.extend(level3.map(|l| vec![l]));
    if let (Some(s), Some(l)) = (shift, level3) {
        combos.push(vec![s, l]);
    }
    let mut found = HashMap::new();
    for mods in combos {
        let mut state = xkb::State::new(keymap);
        state.update_mask(0, 0, 0, 0, 0, layout);
        for &m in &mods {
            state.update_key(m.into(), xkb::KeyDirection::Down);
        }
        for kc in keymap.min_keycode().raw()..=keymap.max_keycode().raw() {
            if mods.contains(&kc) {
                continue;
            }
            let sym = state.key_get_one_sym(kc.into());
            if sym != Keysym::NoSymbol {
                found.entry(sym).or_insert_with(|| Stroke {
                    mods: mods.clone(),
                    key: kc,
                });
            }
        }
    }
    found
}

/// X11 (and so Xwayland) cannot use keycodes above this one.
const MAX_X11_KEYCODE: u32 = 255;

/// Keycodes with a name but no symbols, usable for temporary keysyms.
fn spare_keycodes(keymap: &xkb::Keymap) -> Vec<(u32, String)> {
    (keymap.min_keycode().raw()..=keymap.max_keycode().raw().min(MAX_X11_KEYCODE))
        .filter(|&kc| keymap.num_layouts_for_key(kc.into()) == 0)
        .filter_map(|kc| keymap.key_get_name(kc.into()).map(|n| (kc, n.to_string())))
        .filter(|(_, name)| {
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '+' || c == '-')
        })
        .collect()
}

/// Splits `text` into segments of keystrokes for `keymap`.
pub(crate) fn plan(keymap: &xkb::Keymap, layout: u32, text: &str) -> Vec<Segment> {
    let reachable = reachable_keysyms(keymap, layout);
    let spares = spare_keycodes(keymap);
    let mut segments = Vec::new();
    let mut current = Segment {
        extra: Vec::new(),
        strokes: Vec::new(),
    };
    // Keysyms added to the current segment's keymap, by keycode.
    let mut added: HashMap<Keysym, u32> = HashMap::new();
    for c in text.chars() {
        let sym = keysym_for_char(c);
        if sym == Keysym::NoSymbol {
            warn!(?c, "no keysym for character, dropped");
            continue;
        }
        if let Some(stroke) = reachable.get(&sym) {
            current.strokes.push(stroke.clone());
            continue;
        }
        if let Some(&key) = added.get(&sym) {
            current.strokes.push(Stroke {
                mods: Vec::new(),
                key,
            });
            continue;
        }
        if spares.is_empty() {
            warn!(
                ?c,
                "keymap has no spare keycode for a missing character, dropped"
            );
            continue;
        }
        if added.len() == spares.len() {
            segments.push(std::mem::replace(
                &mut current,
                Segment {
                    extra: Vec::new(),
                    strokes: Vec::new(),
                },
            ));
            added.clear();
        }
        let (key, name) = &spares[added.len()];
        added.insert(sym, *key);
        current.extra.push((name.clone(), sym));
        current.strokes.push(Stroke {
            mods: Vec::new(),
            key: *key,
        });
    }
    if !current.strokes.is_empty() {
        segments.push(current);
    }
    segments
}

/// `keymap` (XKB text format) with `extra` keysyms appended to its symbols section.
pub(crate) fn keymap_with_extra(keymap: &str, extra: &[(String, Keysym)]) -> Option<String> {
    let section = keymap.find("xkb_symbols")?;
    let end = section + keymap[section..].find("\n};")?;
    let mut out = String::with_capacity(keymap.len() + extra.len() * 40);
    out.push_str(&keymap[..end]);
    for (name, sym) in extra {
        let sym_name = xkb::keysym_get_name(*sym);
        out.push_str(&format!("\n    key <{name}> {{ [ {sym_name} ] }};"));
    }
    out.push_str(&keymap[end..]);
    Some(out)
}

impl State {
    /// Types `text` on the seat's keyboard (see the module docs).
    pub(crate) fn type_text(&mut self, text: &str) {
        let Some(keyboard) = self.core.seat.get_keyboard() else {
            return;
        };
        let (original, segments) = keyboard.with_xkb_state(self, |ctx| {
            let xkb = ctx.xkb().lock().unwrap();
            // SAFETY: the keymap is only read here, under the lock of its `Xkb`, and no
            // reference to it outlives the closure.
            let keymap = unsafe { xkb.keymap() };
            (
                keymap.get_as_string(xkb::KEYMAP_FORMAT_TEXT_V1),
                plan(keymap, xkb.active_layout().0, text),
            )
        });
        for segment in segments {
            let temporary = !segment.extra.is_empty();
            if temporary {
                let Some(keymap) = keymap_with_extra(&original, &segment.extra) else {
                    warn!("cannot find the symbols section of the keymap; text dropped");
                    continue;
                };
                if let Err(err) = keyboard.set_keymap_from_string(self, keymap) {
                    warn!(?err, "temporary keymap rejected; text dropped");
                    continue;
                }
                debug!(added = segment.extra.len(), "temporary keymap for text");
            }
            for stroke in &segment.strokes {
                for &m in &stroke.mods {
                    self.text_key(m, KeyState::Pressed);
                }
                self.text_key(stroke.key, KeyState::Pressed);
                self.text_key(stroke.key, KeyState::Released);
                for &m in stroke.mods.iter().rev() {
                    self.text_key(m, KeyState::Released);
                }
            }
            if temporary {
                if let Err(err) = keyboard.set_keymap_from_string(self, original.clone()) {
                    warn!(?err, "cannot restore the keymap after typing text");
                }
            }
        }
    }

    fn text_key(&mut self, xkb_keycode: u32, state: KeyState) {
        let Some(keyboard) = self.core.seat.get_keyboard() else {
            return;
        };
        let time = self.core.now_ms();
        keyboard.input::<(), _>(
            self,
            Keycode::new(xkb_keycode),
            state,
            SERIAL_COUNTER.next_serial(),
            time,
            |_, _, _| FilterResult::Forward,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us_keymap() -> xkb::Keymap {
        let context = xkb::Context::new(xkb::CONTEXT_NO_FLAGS);
        xkb::Keymap::new_from_names(
            &context,
            "",
            "",
            "us",
            "",
            None,
            xkb::KEYMAP_COMPILE_NO_FLAGS,
        )
        .expect("us keymap compiles")
    }

    #[test]
    fn ascii_uses_existing_keys_and_shift() {
        let keymap = us_keymap();
        let segments = plan(&keymap, 0, "aA");
        assert_eq!(segments.len(), 1);
        assert!(segments[0].extra.is_empty());
        let strokes = &segments[0].strokes;
        // evdev KEY_A (30) + 8, Shift_L is KEY_LEFTSHIFT (42) + 8.
        assert_eq!(
            strokes[0],
            Stroke {
                mods: vec![],
                key: 38
            }
        );
        assert_eq!(
            strokes[1],
            Stroke {
                mods: vec![50],
                key: 38
            }
        );
    }

    #[test]
    fn missing_characters_get_spare_keycodes_once() {
        let keymap = us_keymap();
        let segments = plan(&keymap, 0, "üßü日");
        assert_eq!(segments.len(), 1);
        let extra: Vec<Keysym> = segments[0].extra.iter().map(|(_, s)| *s).collect();
        assert_eq!(
            extra,
            vec![
                Keysym::udiaeresis,
                Keysym::ssharp,
                xkb::utf32_to_keysym(u32::from('日'))
            ]
        );
        let strokes = &segments[0].strokes;
        assert_eq!(strokes[0], strokes[2]);
        assert_ne!(strokes[0], strokes[1]);
    }

    #[test]
    fn temporary_keymap_compiles_and_types_the_keysyms() {
        let keymap = us_keymap();
        let segments = plan(&keymap, 0, "ü日");
        let text = keymap.get_as_string(xkb::KEYMAP_FORMAT_TEXT_V1);
        let extended = keymap_with_extra(&text, &segments[0].extra).unwrap();
        let context = xkb::Context::new(xkb::CONTEXT_NO_FLAGS);
        let compiled = xkb::Keymap::new_from_string(
            &context,
            extended,
            xkb::KEYMAP_FORMAT_TEXT_V1,
            xkb::KEYMAP_COMPILE_NO_FLAGS,
        )
        .expect("extended keymap compiles");
        let state = xkb::State::new(&compiled);
        let typed: String = segments[0]
            .strokes
            .iter()
            .map(|s| state.key_get_utf8(s.key.into()))
            .collect();
        assert_eq!(typed, "ü日");
    }

    #[test]
    fn many_missing_characters_split_into_segments() {
        let keymap = us_keymap();
        let spares = spare_keycodes(&keymap).len();
        assert!(spares > 0, "us keymap has spare keycodes");
        let text: String = (0..=spares as u32)
            .map(|i| char::from_u32(0x4E00 + i).unwrap())
            .collect();
        let segments = plan(&keymap, 0, &text);
        assert_eq!(segments.len(), 2);
        assert_eq!(segments[0].extra.len(), spares);
        assert_eq!(segments[1].extra.len(), 1);
    }
}
