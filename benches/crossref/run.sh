#!/usr/bin/env bash
# Crossref's search-based matching (SBM, SBMV) next to citeflow, over the same records and
# references.
#
# usage: benches/crossref/run.sh [--no-default] [--set NAME INDEX GOLD]...
#
#   The default set, "sample", is the bundled gold (data/sample/gold/*.jsonl) against the
#   bundled records (data/sample/epmc/*.jsonl.gz); --set adds one (INDEX and GOLD may be
#   globs or space-separated lists, quoted), e.g. from `citeflow synth --index I --gold G`;
#   --no-default leaves the sample out.
#
# environment:
#   CITEFLOW       the citeflow binary (default target/release/citeflow; never built here:
#                  when it is missing only the Crossref side runs)
#   CROSSREF_VENV  the Python venv (default /tmp/crossref-venv; created from
#                  benches/crossref/requirements.txt when missing)
#   CROSSREF_OUT   where the JSON, logs and predictions go (default a new /tmp directory)
#   CROSSREF_ARGS  extra sbm.py options, e.g. "--score-scale 0.5" or "--sbm-threshold 0.47"
#
# Prints one line per set and system, then per set:
#   crossref: SET citeflow_f1 X sbm_f1 Y sbmv_f1 Z
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../script.sh
source "$here/../script.sh"

names=() indexes=() golds=()
default=1
while (($#)); do
  case "$1" in
    --set)
      (($# >= 4)) || die "--set needs NAME INDEX GOLD"
      [[ "$2" =~ ^[A-Za-z0-9._-]+$ ]] || die "set name '$2': letters, digits, '.', '_' and '-' only"
      names+=("$2") indexes+=("$3") golds+=("$4")
      shift 4
      ;;
    --no-default) default=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
if ((default)); then
  names=(sample "${names[@]}") indexes=("data/sample/epmc/*.jsonl.gz" "${indexes[@]}") golds=("data/sample/gold/*.jsonl" "${golds[@]}")
fi
((${#names[@]})) || die "no sets"

venv="${CROSSREF_VENV:-/tmp/crossref-venv}"
if ! "$venv/bin/python" -c 'import tantivy, rapidfuzz, anyascii' 2>/dev/null; then
  echo "run.sh: setting up $venv" >&2
  [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi
python="$venv/bin/python"

citeflow="${CITEFLOW:-target/release/citeflow}"
out="${CROSSREF_OUT:-$(mktemp -d /tmp/crossref-run.XXXXXX)}"
mkdir -p "$out"
read -r -a extra <<< "${CROSSREF_ARGS:-}"

# Expands a glob or space-separated list of paths into the array named by $2; every path
# must exist.
expand() {
  local spec="$1" path
  local -n into="$2"
  # shellcheck disable=SC2206 # word splitting and globbing wanted
  into=($spec)
  ((${#into[@]})) || die "nothing in '$spec'"
  for path in "${into[@]}"; do
    [[ -e "$path" ]] || die "no file '$path' (from '$spec')"
  done
}

for i in "${!names[@]}"; do
  name="${names[$i]}"
  index=() gold=()
  expand "${indexes[$i]}" index
  expand "${golds[$i]}" gold
  echo "run.sh: set $name: ${#index[@]} publication file(s), ${#gold[@]} gold file(s)" >&2

  rm -f "$out/$name.citeflow.json" "$out/$name.citeflow.status"
  if [[ -x "$citeflow" ]]; then
    start=$SECONDS
    if "$citeflow" eval --epmc "${index[@]}" --gold "${gold[@]}" --json > "$out/$name.citeflow.json" 2> "$out/$name.citeflow.log"; then
      echo "run.sh:   citeflow eval: $((SECONDS - start)) s" >&2
    else
      rm -f "$out/$name.citeflow.json"
      echo "citeflow eval failed, see $out/$name.citeflow.log" > "$out/$name.citeflow.status"
    fi
  else
    echo "not run: no citeflow binary at $citeflow" > "$out/$name.citeflow.status"
  fi

  start=$SECONDS
  if "$python" "$here/sbm.py" --name "$name" --epmc "${index[@]}" --gold "${gold[@]}" --json \
      --predictions "$out/$name.predictions.jsonl" "${extra[@]}" > "$out/$name.crossref.json" 2> "$out/$name.crossref.log"; then
    echo "run.sh:   crossref sbm.py: $((SECONDS - start)) s" >&2
  else
    rm -f "$out/$name.crossref.json"
    echo "run.sh:   crossref sbm.py failed, see $out/$name.crossref.log" >&2
  fi
done

echo "run.sh: results in $out" >&2
"$python" "$here/report.py" "$out" "${names[@]}"
