#!/usr/bin/env python3
"""The imagescore pipeline (profile, then score) written the usual PyTorch way.

    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/pytorch_pipeline.py \
        --model M.safetensors --data DIR --threads 2 --out-scores S.csv [--out-profile P.pt]

is what `imagescore profile --model M --data folder:DIR --split train` followed by
`imagescore score --model M --profiles P --data folder:DIR --split test` compute, with the
defaults of SPEC sections 2-3 (docs/method.md): all taps, per-class profiles from the true
labels, mean scale, t = rho * ||A||_inf with rho = 0.5, recall overlap, floor 1/(2|M|), the
natural log summed over taps, each image scored against the profile of its predicted
class. It is the reference of bench/compare_pytorch.py, which times it against imagescore
and compares the scores.

Only Debian's python3-torch (1.13) and python3-pil: a Dataset reads the JPEGs with PIL, a
DataLoader with worker processes batches them, forward hooks on the named modules record
the taps. The models are those of src/models/nets.cpp, with the same module names (the
tap names) and the same parameter names, loaded from the imagescore checkpoint
(safetensors, read here with json + torch.frombuffer).

Deliberate choices, so that both sides compute the same numbers:
- Pixels are normalised with a 256-entry table per channel, float((v/255 - mean)/std)
  computed in double, as imagescore's loader does (not in float32 arithmetic).
- The image mask compares float32 activations with t_f, the smallest float32 >= t (t is a
  double), which is exactly x >= t; a plain `x >= t` would compare with t rounded to the
  nearest float32.
Everything else is the plain PyTorch way: the batch goes through the model as one tensor
(imagescore cuts it into zero-padded chunks of 32, so activations may differ in the last
bits), the per-class sums are float64 index_add_ (imagescore sums exactly in 128-bit
fixed point), and `output` is torch.softmax in float32 (imagescore computes it in double
and rounds to float32).

Prints a JSON line on stdout: image counts and the time of each phase.
"""
import time

T_START = time.perf_counter()

import argparse
import json
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

T_IMPORTED = time.perf_counter()

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


# ---------------------------------------------------------------- models (nets.cpp)

class ConvReluPool(nn.Conv2d):
    """small-cnn's convK: max_pool 2x2(ReLU(conv 3x3)); a Conv2d, so its parameters keep
    the names convK.weight / convK.bias, and its output is the tap."""

    def forward(self, x):
        return F.max_pool2d(F.relu(super().forward(x)), 2)


class LinearRelu(nn.Linear):
    """ReLU(linear): small-cnn's fc1, vgg16's fc1 and fc2."""

    def forward(self, x):
        return F.relu(super().forward(x))


class SmallCnn(nn.Module):
    taps = ["conv1", "conv2", "fc1"]

    def __init__(self, channels, height, width, classes):
        super().__init__()
        self.conv1 = ConvReluPool(channels, 32, 3, padding=1)
        self.conv2 = ConvReluPool(32, 64, 3, padding=1)
        self.fc1 = LinearRelu(64 * (height // 4) * (width // 4), 128)
        self.dropout = nn.Dropout(0.25)
        self.fc2 = nn.Linear(128, classes)

    def forward(self, x):
        x = self.conv2(self.conv1(x))
        return self.fc2(self.dropout(self.fc1(x.flatten(1))))


class Vgg16(nn.Module):
    def __init__(self, channels, height, width, classes):
        super().__init__()
        groups = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]
        self.taps = []
        self.layers = []
        for g, widths in enumerate(groups):
            for i, out in enumerate(widths):
                name = f"conv{g + 1}_{i + 1}"
                mods = [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
                if i + 1 == len(widths):
                    mods.append(nn.MaxPool2d(2))
                self.add_module(name, nn.Sequential(*mods))
                self.layers.append(name)
                self.taps.append(name)
                channels = out
        self.fc1 = LinearRelu(channels * (height // 32) * (width // 32), 512)
        self.fc2 = LinearRelu(512, 512)
        self.fc3 = nn.Linear(512, classes)
        self.dropout = nn.Dropout(0.5)
        self.taps += ["fc1", "fc2"]

    def forward(self, x):
        for name in self.layers:
            x = getattr(self, name)(x)
        x = self.fc1(self.dropout(x.flatten(1)))
        x = self.fc2(self.dropout(x))
        return self.fc3(x)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (self.shortcut(x) if self.shortcut is not None else x))


class ResNet18(nn.Module):
    def __init__(self, channels, height, width, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 64, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        # Parameter-free, so not in the checkpoint: its output is the stem tap `conv1`
        # (ReLU(BN(conv))), which no module with parameters produces whole.
        self.relu = nn.ReLU()
        self.taps = ["conv1"]
        cin = 64
        for l, width in enumerate([64, 128, 256, 512]):
            blocks = []
            for b in range(2):
                blocks.append(BasicBlock(cin, width, 2 if (b == 0 and l > 0) else 1))
                self.taps.append(f"layer{l + 1}.{b}")
                cin = width
            self.add_module(f"layer{l + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))

    # Tap name -> module whose forward output is the tap.
    tap_modules = {"conv1": "relu"}


ARCHS = {"small-cnn": SmallCnn, "vgg16": Vgg16, "resnet18": ResNet18}
DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "U8": torch.uint8, "BOOL": torch.bool}


def read_safetensors(path):
    """Returns ({name: tensor}, metadata dict). Layout: u64 LE header length, JSON header,
    data section (offsets relative to its start)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = bytearray(raw[8 + n:])
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype = DTYPES[entry["dtype"]]
        t = torch.frombuffer(data, dtype=dtype, count=(end - begin) // torch.tensor([], dtype=dtype).element_size(),
                             offset=begin) if end > begin else torch.empty(0, dtype=dtype)
        tensors[name] = t.reshape(entry["shape"]).clone()
    return tensors, meta


def load_model(path):
    tensors, meta = read_safetensors(path)
    info = json.loads(meta["imagescore.model"])
    c, h, w = info["input"]
    net = ARCHS[info["arch"]](c, h, w, len(info["classes"]))
    net.load_state_dict(tensors, strict=True)
    net.eval()
    return net, info


# ---------------------------------------------------------------- data

class ImageFolderDataset(Dataset):
    """DIR/<class>/*.{png,jpg,jpeg}: classes in sorted (byte) order give the label ids;
    images sorted by file name within a class (the order of imagescore's folder:DIR)."""

    def __init__(self, root, shape, mean, std):
        self.shape = shape
        classes = sorted(d for d in os.listdir(root) if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))
        self.samples = []
        for label, cls in enumerate(classes):
            folder = os.path.join(root, cls)
            for name in sorted(os.listdir(folder)):
                if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                    self.samples.append((os.path.join(folder, name), label))
        self.classes = classes
        # float((v/255 - mean)/std) in double, then rounded to float32: imagescore's table.
        v = torch.arange(256, dtype=torch.float64) / 255.0
        self.lut = torch.stack([((v - float(torch.tensor(m, dtype=torch.float32))) /
                                 float(torch.tensor(s, dtype=torch.float32))).float()
                                for m, s in zip(mean, std)])  # [C, 256]

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        c, h, w = self.shape
        with Image.open(path) as img:
            img = img.convert("L" if c == 1 else "RGB")
            if img.size != (w, h):
                raise ValueError(f"{path}: image is {img.size[0]}x{img.size[1]}, expected {w}x{h}")
            pixels = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
        hwc = pixels.view(h, w, c).long()
        x = torch.stack([self.lut[k][hwc[:, :, k]] for k in range(c)])  # [C, H, W] float32
        return x, label, i


# ---------------------------------------------------------------- pipeline

class TapRecorder:
    """Forward hooks on the tap modules; `values` holds the last batch's tap outputs."""

    def __init__(self, net):
        self.names = list(net.taps)
        self.values = {}
        modules = dict(net.named_modules())
        mapping = getattr(net, "tap_modules", {})
        for name in self.names:
            modules[mapping.get(name, name)].register_forward_hook(self._hook(name))

    def _hook(self, name):
        def hook(module, inputs, output):
            self.values[name] = output
        return hook

    def run(self, net, x):
        self.values = {}
        logits = net(x)
        taps = [self.values[n].flatten(1) for n in self.names]
        taps.append(torch.softmax(logits, dim=1))  # the `output` tap
        return logits, taps


def make_loader(dataset, args):
    return DataLoader(dataset, batch_size=args.batch_size, shuffle=False, num_workers=args.workers)


def build_profiles(net, recorder, loader, classes, rho):
    sums, counts = None, torch.zeros(classes, dtype=torch.float64)
    for x, labels, _ in loader:
        _, taps = recorder.run(net, x)
        if sums is None:
            sums = [torch.zeros(classes, t.shape[1], dtype=torch.float64) for t in taps]
        for s, t in zip(sums, taps):
            s.index_add_(0, labels, t.double())
        counts += torch.bincount(labels, minlength=classes).double()
    if (counts == 0).any():
        raise SystemExit(f"class {int((counts == 0).nonzero()[0])} has no reference images (empty class)")
    profile = []
    for s in sums:
        a = s / counts[:, None]                              # A, the mean activation
        t = rho * a.abs().amax(dim=1)                        # t = rho * ||A||_inf (double)
        mask = a >= t[:, None]                               # reference mask M
        mask_count = mask.sum(dim=1)
        excluded = (a.amax(dim=1) <= 0) | (mask_count == 0)
        tf = t.float()                                       # t_f: smallest float32 >= t
        below = tf.double() < t
        tf[below] = torch.nextafter(tf[below], torch.tensor(float("inf")))
        profile.append({"reference": a, "threshold": t, "threshold_float": tf, "mask": mask,
                        "mask_count": mask_count, "excluded": excluded})
    return profile, counts


def score_images(net, recorder, loader, profile, dataset, out_csv):
    n = 0
    with open(out_csv, "w") as f:
        f.write("path,label,pred,image_score,msp\n")
        for x, labels, index in loader:
            logits, taps = recorder.run(net, x)
            pred = logits.argmax(dim=1)
            total = torch.zeros(len(pred), dtype=torch.float64)
            for t, p in zip(taps, profile):
                on = t >= p["threshold_float"][pred][:, None]
                both = (on & p["mask"][pred]).sum(dim=1).double()
                m = p["mask_count"][pred].double()
                term = torch.log(torch.maximum(both / m, 0.5 / m))
                total += torch.where(p["excluded"][pred], torch.zeros_like(term), term)
            msp = torch.softmax(logits.double(), dim=1).amax(dim=1)
            for i, lab, pr, s, q in zip(index.tolist(), labels.tolist(), pred.tolist(), total.tolist(), msp.tolist()):
                f.write(f"{dataset.samples[i][0]},{lab},{pr},{s!r},{q!r}\n")
            n += len(pred)
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="imagescore checkpoint (safetensors)")
    ap.add_argument("--data", required=True, help="image folder with train/ and test/ (folder:DIR layout)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    ap.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: --threads)")
    ap.add_argument("--batch-size", type=int, default=256, help="as imagescore's default")
    ap.add_argument("--rho", type=float, default=0.5)
    ap.add_argument("--out-scores", required=True)
    ap.add_argument("--out-profile", help="also torch.save the profiles (masks, thresholds, means)")
    args = ap.parse_args()
    if args.workers is None:
        args.workers = args.threads
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    with torch.no_grad():
        net, info = load_model(args.model)
        recorder = TapRecorder(net)
        shape = info["input"]
        norm = info["normalization"]
        train = ImageFolderDataset(os.path.join(args.data, "train"), shape, norm["mean"], norm["std"])
        test = ImageFolderDataset(os.path.join(args.data, "test"), shape, norm["mean"], norm["std"])
        t1 = time.perf_counter()
        profile, counts = build_profiles(net, recorder, make_loader(train, args), len(info["classes"]), args.rho)
        if args.out_profile:
            torch.save({"taps": recorder.names + ["output"], "counts": counts, "profiles": profile}, args.out_profile)
        t2 = time.perf_counter()
        scored = score_images(net, recorder, make_loader(test, args), profile, test, args.out_scores)
        t3 = time.perf_counter()
    print(json.dumps({"profile_images": len(train), "scored_images": scored,
                      "import_s": T_IMPORTED - T_START, "setup_s": t1 - t0,
                      "profile_s": t2 - t1, "score_s": t3 - t2}))


if __name__ == "__main__":
    main()
