"""Bytewax on the benches/peers workloads, one worker (`bytewax.testing.run_main`, in this
thread).

usage: python bytewax_bench.py windows|join DIR

The files are read into per-batch lists of tuples before the clock starts; the clock runs
around `run_main`, from the first batch until the sink has every output item. A source
partition hands over one generated batch per `next_batch`.

- windows: each update is keyed by its window ("key:start", bytewax keys are strings) and a
  `stateful_map` keeps the window's count and sum, adding a retraction with a minus sign, and
  emits the new aggregate after every update (Bytewax has no retractions of its own; its
  event-time windowing operators close windows on a watermark instead of revising them).
- join: `op.join` of the left and right rows by key (insert_mode "product", emit_mode
  "running": every pair of the key's rows so far, on every arrival), the pairs with both
  sides kept, and a `stateful_flat_map` per key that emits the best pair when it improves.

The final output (the last value emitted per key) is checked against the generator's.
"""

import time

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import DynamicSource, StatelessSourcePartition
from bytewax.testing import TestingSink, run_main

import workloads
from workloads import MODULUS, WINDOW


class _Partition(StatelessSourcePartition):
    def __init__(self, batches: list[list[tuple]]):
        self._batches = iter(batches)

    def next_batch(self) -> list[tuple]:
        return next(self._batches)  # StopIteration ends the input


class Batches(DynamicSource):
    """The batches, in order, from one partition."""

    def __init__(self, batches: list[list[tuple]]):
        self._batches = batches

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        return _Partition(self._batches)


def timed(flow: Dataflow) -> float:
    """Runs `flow` on one worker; the seconds it took."""
    clock = time.perf_counter()
    run_main(flow)
    return time.perf_counter() - clock


def windows(directory: str) -> tuple[int, float, dict]:
    frame = workloads.read(directory, "windows.csv")
    batches = workloads.batches(frame, ["diff", "key", "time", "value"])

    def tally(state, update):
        diff, value = update
        count, total = state or (0, 0)
        count, total = count + diff, total + diff * value
        return ((count, total) if count else None), (count, total)

    flow = Dataflow("windows")
    updates = op.input("updates", flow, Batches(batches))
    keyed = op.map("window", updates, lambda u: (f"{u[1]}:{u[2] - u[2] % WINDOW}", (u[0], u[3])))
    aggregates = op.stateful_map("count_sum", keyed, tally)
    out: list = []
    op.output("out", aggregates, TestingSink(out))
    seconds = timed(flow)

    last = dict(out)
    got = {tuple(map(int, key.split(":"))): value for key, value in last.items() if value[0]}
    return len(frame), seconds, got


def join(directory: str) -> tuple[int, float, dict]:
    left = workloads.read(directory, "join.left.csv")
    right = workloads.read(directory, "join.right.csv")
    left_batches = workloads.batches(left, ["key", "id", "value"])
    right_batches = workloads.batches(right, ["key", "value"])

    def best(state, pair):
        (left_id, left_value), right_value = pair
        candidate = (left_value * right_value % MODULUS, left_id)
        if state is not None and state >= candidate:
            return state, ()
        return candidate, (candidate,)

    flow = Dataflow("join")
    lefts = op.map("left_key", op.input("left", flow, Batches(left_batches)), lambda r: (str(r[0]), (r[1], r[2])))
    rights = op.map("right_key", op.input("right", flow, Batches(right_batches)), lambda r: (str(r[0]), r[1]))
    pairs = op.join("join", lefts, rights, insert_mode="product", emit_mode="running")
    complete = op.filter("complete", pairs, lambda item: item[1][0] is not None and item[1][1] is not None)
    tops = op.stateful_flat_map("top", complete, best)
    out: list = []
    op.output("out", tops, TestingSink(out))
    seconds = timed(flow)

    got = {int(key): (left_id, score) for key, (score, left_id) in dict(out).items()}
    return len(left) + len(right), seconds, got


if __name__ == "__main__":
    workloads.main("bytewax", {"windows": windows, "join": join})
