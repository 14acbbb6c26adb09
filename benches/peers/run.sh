#!/usr/bin/env bash
# citeflow's operators side by side with Pathway and Bytewax: the same two workloads from the
# same generated files, one worker each.
#
# usage: benches/peers/run.sh
#
#   windows  one-minute tumbling windows per key, count and sum of the values: 1,000,000
#            insertions in 100 batches (10,000 keys, event times over 1,000 s), then 200,000
#            revisions of earlier records (a retraction and an insertion each) in 20 batches
#   join     equi-join of 1,000,000 left rows and 100,000 right rows (a right row matches about
#            three left rows) and the top pair per right key by score, inserted in 100 batches
#
# Events are input updates, counted alike: an insertion is one, a revision two (so 1,400,000
# and 1,100,000). Every engine reads the files into memory before its clock starts and times
# the computation only, on one worker, and checks its final output against the generator's:
#   citeflow  benches/benches/peers.rs (cargo bench, release): window_aggregate with count and
#             sum_by; arrange_compact_named, join_by_batch and leaders_by_key. From the first
#             batch's input until the probe shows the output complete for the last batch;
#             paced (each batch once the output is complete for the one before: the "citeflow"
#             figure) and again queued (every batch at once, as Pathway's input arrives:
#             "citeflow-queued").
#   pathway   pathway_bench.py: tables with __time__/__diff__, one time per batch; the clock
#             runs around pw.run (with Pathway's CSV writer as the output), less the time pw.run
#             spends turning the DataFrames into its input rows.
#   bytewax   bytewax_bench.py: one batch per source poll, stateful_map / join +
#             stateful_flat_map; the clock runs around run_main.
#
# environment:
#   PEERS_VENV     the Python venv (default /tmp/peers-venv; created from
#                  benches/peers/requirements.txt when an engine is missing from it)
#   PEERS_PYTHON   the Python that creates it (default python3.11)
#   PEERS_DATA     where the generated files and the logs go (default /tmp/citeflow-peers)
#   PEERS_ROWS     insertions and left rows (default 1000000; revisions are a fifth of it,
#                  right rows a tenth)
#   PEERS_TIMEOUT  seconds each engine may take per workload (default 1800)
#
# Nothing else should run meanwhile (2 cores: a build beside it skews every figure). Prints a
# table (events/s, and citeflow's ratio to each peer, "citeflow/it"), then as its last lines:
#   peers: windows citeflow X pathway Y bytewax Z ratio R
#   peers: join citeflow X pathway Y bytewax Z ratio R
# X, Y, Z in events/s, R = citeflow (paced) / the fastest peer; "-" where an engine could not
# be installed or failed (the reason is printed, its log is in PEERS_DATA/logs).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../script.sh
source "$here/../script.sh"
case "${1:-}" in
  "") ;;
  -h | --help) usage; exit 0 ;;
  *) die "unknown argument '$1' (see --help)" ;;
esac

command -v cargo > /dev/null || die "no cargo on PATH"
venv="${PEERS_VENV:-/tmp/peers-venv}"
data="${PEERS_DATA:-/tmp/citeflow-peers}"
limit="${PEERS_TIMEOUT:-1800}"
[[ "$limit" =~ ^[0-9]+$ ]] || die "PEERS_TIMEOUT '$limit': a number of seconds"
[[ -z "${PEERS_ROWS:-}" || "${PEERS_ROWS}" =~ ^[0-9]+$ ]] || die "PEERS_ROWS '$PEERS_ROWS': a number"
mkdir -p "$data/logs" || die "cannot create $data"
data="$(cd "$data" && pwd)"
workloads=(windows join)
peers=(pathway bytewax)

# Why each peer cannot run, if it cannot.
declare -A unavailable=()
imports() { "$venv/bin/python" -c "import $1" > /dev/null 2>&1; }
if ! imports pathway || ! imports bytewax; then
  echo "run.sh: setting up $venv from $here/requirements.txt" >&2
  if [[ ! -x "$venv/bin/python" ]]; then
    python="${PEERS_PYTHON:-python3.11}"
    command -v "$python" > /dev/null || die "no $python to create $venv with (set PEERS_PYTHON)"
    "$python" -m venv "$venv" || die "could not create the venv $venv with $python"
  fi
  # One requirement at a time, so that one engine that will not install leaves the other.
  grep -v -E '^\s*(#|$)' "$here/requirements.txt" | while read -r requirement; do
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$requirement" > "$data/logs/pip.${requirement%%[=<>]*}.log" 2>&1 ||
      echo "run.sh: pip install $requirement failed, see $data/logs/pip.${requirement%%[=<>]*}.log" >&2
  done
fi
for peer in "${peers[@]}"; do
  imports "$peer" || unavailable[$peer]="not installed in $venv (import $peer fails)"
done

echo "run.sh: generating the files in $data" >&2
cargo bench -p citeflow-benches --bench peers -- generate "$data" > "$data/logs/generate.log" 2>&1 ||
  die "generating the files failed, see $data/logs/generate.log"
grep '^generated' "$data/logs/generate.log" >&2 || true

# events/s by "engine workload", and the line it printed.
declare -A rate=() line=()
# Keeps the report lines `peers-ENGINE: WORKLOAD events N seconds S events_per_s X` of a log.
collect() {
  local log="$1" engine workload rest
  while read -r engine workload rest; do
    engine="${engine#peers-}" engine="${engine%:}"
    rate["$engine $workload"]="${rest##* }"
    line["$engine $workload"]="$rest"
  done < <(grep -E '^peers-[a-z-]+: [a-z]+ events [0-9]+ seconds [0-9.]+ events_per_s [0-9]+$' "$log" || true)
}

for workload in "${workloads[@]}"; do
  log="$data/logs/citeflow.$workload.log"
  echo "run.sh: $workload: citeflow" >&2
  if timeout "$limit" cargo bench -p citeflow-benches --bench peers -- "$workload" "$data" > "$log" 2>&1; then
    collect "$log"
  else
    echo "run.sh: $workload: citeflow failed (exit $?), see $log" >&2
  fi
  for peer in "${peers[@]}"; do
    [[ -z "${unavailable[$peer]:-}" ]] || continue
    log="$data/logs/$peer.$workload.log"
    echo "run.sh: $workload: $peer" >&2
    if timeout "$limit" "$venv/bin/python" "$here/${peer}_bench.py" "$workload" "$data" > "$log" 2>&1; then
      collect "$log"
    else
      status=$?
      ((status == 124)) && why="timed out after $limit s" || why="failed (exit $status): $(grep -v INFO "$log" | tail -1)"
      echo "run.sh: $workload: $peer $why, see $log" >&2
    fi
  done
done

# citeflow / that, to one decimal, or "-".
ratio() { [[ -n "$1" && -n "$2" ]] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }' || echo -; }

echo
printf '%-8s %-16s %9s %9s %11s %11s\n' workload engine events seconds events/s "citeflow/it"
for workload in "${workloads[@]}"; do
  for engine in citeflow citeflow-queued "${peers[@]}"; do
    key="$engine $workload"
    if [[ -n "${rate[$key]:-}" ]]; then
      read -r _ events _ seconds _ per_s <<< "${line[$key]}"
      case "$engine" in citeflow*) versus=- ;; *) versus="$(ratio "${rate[citeflow $workload]:-}" "$per_s")" ;; esac
      printf '%-8s %-16s %9s %9s %11s %11s\n' "$workload" "$engine" "$events" "$seconds" "$per_s" "$versus"
    else
      printf '%-8s %-16s %9s %9s %11s %11s\n' "$workload" "$engine" - - - "${unavailable[$engine]:-failed, see $data/logs/$engine.$workload.log}"
    fi
  done
done
echo
for workload in "${workloads[@]}"; do
  fastest=""
  for peer in "${peers[@]}"; do
    peer_rate="${rate[$peer $workload]:-}"
    [[ -n "$peer_rate" ]] && { [[ -z "$fastest" ]] || ((peer_rate > fastest)); } && fastest="$peer_rate"
  done
  echo "peers: $workload citeflow ${rate[citeflow $workload]:--} pathway ${rate[pathway $workload]:--} bytewax ${rate[bytewax $workload]:--} ratio $(ratio "${rate[citeflow $workload]:-}" "$fastest")"
done
