//! Reporting: byte sizes ([`HumanBytes`], from indicatif), MiB/s, medians, the per-run lines
//! both binaries print (`server requests: …`, `RESULT {json}`), and reading those `RESULT`
//! lines back into the groups a `table` summarizes.

use std::collections::BTreeMap;
use std::io::BufRead;

pub use indicatif::HumanBytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{die, MIB};

/// `bytes` over `secs`, in MiB/s.
pub fn mib_per_s(bytes: f64, secs: f64) -> f64 {
    bytes / MIB as f64 / secs
}

/// The median of the finite values (the upper one of an even count); NaN when there are none.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

/// The run whose `f` is the median (the upper one of an even count). `runs` is not empty.
pub fn median_run<T>(runs: &[T], f: impl Fn(&T) -> f64) -> &T {
    let mut v: Vec<&T> = runs.iter().collect();
    v.sort_by(|a, b| f(a).total_cmp(&f(b)));
    v[v.len() / 2]
}

/// The highest of the load averages measured before and after each run.
pub fn max_load(loads: impl IntoIterator<Item = (f64, f64)>) -> f64 {
    loads.into_iter().map(|(b, a)| b.max(a)).fold(0.0, f64::max)
}

/// `yes` when all `of` runs were verified, else `NO (ok/of runs)`.
pub fn verified_cell(ok: usize, of: usize) -> String {
    if ok == of {
        "yes".to_string()
    } else {
        format!("NO ({ok}/{of} runs)")
    }
}

/// `  server requests: TYPE N (x/obj), …` and, when there were any, `  non-2xx answers: …`.
pub fn print_requests(requests: &BTreeMap<String, u64>, errors: &BTreeMap<String, u64>, objects: f64) {
    let per: Vec<String> = requests
        .iter()
        .map(|(k, v)| format!("{k} {v} ({:.3}/obj)", *v as f64 / objects))
        .collect();
    println!("  server requests: {}", per.join(", "));
    if !errors.is_empty() {
        println!("  non-2xx answers: {errors:?}");
    }
}

/// `RESULT {json}`: the machine-readable line of a run, which `table` reads back.
pub fn print_result(row: &impl Serialize) {
    println!("RESULT {}", serde_json::to_string(row).expect("json"));
}

/// The `RESULT {json}` lines of the file at `path` (dies when it cannot be read; a line that
/// does not parse is skipped with a note).
pub fn read_results<T: DeserializeOwned>(path: &str) -> Vec<T> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| die(&format!("{path}: {e}")));
    let mut rows = Vec::new();
    for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
        if let Some(j) = line.strip_prefix("RESULT ") {
            match serde_json::from_str(j) {
                Ok(r) => rows.push(r),
                Err(e) => eprintln!("skipping a RESULT line: {e}"),
            }
        }
    }
    rows
}

/// `rows` grouped by `key`, groups and rows in the order they first appear.
pub fn group_by<K: PartialEq, T>(rows: Vec<T>, key: impl Fn(&T) -> K) -> Vec<(K, Vec<T>)> {
    let mut groups: Vec<(K, Vec<T>)> = Vec::new();
    for r in rows {
        let k = key(&r);
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, v)) => v.push(r),
            None => groups.push((k, vec![r])),
        }
    }
    groups
}
