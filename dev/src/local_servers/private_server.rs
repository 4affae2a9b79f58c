//! A server process a test, the demo or a benchmark started, and stopped when it is dropped.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::STARTUP_DEADLINE;

/// A server process we started; interrupted (PostgreSQL's fast shutdown, Redis's clean exit)
/// and reaped on drop, so a failing test or demo never leaves one behind.
pub struct PrivateServer {
    name: &'static str,
    child: Child,
    /// Killed and reaped already ([`PrivateServer::kill`]).
    gone: bool,
}

impl PrivateServer {
    /// SIGKILL, as a crash: nothing is flushed or handed over.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.gone = true;
    }

    /// Waits until this server listens on `port`, failing if it exits first (the port was
    /// taken after all: what answers there is not ours).
    pub(super) fn wait_for_port(&mut self, port: u16) -> anyhow::Result<()> {
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait()? {
                self.gone = true;
                bail!(
                    "{} exited ({status}) before listening on port {port}",
                    self.name
                );
            }
            if listens_on(self.child.id(), port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("nothing listens on port {port} after {STARTUP_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(super) fn spawn(name: &'static str, mut command: Command) -> anyhow::Result<Self> {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self {
            name,
            child,
            gone: false,
        })
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        if self.gone {
            return;
        }
        let pid = self.child.id().to_string();
        let interrupted = Command::new("kill").args(["-INT", &pid]).status();
        if !interrupted.is_ok_and(|status| status.success()) {
            let _ = self.child.kill();
        }
        if let Err(error) = self.child.wait() {
            eprintln!("could not stop the private {}: {error}", self.name);
        }
    }
}

/// Whether process `pid` holds the socket listening on `port`: on Linux, the listening
/// socket's inode (`/proc/net/tcp`, `tcp6`) among the process's descriptors; elsewhere, whether
/// anything answers there.
fn listens_on(pid: u32, port: u16) -> bool {
    const LISTEN: &str = "0A";
    let Ok(mut table) = std::fs::read_to_string("/proc/net/tcp") else {
        return TcpStream::connect(("127.0.0.1", port)).is_ok();
    };
    table.push_str(&std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default());
    let sockets: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = u16::from_str_radix(fields.get(1)?.rsplit(':').next()?, 16).ok()?;
            let listening = local_port == port && *fields.get(3)? == LISTEN;
            listening.then(|| format!("socket:[{}]", fields.get(9).unwrap_or(&"")))
        })
        .collect();
    let Ok(descriptors) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    descriptors
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .any(|target| {
            sockets
                .iter()
                .any(|socket| target.as_os_str() == socket.as_str())
        })
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    #[test]
    fn a_server_whose_port_is_taken_fails_instead_of_passing_for_what_listens_there() {
        let taken = TcpListener::bind(("127.0.0.1", 0)).expect("a port");
        let port = taken.local_addr().expect("address").port();
        let dir = tempfile::tempdir().expect("temporary directory");
        match super::super::start_redis(dir.path(), port, &[]) {
            Ok(_) => panic!("started on a port something else listens on"),
            Err(error) => assert!(format!("{error:#}").contains("exited"), "{error:#}"),
        }
    }
}
