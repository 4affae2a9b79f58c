//! The HTTP endpoint on `HTTP_ADDR`: `/healthz` (the process is alive), `/readyz` (Redis and
//! PostgreSQL answer and every subscribed group exists; 503 with the reason otherwise),
//! `/metrics` (Prometheus text), `/subscriptions` (what is consumed, as JSON, like Dapr's
//! `/dapr/subscribe`). What Kubernetes probes and Prometheus scrape.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use diesel_async::SimpleAsyncConnection;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Subscription;
use crate::store::DbPool;
use crate::stream::group::{subscription_statuses, SubscriptionStatus};
use crate::stream::RedisPool;

/// A readiness check must answer well within a probe's timeout (1 s by default).
const CHECK_TIMEOUT: Duration = Duration::from_millis(800);

/// What a starting worker waits for, if anything: what `/readyz` answers until it runs.
#[derive(Clone, Debug, Default)]
pub struct Starting(Arc<Mutex<Option<String>>>);

impl Starting {
    pub fn set(&self, waiting_for: Option<String>) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = waiting_for;
    }

    fn reason(&self) -> String {
        let waiting = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match waiting.as_deref() {
            Some(what) => format!("starting, waiting: {what}"),
            None => "starting".to_owned(),
        }
    }
}

/// The endpoint's view of the worker: starting, then running with these pools.
#[derive(Clone, Default)]
pub struct Health {
    pub starting: Starting,
    running: Arc<OnceLock<Readiness>>,
}

impl Health {
    /// The worker started: `/readyz` checks its pools from now on.
    pub fn running(&self, readiness: Readiness) {
        let _ = self.running.set(readiness);
    }

    fn readiness(&self) -> Result<&Readiness, String> {
        self.running.get().ok_or_else(|| self.starting.reason())
    }
}

/// What `/readyz` needs: the worker's own pools, so it checks what the worker uses.
#[derive(Clone)]
pub struct Readiness {
    pub redis: RedisPool,
    pub db: DbPool,
    /// Ready only when each has its group.
    pub subscriptions: Vec<Subscription>,
}

impl Readiness {
    /// `Ok` when the worker can do its job now; else why not, in words.
    pub async fn check(&self) -> Result<(), String> {
        let redis = async {
            let mut conn = self
                .redis
                .get()
                .await
                .map_err(|error| format!("Redis unreachable: {error}"))?;
            let statuses = subscription_statuses(&mut *conn, &self.subscriptions)
                .await
                .map_err(|error| format!("Redis: {error}"))?;
            match statuses.iter().find(|s| !s.group_exists) {
                Some(missing) => Err(format!(
                    "consumer group {} does not exist on {}",
                    missing.group, missing.stream
                )),
                None => Ok(()),
            }
        };
        let postgres = async {
            let mut conn = self
                .db
                .get()
                .await
                .map_err(|error| format!("PostgreSQL unreachable: {error}"))?;
            conn.batch_execute("SELECT 1")
                .await
                .map_err(|error| format!("PostgreSQL: {error}"))
        };
        // Each within its own deadline, so a server that does not answer is named (a pool
        // waits for a connection longer than a probe would).
        let (redis, postgres) = tokio::join!(
            within(CHECK_TIMEOUT, "Redis", redis),
            within(CHECK_TIMEOUT, "PostgreSQL", postgres)
        );
        redis.and(postgres)
    }
}

/// `check`'s result, or that `server` did not answer within `timeout`.
async fn within(
    timeout: Duration,
    server: &str,
    check: impl std::future::Future<Output = Result<(), String>>,
) -> Result<(), String> {
    tokio::time::timeout(timeout, check)
        .await
        .unwrap_or_else(|_| Err(format!("{server}: no answer within {timeout:?}")))
}

#[derive(Clone)]
struct AppState {
    health: Health,
    metrics: PrometheusHandle,
}

/// Serves the endpoint on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    health: Health,
    metrics: PrometheusHandle,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(render))
        .route("/subscriptions", get(subscriptions))
        .with_state(AppState { health, metrics });
    axum::serve(listener, app).await
}

async fn ready(State(state): State<AppState>) -> (StatusCode, String) {
    let checked = match state.health.readiness() {
        Ok(readiness) => readiness.check().await,
        Err(starting) => Err(starting),
    };
    match checked {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

/// The subscriptions with their lag and pending count; 503 when Redis does not answer.
async fn subscriptions(
    State(state): State<AppState>,
) -> Result<axum::Json<Vec<SubscriptionStatus>>, (StatusCode, String)> {
    let unavailable = |error: String| (StatusCode::SERVICE_UNAVAILABLE, format!("{error}\n"));
    let readiness = state.health.readiness().map_err(unavailable)?;
    let read = async {
        let mut conn = readiness.redis.get().await.map_err(|e| e.to_string())?;
        subscription_statuses(&mut *conn, &readiness.subscriptions)
            .await
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(CHECK_TIMEOUT, read).await {
        Ok(Ok(statuses)) => Ok(axum::Json(statuses)),
        Ok(Err(error)) => Err(unavailable(format!("Redis: {error}"))),
        Err(_) => Err(unavailable(format!("no answer within {CHECK_TIMEOUT:?}"))),
    }
}

async fn render(State(state): State<AppState>) -> String {
    crate::instruments::process();
    state.metrics.render()
}
