//! Rendering of every response as an aligned text table or as JSON, one module per resource.
//!
//! JSON uses the proto field names (`cluster_id`, `last_contact_ms`, ...) with u64 ids as numbers,
//! so scripts can rely on it. Tables are for people: durations like `120ms` / `3.2s`, `-` for
//! unknown or empty values, lowercase roles and states, UTC timestamps.
//!
//! - [`format`](mod@format): the `-o` [`Format`] and the shared helpers (tables, JSON, sizes,
//!   durations, times).
//! - [`cluster`], [`node`], [`setting`], [`location`], [`credential`], [`job`], [`operator`], [`tls`]: the
//!   renderers of each resource's commands, re-exported here.

pub mod cluster;
pub mod credential;
pub mod format;
pub mod job;
pub mod location;
pub mod node;
pub mod operator;
pub mod setting;
pub mod tls;

pub use cluster::{cluster_status, transfer_leader};
pub use credential::{credential_added, credential_list, credential_removed};
pub use format::{duration_ms, rate, size, table, timestamp, Format};
pub use job::{
    job_controlled, job_list, job_logs, job_progress_line, job_progress_message, job_show, job_submitted,
    job_submitted_note, job_summary, op_name, place, processed, progress_bytes,
};
pub use location::{location_added, location_list, location_removed, location_show, location_target, location_test};
pub use node::{node_list, node_removed};
pub use operator::workers;
pub use setting::{setting_get, setting_list, setting_set};
pub use tls::{ca_created, cert_created};
