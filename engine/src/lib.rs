//! The copy engine: the data plane every node runs.
//!
//! Layers, bottom to top:
//! - [`store`]: the `ObjectStore` trait — list a key range, head/get/put, multipart, server-side
//!   copy, delete, probe — and its shared types and errors.
//! - `s3` and `fs`: the two implementations (aws-sdk-s3; a directory with an escaped key
//!   mapping), plus the cached S3 clients and credential resolution.
//! - `checksum` and `verify`: digests (MD5 / multipart ETags, CRC32C, CRC32, SHA-256, composite
//!   checksums) and the verification modes and ETag rules the copies apply.
//! - [`transfer`]: copy one object between two stores, choosing server-side or streaming, keeping
//!   metadata and tags, verifying the result. Inside: `plan` (pure planning: mode, part sizes,
//!   request costs), `server_side` (CopyObject / UploadPartCopy), `streaming` (GET → PUT, ranged
//!   GET → UploadPart, hashed on the way), `multipart` (the driver both modes use: bounded parts
//!   in flight, complete or abort), `uploads` (the upload log and the sweep of leftovers),
//!   `tally` (request counts).
//! - [`throttle`]: the byte-rate limit streamed bytes pass through (governor), shared by the
//!   copies of a job on a node.
//! - `filter`: include/exclude globs and size/time conditions over relative keys.
//! - `ops`: operations over a key range — copy, move, sync, dry run — with filters, producing a
//!   per-object outcome stream and counters.
//! - `faulty` and `testkit` (tests, or the `fault-injection` feature): request counting and
//!   fault injection over a real store, and shared test fixtures.
//!
//! Keys are always *relative to the location root* (its bucket prefix or directory), so copying
//! `src:photos/` to `dst:backup/` maps `photos/a.jpg` to `backup/a.jpg` by plain string
//! replacement of the path prefix.

pub mod checksum;
pub mod clients;
#[cfg(any(test, feature = "fault-injection"))]
pub mod faulty;
pub mod filter;
pub mod fs;
pub mod ops;
#[cfg(test)]
mod ops_tests;
pub mod s3;
pub mod store;
#[cfg(any(test, feature = "fault-injection"))]
pub mod testkit;
pub mod throttle;
pub mod transfer;
pub mod verify;

use std::sync::Arc;

pub use clients::S3Clients;
use store::{LocationSpec, ObjectStore, StoreResult};

/// Opens the store of a resolved location. No I/O: an S3 bucket's region (when not configured)
/// is discovered on first use; problems surface on the first request or in `probe()`.
pub async fn open_store(spec: &LocationSpec, clients: &S3Clients) -> StoreResult<Arc<dyn ObjectStore>> {
    Ok(match spec {
        LocationSpec::S3(s) => Arc::new(s3::S3Store::new(s.clone(), clients.clone())),
        LocationSpec::Fs(f) => Arc::new(fs::FsStore::new(f)),
    })
}
