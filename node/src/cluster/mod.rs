//! Membership and the cluster's identity: forming or joining a mesh (`bootstrap`), admitting,
//! removing and promoting nodes and transferring leadership (`membership`), the node id and
//! cluster id files (`identity`), and the node's periodic duties (`controller`).

pub mod bootstrap;
pub mod controller;
pub mod identity;
pub mod membership;
