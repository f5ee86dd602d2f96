#!/usr/bin/env python3
"""The table of docs/results.md, "Which selector beats the softmax?", from study folders.

    python3 scripts/selector_table.py STUDY_DIR [STUDY_DIR ...]

Each STUDY_DIR is the output of one `imagescore study` run (one seed). Prints, per score
column, the precision of the selection and the AUROC (mean over the runs), each run's
difference to msp with its paired bootstrap interval, the number of runs whose interval
lies wholly above msp, and what the validation part chose. Where every folder also holds
`analysis.json` (`imagescore analyze --scores DIR/scores.csv --out DIR/analysis.json`), a
second table gives AUROC, AURC and the precision of the top 10/30/50% over the whole pool:
the mean over the runs and, in brackets, the lowest lower and highest upper bound of the
runs' bootstrap intervals. Standard library only.
"""
import json
import os
import sys


def signed(value):
    return ("+" if value >= 0 else "") + "%.4f" % value


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    summaries = []
    for folder in sys.argv[1:]:
        with open(os.path.join(folder, "summary.json")) as f:
            summaries.append(json.load(f))
    columns = [row["score"] for row in summaries[0]["versus_msp"]["scores"]]
    print("Test accuracy of the models: " + ", ".join("%.4f" % s["test_accuracy"] for s in summaries) + ".\n")
    print("| score | precision, mean of %d | minus msp per seed [95%% interval] | AUROC, mean of %d | "
          "minus msp per seed [95%% interval] |" % (len(summaries), len(summaries)))
    print("|---|---|---|---|---|")
    above = {}
    for column in columns:
        cells = []
        for metric in ("precision", "auroc"):
            mean = sum(s[metric][column]["overall"] for s in summaries) / len(summaries)
            diffs = []
            for s in summaries:
                row = next(r for r in s["versus_msp"]["scores"] if r["score"] == column)
                d = row[metric + "_minus_baseline"]
                diffs.append("%s [%s, %s]" % (signed(d["value"]), signed(d["lower"]), signed(d["upper"])))
                above.setdefault(column, {}).setdefault(metric, 0)
                above[column][metric] += d["lower"] > 0
            cells += ["%.4f" % mean, "(baseline)" if column == "msp" else "; ".join(diffs)]
        print("| %s | %s |" % (column, " | ".join(cells)))
    chosen = [s["validation"]["chosen"] if s.get("validation") else "-" for s in summaries]
    print("\nChosen on the validation part: " + ", ".join(chosen) + ".\n")
    print("Seeds (of %d) in which a score's interval lies wholly above msp: " % len(summaries) +
          "; ".join("%s: precision %d, AUROC %d" % (c, above[c]["precision"], above[c]["auroc"])
                    for c in columns if c != "msp") + ".")

    analyses = []
    for folder in sys.argv[1:]:
        path = os.path.join(folder, "analysis.json")
        if not os.path.exists(path):
            return
        with open(path) as f:
            analyses.append(json.load(f))
    metrics = [("auroc", "AUROC"), ("aurc", "AURC"), ("precision_top10", "precision top 10%"),
               ("precision_top30", "precision top 30%"), ("precision_top50", "precision top 50%")]
    print("\n| score | " + " | ".join(title for _, title in metrics) + " |")
    print("|---|" + "---|" * len(metrics))
    def label(name):  # each run's learned fusion has its own file
        return "learned" if name.startswith("learned:") else name

    for column in analyses[0]["columns"]:
        name = label(column["name"])
        cells = []
        for key, _ in metrics:
            found = [next(c for c in a["columns"] if label(c["name"]) == name)["metrics"][key] for a in analyses]
            mean = sum(m["value"] for m in found) / len(found)
            cells.append("%.4f [%.4f, %.4f]" % (mean, min(m["lower"] for m in found), max(m["upper"] for m in found)))
        print("| %s | %s |" % (name, " | ".join(cells)))


if __name__ == "__main__":
    main()
