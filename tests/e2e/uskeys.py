"""What a Moonlight client on a US keyboard sends for each printable US-ASCII character, and the
keysym name each character types (the same names in XKB, for Wayland clients, and in X11)."""

from __future__ import annotations

import time

import moonlight

# character -> (VK code, shift)
US_KEYS: dict[str, tuple[int, bool]] = {" ": (0x20, False)}
for _c in "abcdefghijklmnopqrstuvwxyz":
    US_KEYS[_c] = (ord(_c.upper()), False)
    US_KEYS[_c.upper()] = (ord(_c.upper()), True)
for _plain, _shifted, _vk in [("1", "!", 0x31), ("2", "@", 0x32), ("3", "#", 0x33),
                              ("4", "$", 0x34), ("5", "%", 0x35), ("6", "^", 0x36),
                              ("7", "&", 0x37), ("8", "*", 0x38), ("9", "(", 0x39),
                              ("0", ")", 0x30), ("-", "_", 0xBD), ("=", "+", 0xBB),
                              ("[", "{", 0xDB), ("]", "}", 0xDD), ("\\", "|", 0xDC),
                              (";", ":", 0xBA), ("'", '"', 0xDE), (",", "<", 0xBC),
                              (".", ">", 0xBE), ("/", "?", 0xBF), ("`", "~", 0xC0)]:
    US_KEYS[_plain] = (_vk, False)
    US_KEYS[_shifted] = (_vk, True)

KEYSYM_NAMES = {
    " ": "space", "!": "exclam", '"': "quotedbl", "#": "numbersign", "$": "dollar",
    "%": "percent", "&": "ampersand", "'": "apostrophe", "(": "parenleft", ")": "parenright",
    "*": "asterisk", "+": "plus", ",": "comma", "-": "minus", ".": "period", "/": "slash",
    ":": "colon", ";": "semicolon", "<": "less", "=": "equal", ">": "greater",
    "?": "question", "@": "at", "[": "bracketleft", "\\": "backslash", "]": "bracketright",
    "^": "asciicircum", "_": "underscore", "`": "grave", "{": "braceleft", "|": "bar",
    "}": "braceright", "~": "asciitilde",
}
PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))
assert set(PRINTABLE) <= set(US_KEYS), set(PRINTABLE) - set(US_KEYS)

MODIFIER_NAMES = ("Shift_", "Control_", "Alt_", "Meta_", "Super_", "ISO_Level3", "Mode_switch")


def keysym_name(ch: str) -> str:
    return KEYSYM_NAMES.get(ch, ch)


def type_us(stream: moonlight.Stream, ch: str) -> None:
    """Types `ch` the way a client on a US keyboard does: Shift pressed around shifted keys."""
    vk, shift = US_KEYS[ch]
    if shift:
        stream.send_key(moonlight.VK_LSHIFT, moonlight.KEY_ACTION_DOWN, moonlight.MODIFIER_SHIFT)
        stream.tap_key(vk, moonlight.MODIFIER_SHIFT, hold=0.005)
        stream.send_key(moonlight.VK_LSHIFT, moonlight.KEY_ACTION_UP, 0)
    else:
        stream.tap_key(vk, 0, hold=0.005)
    time.sleep(0.01)
