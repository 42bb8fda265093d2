#!/usr/bin/env python3
"""Writes the seed corpus of one fuzz target into a directory: the repository's own models and
IR for the model targets, small valid files of each binary format (written here, byte by byte,
so no data set is committed and nothing beyond Python is needed), and excerpts of the Debian
data packages when they are installed."""
import gzip, json, pathlib, shutil, struct, sys

root = pathlib.Path(__file__).resolve().parents[2]


def copy_files(out, pattern):
    for i, f in enumerate(sorted(root.glob(pattern))):
        shutil.copy(f, out / f"{i:04d}_{f.name}")


def safetensors(tensors, metadata=None):
    header, blob = {}, b""
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + blob


def checkpoint(out):
    w = struct.pack("<6f", *range(6))
    (out / "weights.safetensors").write_bytes(safetensors({"fc.weight": ("F32", [2, 3], w), "fc.bias": ("F32", [2], w[:8])}))
    meta = {"step": "12", "loader.seed": "5", "loader.epoch": "1", "loader.position": "3",
            "tokenizer": "words:6", "tokenizer.words": "the a of"}
    (out / "resume.safetensors").write_bytes(safetensors({"fc.weight": ("F32", [2, 3], w), "optim.step": ("F32", [], w[:4]),
                                                          "ids": ("I64", [2], struct.pack("<2q", 1, 2)),
                                                          "h": ("BF16", [2], b"\x80\x3f\x00\x40")}, meta))


def npy_bytes(descr, shape, data):
    h = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, repr(tuple(shape)))
    h = h + " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + data


def npy(out):
    (out / "f32.npy").write_bytes(npy_bytes("<f4", [2, 3], struct.pack("<6f", *range(6))))
    (out / "i64.npy").write_bytes(npy_bytes("<i8", [3], struct.pack("<3q", 7, 8, 9)))
    (out / "scalar.npy").write_bytes(npy_bytes("<f8", [], struct.pack("<d", 1.5)))
    (out / "bool.npy").write_bytes(npy_bytes("|b1", [2, 2], b"\x01\x00\x00\x01"))


def idx(out):
    images = struct.pack(">IIII", 0x803, 2, 3, 3) + bytes(range(18))
    labels = struct.pack(">II", 0x801, 2) + b"\x03\x07"
    (out / "images.idx").write_bytes(images)
    (out / "labels.idx").write_bytes(labels)
    (out / "images.idx.gz").write_bytes(gzip.compress(images))
    (out / "labels.idx.gz").write_bytes(gzip.compress(labels))
    labels = pathlib.Path("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")
    if labels.exists():
        shutil.copy(labels, out / labels.name)


def csv(out):
    (out / "numbers.csv").write_text("a,b,label\n1.5,2,0\n-3,4e2,1\n0,0,2\n")
    (out / "quoted.csv").write_text('text,label\n"a ""quoted"" text, with a comma",pets\nplain words,work\n"two\nlines",pets\n')
    (out / "noheader.csv").write_text("1,2,3\n4,5,6\n")


def text(out):
    (out / "fortunes").write_text("A first fortune.\n%\nA second one,\n\twith two lines.\n%\n")
    (out / "vocab").write_text("stag-vocabulary bytes 1\n10\n32\n97\n98\n")
    files = [f for f in sorted(pathlib.Path("/usr/share/games/fortunes").glob("*"))
             if f.is_file() and not f.is_symlink() and f.suffix != ".dat"]
    for f in files[:6]:
        (out / f"fortune_{f.name}").write_bytes(f.read_bytes()[:4096])


writers = {
    "stag": lambda out: (copy_files(out, "models/*.stag"), copy_files(out, "tests/**/*.stag")),
    "ir": lambda out: copy_files(out, "tests/**/*.ir"),
    "checkpoint": checkpoint, "npy": npy, "idx": idx, "csv": csv, "text": text,
}

if __name__ == "__main__":
    target, out = sys.argv[1], pathlib.Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    writers[target](out)
