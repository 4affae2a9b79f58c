//! Which streams the topics read, and the settings refused.

use super::*;

fn topics(names: &[&str]) -> Topics {
    Topics {
        names: names.iter().map(|name| (*name).to_owned()).collect(),
        payment_confirmed_stream: "ns.payment.confirmed".to_owned(),
        payment_failed_stream: "payment.failed".to_owned(),
    }
}

#[test]
fn each_topic_reads_its_own_stream_with_its_own_dead_letters() {
    let base = StreamConfig::for_stream("ns.fulfillment");
    let all = topics(&[
        "payment.failed",
        "fulfillment.status_changed",
        "payment.confirmed",
    ]);
    let subscriptions = all.subscriptions(&base).expect("valid");
    let streams: Vec<(&str, &str, String)> = subscriptions
        .iter()
        .map(|s| {
            (
                s.topic.name(),
                s.stream.stream.as_str(),
                s.stream.dead_letter_stream(),
            )
        })
        .collect();
    assert_eq!(
        streams,
        [
            (
                "payment.failed",
                "payment.failed",
                "payment.failed.deadletter".to_owned()
            ),
            (
                "fulfillment.status_changed",
                "ns.fulfillment",
                "ns.fulfillment.deadletter".to_owned()
            ),
            (
                "payment.confirmed",
                "ns.payment.confirmed",
                "ns.payment.confirmed.deadletter".to_owned()
            ),
        ],
        "in TOPICS order"
    );
    let twice = topics(&["payment.failed", "payment.failed"]);
    assert_eq!(twice.subscriptions(&base).expect("valid").len(), 1);
}

#[test]
fn one_dead_letter_stream_for_several_topics_is_refused() {
    let mut base = StreamConfig::for_stream("s");
    base.dead_letter_stream = Some("dl".to_owned());
    let one = topics(&["payment.confirmed"])
        .subscriptions(&base)
        .expect("valid");
    assert_eq!(one[0].stream.dead_letter_stream(), "dl");
    let error = topics(&["payment.confirmed", "payment.failed"])
        .subscriptions(&base)
        .expect_err("refused");
    assert!(
        error
            .to_string()
            .contains("DEAD_LETTER_STREAM names one stream"),
        "{error}"
    );
    assert!(topics(&[]).subscriptions(&base).is_err(), "no topic at all");
    assert!(parse_topic("order.created").is_err());
    assert_eq!(
        parse_topic(" payment.failed"),
        Ok("payment.failed".to_owned())
    );
}

#[test]
fn passwords_are_hidden_in_server_and_sentinel_urls() {
    let cases = [
        ("redis://:secret@redis:6379", "redis://:***@redis:6379"),
        (
            "redis+sentinel://worker:secret@s1:26379,s2:26379/orders",
            "redis+sentinel://worker:***@s1:26379,s2:26379/orders",
        ),
        (
            "redis+sentinel://s1:26379,s2:26379/orders",
            "redis+sentinel://s1:26379,s2:26379/orders",
        ),
    ];
    for (url, want) in cases {
        assert_eq!(redact_url(url), want, "{url}");
    }
}
