//! `meshctl cp|mv|sync` and `meshctl job ...` against an in-process fake JobService over TLS:
//! exit codes, client-side checks, `--wait` following a job to its end and moving on to the next
//! address when the node it talks to goes away.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use mesh_proto::v1::job_service_server::{JobService, JobServiceServer};
use mesh_proto::v1::*;
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

const JOB_ID: &str = "j-0123456789ab";

fn with_reason(mut s: Status, reason: &'static str) -> Status {
    s.metadata_mut()
        .insert(meshctl::errors::REASON_KEY, reason.parse().unwrap());
    s
}

/// What the fake remembers and how it behaves.
#[derive(Default)]
struct Shared {
    /// Get calls answered so far (over every server sharing this).
    gets: AtomicUsize,
    /// The last spec submitted.
    submitted: Mutex<Option<JobSpec>>,
    /// The state the job ends in.
    final_state: Mutex<Option<JobState>>,
}

#[derive(Clone)]
struct Fake {
    shared: Arc<Shared>,
    /// This server answers this many Gets, then shuts down (and fails the call that found it so).
    gets_before_dying: Option<usize>,
    served: Arc<AtomicUsize>,
    die: Arc<Mutex<Option<oneshot::Sender<()>>>>,
}

fn view(state: JobState, done: u64) -> JobView {
    JobView {
        job: Some(Job {
            id: JOB_ID.into(),
            state: state as i32,
            spec: Some(JobSpec {
                op: JobOp::Copy as i32,
                src_location: "a".into(),
                dst_location: "b".into(),
                ..Default::default()
            }),
            counters: Some(JobCounters {
                objects_total: 4,
                bytes_total: 4096,
                objects_done: done,
                bytes_done: done * 1024,
                ..Default::default()
            }),
            started_at_ms: 1,
            error: if state == JobState::Failed {
                "task 2 (copy) failed: access denied".into()
            } else {
                String::new()
            },
            ..Default::default()
        }),
        bytes_per_sec: 1024.0,
        eta_ms: 1000,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl JobService for Fake {
    async fn submit(&self, req: Request<SubmitJobRequest>) -> Result<Response<SubmitJobResponse>, Status> {
        let spec = req.into_inner().spec.unwrap_or_default();
        if spec.src_location == "nope" {
            return Err(with_reason(
                Status::invalid_argument("source location \"nope\" does not exist; see `meshctl location list`"),
                "INVALID_ARGUMENT",
            ));
        }
        *self.shared.submitted.lock().unwrap() = Some(spec.clone());
        Ok(Response::new(SubmitJobResponse {
            job: Some(Job {
                id: JOB_ID.into(),
                spec: Some(spec),
                state: JobState::Queued as i32,
                owner: "root".into(),
                ..Default::default()
            }),
        }))
    }
    async fn list(&self, _: Request<ListJobsRequest>) -> Result<Response<ListJobsResponse>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }
    async fn get(&self, req: Request<GetJobRequest>) -> Result<Response<GetJobResponse>, Status> {
        if req.get_ref().id != JOB_ID {
            return Err(with_reason(
                Status::not_found(format!("job {} not found; see `meshctl job list`", req.get_ref().id)),
                "NOT_FOUND",
            ));
        }
        let mine = self.served.fetch_add(1, Ordering::SeqCst);
        if self.gets_before_dying.is_some_and(|n| mine >= n) {
            if let Some(tx) = self.die.lock().unwrap().take() {
                let _ = tx.send(());
            }
            return Err(Status::unavailable("this node is shutting down"));
        }
        let n = self.shared.gets.fetch_add(1, Ordering::SeqCst) as u64;
        let v = if n < 4 {
            view(JobState::Running, n)
        } else {
            let end = self.shared.final_state.lock().unwrap().unwrap_or(JobState::Completed);
            view(end, 4)
        };
        Ok(Response::new(GetJobResponse {
            job: Some(v),
            linearizable: true,
        }))
    }
    async fn control(&self, _: Request<ControlJobRequest>) -> Result<Response<ControlJobResponse>, Status> {
        Err(with_reason(
            Status::failed_precondition(format!("job {JOB_ID} is completed; only a paused job can be resumed")),
            "FAILED_PRECONDITION",
        ))
    }
    async fn logs(&self, _: Request<JobLogsRequest>) -> Result<Response<JobLogsResponse>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }
    type WatchStream = tonic::codegen::BoxStream<JobView>;
    /// The fake plays a node too old to stream: `--wait` must fall back to polling Get (which is
    /// what these tests count). Streaming is tested against real nodes (tests/tests/jobs_e2e.rs).
    async fn watch(&self, _: Request<WatchJobRequest>) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("unknown method Watch"))
    }
    async fn report(&self, _: Request<JobReportRequest>) -> Result<Response<JobReportResponse>, Status> {
        Ok(Response::new(JobReportResponse {
            location: "rep:jobs/j.jsonl".into(),
            content: b"{\"key\":\"a\",\"outcome\":\"copied\"}\n".to_vec(),
            // An older node: cut, without the offset of a next page.
            truncated: true,
            ..Default::default()
        }))
    }
}

/// Serves a fake sharing `shared` on 127.0.0.1 with TLS; it stops after `gets_before_dying`
/// Gets when given.
async fn serve_jobs(dir: &Path, shared: Arc<Shared>, gets_before_dying: Option<usize>) -> SocketAddr {
    let (cert, key) = (
        std::fs::read_to_string(dir.join("n1.pem")).unwrap(),
        std::fs::read_to_string(dir.join("n1-key.pem")).unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let fake = Fake {
        shared,
        gets_before_dying,
        served: Arc::new(AtomicUsize::new(0)),
        die: Arc::new(Mutex::new(Some(tx))),
    };
    let svc = JobServiceServer::with_interceptor(fake, |req: Request<()>| {
        let ok = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {TOKEN}"));
        if ok {
            Ok(req)
        } else {
            Err(with_reason(Status::unauthenticated("invalid token"), "UNAUTHENTICATED"))
        }
    });
    let tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
    let router = Server::builder().tls_config(tls).unwrap().add_service(svc);
    tokio::spawn(router.serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
        let _ = rx.await;
    }));
    addr
}

async fn meshctl(cwd: &Path, addr: &str, args: &[&str]) -> Output {
    let ca = ca_path(cwd);
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_meshctl"));
    cmd.args(args)
        .args(["--addr", addr, "--token", TOKEN, "--cacert", ca.to_str().unwrap()])
        .current_dir(cwd);
    for var in ["MESH_ADDR", "MESH_TOKEN", "MESH_CACERT", "MESH_CONFIG"] {
        cmd.env_remove(var);
    }
    cmd.output().await.unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Malformed input is refused by meshctl itself (exit 2) before any node is dialled.
#[tokio::test]
async fn malformed_input_exits_2_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["cp", "a:", "b:", "--bwlimit", "fast"], "--bwlimit"),
        (&["cp", "a:", "b:", "--bwlimit", "50Mbps"], "50MiB/s"),
        (&["sync", "a:", "b:", "--bwlimit", "-1"], "--bwlimit"),
        (&["cp", "a:", "b:", "--tier", "gold"], "--tier"),
        (&["cp", "a:", "b:", "--verify", "md5"], "--verify"),
        (&["mv", "a:", "b:", "--sse", "des"], "--sse"),
        (&["cp", ":x", "b:"], "SRC \":x\" has no location name"),
        (&["cp", "a:"], "DST"),
        (&["mv", "a:", "b:", "--delete"], "--delete"),
        (&["job", "list", "--state", "sleeping"], "--state"),
        (&["job", "show"], "ID"),
        (&["job", "pause", " "], "job id is empty"),
    ];
    for (args, expect) in cases {
        let o = meshctl(dir.path(), "127.0.0.1:1", args).await;
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: expected {expect:?} in {err}");
        assert!(!err.contains("unreachable"), "{args:?} tried to connect: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_sends_the_spec_and_prints_the_id() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let shared = Arc::new(Shared::default());
    let addr = serve_jobs(dir.path(), shared.clone(), None).await.to_string();
    let args = [
        "sync",
        "photos:2024",
        "backup",
        "--delete",
        "--exclude",
        "tmp/**",
        "--include",
        "*.jpg",
        "--exclude",
        "*.raw",
        "--bwlimit",
        "50MiB/s",
        "--tier",
        "ultra",
        "--sse",
        "AES256",
        "--verify",
        "checksum",
        "--dry-run",
    ];
    let o = meshctl(dir.path(), &addr, &args).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{JOB_ID}\n"));
    assert!(
        stderr(&o).contains("submitted job j-0123456789ab: sync photos:2024 → backup:"),
        "{}",
        stderr(&o)
    );
    let spec = shared.submitted.lock().unwrap().clone().unwrap();
    assert_eq!(spec.op, JobOp::Sync as i32);
    assert_eq!((spec.src_location.as_str(), spec.src_path.as_str()), ("photos", "2024"));
    assert_eq!((spec.dst_location.as_str(), spec.dst_path.as_str()), ("backup", ""));
    assert!(spec.delete && spec.dry_run);
    assert_eq!(spec.bwlimit_bytes_per_sec, 50 << 20);
    assert_eq!(
        (spec.tier.as_str(), spec.sse.as_str(), spec.verify.as_str()),
        ("ultra", "AES256", "checksum")
    );
    let rules: Vec<(bool, &str)> = spec.rules.iter().map(|r| (r.include, r.glob.as_str())).collect();
    assert_eq!(rules, [(false, "tmp/**"), (true, "*.jpg"), (false, "*.raw")]);

    // JSON: the job.
    let o = meshctl(dir.path(), &addr, &["-o", "json", "cp", "a:x/", "b:y/"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["id"], JOB_ID);
    assert_eq!(v["state"], "queued");
    assert_eq!(v["source"], "a:x/");

    // A server INVALID_ARGUMENT is a usage error too, with the server's words.
    let o = meshctl(dir.path(), &addr, &["cp", "nope:", "b:"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("source location \"nope\" does not exist"),
        "{}",
        stderr(&o)
    );

    // Other refusals are failed operations (exit 1).
    let o = meshctl(dir.path(), &addr, &["job", "resume", JOB_ID]).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("FAILED_PRECONDITION"), "{}", stderr(&o));
    let o = meshctl(dir.path(), &addr, &["job", "watch", "j-000000000000"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));

    // The report is printed as stored; a cut one says so on stderr.
    let o = meshctl(dir.path(), &addr, &["job", "report", JOB_ID]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "{\"key\":\"a\",\"outcome\":\"copied\"}\n");
    assert!(stderr(&o).contains("rep:jobs/j.jsonl"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_follows_the_job_to_its_end_and_exits_by_its_outcome() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let shared = Arc::new(Shared::default());
    let addr = serve_jobs(dir.path(), shared.clone(), None).await.to_string();
    let o = meshctl(dir.path(), &addr, &["cp", "a:", "b:", "--wait"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with(&format!("{JOB_ID}\njob:")), "{out}");
    assert!(out.contains("j-0123456789ab completed"), "{out}");
    // Not a terminal: plain progress lines on stderr.
    assert!(stderr(&o).contains("j-0123456789ab running: "), "{}", stderr(&o));

    // A job that fails: the summary, then exit 1 with its error.
    let shared = Arc::new(Shared::default());
    *shared.final_state.lock().unwrap() = Some(JobState::Failed);
    let addr = serve_jobs(dir.path(), shared, None).await.to_string();
    let o = meshctl(dir.path(), &addr, &["-o", "json", "job", "watch", JOB_ID]).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["state"], "failed");
    assert!(
        stderr(&o).contains("error: job j-0123456789ab ended failed: task 2 (copy) failed: access denied"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_moves_on_to_the_next_node_when_one_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let shared = Arc::new(Shared::default());
    // The first node answers two Gets, then shuts down; the second serves the rest.
    let first = serve_jobs(dir.path(), shared.clone(), Some(2)).await;
    let second = serve_jobs(dir.path(), shared.clone(), None).await;
    let addrs = format!("{first},{second}");
    let o = meshctl(dir.path(), &addrs, &["job", "watch", JOB_ID]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(&format!("watching through {second}")), "{err}");
    assert!(stdout(&o).contains("j-0123456789ab completed"), "{}", stdout(&o));
    assert!(shared.gets.load(Ordering::SeqCst) >= 5);

    // A dead first address is skipped when connecting, too.
    let dead = format!("127.0.0.1:{}", closed_port());
    let o = meshctl(dir.path(), &format!("{dead},{second}"), &["job", "report", JOB_ID]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
