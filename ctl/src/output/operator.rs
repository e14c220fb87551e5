//! `operator workers` rendering: one row per background worker.

use mesh_proto::v1::{ListWorkersResponse, WorkerStatus};
use serde::Serialize;

use super::format::{dash, duration_ms, json, table, timestamp, Format};

/// `operator workers`.
pub fn workers(r: &ListWorkersResponse, format: Format) -> String {
    if format == Format::Json {
        #[derive(Serialize)]
        struct W<'a> {
            name: &'a str,
            scope: &'a str,
            state: &'a str,
            period_ms: u64,
            runs: u64,
            failures: u64,
            started_at_ms: u64,
            last_run_at_ms: u64,
            last_duration_ms: u64,
            last_error: &'a str,
            last_error_at_ms: u64,
        }
        #[derive(Serialize)]
        struct J<'a> {
            node_id: u64,
            is_leader: bool,
            workers: Vec<W<'a>>,
        }
        fn w(w: &WorkerStatus) -> W<'_> {
            W {
                name: &w.name,
                scope: &w.scope,
                state: &w.state,
                period_ms: w.period_ms,
                runs: w.runs,
                failures: w.failures,
                started_at_ms: w.started_at_ms,
                last_run_at_ms: w.last_run_at_ms,
                last_duration_ms: w.last_duration_ms,
                last_error: &w.last_error,
                last_error_at_ms: w.last_error_at_ms,
            }
        }
        return json(&J {
            node_id: r.node_id,
            is_leader: r.is_leader,
            workers: r.workers.iter().map(w).collect(),
        });
    }
    let rows = r
        .workers
        .iter()
        .map(|w| {
            vec![
                w.name.clone(),
                w.scope.clone(),
                w.state.clone(),
                duration_ms(w.period_ms as i64),
                w.runs.to_string(),
                w.failures.to_string(),
                timestamp(w.last_run_at_ms),
                duration_ms(if w.last_run_at_ms == 0 {
                    -1
                } else {
                    w.last_duration_ms as i64
                }),
                dash(&w.last_error),
            ]
        })
        .collect();
    let role = if r.is_leader {
        "the leader"
    } else {
        "not the leader: leader workers are stopped"
    };
    let mut out = format!("workers of node {} ({role})\n", r.node_id);
    out.push_str(&table(
        &[
            "NAME",
            "SCOPE",
            "STATE",
            "PERIOD",
            "RUNS",
            "FAILURES",
            "LAST RUN",
            "TOOK",
            "LAST ERROR",
        ],
        rows,
    ));
    out
}
