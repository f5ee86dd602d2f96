#!/usr/bin/env python3
"""Chooses self-training protocol settings on validation data only (docs/results.md).

Runs `imagescore selftrain` once per candidate protocol on a seed kept apart from the
seeds that are reported (default 100), with a share of the labelled images held out as
validation, and prints each arm's final *validation* accuracy and the precision of what
it added. It never reads a test accuracy: the test split stays for the final comparison.

    scripts/choose_protocol.py --out runs/choose [--imagescore build/imagescore] [--seeds 100 101]
"""
import argparse
import json
import os
import subprocess
import sys
import time

# The base experiment: the fashion-mnist-ssl preset's setting without its protocol keys.
BASE = {
    "data": "fashion-mnist",
    "training_fraction": 0.05,
    "validation_fraction": 0.2,
    "pool_limit": 12000,
    "model": "small-cnn",
    "base_epochs": 8,
    "retrain_epochs": 4,
    "protocols": ["joint"],
    "arms": ["baseline", "softmax"],
}

# Candidates from the literature (docs/selftrain.md cites each).
CANDIDATES = {
    "paper-alpha-0.3": {"alpha": [0.3]},
    "fixmatch-0.95": {"threshold": 0.95},
    "flexmatch-0.95": {"threshold": 0.95, "flexmatch": True},
    "curriculum-fine-tune": {"curriculum": [0.25, 0.5, 0.75, 1.0]},
    "fixmatch-0.95-weight-0.5": {"threshold": 0.95, "pseudo_weight": 0.5},
    "fixmatch-0.95-soft": {"threshold": 0.95, "soft_targets": True},
    "fixmatch-0.95-share-0.5": {"threshold": 0.95, "pseudo_batch_share": 0.5},
    # A student trained from the initial weights on the labelled images and the confident
    # pseudo-labels (one round), or two curriculum rounds from the initial weights.
    "student-0.95": {"threshold": 0.95, "reinitialise": True, "retrain_epochs": 8, "selection_interval": 8},
    "curriculum-reinit": {"curriculum": [0.5, 1.0], "reinitialise": True, "retrain_epochs": 8,
                          "selection_interval": 4},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--imagescore", default="build/imagescore")
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 101])
    parser.add_argument("--only", nargs="*", help="candidate names (default: all)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for name, keys in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        final = {}  # arm -> [validation accuracy per seed]
        added = {}
        start = time.time()
        for seed in args.seeds:
            experiment = dict(BASE, split_seed=seed, seed=seed, **keys)
            folder = os.path.join(args.out, f"{name}-seed{seed}")
            config = folder + ".json"
            with open(config, "w") as f:
                json.dump(experiment, f, indent=2)
            subprocess.run([args.imagescore, "selftrain", "--config", config, "--out", folder, "--quiet"], check=True,
                           stderr=subprocess.DEVNULL)
            last = {}
            for line in open(os.path.join(folder, "epochs.jsonl")):
                r = json.loads(line)
                if r["protocol"] != "joint":
                    continue
                last[r["arm"]] = r["validation_accuracy"]
                if r.get("added_correct") is not None and r["added"]:
                    total = added.setdefault(r["arm"], [0, 0])
                    total[0] += r["added"]
                    total[1] += r["added_correct"]
            for arm, accuracy in last.items():
                final.setdefault(arm, []).append(accuracy)
        seconds = time.time() - start
        for arm, values in final.items():
            gains = [v - b for v, b in zip(values, final["baseline"])]
            precision = added[arm][1] / added[arm][0] if arm in added else float("nan")
            rows.append((name, arm, sum(values) / len(values), gains, precision, seconds))
        print(f"{name}: {seconds:.0f} s", file=sys.stderr, flush=True)
    print(f"Seeds {args.seeds}; final validation accuracy; gain = arm - baseline of the same seed (points).")
    print()
    print("| protocol | arm | mean validation accuracy | gain per seed | precision of added | seconds |")
    print("|---|---|---|---|---|---|")
    for name, arm, accuracy, gains, precision, seconds in rows:
        gain = ", ".join(f"{100 * g:+.2f}" for g in gains)
        print(f"| {name} | {arm} | {accuracy:.4f} | {gain} | {precision:.3f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
