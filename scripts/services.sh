#!/usr/bin/env bash
# Installs (once) and starts the local services citeflow needs: PostgreSQL from Debian's
# packages and tansu, a Kafka-compatible broker built with cargo and cached outside the
# repository; and installs ONNX Runtime's shared library from PyPI's onnxruntime wheel (for
# the learned scorer, loaded dynamically by `ort`). Safe to run repeatedly: what is installed or running is left alone.
#
#   scripts/services.sh install   # install only (used by the test command)
#   scripts/services.sh start     # install, then start both services
#   scripts/services.sh reset     # empty topics and an empty database (services running)
#   scripts/services.sh stop      # stop both services
#
# Settings (environment): CITEFLOW_STATE (default /var/tmp/citeflow), CITEFLOW_PG_PORT
# (55432), CITEFLOW_KAFKA_PORT (9092), CITEFLOW_CACHE (~/.cache/citeflow).
set -euo pipefail

STATE=${CITEFLOW_STATE:-/var/tmp/citeflow}
PG_PORT=${CITEFLOW_PG_PORT:-55432}
KAFKA_PORT=${CITEFLOW_KAFKA_PORT:-9092}
CACHE=${CITEFLOW_CACHE:-$HOME/.cache/citeflow}
TANSU_VERSION=0.6.0
TANSU_ROOT=$CACHE/tansu-$TANSU_VERSION
TANSU=$TANSU_ROOT/bin/tansu

log() { printf 'services: %s\n' "$*" >&2; }

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

install_postgres() {
  if [ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/initdb" ]; then return; fi
  log "installing PostgreSQL from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
}

# What building citeflow (rdkafka and tokio-postgres over OpenSSL) and its TLS tests
# (certificates made with the openssl command, stunnel terminating TLS in front of the broker)
# need from Debian.
install_packages() {
  local missing=()
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v stunnel >/dev/null || missing+=(stunnel4)
  [ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
  if [ ${#missing[@]} -eq 0 ]; then return; fi
  log "installing ${missing[*]} from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

install_tansu() {
  if [ -x "$TANSU" ]; then return; fi
  log "building tansu $TANSU_VERSION once (about 15 minutes on 2 cores); cached in $TANSU_ROOT"
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql \
    --root "$TANSU_ROOT" --target-dir "$CACHE/tansu-build"
  rm -rf "$CACHE/tansu-build"
}

ONNXRUNTIME_VERSION=1.32.0

install_onnxruntime() {
  if ls "$CACHE"/python/onnxruntime/capi/libonnxruntime.so* >/dev/null 2>&1; then return; fi
  log "installing ONNX Runtime $ONNXRUNTIME_VERSION (PyPI wheel, for its shared library) into $CACHE/python"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
  fi
  python3 -m pip install -q --no-deps --target "$CACHE/python" "onnxruntime==$ONNXRUNTIME_VERSION"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 100); do port_open "$1" && return 0; sleep 0.1; done
  log "nothing listens on port $1 after 10 seconds"; return 1
}

start_postgres() {
  local bin data=$STATE/pg
  bin=$(pg_bin)
  mkdir -p "$STATE"
  if [ ! -f "$data/PG_VERSION" ]; then
    install -d -o postgres -g postgres "$data"
    runuser -u postgres -- "$bin/initdb" -D "$data" --auth=trust --username=postgres >/dev/null
  fi
  if ! port_open "$PG_PORT"; then
    runuser -u postgres -- "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
      -o "-p $PG_PORT -k $data -c listen_addresses=127.0.0.1" start >/dev/null
  fi
  if ! runuser -u postgres -- "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -tAc "SELECT 1 FROM pg_database WHERE datname = 'citeflow'" | grep -q 1; then
    runuser -u postgres -- "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" citeflow
  fi
  log "PostgreSQL on 127.0.0.1:$PG_PORT (database citeflow)"
}

start_tansu() {
  mkdir -p "$STATE"
  if ! port_open "$KAFKA_PORT"; then
    nohup "$TANSU" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" --storage-engine memory://tansu/ \
      >"$STATE/tansu.log" 2>&1 &
    echo $! >"$STATE/tansu.pid"
    wait_port "$KAFKA_PORT"
  fi
  log "Kafka-protocol broker (tansu) on 127.0.0.1:$KAFKA_PORT"
}

stop_all() {
  if [ -f "$STATE/tansu.pid" ]; then kill "$(cat "$STATE/tansu.pid")" 2>/dev/null || true; rm -f "$STATE/tansu.pid"; fi
  if [ -f "$STATE/pg/PG_VERSION" ]; then runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$STATE/pg" -m fast stop >/dev/null 2>&1 || true; fi
}

reset_all() {
  if [ -f "$STATE/tansu.pid" ]; then kill "$(cat "$STATE/tansu.pid")" 2>/dev/null || true; rm -f "$STATE/tansu.pid"; fi
  for _ in $(seq 1 50); do port_open "$KAFKA_PORT" || break; sleep 0.1; done
  start_tansu
  runuser -u postgres -- "$(pg_bin)/dropdb" -h 127.0.0.1 -p "$PG_PORT" --if-exists citeflow
  runuser -u postgres -- "$(pg_bin)/createdb" -h 127.0.0.1 -p "$PG_PORT" citeflow
  log "reset: empty topics (in-memory broker restarted) and an empty database"
}

case "${1:-start}" in
  install) install_packages; install_postgres; install_tansu; install_onnxruntime ;;
  start) install_packages; install_postgres; install_tansu; install_onnxruntime; start_postgres; start_tansu ;;
  stop) stop_all ;;
  reset) reset_all ;;
  tansu-path) echo "$TANSU" ;;
  *) echo "usage: $0 install|start|reset|stop|tansu-path" >&2; exit 2 ;;
esac
