//! Prometheus metrics (`meshd_` prefix, base units) and the HTTPS endpoint that serves them.
//!
//! The metrics port speaks TLS with the node certificate like the gRPC port (there is no
//! plaintext port); a client certificate is optional, so Prometheus needs only the cluster CA:
//! `curl --cacert ca.pem https://NODE:7401/metrics`. `/health` answers 200 when the node knows a
//! leader and 503 otherwise.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub method: String,
}

/// All metrics of a node.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub term: Gauge<u64, AtomicU64>,
    pub leader_changes: Counter,
    pub is_leader: Gauge,
    pub last_log_index: Gauge<u64, AtomicU64>,
    pub applied_index: Gauge<u64, AtomicU64>,
    pub snapshot_index: Gauge<u64, AtomicU64>,
    pub voters: Gauge,
    pub learners: Gauge,
    /// Propose → applied, measured on the leader.
    pub apply_latency: Histogram,
    /// Server-side duration of every gRPC method.
    pub rpc_duration: Family<RpcLabels, Histogram>,
    /// Job tasks this node's worker is running.
    pub tasks_running: Gauge,
    /// Job tasks this node's worker finished (any outcome).
    pub tasks_finished: Counter,
    /// Task reports the leader called stale (the task was reassigned, paused or cancelled).
    pub task_reports_stale: Counter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("meshd");
        let m = Metrics {
            registry: Arc::new(Registry::default()),
            term: Gauge::default(),
            leader_changes: Counter::default(),
            is_leader: Gauge::default(),
            last_log_index: Gauge::default(),
            applied_index: Gauge::default(),
            snapshot_index: Gauge::default(),
            voters: Gauge::default(),
            learners: Gauge::default(),
            apply_latency: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            rpc_duration: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0001, 2.0, 18))),
            tasks_running: Gauge::default(),
            tasks_finished: Counter::default(),
            task_reports_stale: Counter::default(),
        };
        r.register(
            "worker_tasks_running",
            "Job tasks this node is running",
            m.tasks_running.clone(),
        );
        r.register(
            "worker_tasks_finished",
            "Job tasks this node finished (done, retried or failed)",
            m.tasks_finished.clone(),
        );
        r.register(
            "worker_task_reports_stale",
            "Task reports refused as stale (task reassigned, paused or cancelled)",
            m.task_reports_stale.clone(),
        );
        r.register("raft_term", "Current Raft term", m.term.clone());
        r.register(
            "raft_leader_changes",
            "Times this node saw the leader change",
            m.leader_changes.clone(),
        );
        r.register("raft_is_leader", "1 when this node is the leader", m.is_leader.clone());
        r.register(
            "raft_last_log_index",
            "Index of the last entry in this node's log",
            m.last_log_index.clone(),
        );
        r.register(
            "raft_applied_index",
            "Index of the last entry applied to the state machine",
            m.applied_index.clone(),
        );
        r.register(
            "raft_snapshot_index",
            "Last log index covered by this node's snapshot",
            m.snapshot_index.clone(),
        );
        r.register("raft_voters", "Voters in the current membership", m.voters.clone());
        r.register(
            "raft_learners",
            "Learners in the current membership",
            m.learners.clone(),
        );
        r.register_with_unit(
            "raft_apply_latency",
            "Time from proposing a command on the leader to its being applied",
            prometheus_client::registry::Unit::Seconds,
            m.apply_latency.clone(),
        );
        r.register_with_unit(
            "rpc_duration",
            "Server-side duration of gRPC calls",
            prometheus_client::registry::Unit::Seconds,
            m.rpc_duration.clone(),
        );
        Metrics {
            registry: Arc::new(r),
            ..m
        }
    }

    /// Starts timing one gRPC call; the duration is recorded when the guard drops.
    pub fn rpc_timer(&self, method: &'static str) -> RpcTimer {
        RpcTimer {
            hist: self
                .rpc_duration
                .get_or_create(&RpcLabels {
                    method: method.to_string(),
                })
                .clone(),
            start: std::time::Instant::now(),
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("encoding metrics into a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

pub struct RpcTimer {
    hist: Histogram,
    start: std::time::Instant,
}

impl Drop for RpcTimer {
    fn drop(&mut self) {
        self.hist.observe(self.start.elapsed().as_secs_f64());
    }
}

/// Serves `/metrics` and `/health` over TLS on `listener` (bound by the caller, so a taken port
/// is reported at start-up) until `shutdown` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    metrics: Metrics,
    healthy: impl Fn() -> bool + Send + Sync + Clone + 'static,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, _) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
        };
        let acceptor = acceptor.clone();
        let metrics = metrics.clone();
        let healthy = healthy.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else { return };
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                let healthy = healthy.clone();
                async move {
                    let (status, body) = match req.uri().path() {
                        "/metrics" => (StatusCode::OK, metrics.render()),
                        "/health" if healthy() => (StatusCode::OK, "ok\n".to_string()),
                        "/health" => (StatusCode::SERVICE_UNAVAILABLE, "no leader\n".to_string()),
                        _ => (StatusCode::NOT_FOUND, "try /metrics or /health\n".to_string()),
                    };
                    Ok::<_, std::convert::Infallible>(
                        Response::builder()
                            .status(status)
                            .body(Full::new(Bytes::from(body)))
                            .unwrap(),
                    )
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_have_the_prefix_and_units() {
        let m = Metrics::new();
        m.term.set(7);
        m.apply_latency.observe(0.002);
        drop(m.rpc_timer("Vote"));
        let text = m.render();
        assert!(text.contains("meshd_raft_term 7"), "{text}");
        assert!(text.contains("meshd_raft_apply_latency_seconds_count 1"), "{text}");
        assert!(
            text.contains("meshd_rpc_duration_seconds_count{method=\"Vote\"} 1"),
            "{text}"
        );
    }
}
