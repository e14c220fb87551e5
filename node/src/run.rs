//! Start-up and shutdown of a node: checks the input, opens the store, starts Raft, the gRPC and
//! metrics servers, the background workers (see `background`), the job worker and the
//! bootstrap, then waits for SIGTERM/SIGINT (or a fatal error) and drains.
//!
//! Shutdown follows one cancellation token through every task (mini-redis style): on a signal
//! the job worker stops first (its tasks report their checkpoints and are handed back), the node
//! hands leadership away if it leads, the gRPC server stops accepting and finishes in-flight
//! calls, the background workers stop, Raft shuts down, and the store is flushed.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use mesh_proto::v1::{
    cluster_service_server::ClusterServiceServer, credential_service_server::CredentialServiceServer,
    job_service_server::JobServiceServer, location_service_server::LocationServiceServer,
    peer_service_server::PeerServiceServer, raft_service_server::RaftServiceServer,
};
use openraft::SnapshotPolicy;
use tokio::signal::unix::{signal, SignalKind};
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;

use crate::background::{self, Worker};
use crate::cluster::{bootstrap, duties as cluster_duties, identity, membership};
use crate::config::Config;
use crate::dev;
use crate::metrics::Metrics;
use crate::net::network::Network;
use crate::net::peers::{Peers, MAX_PEER_MESSAGE};
use crate::net::tls::TlsMaterial;
use crate::node::Node;
use crate::server::auth::{ClientAuth, PeerAuth};
use crate::server::{cluster::ClusterRpc, config::ConfigRpc, jobs::JobRpc, peer::PeerRpc, raft::RaftRpc};
use mesh_proto::rules::MAX_REQUEST_BYTES;

/// How a node run ended badly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad input: exit code 2.
    #[error("{0}")]
    Input(String),
    /// Anything else: exit code 1.
    #[error("{0}")]
    Failed(String),
}

/// Longest a drain waits for in-flight calls before closing connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(mut cfg: Config) -> Result<(), RunError> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
        RunError::Input(format!(
            "invalid --data-dir (config key `data_dir`): cannot create {}: {e}",
            cfg.data_dir.display()
        ))
    })?;
    if cfg.dev {
        dev::prepare(&mut cfg).map_err(RunError::Failed)?;
    }
    let tls_files = cfg.tls.clone().expect("config or dev mode provides TLS files");
    let tls = TlsMaterial::load(&tls_files, cfg.advertise_host()).map_err(|e| RunError::Input(e.to_string()))?;

    let id = identity::load_or_create_node_id(&cfg.data_dir).map_err(|e| RunError::Failed(e.to_string()))?;
    let recorded_cluster = identity::cluster_id(&cfg.data_dir).map_err(|e| RunError::Failed(e.to_string()))?;
    let (log_store, state_machine) = mesh_raft::open(&cfg.data_dir).map_err(|e| RunError::Failed(e.to_string()))?;
    let state = state_machine.reader();
    if let (Some(file), Some(cluster)) = (&recorded_cluster, state.cluster()) {
        if *file != cluster.cluster_id {
            return Err(RunError::Failed(format!(
                "the data directory {} says cluster {file} but its store holds cluster {}; refusing to start (restore the directory from one backup)",
                cfg.data_dir.display(),
                cluster.cluster_id
            )));
        }
    }
    tracing::info!(node_id = id, listen = %cfg.listen, advertise = %cfg.advertise, data_dir = %cfg.data_dir.display(), "starting meshd {}", crate::node::VERSION);

    let raft_config = openraft::Config {
        cluster_name: "bucketmesh".into(),
        heartbeat_interval: cfg.heartbeat_interval.as_millis() as u64,
        election_timeout_min: cfg.election_timeout.as_millis() as u64,
        election_timeout_max: cfg.election_timeout.as_millis() as u64 * 2,
        install_snapshot_timeout: 10_000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_every),
        max_in_snapshot_log_to_keep: cfg.snapshot_every.min(1000),
        ..Default::default()
    }
    .validate()
    .map_err(|e| RunError::Input(format!("invalid Raft timing: {e}")))?;

    let cluster_id = Arc::new(RwLock::new(recorded_cluster.clone().unwrap_or_default()));
    let peers = Arc::new(Peers::new(id, tls.clone(), cfg.source_ip(), cluster_id.clone()));
    // The cluster data key: a node whose cluster has one must hold it (fetched from a member if
    // missing) before it starts; see `secrets`.
    let data_key = crate::secrets::load_at_start(id, &cfg, &state, &peers)
        .await
        .map_err(RunError::Failed)?;
    let raft = mesh_raft::MeshRaft::new(
        id,
        Arc::new(raft_config),
        Network { peers: peers.clone() },
        log_store.clone(),
        state_machine,
    )
    .await
    .map_err(|e| RunError::Failed(format!("cannot start Raft: {e}")))?;

    let shutdown = CancellationToken::new();
    let node = Arc::new(Node {
        id,
        cfg: cfg.clone(),
        raft: raft.clone(),
        state: state.clone(),
        peers,
        cluster_id,
        liveness: Mutex::new(Default::default()),
        leading_since: Mutex::new(None),
        shutdown: shutdown.clone(),
        metrics: Metrics::new(),
        data_key: RwLock::new(data_key.map(Arc::new)),
        workers: Default::default(),
        fatal: Mutex::new(None),
    });

    // gRPC server. Bind first so a taken port is reported before anything else starts.
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| RunError::Failed(format!("cannot listen on {} (--listen): {e}", cfg.listen)))?;
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_not_serving::<ClusterServiceServer<ClusterRpc>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(mesh_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| RunError::Failed(format!("reflection: {e}")))?;
    let client_auth = ClientAuth { state: state.clone() };
    let config_rpc = ConfigRpc::new(node.clone());
    let server = Server::builder()
        .tls_config(tls.server_config())
        .map_err(|e| RunError::Input(format!("TLS: {e}")))?
        .add_service(health_service)
        .add_service(reflection)
        .add_service(tonic::service::interceptor::InterceptedService::new(
            RaftServiceServer::new(RaftRpc { node: node.clone() }).max_decoding_message_size(MAX_PEER_MESSAGE),
            PeerAuth,
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            PeerServiceServer::new(PeerRpc { node: node.clone() }),
            PeerAuth,
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            ClusterServiceServer::new(ClusterRpc { node: node.clone() }).max_decoding_message_size(MAX_REQUEST_BYTES),
            client_auth.clone(),
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            LocationServiceServer::new(config_rpc.clone()).max_decoding_message_size(MAX_REQUEST_BYTES),
            client_auth.clone(),
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            CredentialServiceServer::new(config_rpc).max_decoding_message_size(MAX_REQUEST_BYTES),
            client_auth.clone(),
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            JobServiceServer::new(JobRpc::new(node.clone())).max_decoding_message_size(MAX_REQUEST_BYTES),
            client_auth,
        ));
    let server_stop = CancellationToken::new();
    let server_task = {
        let stop = server_stop.clone();
        tokio::spawn(async move {
            server
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stop.cancelled_owned())
                .await
        })
    };

    // Metrics endpoint (TLS).
    let metrics_tls = tls
        .metrics_server_config()
        .map_err(|e| RunError::Input(e.to_string()))?;
    let metrics_listener = tokio::net::TcpListener::bind(cfg.metrics_listen).await.map_err(|e| {
        RunError::Failed(format!(
            "cannot listen on {} (--metrics-listen): {e}",
            cfg.metrics_listen
        ))
    })?;
    {
        let node2 = node.clone();
        let healthy = move || node2.leader().is_some();
        tokio::spawn(crate::metrics::serve(
            metrics_listener,
            metrics_tls,
            node.metrics.clone(),
            healthy,
            shutdown.clone(),
        ));
    }

    // Health: SERVING once a leader is known.
    {
        let node = node.clone();
        let reporter = health_reporter.clone();
        tokio::spawn(async move {
            let mut rx = node.raft.metrics();
            let mut serving = false;
            loop {
                let has_leader = node.leader().is_some();
                if has_leader != serving {
                    serving = has_leader;
                    if serving {
                        reporter
                            .set_service_status("", tonic_health::ServingStatus::Serving)
                            .await;
                        reporter.set_serving::<ClusterServiceServer<ClusterRpc>>().await;
                    } else {
                        reporter
                            .set_service_status("", tonic_health::ServingStatus::NotServing)
                            .await;
                        reporter.set_not_serving::<ClusterServiceServer<ClusterRpc>>().await;
                    }
                }
                tokio::select! {
                    _ = node.shutdown.cancelled() => return,
                    r = rx.changed() => if r.is_err() { return },
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
    }

    // Every periodic duty, on every node or only on the leader (see `background`).
    let workers_task = tokio::spawn(background::run(node.clone(), duties()));
    // The worker stops first on a drain (a child of the shutdown signal): its tasks report their
    // checkpoints and are handed back while Raft and the servers still run.
    let worker_stop = shutdown.child_token();
    let worker_task = tokio::spawn(crate::jobs::worker::run(node.clone(), worker_stop.clone()));
    {
        let node = node.clone();
        tokio::spawn(async move {
            if let Err(e) = bootstrap::run(node.clone()).await {
                tracing::error!("{e}");
                node.fatal(e.to_string());
            }
        });
    }
    if cfg.dev {
        match dev::write_meshctl_config(&cfg) {
            Ok(msg) => eprintln!("{msg}"),
            Err(e) => tracing::warn!("{e}"),
        }
    }

    // Wait for a signal or a fatal error.
    let mut term = signal(SignalKind::terminate()).map_err(|e| RunError::Failed(e.to_string()))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| RunError::Failed(e.to_string()))?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining"),
        _ = int.recv() => tracing::info!("SIGINT: draining"),
        _ = shutdown.cancelled() => {}
    }

    // Drain: stop the worker (tasks handed back), hand leadership away while the servers still
    // run, then stop everything.
    worker_stop.cancel();
    if tokio::time::timeout(Duration::from_secs(10), worker_task)
        .await
        .is_err()
    {
        tracing::warn!("the worker did not stop within 10s");
    }
    if node.is_leader() && node.fatal.lock().unwrap().is_none() {
        let (voters, _) = membership::members(&node);
        if voters.iter().any(|v| *v != node.id) {
            match membership::transfer_leadership(&node, 0).await {
                Ok(to) => tracing::info!(to, "leadership transferred"),
                Err(e) => tracing::warn!("leadership transfer failed: {e}"),
            }
        }
    }
    shutdown.cancel();
    server_stop.cancel();
    match tokio::time::timeout(DRAIN_TIMEOUT, server_task).await {
        Ok(Ok(Err(e))) => tracing::warn!("gRPC server: {e}"),
        Err(_) => tracing::warn!("in-flight calls did not finish within {DRAIN_TIMEOUT:?}; closing"),
        _ => {}
    }
    let _ = workers_task.await;
    if let Err(e) = raft.shutdown().await {
        tracing::warn!("raft shutdown: {e}");
    }
    log_store
        .flush_all()
        .await
        .map_err(|e| RunError::Failed(format!("flushing the store: {e}")))?;
    tracing::info!("stopped");
    let fatal = node.fatal.lock().unwrap().take();
    match fatal {
        Some(e) => Err(RunError::Failed(e)),
        None => Ok(()),
    }
}

/// Every background worker of a node (`meshctl operator workers` lists them by name).
/// Adding a duty is adding it here.
fn duties() -> Vec<Arc<dyn Worker>> {
    vec![
        // On every node.
        Arc::new(cluster_duties::Observer::default()),
        Arc::new(cluster_duties::ClusterIdentity),
        Arc::new(crate::secrets::DataKeySync),
        Arc::new(cluster_duties::Heartbeat),
        Arc::new(cluster_duties::NodeRecord),
        // On the leader only.
        Arc::new(cluster_duties::ClusterInit),
        Arc::new(cluster_duties::LivenessCheck),
        Arc::new(cluster_duties::Autopilot),
        Arc::new(crate::jobs::scheduler::JobScheduler),
    ]
}
