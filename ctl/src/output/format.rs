//! Shared pieces of every renderer: the `-o` [`Format`], JSON output, aligned tables and
//! `key: value` blocks, and the formatting of sizes, rates, durations and timestamps.
//!
//! Sizes come from `bytesize` (IEC units, one decimal) and timestamps from `jiff`. Durations keep
//! a small formatter: `humantime` writes `4m 5s` / `3s 210ms`, not the compact `4m05s` / `3.2s`.

use serde::Serialize;

/// Output format of `-o/--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    Table,
    /// JSON with proto field names, for scripts.
    Json,
}

pub(crate) fn json(value: &impl Serialize) -> String {
    let mut s = serde_json::to_string_pretty(value).expect("plain data serializes");
    s.push('\n');
    s
}

/// Binary-unit size: `512 B`, `1.5 KiB`, `9.5 MiB`, `1.2 GiB` (bytesize's IEC display).
pub fn size(n: u64) -> String {
    bytesize::ByteSize(n).display().iec().to_string()
}

/// A rate in bytes per second: `195.3 KiB/s`, `-` when unknown.
pub fn rate(bytes_per_sec: f64) -> String {
    if bytes_per_sec > 0.0 && bytes_per_sec.is_finite() {
        format!("{}/s", size(bytes_per_sec.round() as u64))
    } else {
        "-".into()
    }
}

/// Left-aligned columns separated by two spaces, no trailing blanks.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header_row).chain(rows.iter()) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths[i].saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub(crate) fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    pairs
        .iter()
        .map(|(k, v)| format!("{:<width$} {v}\n", format!("{k}:"), width = width))
        .collect()
}

pub(crate) fn dash(s: &str) -> String {
    if s.trim().is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

pub(crate) fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

pub(crate) fn consistency(linearizable: bool) -> String {
    if linearizable {
        "yes"
    } else {
        "no (local read, may be stale)"
    }
    .into()
}

pub(crate) fn stale_note(linearizable: bool) -> String {
    if linearizable {
        String::new()
    } else {
        "(local read from this node: may be stale)\n".into()
    }
}

/// Human-readable milliseconds: `-` for unknown (negative), `120ms`, `3.2s`, `4m05s`, `2h03m`.
pub fn duration_ms(ms: i64) -> String {
    match ms {
        ms if ms < 0 => "-".into(),
        ms if ms < 1_000 => format!("{ms}ms"),
        ms if ms < 60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        ms if ms < 3_600_000 => format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60),
        ms => format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SSZ` (UTC, seconds truncated); `-` for 0, the
/// bare number of milliseconds past what jiff can show (the end of the year 9999).
pub fn timestamp(ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    match i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
    {
        Some(t) => t.strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
        None => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_ms(-1), "-");
        assert_eq!(duration_ms(0), "0ms");
        assert_eq!(duration_ms(120), "120ms");
        assert_eq!(duration_ms(3_210), "3.2s");
        assert_eq!(duration_ms(245_000), "4m05s");
        assert_eq!(duration_ms(7_380_000), "2h03m");
    }

    #[test]
    fn sizes_and_rates() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(10 << 20), "10.0 MiB");
        assert_eq!(size(u64::MAX), "16.0 EiB");
        assert_eq!(rate(0.0), "-");
        assert_eq!(rate(f64::NAN), "-");
        assert_eq!(rate(200_000.0), "195.3 KiB/s");
    }

    #[test]
    fn dates() {
        assert_eq!(timestamp(1), "1970-01-01 00:00:00Z");
        assert_eq!(timestamp(19_782 * 86_400_000 + 999), "2024-02-29 00:00:00Z");
        assert_eq!(timestamp(86_399_999), "1970-01-01 23:59:59Z");
        assert_eq!(timestamp(u64::MAX), u64::MAX.to_string());
        assert_eq!(timestamp(0), "-");
        assert_eq!(timestamp(1_709_210_096_000), "2024-02-29 12:34:56Z");
    }
}
