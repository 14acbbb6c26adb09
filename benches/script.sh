# What the benches' shell scripts share; each sources it first:
#   here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"; source "$here/../script.sh"
# It sets `root` (the repository) and makes it the working directory, and defines `die`
# (a message naming the script, exit 2) and `usage` (the script's header comment, without
# its first line).
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

die() { echo "$(basename "$0"): $*" >&2; exit 2; }
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
