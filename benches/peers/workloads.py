"""What pathway_bench.py and bytewax_bench.py share: reading the generated files into memory
(before any clock starts), the expected results, the check and the report line.

The files are written by `cargo bench -p citeflow-benches --bench peers -- generate DIR`
(benches/benches/peers.rs says what they hold); every engine reads the same ones.
"""

import argparse
import sys
from typing import Callable

import pandas as pd

# One-minute tumbling windows aligned to the Unix epoch (citeflow's `TUMBLING`), in ms.
WINDOW = 60_000
# A join pair's score is left value * right value modulo this prime; the top pair of a key is
# the one with the greatest (score, left id).
MODULUS = 1_000_003
WORKLOADS = ("windows", "join")


def read(directory: str, name: str) -> pd.DataFrame:
    """A generated CSV file, every column a 64-bit integer."""
    return pd.read_csv(f"{directory}/{name}", dtype="int64")


def batches(frame: pd.DataFrame, columns: list[str]) -> list[list[tuple]]:
    """The rows of `frame` as tuples of Python ints of `columns`, grouped by the batch column
    (the files are in batch order), one list per batch."""
    rows = list(zip(*(frame[column].tolist() for column in columns)))
    grouped: list[list[tuple]] = []
    last = None
    for batch, row in zip(frame["batch"].tolist(), rows):
        if batch != last:
            grouped.append([])
            last = batch
        grouped[-1].append(row)
    return grouped


def expected(workload: str, directory: str) -> dict:
    """The generator's expected final output: per (key, window start) the count and sum of the
    live records, or per right key the best left id and its score."""
    frame = read(directory, f"{workload}.expected.csv")
    if workload == "windows":
        keys = zip(frame["key"].tolist(), frame["start"].tolist())
        return dict(zip(keys, zip(frame["count"].tolist(), frame["sum"].tolist())))
    return dict(zip(frame["key"].tolist(), zip(frame["left_id"].tolist(), frame["score"].tolist())))


def consolidate(rows: list[tuple], diffs: list[int]) -> list[tuple]:
    """The rows present once the diffs of their changes are added up (each at most once)."""
    present: dict[tuple, int] = {}
    for row, diff in zip(rows, diffs):
        present[row] = present.get(row, 0) + diff
    if any(count not in (0, 1) for count in present.values()):
        sys.exit("output: a row with a multiplicity other than 0 or 1")
    return [row for row, count in present.items() if count == 1]


def check(engine: str, workload: str, got: dict, want: dict) -> None:
    """Exits with the first differences unless `got` equals `want`."""
    if got == want:
        return
    missing = [key for key in want if key not in got][:3]
    extra = [key for key in got if key not in want][:3]
    wrong = [(key, got[key], want[key]) for key in want if key in got and got[key] != want[key]][:3]
    sys.exit(
        f"{engine} {workload}: wrong output ({len(got)} entries, {len(want)} expected); "
        f"missing {missing}, unexpected {extra}, wrong (got, expected) {wrong}"
    )


def main(engine: str, runs: dict[str, Callable[[str], tuple[int, float, dict]]]) -> None:
    """Runs one workload (`runs[workload](directory)` returns the events, the seconds the
    computation took and the final output), checks its output and prints
    `peers-ENGINE: WORKLOAD events N seconds S events_per_s X`."""
    parser = argparse.ArgumentParser(description=f"{engine} on a benches/peers workload, one worker")
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("directory", help="where the generated files are")
    args = parser.parse_args()
    events, seconds, got = runs[args.workload](args.directory)
    check(engine, args.workload, got, expected(args.workload, args.directory))
    print(f"peers-{engine}: {args.workload} events {events} seconds {seconds:.3f} events_per_s {events / seconds:.0f}")
