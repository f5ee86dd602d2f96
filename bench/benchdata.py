"""Shared helpers of the end-to-end benchmarks (compare_pytorch.py, memory.py).

Builds JPEG image folders (`folder:DIR` layout, DIR/<split>/<class>/*.jpg) from the data
found on the machine, runs commands with their wall time and peak memory, and reads the
load average. Needs only the standard library and Pillow (no torch), so that nothing here
disturbs the timed processes.
"""
import gzip
import os
import shutil
import struct
import subprocess
import sys
import time

FASHION_MNIST_DIRS = ["/usr/share/datasets/fashion-mnist"]
CIFAR_JPG_TAR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data",
                             "cifar10-jpg.tar.zst")
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FASHION_CLASSES = ["0-tshirt", "1-trouser", "2-pullover", "3-dress", "4-coat", "5-sandal", "6-shirt",
                   "7-sneaker", "8-bag", "9-boot"]


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def measure(cmd, env=None, capture=False):
    """Runs cmd; returns (wall seconds, peak RSS MiB, stdout or None).

    Reaps the child with os.wait4, so the peak RSS (ru_maxrss) is the child's own.
    stderr is kept in memory and shown only on failure.
    """
    import tempfile
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out if capture else subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # keeps Popen from waiting again
        if proc.returncode != 0:
            err.seek(0)
            sys.stderr.write(err.read().decode(errors="replace"))
            raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}")
        text = None
        if capture:
            out.seek(0)
            text = out.read().decode()
        return wall, usage.ru_maxrss / 1024.0, text


def _read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return shape, data[4 + 4 * dims:]


def _find_idx(name):
    for d in FASHION_MNIST_DIRS:
        for suffix in ("", ".gz"):
            p = os.path.join(d, name + suffix)
            if os.path.exists(p):
                return p
    raise SystemExit(f"Fashion-MNIST not found ({name} in {FASHION_MNIST_DIRS}); "
                     "install Debian's dataset-fashion-mnist")


def fashion_mnist(split):
    """Returns (images as a list of 784-byte strings, labels) of the train or test split."""
    prefix = "train" if split == "train" else "t10k"
    shape, pixels = _read_idx(_find_idx(f"{prefix}-images-idx3-ubyte"))
    _, labels = _read_idx(_find_idx(f"{prefix}-labels-idx1-ubyte"))
    n, h, w = shape
    size = h * w
    return [pixels[i * size:(i + 1) * size] for i in range(n)], list(labels)


def _first_per_class(labels, per_class):
    taken = {c: 0 for c in range(10)}
    chosen = []
    for i, c in enumerate(labels):
        if taken[c] < per_class:
            taken[c] += 1
            chosen.append(i)
    return chosen


def write_fashion_folder(root, split, per_class, rgb32=False):
    """Writes the first per_class images of each class of a Fashion-MNIST split as JPEGs
    under root/split/<class>/NNNNN.jpg: grayscale 28x28, or (rgb32) 32x32 RGB (the image
    centred on a black 32x32 canvas, tinted per class so that the three channels differ)."""
    from PIL import Image
    images, labels = fashion_mnist(split)
    for name in FASHION_CLASSES:
        os.makedirs(os.path.join(root, split, name), exist_ok=True)
    for i in _first_per_class(labels, per_class):
        img = Image.frombytes("L", (28, 28), images[i])
        if rgb32:
            canvas = Image.new("L", (32, 32))
            canvas.paste(img, (2, 2))
            tint = [(1.0, 0.8, 0.6), (0.6, 1.0, 0.8), (0.8, 0.6, 1.0)][labels[i] % 3]
            img = Image.merge("RGB", [canvas.point(lambda v, k=k: int(v * k)) for k in tint])
        img.save(os.path.join(root, split, FASHION_CLASSES[labels[i]], f"{i:05d}.jpg"), quality=75)


def _below_patterns(count, digits=4):
    """tar wildcards matching the names NNNN.jpg with NNNN in [0, count)."""
    text = f"{count:0{digits}d}"
    pats = []
    for p, d in enumerate(text):
        if d != "0":
            pats.append(text[:p] + f"[0-{int(d) - 1}]" + "?" * (digits - p - 1) + ".jpg")
    return pats


def extract_cifar(root, train_per_class, test_per_class):
    """Extracts the first images of each class (file names 0000..) of ../shared/data's
    CIFAR-10 JPEGs into root/{train,test}/<class>/."""
    os.makedirs(root, exist_ok=True)
    members = []
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        count = min(5000 if split == "train" else 1000, count)
        for name in CIFAR_CLASSES:
            members += [f"{split}/{name}/{p}" for p in _below_patterns(count)]
    subprocess.run(["tar", "--zstd", "-xf", CIFAR_JPG_TAR, "-C", root, "--wildcards"] + members, check=True)


def rgb32_folder(root, train_per_class, test_per_class):
    """A 3x32x32 JPEG folder: CIFAR-10 JPEGs when ../shared/data has them, else synthesised
    from Fashion-MNIST. Returns a description of the data used."""
    if os.path.exists(CIFAR_JPG_TAR):
        extract_cifar(root, train_per_class, test_per_class)
        return f"CIFAR-10 JPEGs from {os.path.normpath(CIFAR_JPG_TAR)}"
    write_fashion_folder(root, "train", train_per_class, rgb32=True)
    write_fashion_folder(root, "test", test_per_class, rgb32=True)
    return "synthetic 32x32 RGB JPEGs made from Fashion-MNIST (../shared/data/cifar10-jpg.tar.zst absent)"


def count_images(split_dir):
    return sum(len(files) for _, _, files in os.walk(split_dir))


def warm_cache(root):
    """Reads every file once so that the first timed run does not pay for the disk."""
    for d, _, files in os.walk(root):
        for f in files:
            with open(os.path.join(d, f), "rb") as fh:
                fh.read()


def remove(path):
    shutil.rmtree(path, ignore_errors=True)
