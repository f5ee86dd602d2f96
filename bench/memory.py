#!/usr/bin/env python3
"""Peak memory of `imagescore profile` and `imagescore score` against the number of images.

    /usr/bin/python3 bench/memory.py [--sizes 1000,4000,16000,64000] [--pool 4000]
                                     [--arch small-cnn|vgg16|resnet18] [--threads N] [--keep DIR]

Builds a pool of distinct JPEG files (Fashion-MNIST 28x28 grayscale for small-cnn;
CIFAR-10 JPEGs, or synthetic ones when ../shared/data lacks them, for vgg16/resnet18) and,
for each N, a `csv:` manifest of N labelled lines cycling through the pool: a streamed
source, whose images are decoded on demand (unlike the IDX and CIFAR binary formats,
which are held in memory by design). Then, with one randomly initialised model and one
profile file (built from the smallest N) for every N, it runs as separate processes
  imagescore profile --data csv:manifest_N.csv ...   (per-class profiles of the N images)
  imagescore score   --data csv:manifest_N.csv ...   (scores of the N images)
and prints each one's peak resident memory (ru_maxrss from wait4) and its ratio to the
smallest N (goal: flat), with the process's baseline (`imagescore model info`, which loads
LibTorch and the model and stops). The build is taken from BUILD_DIR (default build).
"""
import argparse
import datetime
import os
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in bench/
import benchdata  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,4000,16000,64000", help="numbers of images, comma-separated")
    ap.add_argument("--pool", type=int, default=4000, help="distinct image files (rounded to a multiple of 10)")
    ap.add_argument("--arch", default="small-cnn", choices=["small-cnn", "vgg16", "resnet18"])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--keep", help="work in this folder and keep it (default: a temporary folder, removed)")
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    build = os.environ.get("BUILD_DIR", "build")
    exe = os.path.join(build if os.path.isabs(build) else os.path.join(ROOT, build), "imagescore")
    if not os.access(exe, os.X_OK):
        raise SystemExit(f"{exe} not found: build imagescore first (BUILD_DIR={build})")
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")  # no re-exec: the measured process is the command itself
    work = args.keep or tempfile.mkdtemp(prefix="imagescore-memory-")
    os.makedirs(work, exist_ok=True)
    load_start = benchdata.loadavg()
    print(f"== imagescore peak memory against images; "
          f"{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%MZ')}")
    print(f"   {benchdata.cpu_name()}, {os.cpu_count()} cores, --threads {args.threads}, batch size 256 (default)")
    print(f"   load average at start: {load_start}")
    try:
        per_class = max(1, args.pool // 10)
        data = os.path.join(work, "pool")
        benchdata.remove(data)
        if args.arch == "small-cnn":
            benchdata.write_fashion_folder(data, "train", per_class)
            what, shape = "Fashion-MNIST as grayscale 28x28 JPEGs", "1x28x28"
        else:
            what, shape = benchdata.rgb32_folder(data, per_class, 1), "3x32x32"
        train = os.path.join(data, "train")
        classes = sorted(os.listdir(train))
        by_class = [[(os.path.join("pool", "train", c, f), label) for f in sorted(os.listdir(os.path.join(train, c)))]
                    for label, c in enumerate(classes)]
        # Classes interleaved, so that every manifest (a prefix of the cycle) has all of them.
        pool = [entry for group in zip(*by_class) for entry in group]
        benchdata.warm_cache(data)
        print(f"   model: {args.arch} {shape}, random (model init, seed 0); pool: {len(pool)} distinct files, {what}")
        model = os.path.join(work, "model.safetensors")
        benchdata.measure([exe, "model", "init", "--arch", args.arch, "--input", shape, "--classes", "10",
                           "--normalize", "none", "--quiet", "--out", model], env=env)
        manifests = {}
        for n in sizes:
            manifests[n] = os.path.join(work, f"manifest_{n}.csv")
            with open(manifests[n], "w") as f:
                f.write("path,label\n")
                for i in range(n):
                    p, label = pool[i % len(pool)]
                    f.write(f"{p},{label}\n")
        t = ["--threads", str(args.threads), "--quiet"]
        _, base_rss, _ = benchdata.measure([exe, "model", "info", "--model", model], env=env)
        profiles = os.path.join(work, "profiles.safetensors")
        benchdata.measure([exe, "profile", "--model", model, "--data", f"csv:{manifests[sizes[0]]}",
                           "--out", profiles] + t, env=env)
        print(f"   baseline (imagescore model info: LibTorch and the model loaded): {base_rss:.1f} MiB\n")
        rows = []
        for n in sizes:
            pw, prss, _ = benchdata.measure([exe, "profile", "--model", model, "--data", f"csv:{manifests[n]}",
                                             "--out", os.path.join(work, f"profiles_{n}.safetensors")] + t, env=env)
            sw, srss, _ = benchdata.measure([exe, "score", "--model", model, "--profiles", profiles,
                                             "--data", f"csv:{manifests[n]}", "--out",
                                             os.path.join(work, f"scores_{n}.csv")] + t, env=env)
            rows.append((n, prss, pw, srss, sw))
            print(f"   N={n}: profile {prss:.1f} MiB ({pw:.1f} s), score {srss:.1f} MiB ({sw:.1f} s)", flush=True)
    finally:
        if not args.keep:
            benchdata.remove(work)
    n0, p0, _, s0, _ = rows[0]
    print("\n| images N | profile peak RSS MiB | / smallest N | profile img/s | score peak RSS MiB | / smallest N "
          "| score img/s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n, prss, pw, srss, sw in rows:
        print(f"| {n} | {prss:.1f} | {prss / p0:.3f} | {n / pw:.0f} | {srss:.1f} | {srss / s0:.3f} | {n / sw:.0f} |")
    if len(rows) > 1:
        n1, p1, _, s1, _ = rows[-1]
        print(f"growth from N={n0} to N={n1}: profile {(p1 - p0) * 1024 * 1024 / (n1 - n0):.0f} bytes/image, "
              f"score {(s1 - s0) * 1024 * 1024 / (n1 - n0):.0f} bytes/image")
    print(f"load average at start: {load_start}; at end: {benchdata.loadavg()}")


if __name__ == "__main__":
    main()
