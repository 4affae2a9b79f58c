//! Which group of a stream is Dapr's, and what `run` would do with CONSUMER_GROUP there: pure,
//! from what `XINFO GROUPS` and `XINFO CONSUMERS` said.
//!
//! A group with a consumer of its own name carries Dapr's signature
//! ([`crate::stream::group::has_dapr_signature`]). Other apps subscribed through Dapr to the same
//! topic carry it too, each under its app-id, so several groups may; only the order worker's is
//! the one to join.

use serde::Serialize;

/// One group of a stream, as preflight reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    pub name: String,
    pub consumers: Vec<Consumer>,
    /// Delivered and not acknowledged yet.
    pub pending: u64,
    /// Entries not delivered to the group yet (`None` when Redis cannot tell).
    pub lag: Option<u64>,
    pub last_delivered_id: String,
    /// A consumer named as the group: Dapr reads this way, and this worker never does (its
    /// consumers are pod names).
    pub dapr_signature: bool,
}

/// One consumer of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Consumer {
    pub name: String,
    pub pending: u64,
    pub idle_ms: u64,
}

impl Group {
    pub fn new(
        name: String,
        consumers: Vec<Consumer>,
        pending: u64,
        lag: Option<u64>,
        last_delivered_id: String,
    ) -> Self {
        let names = consumers.iter().map(|consumer| consumer.name.as_str());
        let dapr_signature = crate::stream::group::has_dapr_signature(&name, names);
        Self {
            name,
            consumers,
            pending,
            lag,
            last_delivered_id,
            dapr_signature,
        }
    }

    /// What Dapr's own consumer holds: the entries it read and never acknowledged.
    pub fn dapr_pending(&self) -> u64 {
        (self.consumers.iter())
            .filter(|consumer| consumer.name == self.name)
            .map(|consumer| consumer.pending)
            .sum()
    }
}

/// What `run` does with CONSUMER_GROUP on a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Joining {
    /// Joins Dapr's group: its position and pending entries are taken over.
    JoinsDapr,
    /// Joins an existing group that is not Dapr's, on a stream where no group is: a worker
    /// group from before.
    JoinsOwn,
    /// Creates the group at GROUP_START_ID, on a stream no Dapr group reads.
    Creates { replayed: u64 },
    /// Goes wrong: the red line, and the setting that fixes it when one does.
    Wrong { why: String, fix: Option<String> },
}

impl Joining {
    pub fn is_wrong(&self) -> bool {
        matches!(self, Self::Wrong { .. })
    }
}

/// What `run` would do on `stream` with CONSUMER_GROUP `configured` and GROUP_START_ID
/// `start_id`, given its `groups` and how many entries a group created now would replay.
pub fn joining(
    stream: &str,
    configured: &str,
    start_id: &str,
    groups: &[Group],
    replayed: u64,
) -> Joining {
    let dapr: Vec<&Group> = groups.iter().filter(|group| group.dapr_signature).collect();
    if dapr.iter().any(|group| group.name == configured) {
        return Joining::JoinsDapr;
    }
    let own = groups.iter().any(|group| group.name == configured);
    if dapr.is_empty() {
        return match own {
            true => Joining::JoinsOwn,
            false => Joining::Creates { replayed },
        };
    }
    let what_run_does = what_run_does(configured, own, start_id, replayed);
    let never_taken = never_taken(&dapr);
    if let [only] = dapr.as_slice() {
        return Joining::Wrong {
            why: format!(
                "stream {stream}: Dapr reads it in group `{}`, but CONSUMER_GROUP is \
                 `{configured}`: {what_run_does}{never_taken}",
                only.name
            ),
            fix: Some(format!("CONSUMER_GROUP={}", only.name)),
        };
    }
    let names: Vec<String> = dapr
        .iter()
        .map(|group| format!("`{}`", group.name))
        .collect();
    Joining::Wrong {
        why: format!(
            "stream {stream}: Dapr reads it in groups {} (one per app subscribed through \
             Dapr), and CONSUMER_GROUP `{configured}` is none of them: {what_run_does}{never_taken}; \
             set CONSUMER_GROUP to the order worker's (its component's consumerID, else its \
             app-id)",
            names.join(", ")
        ),
        fix: None,
    }
}

/// What `run` would do with a group `configured` that Dapr does not read: join it if it
/// exists (`own`), else create it at `start_id`, replaying `replayed` entries.
fn what_run_does(configured: &str, own: bool, start_id: &str, replayed: u64) -> String {
    match own {
        true => format!(
            "`run` would join group `{configured}`, which Dapr does not read: both would get \
             every entry and apply it"
        ),
        false => format!(
            "`run` would create group `{configured}` at GROUP_START_ID={start_id} and replay \
             {replayed} entr{} of the stream",
            plural(replayed)
        ),
    }
}

/// What Dapr's groups hold pending that `run` would never take over, as the end of a red line
/// (empty when nothing).
fn never_taken(dapr: &[&Group]) -> String {
    let pending: u64 = dapr.iter().map(|group| group.dapr_pending()).sum();
    match pending {
        0 => String::new(),
        _ => format!(
            ", and Dapr's {pending} pending entr{} would never be taken over",
            plural(pending)
        ),
    }
}

fn plural(count: u64) -> &'static str {
    if count == 1 {
        "y"
    } else {
        "ies"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::names::FAILED;

    fn group(name: &str, consumers: &[(&str, u64)]) -> Group {
        let consumers = (consumers.iter())
            .map(|(name, pending)| Consumer {
                name: (*name).to_owned(),
                pending: *pending,
                idle_ms: 0,
            })
            .collect::<Vec<_>>();
        let pending = consumers.iter().map(|c| c.pending).sum();
        Group::new(name.to_owned(), consumers, pending, Some(0), "0-0".into())
    }

    #[test]
    fn a_group_with_a_consumer_of_its_own_name_is_dapr_s() {
        assert!(group("order-worker", &[("order-worker", 3)]).dapr_signature);
        assert!(!group("order-service", &[("order-worker-7d9c", 3)]).dapr_signature);
        assert!(!group("empty", &[]).dapr_signature);
        assert_eq!(
            group("g", &[("g", 3), ("pod-1", 4)]).dapr_pending(),
            3,
            "only Dapr's consumer's entries are Dapr's"
        );
    }

    #[test]
    fn what_run_does_with_consumer_group() {
        let dapr = group("order-worker", &[("order-worker", 12)]);
        let other_app = group("analytics", &[("analytics", 0)]);
        let old_worker = group("order-service", &[("order-worker-7d9c", 0)]);
        let joining = |configured: &str, groups: &[Group]| {
            super::joining(FAILED, configured, "0", groups, 1234)
        };

        assert_eq!(
            joining("order-worker", std::slice::from_ref(&dapr)),
            Joining::JoinsDapr
        );
        assert_eq!(
            joining("order-worker", &[other_app.clone(), dapr.clone()]),
            Joining::JoinsDapr
        );
        assert_eq!(
            joining("order-service", std::slice::from_ref(&old_worker)),
            Joining::JoinsOwn
        );
        assert_eq!(
            joining("order-worker", &[]),
            Joining::Creates { replayed: 1234 }
        );

        let Joining::Wrong { why, fix } = joining("order-service", std::slice::from_ref(&dapr))
        else {
            panic!("a group other than Dapr's is wrong");
        };
        assert_eq!(fix.as_deref(), Some("CONSUMER_GROUP=order-worker"));
        assert_eq!(
            why,
            "stream payment.failed: Dapr reads it in group `order-worker`, but CONSUMER_GROUP \
             is `order-service`: `run` would create group `order-service` at GROUP_START_ID=0 \
             and replay 1234 entries of the stream, and Dapr's 12 pending entries would never \
             be taken over"
        );

        let Joining::Wrong { why, fix } = joining("order-service", &[dapr.clone(), old_worker])
        else {
            panic!("joining a group Dapr does not read is wrong");
        };
        assert_eq!(fix.as_deref(), Some("CONSUMER_GROUP=order-worker"));
        assert!(why.contains("both would get every entry"), "{why}");

        let Joining::Wrong { why, fix } = joining("order-service", &[dapr, other_app]) else {
            panic!("none of several Dapr groups is wrong");
        };
        assert_eq!(fix, None, "which app is the order worker cannot be known");
        assert!(why.contains("groups `order-worker`, `analytics`"), "{why}");
    }
}
