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

/// A worker's `/metrics`, parsed as Prometheus text.
pub struct Metrics(prometheus_parse::Scrape);

impl Metrics {
    /// `GET /metrics` on `port`, parsed; fails unless it answers 200.
    pub async fn scrape(port: u16) -> Self {
        let (status, body) = get(port, "/metrics").await;
        assert_eq!(status, 200, "GET /metrics: {body}");
        let lines = body.lines().map(|line| Ok(line.to_owned()));
        Self(prometheus_parse::Scrape::parse(lines).expect("Prometheus text"))
    }

    /// The value of the counter or gauge (or a histogram's `_sum` / `_count`) `name` whose
    /// labels are exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.series(name)
            .find(|sample| {
                sample.labels.len() == labels.len()
                    && labels.iter().all(|(k, v)| sample.labels.get(k) == Some(*v))
            })
            .and_then(|sample| scalar(&sample.value))
    }

    /// The sum of every series of `name`, whatever its labels.
    pub fn total(&self, name: &str) -> f64 {
        self.series(name)
            .filter_map(|sample| scalar(&sample.value))
            .sum()
    }

    /// The unlabelled histogram `name`'s buckets: (upper bound, cumulative count).
    pub fn buckets(&self, name: &str) -> Vec<(f64, f64)> {
        let buckets = self.series(name).find_map(|sample| match &sample.value {
            prometheus_parse::Value::Histogram(buckets) => Some(buckets),
            _ => None,
        });
        let mut buckets: Vec<(f64, f64)> = buckets
            .map(|b| b.iter().map(|b| (b.less_than, b.count)).collect())
            .unwrap_or_default();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        buckets
    }

    fn series<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a prometheus_parse::Sample> {
        self.0
            .samples
            .iter()
            .filter(move |sample| sample.metric == name)
    }
}

fn scalar(value: &prometheus_parse::Value) -> Option<f64> {
    use prometheus_parse::Value::*;
    match value {
        Counter(v) | Gauge(v) | Untyped(v) => Some(*v),
        Histogram(_) | Summary(_) => None,
    }
}
