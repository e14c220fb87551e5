//! Shared pieces of every renderer: the `-o` [`Format`], JSON output, aligned tables and
//! `key: value` blocks, and the formatting of sizes, rates, durations and timestamps.

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

/// Binary-unit size: `512 B`, `1.5 KiB`, `9.5 MiB`, `1.2 GiB`.
pub fn size(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
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

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SSZ`; `-` for 0.
pub fn timestamp(ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    let secs = ms / 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m, d)
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
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(timestamp(0), "-");
        assert_eq!(timestamp(1_709_210_096_000), "2024-02-29 12:34:56Z");
    }
}
