"""Trains the citeflow candidate scorer on features written by `citeflow features`.

The features are computed by the Rust code only (jobs/src/matching/features.rs); this script
reads their CSV export, fits a gradient-boosted classifier, exports it to ONNX (probabilities
as a plain tensor, no ZipMap) and writes a training report.

    python training/train.py --train A.csv [B.csv ...] --test C.csv --out training/scorer.onnx \
        --report training/report.md
"""
import argparse
import csv
import hashlib

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType


def read(paths):
    names, rows, labels, refs = None, [], [], []
    for path in paths:
        with open(path, newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            names = header[3:]
            for row in reader:
                refs.append(row[0])
                labels.append(int(row[2]))
                rows.append([float(v) for v in row[3:]])
    return names, np.array(rows, dtype=np.float32), np.array(labels), refs


def held_out(refs, share=0.2):
    """Splits by reference, so that no reference has pairs on both sides."""
    return np.array([int(hashlib.sha1(r.encode()).hexdigest(), 16) % 100 < share * 100 for r in refs])


def metrics(model, features, labels):
    scores = model.predict_proba(features)[:, 1]
    precision, recall, f1, _ = precision_recall_fscore_support(labels, scores >= 0.5, average="binary")
    return precision, recall, f1, roc_auc_score(labels, scores)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", nargs="+", required=True)
    parser.add_argument("--test", nargs="*", default=[])
    parser.add_argument("--out", required=True)
    parser.add_argument("--report", required=True)
    parser.add_argument("--estimators", type=int, default=150)
    parser.add_argument("--depth", type=int, default=3)
    args = parser.parse_args()

    names, features, labels, refs = read(args.train)
    validation = held_out(refs)
    model = GradientBoostingClassifier(
        n_estimators=args.estimators, max_depth=args.depth, learning_rate=0.1, random_state=0
    )
    model.fit(features[~validation], labels[~validation])
    lines = [
        "# citeflow scorer: training report",
        "",
        f"Model: GradientBoostingClassifier(n_estimators={args.estimators}, max_depth={args.depth}), {len(names)} features "
        f"computed by `citeflow features`.",
        f"Training files: {', '.join(path.split('/')[-1] for path in args.train)}.",
        f"Training pairs: {int((~validation).sum())} ({int(labels[~validation].sum())} positive); "
        f"validation pairs (20% of references, by hash): {int(validation.sum())}.",
        "",
        "| set | pair precision | pair recall | pair F1 | ROC AUC |",
        "|---|---|---|---|---|",
    ]
    sets = [("validation", features[validation], labels[validation])]
    for path in args.test:
        _, test_features, test_labels, _ = read([path])
        sets.append((path.split("/")[-1], test_features, test_labels))
    for name, set_features, set_labels in sets:
        p, r, f, auc = metrics(model, set_features, set_labels)
        lines.append(f"| {name} | {p:.4f} | {r:.4f} | {f:.4f} | {auc:.4f} |")
    lines += ["", "Feature importances:", ""]
    for name, importance in sorted(zip(names, model.feature_importances_), key=lambda x: -x[1]):
        lines.append(f"- {name}: {importance:.4f}")
    model.fit(features, labels)
    onnx = convert_sklearn(
        model,
        initial_types=[("features", FloatTensorType([None, len(names)]))],
        options={id(model): {"zipmap": False}},
        target_opset=17,
    )
    with open(args.out, "wb") as handle:
        handle.write(onnx.SerializeToString())
    lines += ["", f"The exported model is refitted on all {len(labels)} training pairs.", ""]
    with open(args.report, "w") as handle:
        handle.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
