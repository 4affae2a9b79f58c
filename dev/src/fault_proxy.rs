//! A TCP fault proxy between the worker and Redis or PostgreSQL: passes bytes through until a
//! test (or the soak run) cuts every connection (and refuses new ones), stalls them (bytes held,
//! connections open), loses the server's replies, or restores it: a server outage as the worker
//! sees it, without touching a server that others share.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pass,
    Stall,
    /// Requests reach the server, its replies are dropped.
    Deaf,
    Cut,
}

/// A running proxy; stops accepting when dropped.
pub struct FaultProxy {
    pub addr: SocketAddr,
    mode: Arc<watch::Sender<Mode>>,
    /// The local address of each connection opened to the server, as the server sees its
    /// clients (Redis's `CLIENT LIST addr=`).
    upstream: Arc<std::sync::Mutex<Vec<SocketAddr>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on an ephemeral local port and forwards to `target` (`host:port`).
    pub async fn start(target: &str) -> std::io::Result<Self> {
        Self::start_at("127.0.0.1:0", target).await
    }

    /// Listens on `listen` (`host:port`) and forwards to `target`: a server that appears where
    /// nothing answered before.
    pub async fn start_at(listen: &str, target: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let mode = Arc::new(watch::Sender::new(Mode::Pass));
        let target = target.to_owned();
        let accept_mode = mode.clone();
        let upstream = Arc::new(std::sync::Mutex::new(Vec::new()));
        let opened = upstream.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *accept_mode.borrow() == Mode::Cut {
                    continue; // dropped: the connection is refused as soon as it opens
                }
                let Ok(server) = TcpStream::connect(&target).await else {
                    continue;
                };
                if let Ok(local) = server.local_addr() {
                    opened.lock().expect("not poisoned").push(local);
                }
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(
                    client_read,
                    server_write,
                    accept_mode.subscribe(),
                    false,
                ));
                tokio::spawn(pump(
                    server_read,
                    client_write,
                    accept_mode.subscribe(),
                    true,
                ));
            }
        });
        Ok(Self {
            addr,
            mode,
            upstream,
            accept,
        })
    }

    /// Every connection opened to the server so far, by the address the server sees.
    pub fn upstream_addrs(&self) -> Vec<SocketAddr> {
        self.upstream.lock().expect("not poisoned").clone()
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn url_for(&self, url: &str) -> anyhow::Result<String> {
        let mut url = url::Url::parse(url)?;
        url.set_host(Some("127.0.0.1"))?;
        url.set_port(Some(self.addr.port()))
            .map_err(|()| anyhow::anyhow!("{url} cannot have a port"))?;
        Ok(url.to_string())
    }

    /// Resets every open connection and refuses new ones, as when the server goes away.
    pub fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
    }

    /// Holds all bytes in both directions, connections open, as on a network partition.
    pub fn stall(&self) {
        self.mode.send_replace(Mode::Stall);
    }

    /// Passes requests on and drops every reply, connections open: the server does what it was
    /// asked (Redis delivers entries to a read) and the client never hears of it.
    pub fn lose_replies(&self) {
        self.mode.send_replace(Mode::Deaf);
    }

    pub fn restore(&self) {
        self.mode.send_replace(Mode::Pass);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.mode.send_replace(Mode::Cut);
    }
}

/// Copies one direction (`replies`: the server's) until either side closes or the proxy cuts;
/// holds bytes while stalled, drops replies while deaf.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    replies: bool,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            _ = mode.wait_for(|m| *m == Mode::Cut) => return,
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        match mode.wait_for(|m| *m != Mode::Stall).await.map(|m| *m) {
            Ok(Mode::Pass) => {}
            Ok(Mode::Deaf) if !replies => {}
            Ok(Mode::Deaf) => continue,
            _ => return,
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
