# The citeflow binary on a slim Debian image, with the bundled sample and configurations.
FROM rust:1.88-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin citeflow

FROM debian:bookworm-slim
COPY --from=build /src/target/release/citeflow /usr/local/bin/citeflow
COPY data /opt/citeflow/data
COPY config /opt/citeflow/config
WORKDIR /opt/citeflow
ENTRYPOINT ["citeflow"]
CMD ["run"]
