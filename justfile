# order-worker recipes. `just` alone lists them.

set dotenv-load := false

default:
    @just --list

# Show the worker on this machine: seed orders, publish Dapr-format events, drain, print.
demo *ARGS:
    cargo run --release --quiet -p order-worker-dev -- --log-format text demo {{ARGS}}

# (flags: --orders K, --rate EVENTS_PER_S, --batch-size B, --rolling-restart, --sentinel or --cluster (a private Redis Sentinel set-up or Cluster); see `cargo run -p order-worker-dev -- replicas --help`)
# N worker processes with pod-like names in one group: feed a stream, print pending while they work, check the end
replicas n="3" *ARGS:
    cargo build --release --quiet --bins --workspace
    "${CARGO_TARGET_DIR:-target}/release/order-worker-dev" --log-format text replicas --count {{n}} {{ARGS}}

# The whole test suite (both crates) against local Redis and PostgreSQL (REDIS_URL / DATABASE_URL to override).
test:
    cargo test --locked --workspace --all-targets

# Run the worker (settings from flags or the environment; see `cargo run -- run --help`).
run *ARGS:
    cargo run --release --quiet -- run {{ARGS}}

# Apply the database migrations to DATABASE_URL (`just migrate --contract`: the contract ones too).
migrate *ARGS:
    cargo run --release --quiet -- migrate {{ARGS}}

# What CI runs: services up, formatting, lints, tests.
ci:
    bash .ci/run

# (3 workers on 3 streams, 2,000 orders ≈ 23,000 entries, 1 % poison, SIGKILLs, connections cut 3 s per 12 s; a backlog up front, then paced)
# The full chaos runs: tables compared row by row with in-order processing of the same streams
chaos orders="2000" seconds="30":
    CHAOS_ORDERS={{orders}} CHAOS_SECONDS={{seconds}} cargo test --locked --release --test chaos -- --nocapture --test-threads 1

# (extra flags go to `order-worker-dev bench`, e.g. --json out.json; see BENCHMARKS.md)
# Measure drain rate at 3,000/10,000/100,000 orders vs PostgreSQL alone and Dapr's per-event pattern, latency, RSS, start-up
bench *ARGS:
    cargo build --release --quiet --bins --workspace
    "${CARGO_TARGET_DIR:-target}/release/order-worker-dev" --log-format text bench {{ARGS}}

# (flags: --rate EVENTS_PER_S, --replicas N, --restart-every MIN, --outage-seconds S, --out DIR; see `cargo run -p order-worker-dev -- soak --help`)
# Soak: replicas on all topics for MINUTES through rolling restarts and outages; checks, chart and JSON in target/soak
soak *ARGS:
    cargo build --release --quiet --bins --workspace
    "${CARGO_TARGET_DIR:-target}/release/order-worker-dev" --log-format text soak {{ARGS}}

# (already-applied events are reported `duplicate` and change nothing; dry run, one order: `cargo run -- replay --help`)
# Replay stream entries FROM [TO] (ids or RFC 3339 times) of TOPIC through decode → apply; no arguments: usage
replay-stream FROM="" TO="" TOPIC="fulfillment.status_changed":
    #!/usr/bin/env bash
    set -euo pipefail
    if [ -z "{{FROM}}" ]; then
        echo "usage: just replay-stream FROM [TO] [TOPIC]" >&2
        echo "  FROM, TO: stream ids (1700000000000-0) or RFC 3339 times (2025-12-22T10:54:00Z)," >&2
        echo "  both inclusive; TO defaults to the end of the stream (\"\" to skip it)." >&2
        echo "  TOPIC: fulfillment.status_changed (default), payment.confirmed or payment.failed." >&2
        echo "  REDIS_URL, DATABASE_URL and STREAM / PAYMENT_CONFIRMED_STREAM / PAYMENT_FAILED_STREAM" >&2
        echo "  say where (as for \`order-worker run\`)." >&2
        echo "example: just replay-stream 2025-12-22T10:00:00Z 2025-12-22T11:00:00Z payment.confirmed" >&2
        exit 2
    fi
    to=()
    if [ -n "{{TO}}" ]; then to=(--to "{{TO}}"); fi
    cargo run --release --quiet -- --log-format text replay --topic "{{TOPIC}}" --from "{{FROM}}" "${to[@]}"
