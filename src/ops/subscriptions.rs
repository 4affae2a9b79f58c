//! `order-worker subscriptions` and `GET /subscriptions`: what the worker consumes, as Dapr's
//! `/dapr/subscribe` listed it, with each stream's lag and pending count.

use redis::aio::ConnectionLike;
use serde::Serialize;

use super::table::Table;
use super::{print_report, OpsConfig};
use crate::config::Subscription;
use crate::stream::group_info;

/// `order-worker subscriptions` settings.
#[derive(Clone, Debug, clap::Args)]
pub struct SubscriptionsArgs {
    #[command(flatten)]
    pub config: OpsConfig,
    /// Print JSON, for scripts, instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One subscription and how far its group is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionStatus {
    pub topic: String,
    pub stream: String,
    pub group: String,
    pub dead_letter_stream: String,
    /// Whether the group exists yet (a worker creates it when it starts).
    pub group_exists: bool,
    /// Entries not delivered to the group yet (`None` when Redis cannot tell).
    pub lag: Option<u64>,
    /// Delivered and not acknowledged yet.
    pub pending: u64,
}

/// Each subscription with its group's lag and pending count, read now.
pub async fn status<C: ConnectionLike + Send>(
    conn: &mut C,
    subscriptions: &[Subscription],
) -> redis::RedisResult<Vec<SubscriptionStatus>> {
    let mut statuses = Vec::with_capacity(subscriptions.len());
    for Subscription { topic, stream } in subscriptions {
        // No stream yet: nothing was published, and no worker created the group.
        let exists: bool = redis::cmd("EXISTS")
            .arg(&stream.stream)
            .query_async(conn)
            .await?;
        let group = match exists {
            true => group_info(conn, &stream.stream, &stream.group).await?,
            false => None,
        };
        statuses.push(SubscriptionStatus {
            topic: topic.name().to_owned(),
            stream: stream.stream.clone(),
            group: stream.group.clone(),
            dead_letter_stream: stream.dead_letter_stream(),
            group_exists: group.is_some(),
            lag: group.as_ref().and_then(|g| g.lag).map(|lag| lag as u64),
            pending: group.map_or(0, |g| g.pending as u64),
        });
    }
    Ok(statuses)
}

/// `order-worker subscriptions`: one line per topic of TOPICS (or `--topic`).
pub async fn run(args: SubscriptionsArgs) -> anyhow::Result<()> {
    let mut conn = args.config.connect().await?;
    let statuses = status(&mut conn, &args.config.subscriptions()?).await?;
    print_report(args.json, &statuses, || render(&statuses))
}

pub fn render(statuses: &[SubscriptionStatus]) -> String {
    let mut table = Table::new(&["topic", "stream", "group", "dead letters", "lag", "pending"]);
    for status in statuses {
        let lag = match (status.group_exists, status.lag) {
            (false, _) => "no group yet".to_owned(),
            (true, Some(lag)) => lag.to_string(),
            (true, None) => "unknown".to_owned(),
        };
        table.row(vec![
            status.topic.clone(),
            status.stream.clone(),
            status.group.clone(),
            status.dead_letter_stream.clone(),
            lag,
            status.pending.to_string(),
        ]);
    }
    table.render(0)
}
