#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/: small valid
files and typical broken ones, a few KB at most. The files are committed; this script
records how they were made (rerun it after a format change). Standard library only."""
import gzip
import json
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as out:
        out.write(data if isinstance(data, bytes) else data.encode())


# IDX: the fuzz input is a 4-byte big-endian length, the images file, then the labels file.
def idx_images(count, rows, cols, claimed=None):
    header = struct.pack(">IIII", 0x803, count if claimed is None else claimed, rows, cols)
    return header + bytes((i * 37) % 256 for i in range(count * rows * cols))


def idx_labels(count, claimed=None, label=3):
    return struct.pack(">II", 0x801, count if claimed is None else claimed) + bytes([label] * count)


def idx_input(images, labels):
    return struct.pack(">I", len(images)) + images + labels


def make_idx():
    put("idx", "valid", idx_input(idx_images(3, 4, 4), idx_labels(3)))
    put("idx", "valid_gzip", idx_input(gzip.compress(idx_images(3, 4, 4), mtime=0), gzip.compress(idx_labels(3), mtime=0)))
    put("idx", "billions_of_images", idx_input(idx_images(2, 4, 4, claimed=4_000_000_000), idx_labels(2)))
    put("idx", "huge_side", idx_input(struct.pack(">IIII", 0x803, 1, 70000, 2) + bytes(8), idx_labels(1)))
    put("idx", "wrong_magic", idx_input(b"\0\0\x08\x02" + idx_images(1, 2, 2)[4:], idx_labels(1)))
    put("idx", "label_out_of_range", idx_input(idx_images(2, 2, 2), idx_labels(2, label=42)))
    put("idx", "count_mismatch", idx_input(idx_images(2, 2, 2), idx_labels(3)))
    put("idx", "zero_images", idx_input(idx_images(0, 2, 2), idx_labels(0)))
    put("idx", "truncated_gzip", idx_input(gzip.compress(idx_images(3, 4, 4), mtime=0)[:-6], idx_labels(3)))


# CIFAR: the fuzz input is the batch file (read as CIFAR-10 and as CIFAR-100).
def make_cifar():
    record = bytes([7, 42]) + bytes(i % 251 for i in range(3072))  # CIFAR-100: coarse 7, fine 42
    put("cifar", "cifar10_bad_label", record[1:])
    put("cifar", "cifar10_record", bytes([3]) + record[2:])
    put("cifar", "cifar100_record", record)
    put("cifar", "truncated", record[:1000])
    put("cifar", "two_records", (bytes([1]) + record[2:]) * 2)


def png(width, height, color_type, rows, palette=None):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    raw = b"".join(b"\0" + row for row in rows)
    body = chunk(b"IHDR", ihdr)
    if palette:
        body += chunk(b"PLTE", palette)
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def make_image(jpeg_samples):
    grey = png(2, 2, 0, [b"\x00\xff", b"\x80\x40"])
    put("image", "grey.png", grey)
    put("image", "rgb.png", png(3, 2, 2, [bytes(range(9)), bytes(range(9, 18))]))
    put("image", "rgba.png", png(2, 1, 6, [bytes(range(8))]))
    put("image", "palette.png", png(2, 2, 3, [b"\x00\x01", b"\x01\x00"], palette=b"\xff\x00\x00\x00\xff\x00"))
    put("image", "truncated.png", grey[:-20])
    put("image", "huge_header.png", png(16384, 16384, 2, [b""]))
    put("image", "too_large.png", png(100000, 3, 0, [b""]))
    for i, sample in enumerate(jpeg_samples):
        with open(sample, "rb") as f:
            data = f.read()
        put("image", "cifar%d.jpg" % i, data)
        put("image", "cifar%d_truncated.jpg" % i, data[: len(data) // 2])


# CSV manifests: images a.png, b.png and c.png exist next to the manifest (the target
# writes them); other names do not.
def make_csv_manifest():
    put("csv_manifest", "labelled", "a.png,0\nb.png,1\nc.png,1\n")
    put("csv_manifest", "header", "path,label\r\na.png,2\n\nb.png,0\n")
    put("csv_manifest", "unlabelled", "\xef\xbb\xbfa.png\nb.png\n")
    put("csv_manifest", "mixed", "a.png,0\nb.png\n")
    put("csv_manifest", "bad_label", "a.png,x\na.png,99999999999\n")
    put("csv_manifest", "missing_image", "nothing.png,0\n")
    put("csv_manifest", "three_fields", "a.png,0,1\n")


def make_split():
    valid = {"format": "imagescore-split", "version": 1, "data": "idx:data", "seed": 3,
             "training_fraction": 0.5, "total": 6, "labels_hash": "cbf29ce484222325",
             "training": [0, 2, 4], "additional": [1, 3, 5]}
    put("split", "valid.json", json.dumps(valid, indent=2))
    put("split", "overlap.json", json.dumps(dict(valid, additional=[0, 1])))
    put("split", "huge_index.json", json.dumps(dict(valid, training=[18446744073709551615])))
    put("split", "huge_total.json", json.dumps(dict(valid, total=18446744073709551615)))
    put("split", "negative.json", json.dumps(dict(valid, training=[-1])))
    put("split", "not_split.json", '{"format": "other"}')
    put("split", "broken.json", '{"format": "imagescore-split", "version": 1, "training": [1, 2')


def safetensors(tensors, metadata):
    """tensors: list of (name, dtype, shape, bytes)."""
    header, data = {}, b""
    for name, dtype, shape, payload in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    # The checksum covers the canonical header (as nlohmann::json dumps it: sorted keys,
    # no spaces, UTF-8 unescaped) and then the data.
    header["__metadata__"] = dict(metadata)
    canonical = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    header["__metadata__"]["imagescore.checksum"] = "crc32:%08x" % zlib.crc32(data, zlib.crc32(canonical))
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def profile_file(classes=("a", "b"), shape=(2, 2), count=3, global_profile=False, shard=(1, 1)):
    stored = [abs(d) for d in shape]  # the description may claim another shape
    n = stored[0] * stored[1]
    tensors, profiles = [], []
    names = ["global"] if global_profile else list(classes)
    for p, name in enumerate(names):
        # Neuron i sums to i + 1; the derived fields follow docs/method.md (rho 0.5, L-inf).
        sums = b"".join(struct.pack("<qq", (i + 1) << 32, 0) for i in range(n))
        reference = [(i + 1) / count for i in range(n)] if count else [0.0] * n
        threshold = 0.5 * max(reference) if count else 0.0
        mask = [int(count > 0 and a >= threshold) for a in reference]
        tensors += [("p%d/conv1/sum" % p, "I64", [n, 2], sums),
                    ("p%d/conv1/reference" % p, "F64", stored, struct.pack("<%dd" % n, *reference)),
                    ("p%d/conv1/mask" % p, "U8", stored, bytes(mask))]
        profiles.append({"name": name, "count": count, "taps": [
            {"name": "conv1", "shape": list(shape), "threshold": threshold, "mask_count": sum(mask),
             "excluded": count == 0, "reason": "" if count else "no reference images"}]})
    meta = {"format": "imagescore-profile", "version": 1, "model": {"arch": "small-cnn", "weights_hash": "0123456789abcdef"},
            "data": "idx:data", "options": {"rho": 0.5, "norm": "linf", "scale": "mean", "global": global_profile},
            "classes": list(classes), "shard": list(shard), "fixed_point_bits": 32, "profiles": profiles}
    return safetensors(tensors, {"imagescore.profile": json.dumps(meta)})


def packed_profile_file(shape=(3, 5), count=3):
    """Version 2 without sums: the bit-packed masks alone (neuron i in bit i % 8 of byte i // 8)."""
    n = shape[0] * shape[1]
    tensors, profiles = [], []
    for p, name in enumerate(("a", "b")):
        mask = [int((i + p) % 3 == 0) for i in range(n)]
        packed = bytes(sum(mask[8 * b + j] << j for j in range(min(8, n - 8 * b))) for b in range((n + 7) // 8))
        tensors.append(("p%d/conv1/mask" % p, "U8", [len(packed)], packed))
        profiles.append({"name": name, "count": count, "taps": [
            {"name": "conv1", "shape": list(shape), "threshold": 0.75, "mask_count": sum(mask),
             "excluded": False, "reason": ""}]})
    meta = {"format": "imagescore-profile", "version": 2, "model": {"arch": "small-cnn", "weights_hash": "0123456789abcdef"},
            "data": "idx:data", "options": {"rho": 0.5, "norm": "linf", "scale": "mean", "global": False},
            "classes": ["a", "b"], "shard": [1, 1], "fixed_point_bits": 32, "exact_sums": False, "profiles": profiles}
    return safetensors(tensors, {"imagescore.profile": json.dumps(meta)})


def make_profile():
    put("profile", "per_class.st", profile_file())
    put("profile", "global.st", profile_file(global_profile=True))
    put("profile", "shard.st", profile_file(shard=(2, 3)))
    put("profile", "packed.st", packed_profile_file())
    put("profile", "empty_class.st", profile_file(count=0))
    put("profile", "negative_tap_shape.st", profile_file(shape=(-2, -2)))
    put("profile", "not_profile.st", safetensors([("x", "F32", [2], b"\0" * 8)], {}))


def make_safetensors():
    put("safetensors", "every_dtype.st", safetensors([
        ("f64", "F64", [1], b"\0" * 8), ("f32", "F32", [2, 1], b"\0" * 8), ("i64", "I64", [1], b"\1" + b"\0" * 7),
        ("u8", "U8", [3], b"abc"), ("bool", "BOOL", [1], b"\1"), ("empty", "F32", [0, 5], b"")], {"k": "v"}))
    put("safetensors", "profile.st", profile_file())
    put("safetensors", "huge_shape.st", safetensors([("x", "F32", [4611686018427387904, 4], b"")], {}))
    put("safetensors", "header_too_long.st", struct.pack("<Q", 1 << 40) + b"{}")
    put("safetensors", "bad_offsets.st", struct.pack("<Q", 64) +
        b'{"x":{"dtype":"U8","shape":[2],"data_offsets":[1,0]}}'.ljust(64) + b"ab")


def make_experiment():
    valid = {"data": "idx:data", "training_fraction": 0.1, "model": "small-cnn", "base_epochs": 2,
             "retrain_epochs": 1, "alpha": [0.3], "arms": ["baseline", "softmax", "imagescore"],
             "protocols": ["per-class", "joint"], "rho": 0.5, "norm": "linf", "taps": ["conv1"]}
    put("experiment", "valid.json", json.dumps(valid, indent=2))
    put("experiment", "wrong_type.json", json.dumps(dict(valid, base_epochs="two")))
    put("experiment", "unknown_key.json", json.dumps(dict(valid, epochs=3)))
    put("experiment", "bad_arm.json", json.dumps(dict(valid, arms=["softmax", "softmax"])))
    put("experiment", "huge_numbers.json", json.dumps(dict(valid, batch_size=1e300, classes=[-1])))
    put("experiment", "broken.json", '{"data": ')
    protocols = dict(valid, alpha=[0.5], seeds=[0, 1], validation_fraction=0.2, threshold={"softmax": 0.9},
                     arms=["baseline", "softmax"], flexmatch=True, max_per_class=10, pseudo_weight=0.5,
                     pseudo_batch_share=0.25, soft_targets=True, global_ranking=True)
    put("experiment", "protocols.json", json.dumps(protocols, indent=2))
    put("experiment", "curriculum.json", json.dumps(dict({k: v for k, v in valid.items() if k != "alpha"},
                                                         curriculum=[0.5, 1.0], retrain_epochs=2, reinitialise=True)))


def make_scores():
    header = "id,path,label,pred,correct,image_score,msp,margin,neg_entropy,energy,max_logit\n"
    put("scores", "labelled.csv", header + "0,a.png,1,1,1,0.5,0.9,0.8,-0.3,2.5,4\n1,\"b,\"\"c\"\".png\",0,1,0,0.25,0.6,0.2,-1,1.5,2e-3\n")
    put("scores", "unlabelled.csv", header + "0,x,,3,,1,1,1,1,1,1\r\n")
    put("scores", "bad_quote.csv", header + '0,"a,1,1,1,1,1,1,1,1,1\n')
    put("scores", "bad_value.csv", header + "0,a,1,1,1,nan,1,1,1,1,1\n")
    put("scores", "wrong_correct.csv", header + "0,a,1,2,1,1,1,1,1,1,1\n")
    put("scores", "no_header.csv", "")
    put("scores", "class_names.csv", "id,path,label,pred,correct,label_name,pred_name,msp\n"
        "0,a.png,1,1,1,dog,dog,0.5\n1,b.png,,0,,,cat,0.25\n2,c.png,0,1,0,cat,\"dog\",1\n")
    put("scores", "contradicting_names.csv", "id,path,label,pred,correct,label_name,pred_name,msp\n"
        "0,a.png,1,1,1,dog,dog,0.5\n1,b.png,1,1,1,cat,cat,0.5\n")


def make_select_analyze():
    header = "id,path,label,pred,correct,image_score,msp\n"
    rows = "".join("%d,i%d.png,%d,%d,%d,%s,%s\n" % (i, i, i % 3, (i * 7) % 3, i % 3 == (i * 7) % 3, i / 10, 1 - i / 20)
                   for i in range(12))
    put("select_analyze", "labelled.csv", "\n" + header + rows)
    put("select_analyze", "fused.csv", "rank:msp+image_score\n" + header + rows)
    put("select_analyze", "one_column_rank.csv", "rank:msp\n" + header + rows)
    put("select_analyze", "unlabelled.csv", "\n" + header.replace("label,", "").replace("correct,", "") +
        "".join("%d,i%d.png,%d,0.5,0.5\n" % (i, i, i) for i in range(5)))
    put("select_analyze", "huge_class_id.csv", "\n" + header + "0,a.png,1,999999,0,0.5,0.5\n1,b.png,1,1,1,0.2,0.1\n")


def make_options():
    put("options", "shapes.txt", "3x224x224\n1x0x5\n99999999999999999999x1x1\n3x16384x16384\n")
    put("options", "normalization.txt", "imagenet\nnone\nauto\n0.5/0.25\n0.1,0.2,0.3/1,1,0\n-1e400/1\n")
    put("options", "shards.txt", "1/4\n0/0\n1/-2\n1/4294967296\n18446744073709551615/18446744073709551615\n")
    put("options", "names.txt", "linf\nl1\nsum\nquantile\nadam\nletterbox\nsoft\nclass\ntest\njoint\nsoftmax\n"
        "msp,trust,msp\nimage_score,nac,,\nmc_dropout\n")


# The explorer's handlers: lines method, path, Host header, key=value parameters up to an
# empty line, then the body.
def make_serve_requests():
    put("serve_requests", "table", "GET\n/api/table\n127.0.0.1:8080\n\n")
    put("serve_requests", "thumb", "GET\n/api/thumb\nlocalhost\nrow=1\n\n")
    put("serve_requests", "image", "GET\n/api/image\n[::1]:80\nrow=2\n\n")
    put("serve_requests", "row", "GET\n/api/row\n127.0.0.1\nrow=0\n\n")
    put("serve_requests", "export", "POST\n/api/export\n127.0.0.1\nby=msp\n\n2\n0\n1\n")
    put("serve_requests", "export_bad", "POST\n/api/export\n127.0.0.1\nby=tap:conv1\n\n2\r\nx\n")
    put("serve_requests", "traversal", "GET\n/../../etc/passwd\n127.0.0.1\n\n")
    put("serve_requests", "hostile", "GET\n/api/row\nevil.example\nrow=99999999999999999999\n\n")
    put("serve_requests", "page", "GET\n/\n\n\n")
    put("serve_requests", "method", "DELETE\n/api/table\n127.0.0.1\n\n")


if __name__ == "__main__":
    # Arguments: a few small JPEG files to seed the image decoder (the committed seeds
    # are two 32x32 CIFAR-10 images from ../shared/data/cifar10-jpg.tar.zst).
    make_idx()
    make_cifar()
    make_image(sys.argv[1:])
    make_csv_manifest()
    make_split()
    make_profile()
    make_select_analyze()
    make_options()
    make_safetensors()
    make_experiment()
    make_scores()
    make_serve_requests()
