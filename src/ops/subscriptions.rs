//! `order-worker subscriptions` and `GET /subscriptions`: what the worker consumes, as Dapr's
//! `/dapr/subscribe` listed it, with each stream's lag and pending count.

use super::table::Table;
use super::{print_report, OpsConfig};
use crate::stream::group::{subscription_statuses, SubscriptionStatus};

/// `order-worker subscriptions` settings.
#[derive(Clone, Debug, clap::Args)]
pub struct SubscriptionsArgs {
    #[command(flatten)]
    pub config: OpsConfig,
    /// Print JSON, for scripts, instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `order-worker subscriptions`: one line per topic of TOPICS (or `--topic`).
pub async fn run(args: SubscriptionsArgs) -> anyhow::Result<()> {
    let mut conn = args.config.connect().await?;
    let statuses = subscription_statuses(&mut conn, &args.config.subscriptions()?).await?;
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
