//! Edits of the config file that keep what the user wrote: comments, order, blank lines and
//! every key not edited stay as they are (`toml_edit`). The console's Apps page saves through
//! here; the caller checks the edited text with [`crate::config::Config::parse`] (so an edit
//! is refused with the config loader's own messages) and writes it atomically.

use std::collections::BTreeMap;

use toml_edit::{value, Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table};

/// An app as the console edits it: the keys of one `[[apps]]` table.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AppFields {
    /// `name`
    pub name: String,
    /// `cmd`
    pub cmd: Vec<String>,
    /// `env`, in order.
    #[serde(default)]
    pub env: Vec<EnvVar>,
    /// `working_dir`; empty for none.
    #[serde(default)]
    pub working_dir: String,
    /// `prep`, as (`do`, `undo`) pairs; either may be empty.
    #[serde(default)]
    pub prep: Vec<PrepFields>,
}

/// One environment variable.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EnvVar {
    /// Its name: letters, digits and `_`, not starting with a digit.
    pub name: String,
    /// Its value.
    #[serde(default)]
    pub value: String,
}

impl EnvVar {
    /// Whether `name` can name an environment variable.
    pub fn valid_name(name: &str) -> bool {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    }

    /// The variables of a map, in the map's order.
    pub fn list(env: &BTreeMap<String, String>) -> Vec<Self> {
        env.iter()
            .map(|(name, value)| Self {
                name: name.clone(),
                value: value.clone(),
            })
            .collect()
    }
}

/// One `prep` entry.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PrepFields {
    /// `do`
    #[serde(default, rename = "do")]
    pub run: Vec<String>,
    /// `undo`
    #[serde(default)]
    pub undo: Vec<String>,
}

/// Why an edit could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EditError {
    /// The file is not TOML (the host would not have started with it either).
    #[error("the config file is not valid TOML: {0}")]
    Parse(String),
    /// No `[[apps]]` entry has that name.
    #[error("no app named {0:?} in the config file")]
    NoSuchApp(String),
    /// Another `[[apps]]` entry has that name.
    #[error("an app named {0:?} is already in the config file")]
    Duplicate(String),
    /// `apps` is not an array of tables (written inline, `apps = [...]`).
    #[error("the config file's apps are not written as [[apps]] tables; edit it by hand")]
    Shape,
}

fn parse(text: &str) -> Result<DocumentMut, EditError> {
    text.parse::<DocumentMut>()
        .map_err(|e| EditError::Parse(e.to_string()))
}

/// The `[[apps]]` array of `doc`, created when missing.
fn apps(doc: &mut DocumentMut) -> Result<&mut ArrayOfTables, EditError> {
    if !doc.contains_key("apps") {
        doc.insert("apps", Item::ArrayOfTables(ArrayOfTables::new()));
    }
    doc["apps"].as_array_of_tables_mut().ok_or(EditError::Shape)
}

fn position(apps: &ArrayOfTables, name: &str) -> Option<usize> {
    apps.iter()
        .position(|t| t.get("name").and_then(Item::as_str) == Some(name))
}

fn strings(items: &[String]) -> Array {
    items.iter().map(String::as_str).collect()
}

/// Writes `app`'s keys into `table`, keeping the table's other keys and its comments. Keys the
/// form leaves empty are removed.
fn write_app(table: &mut Table, app: &AppFields) {
    table["name"] = value(app.name.as_str());
    table["cmd"] = value(strings(&app.cmd));
    if app.env.is_empty() {
        table.remove("env");
    } else {
        let mut env = InlineTable::new();
        for var in &app.env {
            env.insert(&var.name, var.value.as_str().into());
        }
        table["env"] = value(env);
    }
    if app.working_dir.is_empty() {
        table.remove("working_dir");
        table.remove("working-dir");
    } else {
        table.remove("working-dir");
        table["working_dir"] = value(app.working_dir.as_str());
    }
    if app.prep.is_empty() {
        table.remove("prep");
    } else {
        let mut prep = Array::new();
        for p in &app.prep {
            let mut entry = InlineTable::new();
            if !p.run.is_empty() {
                entry.insert("do", strings(&p.run).into());
            }
            if !p.undo.is_empty() {
                entry.insert("undo", strings(&p.undo).into());
            }
            prep.push(entry);
        }
        table["prep"] = value(prep);
    }
}

/// Adds `app` as a new `[[apps]]` entry at the end, or (with `replace`) writes it over the
/// entry named `replace`, which keeps its place, comments and other keys.
pub fn put_app(text: &str, replace: Option<&str>, app: &AppFields) -> Result<String, EditError> {
    let mut doc = parse(text)?;
    let apps = apps(&mut doc)?;
    let clash = position(apps, &app.name);
    match replace {
        Some(old) => {
            let at = position(apps, old).ok_or_else(|| EditError::NoSuchApp(old.into()))?;
            if clash.is_some_and(|c| c != at) {
                return Err(EditError::Duplicate(app.name.clone()));
            }
            let table = apps.get_mut(at).ok_or(EditError::Shape)?;
            write_app(table, app);
        }
        None => {
            if clash.is_some() {
                return Err(EditError::Duplicate(app.name.clone()));
            }
            let mut table = Table::new();
            write_app(&mut table, app);
            apps.push(table);
        }
    }
    Ok(doc.to_string())
}

/// Removes the `[[apps]]` entry named `name`.
pub fn remove_app(text: &str, name: &str) -> Result<String, EditError> {
    let mut doc = parse(text)?;
    let apps = apps(&mut doc)?;
    let at = position(apps, name).ok_or_else(|| EditError::NoSuchApp(name.into()))?;
    apps.remove(at);
    if apps.is_empty() {
        doc.remove("apps");
    }
    Ok(doc.to_string())
}

/// Sets the `image` of the `[[apps]]` entry named `name`.
pub fn set_app_image(text: &str, name: &str, image: &str) -> Result<String, EditError> {
    let mut doc = parse(text)?;
    let apps = apps(&mut doc)?;
    let at = position(apps, name).ok_or_else(|| EditError::NoSuchApp(name.into()))?;
    let table = apps.get_mut(at).ok_or(EditError::Shape)?;
    table["image"] = value(image);
    Ok(doc.to_string())
}

/// Sets `name` in `[table]` to `new`, creating the table at the end when missing; the key keeps
/// its place and the comments around it.
pub fn set_key(
    text: &str,
    table: &str,
    name: &str,
    new: toml_edit::Value,
) -> Result<String, EditError> {
    let mut doc = parse(text)?;
    if !doc.contains_key(table) {
        doc.insert(table, Item::Table(Table::new()));
    }
    let t = doc[table].as_table_like_mut().ok_or(EditError::Shape)?;
    match t.get_mut(name).and_then(Item::as_value_mut) {
        Some(old) => {
            // Keep the comment after the value on its line.
            let decor = old.decor().clone();
            *old = new;
            *old.decor_mut() = decor;
        }
        None => {
            t.insert(name, Item::Value(new));
        }
    }
    Ok(doc.to_string())
}

/// Removes `name` from `[table]`, so that its default applies.
pub fn remove_key(text: &str, table: &str, name: &str) -> Result<String, EditError> {
    let mut doc = parse(text)?;
    if let Some(t) = doc.get_mut(table).and_then(Item::as_table_like_mut) {
        t.remove(name);
    }
    Ok(doc.to_string())
}

/// The value of `name` in `[table]` of `text`, if the file sets it.
pub fn get_key(text: &str, table: &str, name: &str) -> Option<toml_edit::Value> {
    let doc = text.parse::<DocumentMut>().ok()?;
    doc.get(table)?
        .as_table_like()?
        .get(name)?
        .as_value()
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// A user's config; its box art path is a file that exists.
    const USER: &str = r#"# My host. Keep this comment.
[host]
name = "den"   # the name on the TV

# Games
[[apps]]
# the emulator, with its own comment
name = "RetroArch"
cmd = ["retroarch", "-f"]
image = "Cargo.toml"

[[apps]]
name = "Terminal"
cmd = ["foot"]
"#;

    fn app(name: &str) -> AppFields {
        AppFields {
            name: name.into(),
            cmd: vec!["supertuxkart".into(), "--fullscreen".into()],
            env: vec![EnvVar {
                name: "SDL_VIDEODRIVER".into(),
                value: "wayland".into(),
            }],
            working_dir: "/tmp".into(),
            prep: vec![PrepFields {
                run: vec!["sh".into(), "-c".into(), "echo on".into()],
                undo: vec![],
            }],
        }
    }

    fn loads(text: &str) -> Config {
        Config::parse(text, std::path::Path::new("test.toml")).unwrap()
    }

    #[test]
    fn an_added_app_loads_and_the_users_comments_stay() {
        let text = put_app(USER, None, &app("SuperTuxKart")).unwrap();
        for kept in [
            "# My host. Keep this comment.",
            "# the name on the TV",
            "# Games",
            "# the emulator, with its own comment",
            "image = \"Cargo.toml\"",
        ] {
            assert!(text.contains(kept), "{kept:?} is gone:\n{text}");
        }
        let config = loads(&text);
        let names: Vec<&str> = config.apps.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["RetroArch", "Terminal", "SuperTuxKart"]);
        let added = &config.apps[2];
        assert_eq!(added.cmd, ["supertuxkart", "--fullscreen"]);
        assert_eq!(added.env["SDL_VIDEODRIVER"], "wayland");
        assert_eq!(added.prep[0].get_ref().run, ["sh", "-c", "echo on"]);
        assert!(text.starts_with(USER), "the old text is untouched:\n{text}");
    }

    #[test]
    fn an_edit_keeps_the_entrys_place_comments_and_other_keys() {
        let mut edited = app("RetroArch 2");
        edited.env.clear();
        edited.prep.clear();
        edited.working_dir.clear();
        let text = put_app(USER, Some("RetroArch"), &edited).unwrap();
        assert!(
            text.contains("# the emulator, with its own comment\nname = \"RetroArch 2\""),
            "{text}"
        );
        let config = loads(&text);
        assert_eq!(config.apps[0].name, "RetroArch 2");
        assert_eq!(
            config.apps[0].image.as_ref().unwrap().get_ref().to_str(),
            Some("Cargo.toml")
        );
        assert!(config.apps[0].env.is_empty());
        assert_eq!(config.apps[1].name, "Terminal");
    }

    #[test]
    fn names_must_be_there_and_unique() {
        assert_eq!(
            put_app(USER, None, &app("Terminal")),
            Err(EditError::Duplicate("Terminal".into()))
        );
        assert_eq!(
            put_app(USER, Some("RetroArch"), &app("Terminal")),
            Err(EditError::Duplicate("Terminal".into()))
        );
        assert_eq!(
            put_app(USER, Some("Nope"), &app("X")),
            Err(EditError::NoSuchApp("Nope".into()))
        );
        assert_eq!(
            remove_app(USER, "Nope"),
            Err(EditError::NoSuchApp("Nope".into()))
        );
        assert!(matches!(
            put_app("[[apps]\n", None, &app("X")),
            Err(EditError::Parse(_))
        ));
        assert_eq!(
            put_app("apps = []\n", None, &app("X")),
            Err(EditError::Shape)
        );
    }

    #[test]
    fn removing_and_setting_the_image() {
        let text = remove_app(USER, "RetroArch").unwrap();
        assert!(text.contains("# My host. Keep this comment."));
        let config = loads(&text);
        assert_eq!(config.apps.len(), 1);
        let text = remove_app(&text, "Terminal").unwrap();
        assert!(loads(&text).apps.is_empty());
        assert!(!text.contains("[[apps]]"), "{text}");
        let text = set_app_image(USER, "Terminal", "src/lib.rs").unwrap();
        assert_eq!(
            loads(&text).apps[1]
                .image
                .as_ref()
                .unwrap()
                .get_ref()
                .to_str(),
            Some("src/lib.rs")
        );
    }

    #[test]
    fn keys_are_set_in_place_with_their_comments_and_removed() {
        let text = set_key(USER, "host", "name", "living room".into()).unwrap();
        assert!(
            text.contains("name = \"living room\"   # the name on the TV"),
            "{text}"
        );
        assert!(text.starts_with("# My host. Keep this comment."));
        let text = set_key(&text, "video", "fec_percent", 35i64.into()).unwrap();
        let config = loads(&text);
        assert_eq!(
            (config.host.name.as_str(), config.video.fec_percent),
            ("living room", 35)
        );
        assert_eq!(
            get_key(&text, "video", "fec_percent").and_then(|v| v.as_integer()),
            Some(35)
        );
        let text = remove_key(&text, "host", "name").unwrap();
        assert!(get_key(&text, "host", "name").is_none());
        assert!(text.contains("# Games"), "{text}");
        assert_eq!(loads(&text).apps.len(), 2);
    }

    #[test]
    fn environment_names() {
        for good in ["A", "_x", "SDL_VIDEODRIVER", "a1"] {
            assert!(EnvVar::valid_name(good), "{good}");
        }
        for bad in ["", "1A", "A=B", "A B", "Ä", "A\0"] {
            assert!(!EnvVar::valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn an_empty_file_gets_its_first_app() {
        let text = put_app("", None, &app("SuperTuxKart")).unwrap();
        assert_eq!(loads(&text).apps.len(), 1, "{text}");
    }
}
