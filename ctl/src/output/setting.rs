//! `setting set|get|list` rendering.

use mesh_proto::v1::{GetSettingResponse, ListSettingsResponse, SetSettingResponse, Setting, SettingView};
use serde::Serialize;

use super::format::{dash, fields, json, stale_note, table, timestamp, yes_no, Format};

#[derive(Serialize)]
struct SettingJson<'a> {
    name: &'a str,
    value: &'a str,
    updated_at_ms: u64,
}

impl<'a> From<&'a Setting> for SettingJson<'a> {
    fn from(s: &'a Setting) -> Self {
        SettingJson {
            name: &s.name,
            value: &s.value,
            updated_at_ms: s.updated_at_ms,
        }
    }
}

#[derive(Serialize)]
struct SettingViewJson<'a> {
    name: &'a str,
    value: &'a str,
    is_default: bool,
    help: &'a str,
    updated_at_ms: u64,
}

/// `setting set`.
pub fn setting_set(r: &SetSettingResponse, format: Format) -> String {
    let default = Setting::default();
    let s = r.setting.as_ref().unwrap_or(&default);
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            setting: SettingJson<'a>,
        }
        return json(&J { setting: s.into() });
    }
    format!("{} = {} (updated {})\n", s.name, s.value, timestamp(s.updated_at_ms))
}

/// `setting get`.
pub fn setting_get(r: &GetSettingResponse, format: Format) -> String {
    let default = Setting::default();
    let s = r.setting.as_ref().unwrap_or(&default);
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            setting: SettingJson<'a>,
            linearizable: bool,
            is_default: bool,
        }
        return json(&J {
            setting: s.into(),
            linearizable: r.linearizable,
            is_default: r.is_default,
        });
    }
    let mut out = fields(&[
        ("name", s.name.clone()),
        ("value", dash(&s.value)),
        ("default", yes_no(r.is_default)),
        ("updated", timestamp(s.updated_at_ms)),
    ]);
    out.push_str(&stale_note(r.linearizable));
    out
}

/// `setting list`.
pub fn setting_list(r: &ListSettingsResponse, format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct J<'a> {
            settings: Vec<SettingViewJson<'a>>,
            linearizable: bool,
        }
        let settings = r.settings.iter().map(|s: &SettingView| SettingViewJson {
            name: &s.name,
            value: &s.value,
            is_default: s.is_default,
            help: &s.help,
            updated_at_ms: s.updated_at_ms,
        });
        return json(&J {
            settings: settings.collect(),
            linearizable: r.linearizable,
        });
    }
    let rows = r
        .settings
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                dash(&s.value),
                yes_no(s.is_default),
                timestamp(s.updated_at_ms),
                dash(&s.help),
            ]
        })
        .collect();
    let mut out = table(&["NAME", "VALUE", "DEFAULT", "UPDATED", "HELP"], rows);
    out.push_str(&stale_note(r.linearizable));
    out
}
