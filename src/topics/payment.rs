//! `payment.confirmed` and `payment.failed`: the payment service's verdicts on a payment
//! attempt, which confirm an order or fail it (docs/architecture.md, "Status rules").

use std::fmt;

use serde_json::{Map, Value};

use super::order::OrderStatus;
use super::{Change, Move, Outcome, Row, State, StreamKey, Topic};
use crate::envelope::{DecodeError, Payload};
pub use table::TABLE;

pub const CONFIRMED: PaymentTopic = PaymentTopic(PaymentStatus::Confirmed);
pub const FAILED: PaymentTopic = PaymentTopic(PaymentStatus::Failed);

/// The topics' names, Dapr's.
pub const CONFIRMED_NAME: &str = "payment.confirmed";
pub const FAILED_NAME: &str = "payment.failed";

/// A payment's own status: `pending → confirmed | failed`; `confirmed` is final, a `failed` one
/// may still be confirmed (the payment was retried).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    Pending,
    Confirmed,
    Failed,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 3] = [Self::Pending, Self::Confirmed, Self::Failed];

    /// The wire name, also what is stored in `order_payments.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Failed => "failed",
        }
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PaymentStatus {
    type Err = super::UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        super::order::by_name(Self::ALL, s, Self::as_str)
    }
}

/// A payment as `order_payments` keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub order_id: String,
    pub status: PaymentStatus,
    /// Exact decimal text (NUMERIC in PostgreSQL), never a float.
    pub amount: Option<String>,
    pub currency: Option<String>,
    /// Why it failed (`card_declined`), as the payment service said.
    pub reason: Option<String>,
    /// The order's number in the order service (`ORD-…`), as the payment service sent it.
    pub order_number: Option<String>,
    /// The payment service's own `status` field, as its latest verdict applied said it:
    /// informative, the topic alone decides [`Payment::status`].
    pub reported_status: Option<String>,
}

/// The topic of one payment verdict: `payment.confirmed` or `payment.failed`.
pub struct PaymentTopic(PaymentStatus);

impl Topic for PaymentTopic {
    fn name(&self) -> &'static str {
        match self.0 {
            PaymentStatus::Failed => FAILED_NAME,
            _ => CONFIRMED_NAME,
        }
    }

    fn stream_key(&self) -> StreamKey {
        match self.0 {
            PaymentStatus::Failed => StreamKey::Own {
                env: "PAYMENT_FAILED_STREAM",
                flag: "payment-failed-stream",
            },
            _ => StreamKey::Own {
                env: "PAYMENT_CONFIRMED_STREAM",
                flag: "payment-confirmed-stream",
            },
        }
    }

    /// A declined card comes before the one accepted after it (`confirmed` is final), and both
    /// before the fulfillment.
    fn stage(&self) -> u8 {
        match self.0 {
            PaymentStatus::Failed => 0,
            _ => 1,
        }
    }

    fn fields(&self) -> &'static [&'static str] {
        &[
            "event_type",
            "payment_id",
            "order_id",
            "amount",
            "currency",
            "failure_reason",
            "reason",
            "order_number",
            "status",
            "metadata",
            "timestamp",
        ]
    }

    fn other_names(&self) -> &'static [&'static str] {
        match self.0 {
            PaymentStatus::Failed => &["payments.payment.failed"],
            _ => &["payments.payment.confirmed"],
        }
    }

    fn decode(&self, payload: Payload) -> Result<Box<dyn Change>, DecodeError> {
        payload.expect_event_type(self.name())?;
        Ok(Box::new(PaymentEvent {
            payment_id: payload.required("payment_id")?,
            order_id: payload.order_id()?,
            status: self.0,
            amount: amount(payload.value("amount"))?,
            currency: payload.stored_text("currency")?,
            reason: failure_reason(&payload)?,
            order_number: payload.stored_text("order_number")?,
            reported_status: payload.stored_text("status")?,
            metadata: payload.value("metadata").cloned(),
            timestamp: payload.text("timestamp")?,
        }))
    }
}

/// Why a payment failed: `failure_reason` as the payment service sends it, else `reason` as
/// older publishers did (and as the worker records it in `said`). An empty one says nothing:
/// a publisher in between may send both, one of them empty.
fn failure_reason(payload: &Payload) -> Result<Option<String>, DecodeError> {
    for name in ["failure_reason", "reason"] {
        if let Some(reason) = payload.stored_text(name)?.filter(|r| !r.is_empty()) {
            return Ok(Some(reason));
        }
    }
    Ok(None)
}

/// `amount` as exact decimal text: a JSON number as written (serde_json keeps its digits) or a
/// decimal string.
fn amount(value: Option<&Value>) -> Result<Option<String>, DecodeError> {
    let text = match value {
        None => return Ok(None),
        Some(Value::Number(number)) => number.to_string(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => return Err(DecodeError::NotADecimal(other.to_string())),
    };
    if is_decimal(&text) {
        Ok(Some(text))
    } else {
        Err(DecodeError::NotADecimal(text))
    }
}

/// What PostgreSQL's NUMERIC takes, less its `NaN` and infinities: `-12.50`, `.5`, `1e3`.
fn is_decimal(text: &str) -> bool {
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (unsigned, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        (1..=4).contains(&e.len()) && digits(e)
    });
    text.len() <= 100
        && !(whole.is_empty() && fraction.is_empty())
        && digits(whole)
        && digits(fraction)
        && exponent_ok
}

/// The payment service's event; other fields (`payment_method`, …) are not needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentEvent {
    pub payment_id: String,
    pub order_id: String,
    /// What the topic says of the payment: `confirmed` or `failed`.
    pub status: PaymentStatus,
    pub amount: Option<String>,
    pub currency: Option<String>,
    pub reason: Option<String>,
    pub order_number: Option<String>,
    /// The event's own `status` field (not [`PaymentEvent::status`]).
    pub reported_status: Option<String>,
    /// Any JSON: kept in the history row of the move the event causes.
    pub metadata: Option<Value>,
    pub timestamp: Option<String>,
}

impl Change for PaymentEvent {
    fn order_id(&self) -> &str {
        &self.order_id
    }

    fn row(&self) -> Option<Row<'_>> {
        Some(Row {
            table: &TABLE,
            id: &self.payment_id,
        })
    }

    fn identity(&self) -> Vec<&str> {
        let timestamp = self.timestamp.as_deref().unwrap_or("");
        vec![&self.payment_id, self.status.as_str(), timestamp]
    }

    #[cfg(test)]
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn said(&self) -> Map<String, Value> {
        let mut said = Map::new();
        said.insert("payment_id".into(), self.payment_id.clone().into());
        // As text: the exact decimal, whatever JSON does to numbers. Under the names `decode`
        // reads, so that a recompute writes the row as it was.
        let optional = [
            ("amount", &self.amount),
            ("currency", &self.currency),
            ("reason", &self.reason),
            ("order_number", &self.order_number),
            ("status", &self.reported_status),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                said.insert(name.into(), value.clone().into());
            }
        }
        if let Some(metadata) = &self.metadata {
            said.insert("metadata".into(), metadata.clone());
        }
        said
    }

    fn metadata(&self) -> Option<&Value> {
        self.metadata.as_ref()
    }

    fn describe(&self) -> String {
        format!(
            "Processing payment {} event: payment_id={}, order_id={}",
            self.status, self.payment_id, self.order_id
        )
    }

    fn apply(&self, order: OrderStatus, state: &mut State) -> (Outcome, Option<Move>) {
        let payments = &mut state.rows.payments;
        let current = match payments.get(&self.payment_id) {
            Some(payment) if payment.order_id != self.order_id => {
                let reason = format!(
                    "payment {:?} belongs to order {:?}, not to order {:?}",
                    self.payment_id, payment.order_id, self.order_id
                );
                return (Outcome::Rejected(reason), None);
            }
            Some(payment) => payment.status,
            None => PaymentStatus::Pending,
        };
        match payment_step(current, self.status) {
            Step::Stale => return (Outcome::Stale, None),
            Step::Unchanged => return (Outcome::Ignored, None),
            Step::Advance => {}
        }
        let others_failed = (payments.of_order(&self.order_id))
            .filter(|(id, _)| *id != self.payment_id)
            .all(|(_, payment)| payment.status == PaymentStatus::Failed);
        // A verdict without an amount, currency or order number keeps the one recorded.
        let recorded = payments.get(&self.payment_id);
        let kept = |field: &Option<String>, of: fn(&Payment) -> &Option<String>| {
            field
                .clone()
                .or_else(|| recorded.and_then(|p| of(p).clone()))
        };
        let payment = Payment {
            order_id: self.order_id.clone(),
            status: self.status,
            amount: kept(&self.amount, |p| &p.amount),
            currency: kept(&self.currency, |p| &p.currency),
            reason: self.reason.clone(),
            order_number: kept(&self.order_number, |p| &p.order_number),
            reported_status: self.reported_status.clone(),
        };
        payments.set(&self.payment_id, payment);
        let (outcome, to) = order_effect(self.status, order, others_failed);
        let reason = match self.status {
            PaymentStatus::Failed => "PaymentFailed",
            _ => "PaymentConfirmed",
        };
        let moved = to.map(|to| Move {
            to,
            reason: reason.to_owned(),
        });
        (outcome, moved)
    }
}

/// What a verdict does to a payment at `current`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Advance,
    Unchanged,
    Stale,
}

fn payment_step(current: PaymentStatus, incoming: PaymentStatus) -> Step {
    use PaymentStatus::*;
    match (current, incoming) {
        (current, incoming) if current == incoming => Step::Unchanged,
        // `confirmed` is final: a late `failed` changes nothing.
        (Confirmed, _) => Step::Stale,
        _ => Step::Advance,
    }
}

/// The order's side of a payment verdict (the payment table of docs/architecture.md). `others_failed`: every other
/// payment recorded for the order failed (true when there is none, as for orders failed
/// before the worker recorded payments). Returns the outcome and where the order moves.
fn order_effect(
    verdict: PaymentStatus,
    order: OrderStatus,
    others_failed: bool,
) -> (Outcome, Option<OrderStatus>) {
    use OrderStatus::*;
    match (verdict, order) {
        (PaymentStatus::Confirmed, Pending) => (Outcome::Applied, Some(Confirmed)),
        // A retry succeeded after every earlier attempt failed.
        (PaymentStatus::Confirmed, Failed) if others_failed => (Outcome::Applied, Some(Confirmed)),
        // Money taken for a closed order: someone must refund it.
        (PaymentStatus::Confirmed, Cancelled | Refunded) => (Outcome::Conflict, None),
        (PaymentStatus::Confirmed, _) => (Outcome::Ignored, None),
        (_, Pending) => (Outcome::Applied, Some(Failed)),
        (_, Confirmed | Processing | PartiallyShipped | Shipped | Delivered) => {
            (Outcome::Stale, None)
        }
        (_, Failed | Cancelled | Refunded) => (Outcome::Ignored, None),
    }
}

mod table;
#[cfg(test)]
mod tests;
