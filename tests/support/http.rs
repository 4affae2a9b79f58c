//! The worker process's HTTP endpoint, as a client sees it.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{eventually, TestEnv};

/// `GET path` on `port`: (status code, body).
pub async fn get(port: u16, path: &str) -> (u16, String) {
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return (0, String::new());
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return (0, String::new());
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The port the worker process `name` logged it serves on (the line naming `/metrics`: other
/// lines may name other local URLs, such as an OTLP endpoint).
pub async fn http_port(env: &TestEnv, name: &str) -> u16 {
    let mut port = 0;
    eventually("the worker serves HTTP", async || {
        let log = env.process_log(name);
        port = log
            .lines()
            .filter(|line| line.contains("/metrics"))
            .find_map(|line| line.split("http://127.0.0.1:").nth(1))
            .and_then(|rest| {
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or(0);
        port != 0
    })
    .await;
    port
}
