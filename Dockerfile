# The citeflow binary on a slim Debian image, with the bundled sample and configurations.
FROM rust:1.88-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin citeflow

FROM debian:bookworm-slim
# ONNX Runtime's shared library for the learned scorer, from PyPI's onnxruntime wheel (the same
# version scripts/services.sh installs), loaded at run time by `ort`; OpenSSL and the CA
# certificates for TLS to Kafka and PostgreSQL.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-pip libssl3 ca-certificates \
    && python3 -m pip install --break-system-packages --no-deps --target /opt/onnxruntime onnxruntime==1.32.0 \
    && apt-get purge -y python3-pip && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
ENV ORT_DYLIB_PATH=/opt/onnxruntime/onnxruntime/capi/libonnxruntime.so.1.32.0
COPY --from=build /src/target/release/citeflow /usr/local/bin/citeflow
COPY data /opt/citeflow/data
COPY config /opt/citeflow/config
WORKDIR /opt/citeflow
ENTRYPOINT ["citeflow"]
CMD ["run"]
