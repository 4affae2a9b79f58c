//! Which streams the topics read, and the settings refused.

use super::*;
use crate::topics::names::{CONFIRMED, FAILED, FULFILLMENT};

/// `names`, `payment.confirmed` renamed `ns.payment.confirmed` and `payment.failed` not.
fn topics(names: &[&str]) -> Topics {
    let mut topics = Topics::stream_only("ns");
    topics.streams.insert(FAILED, FAILED.to_owned());
    topics.names = names.iter().map(|name| (*name).to_owned()).collect();
    topics
}

#[test]
fn each_topic_reads_its_own_stream_with_its_own_dead_letters() {
    let base = StreamConfig::for_stream("ns.fulfillment");
    let all = topics(&[FAILED, FULFILLMENT, CONFIRMED]);
    let subscriptions = all.subscriptions(&base, Keyspace::Single).expect("valid");
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
            (FAILED, FAILED, "payment.failed.deadletter".to_owned()),
            (
                FULFILLMENT,
                "ns.fulfillment",
                "ns.fulfillment.deadletter".to_owned()
            ),
            (
                CONFIRMED,
                "ns.payment.confirmed",
                "ns.payment.confirmed.deadletter".to_owned()
            ),
        ],
        "in TOPICS order"
    );
    let twice = topics(&[FAILED, FAILED]);
    assert_eq!(
        twice
            .subscriptions(&base, Keyspace::Single)
            .expect("valid")
            .len(),
        1
    );
}

#[test]
fn one_dead_letter_stream_for_several_topics_is_refused() {
    let mut base = StreamConfig::for_stream("s");
    base.dead_letter_stream = Some("dl".to_owned());
    let one = topics(&[CONFIRMED])
        .subscriptions(&base, Keyspace::Single)
        .expect("valid");
    assert_eq!(one[0].stream.dead_letter_stream(), "dl");
    let error = topics(&[CONFIRMED, FAILED])
        .subscriptions(&base, Keyspace::Single)
        .expect_err("refused");
    assert!(
        error
            .to_string()
            .contains("DEAD_LETTER_STREAM names one stream"),
        "{error}"
    );
    assert!(
        topics(&[]).subscriptions(&base, Keyspace::Single).is_err(),
        "no topic at all"
    );
    assert!(parse_topic("order.created").is_err());
    assert_eq!(parse_topic(" payment.failed"), Ok(FAILED.to_owned()));
}

#[test]
fn in_a_cluster_each_dead_letter_stream_shares_its_streams_slot() {
    let slot = |key: &str| redis::cluster_routing::Slot::for_key(key);
    let all = topics(&[FULFILLMENT, CONFIRMED]);
    let placed = all
        .subscriptions(&StreamConfig::for_stream(FULFILLMENT), Keyspace::Cluster)
        .expect("valid");
    let names: Vec<String> = placed
        .iter()
        .map(|s| s.stream.dead_letter_stream())
        .collect();
    assert_eq!(
        names,
        [
            "{fulfillment.status_changed}.deadletter",
            "{ns.payment.confirmed}.deadletter"
        ]
    );
    for s in &placed {
        assert_eq!(slot(&s.stream.stream), slot(&s.stream.dead_letter_stream()));
    }
    // A stream key with a hash tag of its own keeps the usual name, which shares the tag.
    let tagged = topics(&[FULFILLMENT])
        .subscriptions(
            &StreamConfig::for_stream("{orders}.fulfillment"),
            Keyspace::Cluster,
        )
        .expect("valid");
    assert_eq!(
        tagged[0].stream.dead_letter_stream(),
        "{orders}.fulfillment.deadletter"
    );

    let mut set = StreamConfig::for_stream(FULFILLMENT);
    set.dead_letter_stream = Some("{fulfillment.status_changed}.dl".to_owned());
    let one = topics(&[FULFILLMENT]);
    let kept = one
        .subscriptions(&set, Keyspace::Cluster)
        .expect("same slot");
    assert_eq!(
        kept[0].stream.dead_letter_stream(),
        "{fulfillment.status_changed}.dl"
    );
    set.dead_letter_stream = Some("fulfillment.status_changed.deadletter".to_owned());
    let error = one
        .subscriptions(&set, Keyspace::Cluster)
        .expect_err("another slot");
    assert!(
        error
            .to_string()
            .contains("{fulfillment.status_changed}.deadletter"),
        "{error}"
    );
    // On one server the name is the operator's, slot or not.
    assert_eq!(
        one.subscriptions(&set, Keyspace::Single).expect("valid")[0]
            .stream
            .dead_letter_stream(),
        "fulfillment.status_changed.deadletter"
    );
}

#[test]
fn the_keyspace_follows_the_url() {
    let cases = [
        ("redis://127.0.0.1:6379", Keyspace::Single),
        ("redis+sentinel://s1:26379/orders", Keyspace::Single),
        ("redis+cluster://n1:7000,n2:7001", Keyspace::Cluster),
        ("rediss+cluster://n1:7000", Keyspace::Cluster),
    ];
    for (url, want) in cases {
        assert_eq!(Keyspace::of(url).expect(url), want, "{url}");
    }
}
