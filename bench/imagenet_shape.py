#!/usr/bin/env python3
"""Peak memory, profile size and speed of the image score at ImageNet shape (ResNet-50, 3x224x224).

    /usr/bin/python3 bench/imagenet_shape.py [--classes 10,100,1000] [--per-class 2]
                                             [--score-images 200] [--batch-size 8]
                                             [--max-memory BYTES] [--threads N] [--keep DIR]

For each class count C it exports torchvision's ResNet-50 with C outputs as TorchScript
(random weights: the same seeded backbone for every C, only the fc differs; 3x224x224,
ImageNet mean and std) with its preprocessing JSON, and a `folder:` data set of synthetic
JPEGs of mixed sizes (each side 160-500 pixels, smooth random colours plus noise), read as
`folder:DIR@224x224,crop=256` (torchvision's Resize(256) + CenterCrop(224)):
  DIR/train/<class>/   --per-class images for each of the C classes (the reference set),
  DIR/test/<class>/    --score-images images, image i in class i % C (the same files for every C).
Then it runs, as separate processes whose peak resident memory (ru_maxrss from wait4) is
measured, with the default taps (maxpool, layer1.0 ... layer4.2, output):
  imagescore model info --model M --json       (the baseline: LibTorch and the model loaded; the
                                                profile estimate: neurons, peak, passes, file size)
  imagescore eval    --data DIR --split test   (plain inference: the images/s baseline)
  imagescore profile --data DIR --split train --scores image_score --out P.st
  imagescore score   --data DIR --split test --profiles P.st   (image score and the cheap baselines)
all with --batch-size (default 8: the default taps of one 224x224 image are ~22 MB of
floats, so a batch of 256 would hold ~5.6 GB of taps alone) and --max-memory only if given
(default: imagescore's own, half the machine's memory). Images/s are taken from imagescore's
own progress line ("N/N ... in M:SS": the pass over the images, without loading the model),
and from the wall time of the process too. It prints a table per C and the growth from the
smallest to the largest C. The binary is IMAGESCORE if set, else BUILD_DIR/imagescore
(BUILD_DIR default build). Needs torchvision (Debian: apt install python3-torchvision),
Pillow and numpy.
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in bench/
import benchdata  # noqa: E402

ROOT = os.path.dirname(os.path.abspath(__file__))
MIB = 1024.0 * 1024.0
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def export_models(out_dir, class_counts):
    """Runs in a child process (--export): torch stays out of the measuring process."""
    try:
        import torch
        import torchvision
    except ImportError as e:
        raise SystemExit(f"imagenet_shape.py needs torch and torchvision ({e}): "
                         "apt install python3-torchvision (Debian's python3-torch 1.13)")
    torch.manual_seed(0)
    backbone = {k: v for k, v in torchvision.models.resnet50().state_dict().items() if not k.startswith("fc.")}
    for c in class_counts:
        model = torchvision.models.resnet50(num_classes=c)
        model.load_state_dict(backbone, strict=False)  # the same backbone for every C
        torch.manual_seed(1)
        model.fc.reset_parameters()
        model.eval()
        path = os.path.join(out_dir, f"resnet50_{c}.pt")
        with torch.no_grad():
            torch.jit.trace(model, torch.zeros(1, 3, 224, 224)).save(path)
        with open(path + ".json", "w") as f:
            json.dump({"input": [3, 224, 224], "mean": MEAN, "std": STD,
                       "classes": [class_name(i) for i in range(c)]}, f)


def class_name(i):
    return f"c{i:04d}"


def write_images(root, max_classes, per_class, score_images, seed=0):
    """Synthetic JPEGs of mixed sizes: an 8x8 random colour field scaled up (bicubic), plus noise."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(seed)
    sizes = []

    def one(path):
        w, h = (int(s) for s in rng.integers(160, 501, 2))
        field = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
        pixels = np.asarray(field, dtype=np.int16) + rng.integers(-24, 25, (h, w, 3), dtype=np.int16)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=85)
        sizes.append((w, h))

    for c in range(max_classes):
        d = os.path.join(root, "train", class_name(c))
        os.makedirs(d, exist_ok=True)
        for k in range(per_class):
            one(os.path.join(d, f"{k:03d}.jpg"))
    d = os.path.join(root, "test")
    os.makedirs(d, exist_ok=True)
    for i in range(score_images):
        one(os.path.join(d, f"{i:04d}.jpg"))
    return sizes


def link_data(pool, out, classes, per_class, score_images):
    """out/train/<class>/ for the first `classes` classes, out/test/<class i % classes>/ (hard links)."""
    benchdata.remove(out)
    for c in range(classes):
        d = os.path.join(out, "train", class_name(c))
        os.makedirs(d)
        for k in range(per_class):
            os.link(os.path.join(pool, "train", class_name(c), f"{k:03d}.jpg"), os.path.join(d, f"{k:03d}.jpg"))
    for i in range(score_images):
        d = os.path.join(out, "test", class_name(i % classes))
        os.makedirs(d, exist_ok=True)
        os.link(os.path.join(pool, "test", f"{i:04d}.jpg"), os.path.join(d, f"{i:04d}.jpg"))


def run(cmd, env):
    """Runs cmd; returns (wall s, peak RSS MiB, stdout, stderr). Reaped with wait4: the child's own peak."""
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, log = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        if proc.returncode != 0:
            sys.stderr.write(log[-4000:])
            raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}")
        return wall, usage.ru_maxrss / 1024.0, text, log


def pass_seconds(log):
    """Seconds of the pass over the images from the progress line '... N/N ... in [H:]M:SS'."""
    m = re.findall(r"(\d+)/(\d+) [^\r\n]*? in (?:(\d+):)?(\d+):(\d+)", log)
    if not m:
        return None
    _, _, h, mi, s = m[-1]
    return int(h or 0) * 3600 + int(mi) * 60 + int(s)


def rate(images, log, wall):
    """(img/s of imagescore's own progress time, img/s of the process wall time)."""
    s = pass_seconds(log)
    return (images / s if s else float("nan")), images / wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--classes", default="10,100,1000", help="class counts, comma-separated")
    ap.add_argument("--per-class", type=int, default=2, help="reference images per class (profile)")
    ap.add_argument("--score-images", type=int, default=200, help="images scored (and inferred)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-memory", type=int, help="imagescore profile --max-memory (default: imagescore's)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--keep", help="work in this folder and keep it (default: a temporary folder, removed)")
    ap.add_argument("--export", nargs=2, metavar=("DIR", "CLASSES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.export:
        export_models(args.export[0], [int(c) for c in args.export[1].split(",")])
        return
    counts = sorted(int(c) for c in args.classes.split(","))
    exe = os.environ.get("IMAGESCORE")
    if not exe:
        build = os.environ.get("BUILD_DIR", "build")
        exe = os.path.join(build if os.path.isabs(build) else os.path.join(os.path.dirname(ROOT), build), "imagescore")
    if not os.access(exe, os.X_OK):
        raise SystemExit(f"{exe} not found: build imagescore first, or set IMAGESCORE")
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    work = args.keep or tempfile.mkdtemp(prefix="imagescore-imagenet-")
    os.makedirs(work, exist_ok=True)
    started = time.perf_counter()
    load_start = benchdata.loadavg()
    print(f"== imagescore at ImageNet shape (ResNet-50, 3x224x224); "
          f"{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%MZ')}")
    print(f"   {benchdata.cpu_name()}, {os.cpu_count()} cores, --threads {args.threads}, "
          f"--batch-size {args.batch_size}, --max-memory {args.max_memory or 'default (half the memory)'}")
    print(f"   {exe}; load average at start: {load_start}", flush=True)
    rows = []
    try:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, os.path.abspath(__file__), "--export", work, ",".join(map(str, counts))],
                       check=True)
        pool = os.path.join(work, "pool")
        benchdata.remove(pool)
        sizes = write_images(pool, counts[-1], args.per_class, args.score_images)
        benchdata.warm_cache(pool)
        ws, hs = [w for w, _ in sizes], [h for _, h in sizes]
        print(f"   models exported and {len(sizes)} JPEGs written in {time.perf_counter() - t0:.0f} s "
              f"(widths {min(ws)}-{max(ws)}, heights {min(hs)}-{max(hs)}, "
              f"{sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(pool) for f in fs) / MIB:.1f} MiB)",
              flush=True)
        common = ["--batch-size", str(args.batch_size), "--threads", str(args.threads)]
        for c in counts:
            model = os.path.join(work, f"resnet50_{c}.pt")
            data_dir = os.path.join(work, f"data_{c}")
            link_data(pool, data_dir, c, args.per_class, args.score_images)
            data = f"folder:{data_dir}@224x224,crop=256"
            mm = ["--max-memory", str(args.max_memory)] if args.max_memory else []
            iw, irss, info, _ = run([exe, "model", "info", "--model", model, "--json"] + mm, env)
            est = json.loads(info)["profile_estimate"]
            n_ref, n_score = c * args.per_class, args.score_images
            ew, erss, _, elog = run([exe, "eval", "--model", model, "--data", data, "--split", "test",
                                     "--json"] + common, env)
            prof = os.path.join(work, f"profiles_{c}.st")
            pw, prss, _, plog = run([exe, "profile", "--model", model, "--data", data, "--split", "train",
                                     "--scores", "image_score", "--out", prof, "--json"] + common + mm, env)
            m = re.search(r"profile \((\d+) passes\)", plog)
            passes = int(m.group(1)) if m else 1
            sw, srss, _, slog = run([exe, "score", "--model", model, "--profiles", prof, "--data", data,
                                     "--split", "test", "--out", os.path.join(work, f"scores_{c}.csv"),
                                     "--json"] + common, env)
            row = dict(classes=c, base=irss, info_wall=iw, est=est, n_ref=n_ref, n_score=n_score,
                       eval_rss=erss, eval_rate=rate(n_score, elog, ew),
                       prof_rss=prss, prof_rate=rate(n_ref, plog, pw), passes=passes,
                       score_rss=srss, score_rate=rate(n_score, slog, sw),
                       file=os.path.getsize(prof))
            rows.append(row)
            print(f"   C={c}: base {irss:.0f} MiB; eval {erss:.0f} MiB {row['eval_rate'][0]:.2f} img/s; "
                  f"profile {prss:.0f} MiB {row['prof_rate'][0]:.2f} img/s, {passes} passes "
                  f"(estimate {est['peak_bytes'] / MIB:.0f} MiB, {est['passes']} passes); score {srss:.0f} MiB "
                  f"{row['score_rate'][0]:.2f} img/s; file {row['file'] / MIB:.1f} MiB "
                  f"(estimate {est['file_bytes'] / MIB:.1f}); {time.perf_counter() - started:.0f} s so far", flush=True)
            os.remove(prof)  # up to ~0.7 GB each
    finally:
        if not args.keep:
            benchdata.remove(work)
    est0 = rows[0]["est"]
    print(f"\n   default taps: {est0['neurons']} neurons at C={rows[0]['classes']} "
          f"({est0['activation_bytes_per_image'] / MIB:.1f} MiB of activations per image); "
          f"reference: --per-class {args.per_class}; scored: {args.score_images} images\n")
    print("| classes | baseline RSS MiB | inference img/s | profile peak RSS MiB | estimate MiB | passes "
          "| profile img/s | / inference | score peak RSS MiB | score img/s | / inference | profile file MiB |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        inf = r["eval_rate"][0]
        print(f"| {r['classes']} | {r['base']:.0f} | {inf:.2f} | {r['prof_rss']:.0f} | "
              f"{r['est']['peak_bytes'] / MIB:.0f} | {r['passes']} | {r['prof_rate'][0]:.2f} | "
              f"{r['prof_rate'][0] / inf:.2f} | {r['score_rss']:.0f} | {r['score_rate'][0]:.2f} | "
              f"{r['score_rate'][0] / inf:.2f} | {r['file'] / MIB:.1f} |")
    print("\nthe same images/s from the wall time of each process (model loading included):")
    for r in rows:
        print(f"   C={r['classes']}: inference {r['eval_rate'][1]:.2f}, profile {r['prof_rate'][1]:.2f} "
              f"({r['prof_rate'][1] / r['eval_rate'][1]:.2f}), score {r['score_rate'][1]:.2f} "
              f"({r['score_rate'][1] / r['eval_rate'][1]:.2f}); eval peak RSS {r['eval_rss']:.0f} MiB")
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        dc = b["classes"] - a["classes"]
        print(f"growth from {a['classes']} to {b['classes']} classes: profile peak x{b['prof_rss'] / a['prof_rss']:.2f} "
              f"({(b['prof_rss'] - a['prof_rss']) / dc:.2f} MiB/class), score peak x{b['score_rss'] / a['score_rss']:.2f} "
              f"({(b['score_rss'] - a['score_rss']) / dc:.3f} MiB/class), file x{b['file'] / a['file']:.1f} "
              f"({(b['file'] - a['file']) / dc / 1024:.0f} KiB/class)")
    goal = rows[-1]
    peak = max(goal["prof_rss"], goal["score_rss"]) * MIB
    size = goal["file"]
    peak_verdict = "met" if peak < 4e9 else f"missed by {peak / 4e9:.2f}x"
    size_verdict = "met" if size < 1e9 else f"missed by {size / 1e9:.2f}x"
    print(f"goal at {goal['classes']} classes: peak {peak / 1e9:.2f} GB (< 4 GB: {peak_verdict}), "
          f"profile file {size / 1e9:.3f} GB (< 1 GB: {size_verdict})")
    print(f"load average at start: {load_start}; at end: {benchdata.loadavg()}; "
          f"wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
