# syntax=docker/dockerfile:1
# Build stage: compile a release binary.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
COPY config ./config
COPY build.rs ./
COPY benches ./benches
RUN cargo build --release --locked --bin paperboy

# Runtime stage: slim Debian with CA certificates, a non-root user and a
# volume for the database, the secret key and the outbox.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin paperboy \
 && mkdir -p /data && chown paperboy:paperboy /data
COPY --from=build /src/target/release/paperboy /usr/local/bin/paperboy
USER paperboy
WORKDIR /data
ENV PAPERBOY__SERVER__BIND=0.0.0.0:8080 \
    PAPERBOY__DATABASE__PATH=/data/paperboy.sqlite \
    PAPERBOY__MAIL__OUTBOX_DIR=/data/outbox \
    PAPERBOY__LOGGING__FORMAT=json
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["paperboy"]
CMD ["serve"]
