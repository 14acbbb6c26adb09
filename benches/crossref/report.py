#!/usr/bin/env python3
"""Prints run.sh's comparison table from the JSON it collected.

usage: report.py OUT_DIR SET...

For each SET, reads OUT_DIR/SET.crossref.json (sbm.py --json) and, when present,
OUT_DIR/SET.citeflow.json (citeflow eval --json; OUT_DIR/SET.citeflow.status says why not
otherwise). Prints one line per set and system, the Crossref systems per style where the gold
has styles (and citeflow's, from its by_style), then one fixed line per set:

    crossref: SET citeflow_f1 X sbm_f1 Y sbmv_f1 Z

(X is n/a when citeflow did not run.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SYSTEMS = ("sbm", "sbmv", "sbmv-orig")


def load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def row(name: str, system: str, s: dict, references, positives, publications) -> str:
    return (
        f"{name:<14} {system:<10} {references:>6} {positives:>6} {publications:>8}"
        f" {s['precision']:>7.4f} {s['recall']:>7.4f} {s['f1']:>7.4f}"
        f" {s['true_positives']:>6} {s['false_positives']:>6} {s['false_negatives']:>6}"
    )


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out, names = Path(argv[0]), argv[1:]
    header = f"{'set':<14} {'system':<10} {'refs':>6} {'pos':>6} {'pubs':>8} {'P':>7} {'R':>7} {'F1':>7} {'TP':>6} {'FP':>6} {'FN':>6}"
    print(header)
    print("-" * len(header))
    finals, styles = [], []
    for name in names:
        crossref = load(out / f"{name}.crossref.json")
        citeflow = load(out / f"{name}.citeflow.json")
        citeflow_f1 = "n/a"
        if citeflow is not None:
            print(row(name, "citeflow", citeflow, citeflow["references"], citeflow["positives"], citeflow["publications"]))
            citeflow_f1 = f"{citeflow['f1']:.4f}"
            for style, by in citeflow.get("by_style", {}).items():
                styles.append(row(name, "citeflow", by, by["references"], by["positives"], "") + f"  {style}")
        else:
            status = out / f"{name}.citeflow.status"
            reason = status.read_text(encoding="utf-8").strip() if status.exists() else "no result"
            print(f"{name:<14} {'citeflow':<10} ({reason})")
        f1 = {}
        if crossref is None:
            print(f"{name:<14} {'crossref':<10} (sbm.py produced no result; see {out / (name + '.crossref.log')})")
        else:
            for system in SYSTEMS:
                s = crossref["systems"][system]
                print(row(name, system, s, crossref["references"], crossref["positives"], crossref["publications"]))
                f1[system] = f"{s['f1']:.4f}"
                for style, by in s.get("by_style", {}).items():
                    styles.append(row(name, system, by, by["references"], by["positives"], "") + f"  {style}")
        finals.append(f"crossref: {name} citeflow_f1 {citeflow_f1} sbm_f1 {f1.get('sbm', 'n/a')} sbmv_f1 {f1.get('sbmv', 'n/a')}")
    if styles:
        print()
        print("by style:")
        print(header + "  style")
        for line in styles:
            print(line)
    print()
    for line in finals:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
