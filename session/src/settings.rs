//! The settings the console shows: every key that `assets/config.toml` documents, with its
//! documentation (the comment above it there), its default (the value there) and what it
//! takes. `assets/config.toml` stays the one place the keys are described.

use std::sync::OnceLock;

use crate::config::LIVE_KEYS;

/// The shipped, documented config.
const SHIPPED: &str = include_str!("../../assets/config.toml");

/// What a key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `true` or `false`.
    Boolean,
    /// A whole number.
    Integer,
    /// Text.
    String,
}

/// One documented key.
#[derive(Debug, Clone, PartialEq)]
pub struct Documented {
    /// Its table (`video`).
    pub table: String,
    /// Its name in the table (`fec_percent`).
    pub name: String,
    /// The comment above it in `assets/config.toml`.
    pub doc: String,
    /// Its default as TOML, `None` where the default is worked out at start (the host name)
    /// or is no value at all (the VAAPI device): the file shows an example in a comment.
    pub default: Option<toml::Value>,
    /// What it takes.
    pub kind: Kind,
}

impl Documented {
    /// `table.name`
    pub fn key(&self) -> String {
        format!("{}.{}", self.table, self.name)
    }

    /// The values it allows, where it allows only some.
    pub fn choices(&self) -> &'static [&'static str] {
        match (self.table.as_str(), self.name.as_str()) {
            ("video", "encoder") => &["auto", "nvenc", "vaapi", "software"],
            ("video", "renderer") => &["auto", "gles", "pixman"],
            ("video", "scaling") => &["fit", "stretch", "fill", "integer"],
            ("video", "scale_filter") => &["linear", "nearest"],
            ("input", "playstation_pad") => &["dualsense", "dualshock4"],
            ("host", "address_family") => &["both", "ipv4"],
            _ => &[],
        }
    }

    /// Whether a change applies to the next session (else at the next start).
    pub fn live(&self) -> bool {
        LIVE_KEYS.contains(&self.key().as_str())
    }
}

/// Every documented key, in the file's order.
pub fn documented() -> &'static [Documented] {
    static KEYS: OnceLock<Vec<Documented>> = OnceLock::new();
    KEYS.get_or_init(|| parse(SHIPPED))
}

/// The key named `key` (`table.name`).
pub fn find(key: &str) -> Option<&'static Documented> {
    documented().iter().find(|d| d.key() == key)
}

fn parse(text: &str) -> Vec<Documented> {
    let mut out: Vec<Documented> = Vec::new();
    let mut table: Option<String> = None;
    let mut doc: Vec<String> = Vec::new();
    for raw in text.lines() {
        let line = raw.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = (!name.starts_with('[')).then(|| name.to_string());
            doc.clear();
            continue;
        }
        let Some(t) = &table else { continue };
        if line.is_empty() {
            // A blank line ends a comment: the one before the catalog is not a key's.
            doc.clear();
            continue;
        }
        // `key = value`, or `# key = value` for a key whose default is no plain value.
        let (commented, body) = match line.strip_prefix('#') {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        if commented && body.starts_with('[') {
            // An example table (`# [[apps]]`): edited elsewhere, not a setting.
            table = None;
            doc.clear();
            continue;
        }
        let assignment = body.split_once(" = ").filter(|(k, _)| {
            !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        });
        let parsed = assignment.and_then(|(name, value)| {
            let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
                .ok()
                .and_then(|mut t| t.remove("v"));
            // A comment is a key's example only when its value is TOML.
            (!commented || value.is_some()).then_some((name, value))
        });
        match parsed {
            Some((name, value)) => {
                let kind = match &value {
                    Some(toml::Value::Boolean(_)) => Kind::Boolean,
                    Some(toml::Value::Integer(_)) => Kind::Integer,
                    _ => Kind::String,
                };
                // Keys that share a comment (keymap and keymap_variant) share its text.
                let text = if doc.is_empty() {
                    out.last()
                        .filter(|d| &d.table == t)
                        .map(|d| d.doc.clone())
                        .unwrap_or_default()
                } else {
                    doc.join(" ")
                };
                out.push(Documented {
                    table: t.clone(),
                    name: name.to_string(),
                    doc: text,
                    default: if commented { None } else { value },
                    kind,
                });
                doc.clear();
            }
            None if commented => doc.push(body.to_string()),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn every_key_of_the_shipped_config_is_documented_with_its_default() {
        let keys: Vec<String> = documented().iter().map(Documented::key).collect();
        assert_eq!(
            keys,
            [
                "host.name",
                "host.port_base",
                "host.bind",
                "host.address_family",
                "host.mdns",
                "video.fec_percent",
                "video.encoder",
                "video.vaapi_device",
                "video.renderer",
                "video.render_node",
                "video.scaling",
                "video.scale_filter",
                "input.keymap",
                "input.keymap_variant",
                "input.playstation_pad",
                "console.enabled",
                "console.port",
                "console.listen",
                "native.enabled",
                "native.port",
            ]
        );
        let fec = find("video.fec_percent").unwrap();
        assert_eq!(fec.default, Some(toml::Value::Integer(20)));
        assert_eq!(fec.kind, Kind::Integer);
        assert!(
            fec.doc.starts_with("Share of forward error correction"),
            "{}",
            fec.doc
        );
        assert!(fec.live());
        assert!(!find("host.port_base").unwrap().live());
        let name = find("host.name").unwrap();
        assert_eq!((name.default.as_ref(), name.kind), (None, Kind::String));
        assert!(name.doc.contains("hostname"));
        assert_eq!(
            find("input.keymap_variant").unwrap().doc,
            find("input.keymap").unwrap().doc
        );
        assert_eq!(find("host.mdns").unwrap().kind, Kind::Boolean);
        for live in LIVE_KEYS {
            assert!(find(live).is_some(), "{live} is not documented");
        }
    }

    #[test]
    fn every_choice_loads() {
        for key in documented() {
            for choice in key.choices() {
                let text = format!("[{}]\n{} = \"{choice}\"\n", key.table, key.name);
                Config::parse(&text, std::path::Path::new("t.toml"))
                    .unwrap_or_else(|e| panic!("{}: {e:#}", key.key()));
            }
        }
    }
}
