#!/usr/bin/env python3
"""Read an imagescore profile file with numpy only (no safetensors package needed).

usage: python3 examples/read_profile.py runs/fashion-mnist/profiles.safetensors
"""
import json
import struct
import sys
import zlib

import numpy as np

DTYPES = {"F64": np.float64, "F32": np.float32, "I64": np.int64, "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path):
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        data = f.read()
    meta = dict(header.get("__metadata__", {}))
    checksum = meta.pop("imagescore.checksum", None)
    if checksum is not None:
        # Over the canonical header without the checksum entry, then the data.
        header["__metadata__"] = meta
        canonical = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        if checksum != "crc32:%08x" % zlib.crc32(data, zlib.crc32(canonical)):
            raise ValueError(f"{path}: checksum mismatch")
    header.pop("__metadata__", None)
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        tensors[name] = np.frombuffer(data[begin:end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
    return meta, tensors


def main():
    meta, tensors = read_safetensors(sys.argv[1])
    profile = json.loads(meta["imagescore.profile"])
    print("model", profile["model"], "options", profile["options"])
    for k, p in enumerate(profile["profiles"]):
        for tap in p["taps"]:
            n = int(np.prod(tap["shape"]))
            mask = tensors[f"p{k}/{tap['name']}/mask"]
            if profile["version"] >= 2:  # bit-packed: neuron i is bit i % 8 of byte i / 8
                mask = np.unpackbits(mask, bitorder="little")[:n].reshape(tap["shape"])
            status = "excluded: " + tap["reason"] if tap["excluded"] else f"|M| = {int(mask.sum())}"
            print(f"{p['name']:>12} {tap['name']:>8} n={n:6d} t={tap['threshold']:.4f} {status}")


if __name__ == "__main__":
    main()
