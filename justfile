# order-worker recipes. `just` alone lists them.

set dotenv-load := false

default:
    @just --list

# Show the worker on this machine: seed orders, publish Dapr-format events, drain, print.
demo *ARGS:
    cargo run --release --quiet -- --log-format text demo {{ARGS}}

# The whole test suite against local Redis and PostgreSQL (REDIS_URL / DATABASE_URL to override).
test:
    cargo test --locked --all-targets

# Run the worker (settings from flags or the environment; see `cargo run -- run --help`).
run *ARGS:
    cargo run --release --quiet -- run {{ARGS}}

# Apply the database migrations to DATABASE_URL.
migrate:
    cargo run --release --quiet -- migrate

# What CI runs: services up, formatting, lints, tests.
ci:
    bash .ci/run

# The full chaos run: 3 worker processes, 20,000 events for 2,000 orders, ~1 % poison, one
# worker SIGKILLed every 2 s, PostgreSQL and Redis connections cut 3 s in every 12 s.
chaos orders="2000" seconds="60":
    CHAOS_ORDERS={{orders}} CHAOS_SECONDS={{seconds}} cargo test --locked --release --test chaos -- --nocapture

# Measure: drain rate against Dapr's per-event pattern and PostgreSQL's ceiling, latency,
# RSS, start-up (see BENCHMARKS.md). Extra flags go to `order-worker bench`, e.g. --json out.json.
bench *ARGS:
    cargo run --release --quiet -- --log-format text bench {{ARGS}}

# Replay stream entries FROM..TO (ids or RFC 3339 times; TO defaults to the end) through decode →
# apply again: already-applied events are reported `duplicate` and change nothing. No arguments
# prints usage. For a dry run or one order: `cargo run -- replay --help`.
replay-stream FROM="" TO="":
    #!/usr/bin/env bash
    set -euo pipefail
    if [ -z "{{FROM}}" ]; then
        echo "usage: just replay-stream FROM [TO]" >&2
        echo "  FROM, TO: stream ids (1700000000000-0) or RFC 3339 times (2025-12-22T10:54:00Z)," >&2
        echo "  both inclusive; TO defaults to the end of the stream. REDIS_URL, DATABASE_URL and" >&2
        echo "  STREAM say where (as for \`order-worker run\`)." >&2
        echo "example: just replay-stream 2025-12-22T10:00:00Z 2025-12-22T11:00:00Z" >&2
        exit 2
    fi
    to=()
    if [ -n "{{TO}}" ]; then to=(--to "{{TO}}"); fi
    cargo run --release --quiet -- --log-format text replay --from "{{FROM}}" "${to[@]}"
