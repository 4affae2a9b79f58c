//! The statement that writes a batch's status changes to an outbox, in the plan's order
//! (`ORDER BY n`), so that an order's steps get ascending ids and the relay publishes them in
//! that order: into the worker's own `order_events_outbox`, or, with `ORDER_EVENTS_TABLE`, into
//! the order service's outbox table (its columns as RELAY_COLUMN_* map them), so that it holds
//! every status change, whoever made it.

use crate::config::{sql_literal, OrderEvents, RelayTable};

/// Where status changes are written.
#[derive(Debug, Clone, Default)]
pub enum Target {
    #[default]
    Own,
    /// The start of the order service's table's INSERT (its table and columns), and the
    /// values of the columns the event does not give (topic, event type, pending status).
    Theirs { insert: String, constants: String },
}

impl Target {
    /// What the settings say: the order service's table when ORDER_EVENTS_TABLE names one.
    pub fn of(events: &OrderEvents, relay: &RelayTable) -> Self {
        let Some(table) = &events.order_events_table else {
            return Self::Own;
        };
        let m = &relay.mapping;
        let insert = format!(
            "INSERT INTO {} ({}, {}, {}, {})",
            table.quoted(),
            m.relay_column_topic.quoted(),
            m.relay_column_event_type.quoted(),
            m.relay_column_status.quoted(),
            m.relay_column_payload.quoted(),
        );
        let constants = format!(
            "{}, 'orders.order.status_changed', {}",
            sql_literal(&events.order_events_topic),
            sql_literal(&relay.relay_pending_status)
        );
        Self::Theirs { insert, constants }
    }

    /// The statement, given the describing columns' part of the event and their join.
    pub fn sql(&self, describing: &str, joined: &str) -> String {
        let data = format!(
            "jsonb_strip_nulls(jsonb_build_object(\
             'event_type', 'orders.order.status_changed', 'order_id', u.id, {describing}\
             'old_status', u.old_status, 'new_status', u.new_status, 'reason', u.reason, \
             'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')))"
        );
        let from = format!(
            "FROM unnest($::text[], $::text[], $::text[], $::text[], $::text[], $::text[], \
             $::text[], $::text[]) WITH ORDINALITY \
             AS u(id, old_status, new_status, reason, traceparent, tracestate, topic, entry_id, n)\
             {joined} ORDER BY u.n"
        );
        match self {
            // A NULL describing column is left out.
            Self::Own => format!(
                "INSERT INTO order_events_outbox \
                 (order_id, data, traceparent, tracestate, cause_topic, cause_entry_id) \
                 SELECT u.id, {data}, NULLIF(u.traceparent, ''), NULLIF(u.tracestate, ''), \
                 u.topic, u.entry_id {from}"
            ),
            // Its table has no trace columns: the trace of the cause stays in ours alone. Every
            // parameter stays bound, as the caller binds them.
            Self::Theirs { insert, constants } => {
                format!("{insert} SELECT {constants}, {data} {from}")
            }
        }
    }
}
