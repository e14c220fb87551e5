//! mesh-tests: the end-to-end harness of bucketmesh.
//!
//! The tests in `tests/tests/*.rs` start real `meshd` processes on loopback and drive them the way
//! an operator would: through the real `meshctl` binary with `-o json`, with kill -9, SIGSTOP,
//! SIGTERM and a TCP fault proxy in front of every node. Nothing here links against meshd.
//!
//! Layout:
//! - [`bins`]: where the `meshd` and `meshctl` binaries are.
//! - [`proc`]: running a child process with a deadline and capturing its output.
//! - [`tls`]: a cluster PKI made with the real `meshctl tls ...` commands.
//! - [`proxy`]: the in-process TCP fault proxy (cut, heal, block by source IP).
//! - [`seaweed`]: a SeaweedFS `weed mini` S3 server for the engine tests (installed from PyPI).
//! - [`ctl`]: typed views of `meshctl -o json` output (`cluster status`, `setting get`).
//! - [`cluster`]: [`TestCluster`], N nodes with their own loopback IPs, data dirs, logs, proxies.
//! - [`netns`]: network namespaces with a rate-limited link per host (the scale-out benchmark).
//! - [`wait`]: polling helpers with deadlines and clear panic messages (no fixed sleeps).
//! - [`jobs`]: helpers of the distributed-job tests: an S3 client of SeaweedFS, S3 locations,
//!   typed `meshctl job ...` output, a JobService gRPC client.
//! - [`grpc`]: a direct tonic client of `mesh.v1.ClusterService` (TLS + bearer token), used by the
//!   benchmarks and by the plaintext-refusal test.
//! - [`sys`]: the only `unsafe` code: signals, death signals, a file lock, rusage.
//! - [`bench`](mod@bench): what the benchmark binaries `engine-bench` and `job-bench` share (seeding,
//!   measuring, reporting).
//!
//! Build the binaries before running: `cargo build --workspace --bins`, then
//! `cargo test -p mesh-tests`. `MESHD_BIN` / `MESHCTL_BIN` override the binary paths;
//! `MESH_TESTS_KEEP=1` keeps every test's directory (it is always kept when a test fails).

pub mod bench;
pub mod bins;
pub mod cluster;
pub mod ctl;
pub mod grpc;
pub mod jobs;
pub mod netns;
pub mod proc;
pub mod proxy;
pub mod seaweed;
pub mod sys;
pub mod tls;
pub mod wait;

pub use cluster::{ClusterBuilder, StartMode, TestCluster};
pub use ctl::{NodeStatus, Status};
pub use proc::ProcOutput;
pub use proxy::FaultProxy;
pub use wait::{wait_for, wait_until};
