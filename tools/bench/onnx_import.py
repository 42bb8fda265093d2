#!/usr/bin/env python3
"""Import time of a PyTorch-exported ResNet-18 (11.7 M parameters) and its outputs against PyTorch.

Builds torchvision's ResNet-18 layer for layer (no torchvision needed), exports it with
torch.onnx.export (opset 17, batch N, 3x224x224), then times `stag run model.onnx` from process
start to exit: ONNX parse, import, optimisation, LLVM compile and one forward run, its CPU
time, and the compile time stag reports on its own (the JIT cache off). The logits are compared with PyTorch's for the same
input (eval mode: batch norm on running statistics).

usage: /usr/bin/python3 tools/bench/onnx_import.py --stag build/tools/stag [--batch 1] [--repeat 3]
Needs python3-torch and python3-numpy (Debian); not part of the tests.
"""
import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    def __init__(self, classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths, cin, layers = [64, 128, 256, 512], 64, []
        for i, w in enumerate(widths):
            layers.append(nn.Sequential(BasicBlock(cin, w, 1 if i == 0 else 2), BasicBlock(w, w, 1)))
            cin = w
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def randomise_batch_norms(model, gen):
    """Running statistics away from 0/1, so that the comparison sees them."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stag", required=True)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="timed `stag run` processes (the median is reported)")
    args = ap.parse_args()
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = ResNet18().eval()
    with torch.no_grad():
        randomise_batch_norms(model, gen)
    params = sum(p.numel() for p in model.parameters())
    x = torch.randn(args.batch, 3, 224, 224, generator=gen)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "resnet18.onnx")
        torch.onnx.export(model, x, path, opset_version=17, input_names=["input"], output_names=["logits"])
        np.save(os.path.join(d, "input.npy"), x.numpy())
        with torch.no_grad():
            want = model(x).numpy()
        cmd = [args.stag, "run", path, "--input", "input=" + os.path.join(d, "input.npy"), "--out-dir", d]
        walls, cpus, compiles = [], [], []
        for _ in range(args.repeat):
            t0, u0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
            r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, STAG_JIT_CACHE="off"))
            walls.append(time.perf_counter() - t0)
            u1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(u1.ru_utime + u1.ru_stime - u0.ru_utime - u0.ru_stime)
            if r.returncode != 0:
                sys.exit("stag run failed:\n" + r.stderr)
            m = re.search(r"compiled \S+ in ([0-9.]+) ms", r.stdout + r.stderr)
            if m:
                compiles.append(float(m.group(1)) / 1000)
        got = np.load(os.path.join(d, "logits.npy"))
    err = np.abs(got - want).max() / np.abs(want).max()
    print(f"ResNet-18 ({params:,} parameters), batch {args.batch}, ONNX opset 17 from PyTorch {torch.__version__}")
    print(f"stag run model.onnx, process start to exit (parse, import, compile, one forward): "
          f"median {sorted(walls)[len(walls) // 2]:.2f} s of {', '.join(f'{w:.2f}' for w in walls)}")
    print(f"CPU time of that process (user + system, all threads): median {sorted(cpus)[len(cpus) // 2]:.2f} s "
          f"(on a loaded machine the wall time runs ahead of it)")
    if compiles:
        print(f"compile time stag reports: median {sorted(compiles)[len(compiles) // 2]:.2f} s")
    print(f"logits against PyTorch: max |stag - torch| / max |torch| = {err:.2e}")
    return 0 if err < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
