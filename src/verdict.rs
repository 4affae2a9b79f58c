//! What becomes of an entry: the one place that decides ack, dead-letter or leave pending, in
//! two steps. [`admission`]: may the entry be applied at all (it decoded, and its workers did
//! not die holding it too often)? [`verdict`]: given what applying its event did, is it done
//! with, dead, or to be tried again? Pure, so both tables are tests.

use crate::envelope::DecodeError;
use crate::topics::Outcome;

/// What happens to an entry once its event went through a transaction (or was refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
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

/// Whether an entry delivered `deliveries` times (this one included) may be applied: `Ok` for
/// its decoded event, else why it never will be.
pub fn admission<T>(
    decoded: Result<T, DecodeError>,
    deliveries: u64,
    max_deliveries: u64,
) -> Result<T, Refusal> {
    // Checked before decoding's result: whatever it was, the entry outlived its workers.
    if deliveries > max_deliveries {
        return Err(Refusal::TooManyDeliveries {
            count: deliveries,
            max: max_deliveries,
        });
    }
    decoded.map_err(Refusal::Undecodable)
}

/// The fate of an entry whose event, of order `order_id`, went through a committed transaction
/// with `outcome`, delivered `deliveries` times (this one included).
pub fn verdict(outcome: &Outcome, order_id: &str, deliveries: u64, max_deliveries: u64) -> Verdict {
    match outcome {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 10;

    fn too_many(count: u64) -> Refusal {
        Refusal::TooManyDeliveries { count, max: MAX }
    }

    #[test]
    fn an_entry_is_admitted_when_it_decoded_and_was_not_delivered_too_often() {
        let bad = || Err::<(), _>(DecodeError::NoData);
        let undecodable = Refusal::Undecodable(DecodeError::NoData);
        type Case = (Result<(), DecodeError>, u64, Result<(), Refusal>);
        let table: Vec<Case> = vec![
            (Ok(()), 1, Ok(())),
            (Ok(()), MAX, Ok(())),
            (Ok(()), MAX + 1, Err(too_many(MAX + 1))),
            (bad(), 1, Err(undecodable.clone())),
            (bad(), MAX, Err(undecodable)),
            (bad(), MAX + 1, Err(too_many(MAX + 1))),
        ];
        for (decoded, deliveries, expected) in table {
            let case = format!("{decoded:?} delivered {deliveries} times");
            assert_eq!(admission(decoded, deliveries, MAX), expected, "{case}");
        }
    }

    #[test]
    fn every_outcome_and_delivery_count_has_one_verdict() {
        let rejected = Outcome::Rejected("fulfillment f-1 belongs to order o-2".to_owned());
        let table: Vec<(&Outcome, u64, Verdict)> = vec![
            (&Outcome::Applied, 1, Verdict::Ack),
            (&Outcome::Duplicate, 1, Verdict::Ack),
            (&Outcome::Stale, 1, Verdict::Ack),
            (&Outcome::Ignored, MAX, Verdict::Ack),
            (&Outcome::Conflict, 1, Verdict::Ack),
            (&Outcome::UnknownOrder, 1, Verdict::Pending),
            (&Outcome::UnknownOrder, MAX - 1, Verdict::Pending),
            (
                &Outcome::UnknownOrder,
                MAX,
                Verdict::DeadLetter(Refusal::UnknownOrder("o-1".to_owned())),
            ),
            (
                &rejected,
                1,
                Verdict::DeadLetter(Refusal::Rejected(
                    "fulfillment f-1 belongs to order o-2".to_owned(),
                )),
            ),
        ];
        for (outcome, deliveries, expected) in table {
            assert_eq!(
                verdict(outcome, "o-1", deliveries, MAX),
                expected,
                "{outcome:?} delivered {deliveries} times"
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
