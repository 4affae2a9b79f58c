//! What becomes of an entry: the one place that decides ack, dead-letter or leave pending.
//!
//! Asked twice per entry: once decoded (may it be applied?), once its event went through a
//! transaction. Pure, so the whole table is a test.

use crate::envelope::DecodeError;
use crate::topics::Outcome;

/// What is known of an entry when its fate is decided.
#[derive(Debug, Clone, Copy)]
pub enum Known<'a> {
    /// Read and decoded (or not); nothing applied yet.
    Decoded(Result<(), &'a DecodeError>),
    /// Its event went through a committed transaction with this outcome.
    Applied {
        outcome: &'a Outcome,
        order_id: &'a str,
    },
}

/// What happens to the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Decoded, and not delivered too often: apply it, then ask again.
    Apply,
    /// Done with: XACK.
    Ack,
    /// Can never apply: copied to the dead-letter stream with this reason, and acked.
    DeadLetter(Refusal),
    /// Left in the pending list, to be claimed and tried again once idle.
    Pending,
}

/// Why an entry is dead-lettered. The Display text is the dead letter's `error` field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Undecodable(DecodeError),
    #[error(
        "delivered {count} times without being settled (MAX_DELIVERIES is {max}): \
         the workers that read it stopped before they could"
    )]
    TooManyDeliveries { count: u64, max: u64 },
    #[error("order {0:?} does not exist")]
    UnknownOrder(String),
    /// The rules refused it (a fulfillment that belongs to another order).
    #[error("{0}")]
    Rejected(String),
}

impl Refusal {
    /// Its `kind` in `fulfillment_consumer_errors_total`, for refusals that are errors of the
    /// entry itself or of the workers that held it; the rules' refusals are not errors.
    pub fn error_kind(&self) -> Option<&'static str> {
        match self {
            Self::Undecodable(_) => Some("decode"),
            Self::TooManyDeliveries { .. } => Some("max_deliveries"),
            Self::UnknownOrder(_) | Self::Rejected(_) => None,
        }
    }
}

/// The fate of an entry delivered `deliveries` times (this one included).
pub fn verdict(known: Known<'_>, deliveries: u64, max_deliveries: u64) -> Verdict {
    match known {
        // Checked before decoding's result: whatever it was, the entry outlived its workers.
        Known::Decoded(_) if deliveries > max_deliveries => {
            Verdict::DeadLetter(Refusal::TooManyDeliveries {
                count: deliveries,
                max: max_deliveries,
            })
        }
        Known::Decoded(Err(error)) => Verdict::DeadLetter(Refusal::Undecodable(error.clone())),
        Known::Decoded(Ok(())) => Verdict::Apply,
        Known::Applied { outcome, order_id } => match outcome {
            Outcome::Applied
            | Outcome::Duplicate
            | Outcome::Stale
            | Outcome::Ignored
            | Outcome::Conflict => Verdict::Ack,
            Outcome::UnknownOrder if deliveries >= max_deliveries => {
                Verdict::DeadLetter(Refusal::UnknownOrder(order_id.to_owned()))
            }
            Outcome::UnknownOrder => Verdict::Pending,
            Outcome::Rejected(reason) => Verdict::DeadLetter(Refusal::Rejected(reason.clone())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 10;

    fn too_many(count: u64) -> Verdict {
        Verdict::DeadLetter(Refusal::TooManyDeliveries { count, max: MAX })
    }

    #[test]
    fn every_known_state_and_delivery_count_has_one_verdict() {
        let bad = DecodeError::NoData;
        let rejected = Outcome::Rejected("fulfillment f-1 belongs to order o-2".to_owned());
        let applied = |outcome| Known::Applied {
            outcome,
            order_id: "o-1",
        };
        let table: Vec<(Known<'_>, u64, Verdict)> = vec![
            (Known::Decoded(Ok(())), 1, Verdict::Apply),
            (Known::Decoded(Ok(())), MAX, Verdict::Apply),
            (Known::Decoded(Ok(())), MAX + 1, too_many(MAX + 1)),
            (
                Known::Decoded(Err(&bad)),
                1,
                Verdict::DeadLetter(Refusal::Undecodable(DecodeError::NoData)),
            ),
            (Known::Decoded(Err(&bad)), MAX + 1, too_many(MAX + 1)),
            (applied(&Outcome::Applied), 1, Verdict::Ack),
            (applied(&Outcome::Duplicate), 1, Verdict::Ack),
            (applied(&Outcome::Stale), 1, Verdict::Ack),
            (applied(&Outcome::Ignored), MAX, Verdict::Ack),
            (applied(&Outcome::Conflict), 1, Verdict::Ack),
            (applied(&Outcome::UnknownOrder), 1, Verdict::Pending),
            (applied(&Outcome::UnknownOrder), MAX - 1, Verdict::Pending),
            (
                applied(&Outcome::UnknownOrder),
                MAX,
                Verdict::DeadLetter(Refusal::UnknownOrder("o-1".to_owned())),
            ),
            (
                applied(&rejected),
                1,
                Verdict::DeadLetter(Refusal::Rejected(
                    "fulfillment f-1 belongs to order o-2".to_owned(),
                )),
            ),
        ];
        for (known, deliveries, expected) in table {
            assert_eq!(
                verdict(known, deliveries, MAX),
                expected,
                "{known:?} delivered {deliveries} times"
            );
        }
    }

    #[test]
    fn refusals_read_as_the_dead_letters_error_field_and_keep_their_kind() {
        let cases = [
            (
                Refusal::Undecodable(DecodeError::NoData),
                "entry has no `data` field",
                Some("decode"),
            ),
            (
                Refusal::TooManyDeliveries { count: 11, max: 10 },
                "delivered 11 times without being settled (MAX_DELIVERIES is 10): \
                 the workers that read it stopped before they could",
                Some("max_deliveries"),
            ),
            (
                Refusal::UnknownOrder("o-9".to_owned()),
                "order \"o-9\" does not exist",
                None,
            ),
            (Refusal::Rejected("no".to_owned()), "no", None),
        ];
        for (refusal, text, kind) in cases {
            assert_eq!(refusal.to_string(), text);
            assert_eq!(refusal.error_kind(), kind, "{refusal:?}");
        }
    }
}
