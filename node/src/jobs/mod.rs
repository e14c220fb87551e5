//! Distributed jobs on the node side: the leader's `scheduler` assigns the tasks the state
//! machine planned, and the `worker` on every node runs its assigned tasks with the copy engine
//! and reports their progress through the leader.

pub mod scheduler;
pub mod worker;
