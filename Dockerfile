# order-worker image: build with the Rust toolchain, run on distroless (glibc, CA certificates,
# no shell, no package manager). The binary needs no files at run time: migrations are embedded.
#   docker build -t order-worker:$(git rev-parse --short HEAD) .

FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, in their own layer, so a source change does not rebuild them all. The
# workspace has two members, the product (.) and the development tooling (dev/): cargo reads both
# manifests, so both get placeholder sources, but only the product and its dependencies are built.
COPY Cargo.toml Cargo.lock ./
COPY dev/Cargo.toml dev/
RUN mkdir -p src dev/src \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && echo 'fn main() {}' > dev/src/main.rs && touch dev/src/lib.rs \
    && cargo build --release --locked -p order-worker --bin order-worker \
    && rm -rf src dev/src
COPY . .
# touch: the placeholder build left newer timestamps than the copied sources.
RUN touch src/main.rs src/lib.rs && cargo build --release --locked -p order-worker --bin order-worker

# cc-debian12: glibc and libgcc, which the binary links; :nonroot runs as 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
# On PATH, so the operator commands run in a pod as written in docs/operations.md:
#   kubectl exec deploy/order-worker -- order-worker pending
COPY --from=build /src/target/release/order-worker /usr/local/bin/order-worker
USER 65532:65532
# HTTP_ADDR: /healthz, /readyz, /metrics.
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/order-worker"]
CMD ["run"]
