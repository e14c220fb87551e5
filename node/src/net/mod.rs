//! The node-to-node network: the Raft transport over tonic (`network`, openraft's
//! `RaftNetworkFactory`), one cached mutual-TLS channel per peer (`peers`), and the node's TLS
//! material (`tls`: the cluster CA, this node's certificate, the client and server configs).

pub mod network;
pub mod peers;
pub mod tls;
