//! The FINALIZE merge of report chunks with bounded memory: an external merge sort.
//!
//! Chunks are read one at a time (in (task, epoch, run, seq) order) and their lines buffered
//! with a sequence number; a full buffer ([`Merger::RUN_BYTES`]) is sorted by (key, deletion?,
//! sequence) and spilled to a run file in a temporary directory on the node's disk. [`Merger::finish`]
//! merges the runs (one line of each in memory), folds the lines of each key with the rules of
//! [`fold`], and hands the merged lines out in order. Memory stays at one buffer plus one line per
//! run, whatever the job's size; a million-object report needs about 150 MB of local disk for a
//! moment, not of RAM.
//!
//! Order of the merged report: by key, copies before the deletion of the same key (a deletion is
//! keyed by its destination key).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use super::report::Line;

/// Which lines are the same object: (key, is a deletion). A deletion is keyed by its destination
/// key; copies, moves, skips and failures by their source key.
type Group = (String, bool);

fn group_of(l: &Line) -> Group {
    let delete = matches!(l.outcome.as_str(), "deleted" | "would_delete" | "delete_suppressed");
    (if delete { l.dst_key.clone() } else { l.key.clone() }, delete)
}

/// Folds the next line of a key (in chunk order) into what was chosen so far: a failure never
/// hides a success, "found copied" (`resumed`) never hides the line of the write itself, else the
/// later line wins; `writes` counts the real writes.
pub fn fold(prev: Option<Line>, l: Line) -> Line {
    let written = matches!(l.outcome.as_str(), "copied" | "moved") && !l.resumed;
    match prev {
        None => Line {
            writes: written as u32,
            ..l
        },
        Some(mut prev) => {
            let writes = prev.writes + written as u32;
            let keep_prev = prev.outcome != "failed" && (l.outcome == "failed" || l.resumed);
            if !keep_prev {
                prev = l;
            }
            prev.writes = writes;
            prev
        }
    }
}

/// One buffered line: its group, its place in chunk order, the line.
struct Rec {
    group: Group,
    seq: u64,
    line: Line,
}

/// An external merge of report lines. See the module docs.
pub struct Merger {
    dir: tempfile::TempDir,
    runs: Vec<std::path::PathBuf>,
    buf: Vec<Rec>,
    buf_bytes: usize,
    run_bytes: usize,
    seq: u64,
}

impl Merger {
    /// Lines buffered before a run is spilled, in raw JSON bytes (parsed, about three times that
    /// in memory).
    pub const RUN_BYTES: usize = 16 << 20;

    /// A merger spilling into a new temporary directory under `tmp`.
    pub fn new(tmp: &Path) -> io::Result<Merger> {
        Self::with_run_bytes(tmp, Self::RUN_BYTES)
    }

    /// [`Self::new`] with another spill size (tests force many runs).
    pub fn with_run_bytes(tmp: &Path, run_bytes: usize) -> io::Result<Merger> {
        std::fs::create_dir_all(tmp)?;
        Ok(Merger {
            dir: tempfile::Builder::new().prefix("report-merge-").tempdir_in(tmp)?,
            runs: Vec::new(),
            buf: Vec::new(),
            buf_bytes: 0,
            run_bytes: run_bytes.max(1),
            seq: 0,
        })
    }

    /// Adds the lines of one chunk (chunks in (task, epoch, run, seq) order). A line that does
    /// not parse is skipped (a chunk cut short by a crash ends in one).
    pub fn push_chunk(&mut self, chunk: &[u8]) -> io::Result<()> {
        for raw in String::from_utf8_lossy(chunk).lines() {
            let Ok(line) = serde_json::from_str::<Line>(raw) else {
                continue;
            };
            self.seq += 1;
            self.buf_bytes += raw.len() + 64;
            self.buf.push(Rec {
                group: group_of(&line),
                seq: self.seq,
                line,
            });
            if self.buf_bytes >= self.run_bytes {
                self.spill()?;
            }
        }
        Ok(())
    }

    /// Sorts the buffer and writes it as a run: per line `[key, deletion, seq]` TAB line JSON.
    fn spill(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.buf
            .sort_unstable_by(|a, b| (&a.group, a.seq).cmp(&(&b.group, b.seq)));
        let path = self.dir.path().join(format!("run-{:06}", self.runs.len()));
        let mut w = BufWriter::new(File::create(&path)?);
        for r in self.buf.drain(..) {
            let head = serde_json::to_string(&(&r.group.0, r.group.1, r.seq))?;
            let body = serde_json::to_string(&r.line)?;
            writeln!(w, "{head}\t{body}")?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        self.runs.push(path);
        self.buf_bytes = 0;
        Ok(())
    }

    /// Merges everything pushed, calling `out` with each merged line in order. Returns how many
    /// objects were written more than once.
    pub fn finish(mut self, mut out: impl FnMut(&Line) -> io::Result<()>) -> io::Result<u64> {
        self.spill()?;
        let mut readers: Vec<std::io::Lines<BufReader<File>>> = self
            .runs
            .iter()
            .map(|p| File::open(p).map(|f| BufReader::new(f).lines()))
            .collect::<io::Result<_>>()?;
        let mut heads: Vec<Option<Line>> = vec![None; readers.len()];
        let mut heap: BinaryHeap<Reverse<(Group, u64, usize)>> = BinaryHeap::new();
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("report merge run: {what}"));
        let mut next = |i: usize, heads: &mut Vec<Option<Line>>| -> io::Result<Option<(Group, u64)>> {
            let Some(text) = readers[i].next().transpose()? else {
                return Ok(None);
            };
            let (head, body) = text.split_once('\t').ok_or_else(|| bad("a line without a tab"))?;
            let (key, delete, seq): (String, bool, u64) =
                serde_json::from_str(head).map_err(|e| bad(&e.to_string()))?;
            heads[i] = Some(serde_json::from_str(body).map_err(|e| bad(&e.to_string()))?);
            Ok(Some(((key, delete), seq)))
        };
        for i in 0..heads.len() {
            if let Some((g, seq)) = next(i, &mut heads)? {
                heap.push(Reverse((g, seq, i)));
            }
        }
        let mut recopied = 0u64;
        let mut current: Option<(Group, Line)> = None;
        while let Some(Reverse((group, _, i))) = heap.pop() {
            let line = heads[i].take().expect("a head per heap entry");
            if let Some((g, seq)) = next(i, &mut heads)? {
                heap.push(Reverse((g, seq, i)));
            }
            current = match current {
                Some((g, prev)) if g == group => Some((g, fold(Some(prev), line))),
                Some((_, done)) => {
                    recopied += (done.writes > 1) as u64;
                    out(&done)?;
                    Some((group, fold(None, line)))
                }
                None => Some((group, fold(None, line))),
            };
        }
        if let Some((_, done)) = current {
            recopied += (done.writes > 1) as u64;
            out(&done)?;
        }
        Ok(recopied)
    }
}

#[cfg(test)]
mod tests {
    use super::super::report::count;
    use super::*;
    use mesh_proto::v1 as pb;
    use rand::{Rng, SeedableRng};

    /// Merges `chunks` spilling every `run_bytes`: (lines, recopied).
    fn merge_with(chunks: &[Vec<u8>], run_bytes: usize) -> (Vec<Line>, u64) {
        let tmp = tempfile::tempdir().unwrap();
        let mut m = Merger::with_run_bytes(tmp.path(), run_bytes).unwrap();
        for c in chunks {
            m.push_chunk(c).unwrap();
        }
        let mut lines = Vec::new();
        let recopied = m
            .finish(|l| {
                lines.push(l.clone());
                Ok(())
            })
            .unwrap();
        (lines, recopied)
    }

    /// Both ways: one run, and a run per line (the k-way merge does the work).
    fn merge(chunks: &[Vec<u8>]) -> (Vec<Line>, u64) {
        let one = merge_with(chunks, usize::MAX);
        assert_eq!(merge_with(chunks, 1), one, "one run per line merges to the same");
        one
    }

    fn totals(lines: &[Line]) -> pb::JobCounters {
        let mut c = pb::JobCounters::default();
        lines.iter().for_each(|l| count(&mut c, l));
        c
    }

    fn l(key: &str, outcome: &str, bytes: u64) -> String {
        serde_json::to_string(&Line {
            key: key.into(),
            dst_key: format!("d/{key}"),
            outcome: outcome.into(),
            bytes,
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn merge_dedupes_and_counts_recopies() {
        let a = [l("a", "copied", 1), l("b", "failed", 2), l("c", "copied", 3)].join("\n");
        // b retried successfully elsewhere, c copied again after a failure, d new.
        let b = [l("b", "copied", 2), l("c", "copied", 3), l("d", "skipped", 4)].join("\n");
        let (lines, recopied) = merge(&[a.into_bytes(), b.into_bytes()]);
        let outcomes: Vec<(&str, &str)> = lines.iter().map(|x| (x.key.as_str(), x.outcome.as_str())).collect();
        assert_eq!(
            outcomes,
            [("a", "copied"), ("b", "copied"), ("c", "copied"), ("d", "skipped")]
        );
        assert_eq!(recopied, 1, "only c was written twice");
        let t = totals(&lines);
        assert_eq!((t.objects_done, t.bytes_done), (3, 6));
        assert_eq!((t.objects_skipped, t.objects_failed, t.objects_total), (1, 0, 4));
    }

    #[test]
    fn a_later_failure_does_not_hide_a_success() {
        let a = l("x", "copied", 5);
        let b = l("x", "failed", 5);
        let (lines, _) = merge(&[a.into_bytes(), b.into_bytes()]);
        assert_eq!(lines[0].outcome, "copied");
        assert_eq!(totals(&lines).objects_failed, 0);
    }

    #[test]
    fn a_resumed_line_is_copied_but_not_a_write() {
        let resumed = |k: &str| {
            serde_json::to_string(&Line {
                key: k.into(),
                outcome: "copied".into(),
                bytes: 7,
                resumed: true,
                ..Default::default()
            })
            .unwrap()
        };
        // x: written, then found by the task's next run; y: only found (its line was lost).
        let a = l("x", "copied", 7);
        let b = [resumed("x"), resumed("y")].join("\n");
        let (lines, recopied) = merge(&[a.into_bytes(), b.into_bytes()]);
        assert_eq!(recopied, 0, "finding an object copied is not a second write");
        assert_eq!(
            (lines[0].key.as_str(), lines[0].resumed, lines[0].writes),
            ("x", false, 1)
        );
        assert_eq!(
            (lines[1].key.as_str(), lines[1].resumed, lines[1].writes),
            ("y", true, 0)
        );
        let t = totals(&lines);
        assert_eq!((t.objects_done, t.bytes_done, t.objects_skipped), (2, 14, 0));
    }

    #[test]
    fn deletions_are_kept_apart_from_copies() {
        let a = [l("k", "copied", 1), l("k", "deleted", 1)].join("\n");
        let (lines, _) = merge(&[a.into_bytes()]);
        assert_eq!(lines.len(), 2);
        let t = totals(&lines);
        assert_eq!((t.objects_done, t.objects_deleted, t.objects_total), (1, 1, 1));
    }

    #[test]
    fn a_broken_line_is_skipped_and_keys_with_tabs_and_newlines_survive_a_spill() {
        let odd = serde_json::to_string(&Line {
            key: "a\tb\nc \u{e9}".into(),
            outcome: "copied".into(),
            bytes: 3,
            ..Default::default()
        })
        .unwrap();
        let chunk = format!("{odd}\n{{\"key\": \"cut short");
        let (lines, _) = merge(&[chunk.into_bytes()]);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].key, "a\tb\nc \u{e9}");
    }

    #[test]
    fn a_spill_directory_that_cannot_be_made_is_an_error() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let e = Merger::new(&file.path().join("tmp")).err().expect("not a directory");
        assert!(!e.to_string().is_empty());
    }

    /// Many runs against one: the same lines, order, folds and re-copy count, on a shuffled
    /// history of retries, resumed runs, failures and deletions over a few hundred keys.
    #[test]
    fn many_runs_merge_like_one() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let outcomes = ["copied", "copied", "failed", "skipped", "deleted", "moved"];
        let mut chunks = Vec::new();
        for _ in 0..60 {
            let lines: Vec<String> = (0..50)
                .map(|_| {
                    let k = format!("k{:04}", rng.gen_range(0..400));
                    serde_json::to_string(&Line {
                        dst_key: format!("d/{k}"),
                        key: k,
                        outcome: outcomes[rng.gen_range(0..outcomes.len())].into(),
                        bytes: rng.gen_range(0..100),
                        resumed: rng.gen_bool(0.1),
                        ..Default::default()
                    })
                    .unwrap()
                })
                .collect();
            chunks.push(lines.join("\n").into_bytes());
        }
        let one = merge_with(&chunks, usize::MAX);
        let many = merge_with(&chunks, 2_000);
        assert_eq!(many, one);
        assert!(one.0.len() > 300, "most keys seen: {}", one.0.len());
        assert!(one.1 > 0, "some keys written twice");
        let sorted = one.0.windows(2).all(|w| {
            let g = |l: &Line| group_of(l);
            g(&w[0]) < g(&w[1])
        });
        assert!(sorted, "merged lines are in key order, each key once");
    }
}
