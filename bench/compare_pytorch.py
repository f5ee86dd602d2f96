#!/usr/bin/env python3
"""imagescore against the same pipeline written the usual PyTorch way, end to end.

    /usr/bin/python3 bench/compare_pytorch.py [--threads N] [--models small-cnn,vgg16,resnet18]
                                              [--scale F] [--rounds R] [--random-init] [--keep DIR]

For each model it makes a JPEG image folder (folder:DIR layout) and a checkpoint, then
times, as whole processes (start to exit, JPEG decoding included):
  imagescore:  `imagescore profile` on DIR/train, then `imagescore score` on DIR/test;
  python:      bench/pytorch_pipeline.py doing the same on the same folders (one process);
both with --threads N (python: torch.set_num_threads(N) and N DataLoader workers) and
OMP_WAIT_POLICY=PASSIVE. Each round runs both sides, the order alternating between
rounds; the best round of each side counts. It prints images/s (profile + scored images,
over the summed wall time) and the ratio imagescore/python (> 1: imagescore is faster),
then cross-checks the last round's outputs: image scores matched by path, predicted
classes, and the reference masks of the two profiles.

Data: Fashion-MNIST (Debian's dataset-fashion-mnist) as grayscale 28x28 JPEGs for
small-cnn; CIFAR-10 JPEGs from ../shared/data/cifar10-jpg.tar.zst for vgg16 and resnet18,
or, where that file is absent, 32x32 RGB JPEGs synthesised from Fashion-MNIST (the output
says which). Models: trained for one epoch on the training folder (`imagescore train`, not
timed) so that predictions and masks are not degenerate; --random-init uses `model init`.
The imagescore build is taken from BUILD_DIR (default build).
"""
import argparse
import csv
import datetime
import json
import os
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in bench/
import benchdata  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PYTHON = "/usr/bin/python3"

# Images per class (train, test) at --scale 1: the whole run takes 3-4 minutes on 2 shared cores.
DEFAULT_COUNTS = {"small-cnn": (600, 200), "vgg16": (50, 30), "resnet18": (50, 30)}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--models", default="small-cnn,vgg16,resnet18")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiplies the image counts (default per class, train/test: small-cnn 600/200, "
                         "vgg16 and resnet18 50/30)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds per model; the best of each side counts")
    ap.add_argument("--random-init", action="store_true", help="randomly initialised models (no training)")
    ap.add_argument("--keep", help="work in this folder and keep it (default: a temporary folder, removed)")
    return ap.parse_args()


def per_class(model, scale):
    train, test = DEFAULT_COUNTS[model]
    return max(1, round(train * scale)), max(1, round(test * scale))


def prepare(model, work, args, data_cache):
    """Makes the data and the checkpoint; returns (data dir, data description, checkpoint, model description)."""
    train_pc, test_pc = per_class(model, args.scale)
    if model == "small-cnn":
        key, shape = ("fashion", train_pc, test_pc), "1x28x28"
    else:
        key, shape = ("rgb32", train_pc, test_pc), "3x32x32"
    if key not in data_cache:
        data = os.path.join(work, f"{key[0]}-{train_pc}-{test_pc}")
        benchdata.remove(data)
        if key[0] == "fashion":
            benchdata.write_fashion_folder(data, "train", train_pc)
            benchdata.write_fashion_folder(data, "test", test_pc)
            what = "Fashion-MNIST as grayscale 28x28 JPEGs (quality 75), /usr/share/datasets/fashion-mnist"
        else:
            what = benchdata.rgb32_folder(data, train_pc, test_pc)
        data_cache[key] = (data, what)
    data, what = data_cache[key]
    ckpt = os.path.join(work, f"{model}.safetensors")
    exe = imagescore_exe()
    common = ["--threads", str(args.threads), "--quiet", "--out", ckpt]
    if args.random_init:
        norm = "none" if shape.startswith("1x") else "imagenet"
        cmd = [exe, "model", "init", "--arch", model, "--input", shape, "--classes", "10", "--seed", "0",
               "--normalize", norm] + common
        what_model = f"randomly initialised (model init, seed 0, --normalize {norm})"
    else:
        cmd = [exe, "train", "--data", f"folder:{data}", "--model", model, "--epochs", "1", "--batch-size", "32",
               "--seed", "0"] + common
        what_model = "trained 1 epoch on the training folder (imagescore train, batch 32, seed 0)"
    benchdata.measure(cmd, env=bench_env())
    return data, what, ckpt, what_model


def tiny_copy(data, work):
    """A folder with the first image of each class of data's train and test parts (hard
    links): runs on it measure each side's fixed cost (process start, LibTorch, model)."""
    tiny = data.rstrip("/") + "-tiny"
    benchdata.remove(tiny)
    for split in ("train", "test"):
        for cls in sorted(os.listdir(os.path.join(data, split))):
            first = sorted(os.listdir(os.path.join(data, split, cls)))[0]
            os.makedirs(os.path.join(tiny, split, cls))
            os.link(os.path.join(data, split, cls, first), os.path.join(tiny, split, cls, first))
    return tiny


def fmt(value, spec):
    return "n/a" if value is None else format(value, spec)


def imagescore_exe():
    build = os.environ.get("BUILD_DIR", "build")
    exe = os.path.join(build if os.path.isabs(build) else os.path.join(ROOT, build), "imagescore")
    if not os.access(exe, os.X_OK):
        raise SystemExit(f"{exe} not found: build imagescore first (BUILD_DIR={build})")
    return exe


def bench_env():
    env = dict(os.environ)
    env["OMP_WAIT_POLICY"] = "PASSIVE"  # imagescore would set it itself; python gets the same
    return env


def run_imagescore(ckpt, data, out, threads):
    exe = imagescore_exe()
    t = ["--threads", str(threads), "--quiet"]
    prof, _, _ = benchdata.measure([exe, "profile", "--model", ckpt, "--data", f"folder:{data}", "--split", "train",
                                    "--out", out + ".profiles.safetensors"] + t, env=bench_env())
    score, _, _ = benchdata.measure([exe, "score", "--model", ckpt, "--profiles", out + ".profiles.safetensors",
                                     "--data", f"folder:{data}", "--split", "test", "--out", out + ".scores.csv"] + t,
                                    env=bench_env())
    return {"wall": prof + score, "profile": prof, "score": score}


def run_python(ckpt, data, out, threads):
    wall, _, text = benchdata.measure([PYTHON, os.path.join(HERE, "pytorch_pipeline.py"), "--model", ckpt,
                                       "--data", data, "--threads", str(threads), "--out-scores", out + ".scores.csv",
                                       "--out-profile", out + ".profiles.pt"], env=bench_env(), capture=True)
    phases = json.loads(text.strip().splitlines()[-1])
    return {"wall": wall, "profile": phases["profile_s"], "score": phases["score_s"], "import": phases["import_s"]}


def cross_check(is_out, py_out):
    """Compares the two sides' scores (by path) and profiles. Imports torch: call it only
    after the timed runs."""
    import torch
    import pytorch_pipeline as pp
    torch.set_num_threads(1)  # the driver stays out of the way of the next timed runs

    def rows(path):
        with open(path, newline="") as f:
            return {os.path.normpath(r["path"]): r for r in csv.DictReader(f)}

    a, b = rows(is_out + ".scores.csv"), rows(py_out + ".scores.csv")
    if a.keys() != b.keys():
        raise SystemExit(f"the two score files list different images ({len(a)} and {len(b)})")
    diffs = [abs(float(a[k]["image_score"]) - float(b[k]["image_score"])) for k in a]
    pred_same = sum(a[k]["pred"] == b[k]["pred"] for k in a)
    same_pred_diffs = [d for k, d in zip(a, diffs) if a[k]["pred"] == b[k]["pred"]]
    msp = max(abs(float(a[k]["msp"]) - float(b[k]["msp"])) for k in a)
    worst = max(a, key=lambda k: abs(float(a[k]["image_score"]) - float(b[k]["image_score"])))

    tensors, meta = pp.read_safetensors(is_out + ".profiles.safetensors")
    prof = json.loads(meta["imagescore.profile"])
    mine = torch.load(py_out + ".profiles.pt")
    neuron_total = neuron_diff = count_diff = excl_diff = 0
    t_rel = 0.0
    for k, p in enumerate(prof["profiles"]):
        if int(mine["counts"][k]) != p["count"]:
            raise SystemExit(f"class {k}: {p['count']} reference images in imagescore, {int(mine['counts'][k])} in python")
        for l, tap in enumerate(p["taps"]):
            if tap["name"] != mine["taps"][l]:
                raise SystemExit(f"tap {l}: {tap['name']} in imagescore, {mine['taps'][l]} in python")
            mask_is = tensors[f"p{k}/{tap['name']}/mask"].flatten().bool()
            mask_py = mine["profiles"][l]["mask"][k]
            neuron_total += mask_is.numel()
            neuron_diff += int((mask_is != mask_py).sum())
            count_diff += int(mine["profiles"][l]["mask_count"][k]) != tap["mask_count"]
            excl_diff += bool(mine["profiles"][l]["excluded"][k]) != tap["excluded"]
            t_py = float(mine["profiles"][l]["threshold"][k])
            if tap["threshold"] != 0:
                t_rel = max(t_rel, abs(t_py - tap["threshold"]) / abs(tap["threshold"]))
    excluded = sum(t["excluded"] for p in prof["profiles"] for t in p["taps"])
    return {"images": len(a), "max_abs_diff": max(diffs), "within_1e-6": sum(d <= 1e-6 for d in diffs) / len(diffs),
            "bit_identical": sum(d == 0 for d in diffs) / len(diffs), "pred_agree": pred_same / len(a),
            "max_abs_diff_same_pred": max(same_pred_diffs) if same_pred_diffs else float("nan"),
            "msp_max_abs_diff": msp, "worst_path": worst,
            "worst": (a[worst]["image_score"], b[worst]["image_score"], a[worst]["pred"], b[worst]["pred"]),
            "mask_neurons": neuron_total, "mask_neurons_differing": neuron_diff, "mask_counts_differing": count_diff,
            "exclusions_differing": excl_diff, "excluded_taps": excluded, "threshold_max_rel_diff": t_rel,
            "accuracy": sum(r["label"] == r["pred"] for r in a.values()) / len(a)}


def main():
    args = parse_args()
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # also for the torch imported by cross_check
    models = args.models.split(",")
    for m in models:
        if m not in DEFAULT_COUNTS:
            raise SystemExit(f"unknown model {m} (expected small-cnn, vgg16, resnet18)")
    imagescore_exe()
    work = args.keep or tempfile.mkdtemp(prefix="imagescore-vs-pytorch-")
    os.makedirs(work, exist_ok=True)
    load_start = benchdata.loadavg()
    print(f"== imagescore vs PyTorch (python3-torch), end to end; "
          f"{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%MZ')}")
    print(f"   {benchdata.cpu_name()}, {os.cpu_count()} cores, --threads {args.threads}, "
          f"OMP_WAIT_POLICY=PASSIVE, {args.rounds} round(s), order alternating, best round counts")
    print(f"   load average at start: {load_start}")
    print(f"   work folder: {work}")
    results = []
    data_cache = {}
    try:
        for model in models:
            data, what, ckpt, what_model = prepare(model, work, args, data_cache)
            n_train = benchdata.count_images(os.path.join(data, "train"))
            n_test = benchdata.count_images(os.path.join(data, "test"))
            benchdata.warm_cache(data)
            print(f"\n-- {model}: profile {n_train} train images, score {n_test} test images")
            print(f"   data: {what}")
            print(f"   model: {what_model}")
            tiny = tiny_copy(data, work)
            n_tiny = benchdata.count_images(tiny)
            best = {"imagescore": None, "python": None}
            fixed = {"imagescore": None, "python": None}
            outs = {"imagescore": os.path.join(work, f"{model}.imagescore"), "python": os.path.join(work, f"{model}.python")}
            for r in range(args.rounds):
                order = ["imagescore", "python"] if r % 2 == 0 else ["python", "imagescore"]
                line, tiny_line = [], []
                for side in order:
                    run = run_imagescore if side == "imagescore" else run_python
                    res = run(ckpt, tiny, outs[side] + "-tiny", args.threads)
                    fixed[side] = res["wall"] if fixed[side] is None else min(fixed[side], res["wall"])
                    tiny_line.append(f"{side} {res['wall']:.2f} s")
                    res = run(ckpt, data, outs[side], args.threads)
                    if best[side] is None or res["wall"] < best[side]["wall"]:
                        best[side] = res
                    extra = f", import torch {res['import']:.2f}" if "import" in res else ""
                    line.append(f"{side} {res['wall']:.2f} s (profile {res['profile']:.2f}, score {res['score']:.2f}{extra})")
                print(f"   round {r + 1}: " + "; ".join(line))
                print(f"            on {n_tiny} images (one per class and split): " + "; ".join(tiny_line))
            n = n_train + n_test
            ips = {s: n / best[s]["wall"] for s in best}
            # Beyond the fixed cost: only where it is at most 80 % of the run (else it is noise).
            marginal = {s: (n - n_tiny) / (best[s]["wall"] - fixed[s])
                        if best[s]["wall"] - fixed[s] >= max(0.5, 0.2 * best[s]["wall"]) else None for s in best}
            beyond = (marginal["imagescore"] / marginal["python"]
                      if marginal["imagescore"] and marginal["python"] else None)
            print(f"   best: imagescore {ips['imagescore']:.1f} img/s, python {ips['python']:.1f} img/s, "
                  f"ratio imagescore/python {ips['imagescore'] / ips['python']:.2f}")
            print(f"   fixed cost (best run on {n_tiny} images): imagescore {fixed['imagescore']:.2f} s (two processes), "
                  f"python {fixed['python']:.2f} s (one); beyond it: imagescore {fmt(marginal['imagescore'], '.1f')} img/s, "
                  f"python {fmt(marginal['python'], '.1f')} img/s, ratio {fmt(beyond, '.2f')}")
            check = cross_check(outs["imagescore"], outs["python"])
            results.append((model, n_train, n_test, best, ips, check, fixed, beyond))
            print(f"   cross-check ({check['images']} test images, accuracy {check['accuracy']:.3f}): "
                  f"image_score max |diff| {check['max_abs_diff']:.3g}, within 1e-6 {check['within_1e-6']:.4f}, "
                  f"bit-identical {check['bit_identical']:.4f}; predicted class agrees {check['pred_agree']:.4f}; "
                  f"msp max |diff| {check['msp_max_abs_diff']:.3g}")
            print(f"   profiles: reference masks differ in {check['mask_neurons_differing']} of "
                  f"{check['mask_neurons']} neurons; |M| differs in {check['mask_counts_differing']} (class, tap) pairs; "
                  f"exclusions differ in {check['exclusions_differing']} (imagescore excludes {check['excluded_taps']}); "
                  f"threshold max rel. diff {check['threshold_max_rel_diff']:.3g}")
            if check["max_abs_diff"] > 1e-6:
                w = check["worst"]
                print(f"   largest difference: {check['worst_path']}: imagescore {w[0]} (pred {w[2]}), "
                      f"python {w[1]} (pred {w[3]})")
    finally:
        if not args.keep:
            benchdata.remove(work)
    load_end = benchdata.loadavg()
    print("\n== summary: end to end, best round; img/s = (profile + scored images) / wall time")
    print("| model | images (profile + score) | imagescore s | imagescore img/s | python s | python img/s "
          "| imagescore/python | fixed cost s, imagescore / python | imagescore/python beyond the fixed cost |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for model, n_train, n_test, best, ips, c, fixed, beyond in results:
        print(f"| {model} | {n_train} + {n_test} | {best['imagescore']['wall']:.2f} | {ips['imagescore']:.1f} "
              f"| {best['python']['wall']:.2f} | {ips['python']:.1f} | {ips['imagescore'] / ips['python']:.2f} "
              f"| {fixed['imagescore']:.2f} / {fixed['python']:.2f} | {fmt(beyond, '.2f')} |")
    print("\n== cross-check: python's scores against imagescore's CSV, matched by path (last round)")
    print("| model | images | image_score max abs diff | within 1e-6 | bit-identical | pred agrees "
          "| reference mask neurons differing | msp max abs diff |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for model, n_train, n_test, best, ips, c, fixed, beyond in results:
        print(f"| {model} | {c['images']} | {c['max_abs_diff']:.2g} | {c['within_1e-6']:.4f} | {c['bit_identical']:.4f} "
              f"| {c['pred_agree']:.4f} | {c['mask_neurons_differing']} of {c['mask_neurons']} "
              f"| {c['msp_max_abs_diff']:.2g} |")
    print(f"load average at start: {load_start}; at end: {load_end}")


if __name__ == "__main__":
    main()
