//! OpenTelemetry tracing of a real worker process, exported over OTLP (gRPC and HTTP/protobuf)
//! to the tests' receiver: each entry's `process` span continues its publisher's trace (the
//! CloudEvent's `traceparent`), the transaction and the ack link to the spans of their events,
//! a dead-lettered entry's span is an error, SIGTERM exports the last spans, and a collector that
//! is down costs the spans, logged once and counted, never an event.

mod support;

use order_worker::FulfillmentStatus::*;
use order_worker_dev::publisher::Format;
use support::http::{get, http_port};
use support::otlp::{Protocol, ReceivedSpan};
use support::process::terminate;
use support::traced::*;
use support::{eventually, TestEnv};

/// Publishes `order`'s planning in a new trace and checks its `process` span (in that trace,
/// every attribute, from `service`) and the `apply` and `ack` spans linking to it; returns the
/// process span.
async fn check_traced_event(t: &Traced, order: &str, service: &str) -> ReceivedSpan {
    let (traceparent, trace_id, parent_id) = new_traceparent();
    let (entry_id, event_id) = publish(&t.env, order, Planning, Some(&traceparent)).await;
    let stream = t.stream();
    let spans = t
        .receiver
        .wait_for(
            "the event's process span, and apply and ack spans linking to it",
            |spans| {
                process_span(spans, stream, MESSAGE_ID, &event_id).is_some_and(|process| {
                    linking(spans, "apply", process).is_some()
                        && linking(spans, "ack", process).is_some()
                })
            },
        )
        .await
        .expect("spans exported");
    let process = process_span(&spans, stream, MESSAGE_ID, &event_id).expect("process span");
    assert_eq!(
        process.trace_id, trace_id,
        "the publisher's trace: {process:?}"
    );
    assert_eq!(
        process.parent_span_id, parent_id,
        "the publisher's span: {process:?}"
    );
    assert_eq!(process.kind, CONSUMER, "{process:?}");
    assert_ne!(process.status_code, ERROR, "{process:?}");
    let expected = [
        ("messaging.system", "redis"),
        ("messaging.operation.name", "process"),
        ("messaging.destination.name", stream),
        ("messaging.consumer.group.name", t.env.stream.group.as_str()),
        (MESSAGE_ID, event_id.as_str()),
        (ENTRY_ID, entry_id.as_str()),
        ("order_worker.order_id", order),
        (OUTCOME, "applied"),
    ];
    for (key, value) in expected {
        assert_eq!(attribute(process, key), Some(value), "{key} of {process:?}");
    }
    let resource = process.resource.get("service.name");
    assert_eq!(resource.map(String::as_str), Some(service), "{process:?}");
    let apply = linking(&spans, "apply", process).expect("apply span");
    let count = |key: &str| attribute(apply, key).and_then(|n| n.parse::<usize>().ok());
    assert_eq!(
        count("order_worker.events"),
        Some(apply.links.len()),
        "{apply:?}"
    );
    assert!(
        count("order_worker.statements").is_some_and(|n| n > 0),
        "{apply:?}"
    );
    // The event's log line names the same trace and span, so logs and traces join (the
    // harness's workers log as text: `key="value"`).
    let fields = [
        ("event_id", event_id.as_str()),
        ("trace_id", process.trace_id.as_str()),
        ("span_id", process.span_id.as_str()),
    ]
    .map(|(key, value)| format!("{key}=\"{value}\""));
    eventually(
        "the event's log line, with its trace and span",
        async || {
            let log = t.env.process_log("traced");
            log.lines()
                .any(|line| line.contains("Processing") && fields.iter().all(|f| line.contains(f)))
        },
    )
    .await;
    // docs/observability.md's example trace (`-- --nocapture` shows it).
    eprintln!("exported: {process:#?}\n{apply:#?}");
    process.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn over_grpc_an_entry_continues_its_publishers_trace_or_starts_one_of_its_own() {
    let mut t = Traced::start(Protocol::Grpc, &["o1", "o2", "o3"], &[]).await;
    let traced = check_traced_event(&t, "o1", "order-worker").await;

    // No traceparent, or one cut short: a root span, in a trace of its own.
    let (_, untraced) = publish(&t.env, "o2", Planning, None).await;
    let truncated = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba9";
    let (_, malformed) = publish(&t.env, "o3", Planning, Some(truncated)).await;
    let stream = t.stream();
    let spans = t
        .receiver
        .wait_for(
            "the process spans of the events without a valid traceparent",
            |spans| {
                [&untraced, &malformed]
                    .iter()
                    .all(|id| process_span(spans, stream, MESSAGE_ID, id).is_some())
            },
        )
        .await
        .expect("spans exported");
    let roots: Vec<&ReceivedSpan> = [&untraced, &malformed]
        .iter()
        .map(|id| process_span(&spans, stream, MESSAGE_ID, id).expect("process span"))
        .collect();
    for root in &roots {
        assert_eq!(root.parent_span_id, "", "a root span: {root:?}");
        assert_eq!(root.trace_id.len(), 32, "{root:?}");
        assert_ne!(root.trace_id, "0".repeat(32), "{root:?}");
        assert_ne!(root.trace_id, traced.trace_id, "{root:?}");
        assert_eq!(attribute(root, OUTCOME), Some("applied"), "{root:?}");
    }
    assert_ne!(
        roots[0].trace_id, roots[1].trace_id,
        "each in a trace of its own"
    );
    t.stop().await;
    t.env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn over_http_protobuf_an_entry_continues_its_publishers_trace() {
    let settings = [("OTEL_SERVICE_NAME", "orders-eu")];
    let mut t = Traced::start(Protocol::HttpProtobuf, &["o1"], &settings).await;
    check_traced_event(&t, "o1", "orders-eu").await;
    t.stop().await;
    t.env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_lettered_entrys_span_is_an_error_with_a_message() {
    let mut t = Traced::start(Protocol::Grpc, &["o1", "o2"], &[]).await;
    let (good, _) = publish(&t.env, "o1", Planning, None).await;
    // Fulfillment f-o1 is o1's: for o2 it is rejected. And an entry that is not JSON.
    let (rejected, _) = t
        .env
        .publish("o2", "f-o1", Packing, Format::CloudEvent)
        .await;
    let garbage = t
        .env
        .xadd(&[("data".to_owned(), "{not json".to_owned())])
        .await;
    let stream = t.stream();
    let spans = t
        .receiver
        .wait_for("the three entries' process spans", |spans| {
            [&good, &rejected, &garbage]
                .iter()
                .all(|id| process_span(spans, stream, ENTRY_ID, id).is_some())
        })
        .await
        .expect("spans exported");
    let span = |id: &str| process_span(&spans, stream, ENTRY_ID, id).expect("process span");
    assert_ne!(span(&good).status_code, ERROR, "{:?}", span(&good));
    assert_eq!(attribute(span(&good), OUTCOME), Some("applied"));
    for id in [&rejected, &garbage] {
        let dead = span(id);
        assert_eq!(dead.status_code, ERROR, "{dead:?}");
        assert!(!dead.status_message.is_empty(), "{dead:?}");
    }
    eventually("both dead-lettered", async || {
        t.env.dead_letters().await.len() == 2
    })
    .await;
    t.stop().await;
    t.env.cleanup().await;
}

/// With a schedule a minute long, the applied event's span is still queued when SIGTERM comes:
/// only the shutdown's flush can deliver it.
async fn sigterm_exports_the_last_spans(protocol: Protocol) {
    let settings = [("OTEL_BSP_SCHEDULE_DELAY", "60000")];
    let mut t = Traced::start(protocol, &["o1"], &settings).await;
    let (_, event_id) = publish(&t.env, "o1", Planning, None).await;
    eventually("the event is applied", async || {
        t.env.order_status("o1").await == "processing"
    })
    .await;
    let stream = t.stream().to_owned();
    assert!(
        process_span(&t.receiver.spans(), &stream, MESSAGE_ID, &event_id).is_none(),
        "exported before the shutdown: the test would prove nothing"
    );
    t.stop().await;
    t.receiver
        .wait_for("the process span, flushed at shutdown", |spans| {
            process_span(spans, &stream, MESSAGE_ID, &event_id).is_some()
        })
        .await
        .expect("spans exported");
    t.env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_exports_the_last_spans_over_grpc() {
    sigterm_exports_the_last_spans(Protocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_exports_the_last_spans_over_http_protobuf() {
    sigterm_exports_the_last_spans(Protocol::HttpProtobuf).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_collector_down_every_event_applies_and_the_loss_is_logged_once_and_counted() {
    let env = TestEnv::new().await;
    // Nothing listens there: from the harness's allocator, which never hands out a port the
    // kernel may give a connection meanwhile.
    let closed = format!(
        "127.0.0.1:{}",
        order_worker_dev::local_servers::free_port().expect("a free port")
    );
    let mut worker = spawn(&env, &format!("http://{closed}"), "grpc", &[]);
    let (orders, published) = env.seed_lifecycles(170).await;
    assert!(published >= 500, "{published}");
    eventually("every event applied and acked", async || {
        env.history_count().await == 3 * orders.len() as i64 && env.pending().await == 0
    })
    .await;
    let port = http_port(&env, "traced").await;
    eventually("the lost spans are counted", async || {
        sum_of(&get(port, "/metrics").await.1, "otel_spans_dropped_total") > 0.0
    })
    .await;
    let status = terminate(&mut worker).await;
    assert_eq!(status.code(), Some(0), "exit status");

    let log = env.process_log("traced");
    let exporting: Vec<&str> = log.lines().filter(|line| line.contains("export")).collect();
    let failures = log.matches("Spans could not be exported").count();
    assert_eq!(failures, 1, "{exporting:#?}");
    env.cleanup().await;
}

/// The sum of the samples of `name`, whatever their labels, in Prometheus text.
fn sum_of(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let labelled = series.strip_prefix(name)?;
            (labelled.is_empty() || labelled.starts_with('{')).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}
