#!/usr/bin/env python3
"""How close imagescore's fitted images come to torchvision's PIL path, pixel by pixel.

    /usr/bin/python3 bench/fit_vs_torchvision.py [--images DIR] [--size 224] [--resize 256]

For every JPEG or PNG in DIR (default: the Pascal VOC photos of
../shared/data/raccoon-voc.tar.zst, unpacked to a temporary folder), it compares

  imagescore:  csv:LIST@{size}x{size},crop={resize}  (the Python package, build/python)
  torchvision: Resize({resize}) + CenterCrop({size}) on PIL.Image.open(f).convert("RGB")

and prints the maximum and mean absolute difference over all pixels, the share of pixels
that are equal and within 1 and 2 levels, and the same for the images that imagescore
decoded at a reduced scale (JPEGs at least 4x larger than the resize, see
docs/formats.md). Needs Debian's python3-torchvision and python3-pil (not installed by
scripts/setup.sh: this is a measurement, not a test).
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", help="folder of JPEG/PNG images (searched recursively)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--resize", type=int, default=256)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = parser.parse_args()

    sys.path.insert(0, os.path.join(args.build, "python"))
    import imagescore as isc
    from PIL import Image
    from torchvision import transforms

    with tempfile.TemporaryDirectory() as work:
        folder = args.images
        if folder is None:
            archive = os.path.join(ROOT, "..", "shared", "data", "raccoon-voc.tar.zst")
            if not os.path.exists(archive):
                sys.exit("no --images and no " + archive)
            subprocess.run(["tar", "--zstd", "-xf", archive, "-C", work], check=True)
            folder = work
        files = sorted(f for f in glob.glob(os.path.join(folder, "**", "*"), recursive=True)
                       if f.lower().endswith((".jpg", ".jpeg", ".png")))
        if not files:
            sys.exit(folder + ": no images")
        manifest = os.path.join(work, "list.csv")
        with open(manifest, "w") as out:
            out.writelines(os.path.abspath(f) + "\n" for f in files)
        source = isc.open_data(f"csv:{manifest}@{args.size}x{args.size},crop={args.resize}", "train")
        reference = transforms.Compose([transforms.Resize(args.resize), transforms.CenterCrop(args.size)])

        groups = {"all": [], "reduced": [], "full": []}
        for i, path in enumerate(files):
            ours = source.read(i).astype(np.int16)
            with Image.open(path) as image:
                theirs = np.asarray(reference(image.convert("RGB")), dtype=np.int16).transpose(2, 0, 1)
            if ours.shape[0] == 1:  # a greyscale first image makes the source greyscale
                theirs = theirs[:1]
            diff = np.abs(ours - theirs)
            with Image.open(path) as image:
                width, height = image.size
            reduced = path.lower().endswith((".jpg", ".jpeg")) and min(width, height) >= 4 * args.resize
            groups["all"].append(diff)
            groups["reduced" if reduced else "full"].append(diff)

    print(f"imagescore csv:...@{args.size}x{args.size},crop={args.resize} vs torchvision "
          f"Resize({args.resize}) + CenterCrop({args.size}) on PIL, {len(files)} images")
    print(f"{'images':<30} {'count':>5} {'max':>5} {'mean':>7} {'equal':>7} {'<=1':>7} {'<=2':>7}")
    for name, label in (("all", "all"), ("full", "decoded at full size"), ("reduced", "decoded at a reduced scale")):
        diffs = groups[name]
        if not diffs:
            print(f"{label:<30} {0:>5}")
            continue
        flat = np.concatenate([d.ravel() for d in diffs])
        print(f"{label:<30} {len(diffs):>5} {int(flat.max()):>5} {flat.mean():>7.3f} {np.mean(flat == 0):>7.3f} "
              f"{np.mean(flat <= 1):>7.3f} {np.mean(flat <= 2):>7.3f}")


if __name__ == "__main__":
    main()
