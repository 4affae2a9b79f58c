//! The development tooling (`order-worker-dev bench`, `replicas`) in-process, through the dev
//! crate's library: its binary is not a target of this package (no `CARGO_BIN_EXE_` for it), so
//! tests parse its command line as it does and call the library's `run` functions. The worker
//! processes those start are this package's `order-worker` binary, passed explicitly.

use std::path::Path;

use clap::Parser;
use order_worker_dev::cli::{Cli, Command};

use super::TestEnv;

/// The `order-worker` binary under test.
pub fn order_worker_binary() -> &'static Path {
    Path::new(super::process::ORDER_WORKER)
}

impl TestEnv {
    /// `order-worker-dev <args>` parsed as the dev binary parses them, pointed at the test's
    /// Redis and PostgreSQL server (the command creates a database of its own there).
    pub fn dev_command(&self, args: &[&str]) -> Command {
        let mut line = vec!["order-worker-dev".to_owned()];
        line.extend(args.iter().map(|arg| (*arg).to_owned()));
        line.extend([
            "--redis-url".to_owned(),
            self.redis_url.clone(),
            "--database-url".to_owned(),
            self.database_url.clone(),
        ]);
        if let Some(ca_cert) = &self.redis_tls.redis_ca_cert {
            line.extend(["--redis-ca-cert".to_owned(), ca_cert.display().to_string()]);
        }
        match Cli::try_parse_from(line) {
            Ok(cli) => cli.command,
            Err(error) => panic!("order-worker-dev {args:?}: {error}"),
        }
    }
}
