//! Membership and the cluster's identity: forming or joining a mesh (`bootstrap`), admitting,
//! removing and promoting nodes and transferring leadership (`membership`), the node id and
//! cluster id files (`identity`), and the cluster's periodic duties as background workers
//! (`duties`: heartbeats, liveness, autopilot, the cluster identity).

pub mod bootstrap;
pub mod duties;
pub mod identity;
pub mod membership;
