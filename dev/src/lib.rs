//! order-worker-dev: the development tooling of order-worker, kept out of the production
//! binary. [`demo`] shows the worker on a laptop, [`bench`] measures it, [`replicas`] runs
//! several `order-worker run` processes as a Deployment would, [`soak`] runs them for hours
//! through faults and checks they hold, [`dapr_consumer`] plays Dapr's side of a cut-over. What
//! they share: finding or starting Redis and PostgreSQL ([`local_servers`]), publishing entries
//! exactly as Dapr does ([`publisher`], also used by the tests), the order service's outbox table
//! ([`order_service`], also created by the tests) and running the `order-worker` binary as a
//! child process ([`worker_process`]). [`cli`] is the `order-worker-dev` command line.

pub mod bench;
pub mod cli;
pub mod cluster;
pub mod dapr_consumer;
pub mod demo;
pub mod fault_proxy;
pub mod in_order;
pub mod local_servers;
pub mod order_service;
pub mod publisher;
pub mod replicas;
pub mod sentinel;
pub mod soak;
pub mod topology;
pub mod worker_process;
