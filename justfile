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
