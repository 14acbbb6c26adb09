"""Pathway on the benches/peers workloads, one worker (PATHWAY_THREADS=1).

usage: python pathway_bench.py windows|join DIR

The files are read into pandas DataFrames before the clock starts and handed to Pathway as
tables whose special columns `__time__` (2 * (batch + 1): Pathway's times are even and time 0
reaches no output) and `__diff__` (1 or -1) make each batch one time, with retractions; rows
keep their record id as the row id, so a revision retracts and inserts the same row. The clock
runs around `pw.run` (the whole computation, every time in order, with the output written by
Pathway's CSV writer), less the time `pw.run` spends turning the DataFrames into its input
rows in Python (`static_table_from_pandas`: the counterpart of parsing, measured and taken
out).

- windows: each update's window start (time - time % 60 s), then `groupby(key, start)` reduced
  to the count and sum of each window's values. (`windowby` with `pw.temporal.tumbling` and
  the key as `instance` gives the same output, about 10% slower here: the faster is used.)
- join: the inner join of left and right on the key, each pair ranked by (score, left id)
  packed into one integer, reduced per key to the greatest (`pw.reducers.max`).

The CSV output's changes are added up afterwards and the final state checked against the
generator's.
"""

import os
import sys
import tempfile
import time

os.environ.setdefault("PATHWAY_THREADS", "1")

import pandas as pd  # noqa: E402
import pathway as pw  # noqa: E402
from pathway.internals import api  # noqa: E402

import workloads  # noqa: E402
from workloads import MODULUS, WINDOW  # noqa: E402

# The pair rank is score * RANK + left id (left ids are below 2**32).
RANK = 1 << 32

_static_table = api.static_table_from_pandas
_preparing = 0.0


def _timed_static_table(*args, **kwargs):
    """`static_table_from_pandas`, adding the time it takes to `_preparing`."""
    global _preparing
    clock = time.perf_counter()
    try:
        return _static_table(*args, **kwargs)
    finally:
        _preparing += time.perf_counter() - clock


api.static_table_from_pandas = _timed_static_table


def table(frame: pd.DataFrame, columns: dict[str, str], diff: bool = False) -> pw.Table:
    """A Pathway table of `frame`'s columns (renamed by `columns`), one time per batch."""
    data = pd.DataFrame({name: frame[column] for name, column in columns.items()})
    data["__time__"] = 2 * (frame["batch"] + 1)
    if diff:
        data["__diff__"] = frame["diff"]
    return pw.debug.table_from_pandas(data)


def timed(output: pw.Table) -> tuple[float, list[tuple]]:
    """Runs the computation writing `output` as CSV; the seconds it took (less the input
    preparation) and the output's rows at the end."""
    with tempfile.TemporaryDirectory() as scratch:
        path = f"{scratch}/output.csv"
        pw.io.csv.write(output, path)
        clock = time.perf_counter()
        pw.run(monitoring_level=pw.MonitoringLevel.NONE)
        elapsed = time.perf_counter() - clock
        changes = pd.read_csv(path)
    print(f"pathway: pw.run {elapsed:.3f} s, of which {_preparing:.3f} s turning the DataFrames into input rows (not counted)", file=sys.stderr)
    seconds = elapsed - _preparing
    rows = list(zip(*(changes[name].tolist() for name in output.column_names())))
    return seconds, workloads.consolidate(rows, changes["diff"].tolist())


def windows(directory: str) -> tuple[int, float, dict]:
    frame = workloads.read(directory, "windows.csv").set_index("id", drop=False)
    updates = table(frame, {"key": "key", "time": "time", "value": "value"}, diff=True)
    windowed = updates.select(key=updates.key, start=updates.time - updates.time % WINDOW, value=updates.value)
    aggregates = windowed.groupby(windowed.key, windowed.start).reduce(
        windowed.key, windowed.start, count=pw.reducers.count(), sum=pw.reducers.sum(windowed.value)
    )
    seconds, rows = timed(aggregates)
    return len(frame), seconds, {(key, start): (count, total) for key, start, count, total in rows}


def join(directory: str) -> tuple[int, float, dict]:
    left_frame = workloads.read(directory, "join.left.csv").set_index("id", drop=False)
    right_frame = workloads.read(directory, "join.right.csv").set_index("id", drop=False)
    left = table(left_frame, {"key": "key", "left_id": "id", "value": "value"})
    right = table(right_frame, {"key": "key", "value": "value"})
    pairs = left.join(right, left.key == right.key).select(
        key=pw.right.key, rank=(pw.left.value * pw.right.value % MODULUS) * RANK + pw.left.left_id
    )
    tops = pairs.groupby(pw.this.key).reduce(pw.this.key, rank=pw.reducers.max(pw.this.rank))
    seconds, rows = timed(tops)
    return len(left_frame) + len(right_frame), seconds, {key: (rank % RANK, rank // RANK) for key, rank in rows}


if __name__ == "__main__":
    workloads.main("pathway", {"windows": windows, "join": join})
