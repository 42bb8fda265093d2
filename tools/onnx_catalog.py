#!/usr/bin/env python3
"""The catalog's models exported from PyTorch to ONNX, run and differentiated by stag, against PyTorch.

For every PyTorch mirror of a catalog model (tools/bench/torch_bench.py: the same layers and
parameter names as models/*.stag), in eval mode (batch norm on running statistics set away from
0/1, dropout off), with random weights and one random batch:
  1. torch.onnx.export (opset 17, the batch fixed, batch norms kept as nodes);
  2. `stag run model.onnx`: the outputs against PyTorch's, max |stag - torch| / max |torch|;
  3. `stag grad model.onnx --loss KIND:out:y`: the loss, and every gradient against PyTorch's
     autograd. Initializers the exporter kept under the module's names are compared one by one;
     the rest (weights it transposed or reordered into ONNX's gate order under names of its own)
     by the norm of all gradients together, which no renaming, transposition or reordering changes.
A model passes when each relative difference is below 1e-4 (f32).

usage: /usr/bin/python3 tools/onnx_catalog.py --stag build/tools/stag [--only mlp,gpt] [--batch 4]
Needs python3-torch and python3-numpy (Debian); not part of the tests (no torch in CI).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench"))
import torch_bench  # noqa: E402  (the mirrors)

TOLERANCE = 1e-4


class Exported(torch.nn.Module):
    """The mirror with its output in the shape stag's loss takes: a discriminator's logit per image."""

    def __init__(self, name, model):
        super().__init__()
        self.model, self.flat = model, name == "dcgan-d"

    def forward(self, x):
        out = self.model(x)
        return out.flatten() if self.flat else out


def loss_of(name, out, y):
    """The loss stag is given (`--loss`), computed by PyTorch, and its name for stag."""
    if name == "autoencoder":
        return F.mse_loss(out, y), "mse"
    if name == "dcgan-g":
        return F.mse_loss(out, y), "mse"
    if name == "dcgan-d":
        return F.binary_cross_entropy_with_logits(out, y), "bce_with_logits"
    return F.cross_entropy(out.flatten(0, -2), y.flatten()), "cross_entropy"


def example(name, batch):
    """One random batch (input, target) as the workload's own maker draws it."""
    b = torch_bench.build(name, batch).make_batch()
    if name == "autoencoder":
        return b[0], b[0].flatten(1)
    return b[0], b[1]


def randomise(model, gen):
    """Every parameter moved off its initial value: PyTorch's exporter merges initializers of
    equal values (norm layers at weight 1 and bias 0) into one, shared, whose gradient would be
    the sum of theirs; running statistics away from 0 and 1, so that the comparison sees them."""
    for p in model.parameters():
        p.add_(torch.randn(p.shape, generator=gen) * 0.01)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header, data = json.loads(f.read(n)), f.read()
    return {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], np.float32).reshape(v["shape"])
            for k, v in header.items() if k != "__metadata__"}


def relative(got, want):
    scale = max(float(np.abs(want).max()), 1e-30)
    return float(np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64)).max()) / scale


def stag(args, *cmd):
    r = subprocess.run([args.stag, *cmd], capture_output=True, text=True, env=dict(os.environ, STAG_JIT_CACHE="off"))
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}")
    return r.stdout


def check(args, name, d):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    model = Exported(name, torch_bench.mirror(name)).eval()
    with torch.no_grad():
        randomise(model, gen)
    x, y = example(name, args.batch)
    path = os.path.join(d, name + ".onnx")
    # PRESERVE: an EVAL export folds each batch norm into the convolution before it, which
    # computes the same outputs from other parameters (and so other gradients).
    torch.onnx.export(model, x, path, opset_version=17, input_names=["x"], output_names=["out"],
                      training=torch.onnx.TrainingMode.PRESERVE)
    np.save(os.path.join(d, "x.npy"), x.numpy())
    np.save(os.path.join(d, "y.npy"), y.numpy())
    out = model(x)
    loss, kind = loss_of(name, out, y)
    loss.backward()
    want = {k: p.grad.numpy() for k, p in model.named_parameters() if p.grad is not None}
    stag(args, "run", path, "--input", "x=" + os.path.join(d, "x.npy"), "--out-dir", d)
    row = {"model": name, "output": relative(np.load(os.path.join(d, "out.npy")), out.detach().numpy())}
    grads = os.path.join(d, "grads.safetensors")
    stag(args, "grad", path, "--loss", f"{kind}:out:y", "--input", "x=" + os.path.join(d, "x.npy"),
         "y=" + os.path.join(d, "y.npy"), "-o", grads)
    got = read_safetensors(grads)
    row["loss"] = relative(got["loss"], loss.detach().numpy())
    named = [(got["grad." + k], g) for k, g in want.items() if "grad." + k in got]
    named = [(a, b) for a, b in named if a.shape == b.shape]
    row["by name"] = f"{len(named)} of {len(want)}"
    row["named worst"] = max((relative(a, b) for a, b in named), default=0.0)
    norm_got = np.sqrt(sum(float((v.astype(np.float64) ** 2).sum()) for k, v in got.items() if k.startswith("grad.")))
    norm_want = np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in want.values()))
    row["grad norm"] = abs(norm_got - norm_want) / norm_want
    row["ok"] = all(row[k] < TOLERANCE for k in ("output", "loss", "named worst", "grad norm"))
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stag", required=True)
    ap.add_argument("--only", default="", help="comma-separated workloads (default: every mirror)")
    ap.add_argument("--batch", type=int, default=4)
    args = ap.parse_args()
    names = args.only.split(",") if args.only else torch_bench.TRAIN_WORKLOADS
    print(f"PyTorch {torch.__version__}, opset 17, batch {args.batch}, eval mode; relative differences (max |stag - torch| / max |torch|)")
    print("| model | outputs | loss | gradients by name | worst of those | norm of all gradients | within 1e-4 |")
    print("|---|---:|---:|---:|---:|---:|---|")
    failed = 0
    for name in names:
        with tempfile.TemporaryDirectory() as d:
            try:
                r = check(args, name, d)
            except Exception as e:  # one model's failure is a row, not the end of the run
                print(f"| {name} | failed: {e} | | | | | no |")
                failed += 1
                continue
        failed += not r["ok"]
        print(f"| {name} | {r['output']:.1e} | {r['loss']:.1e} | {r['by name']} | {r['named worst']:.1e} | "
              f"{r['grad norm']:.1e} | {'yes' if r['ok'] else 'NO'} |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
