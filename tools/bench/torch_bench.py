#!/usr/bin/python3
"""The PyTorch side of the stag benchmark (issue 8): the workloads of tools/bench/models/ in
PyTorch, same shapes, layers, dropout, loss, optimizer and gradient clipping, on random data.
Prints one JSON object: median and min ms per step after warm-up, peak RSS.

    OPENBLAS_NUM_THREADS=2 /usr/bin/python3 tools/bench/torch_bench.py mlp --batch 64 --torch-threads 1

The OpenBLAS thread count is read when the library loads, so it must be in the environment
before this process starts: tools/bench/run.py starts one process per setting.
`sgemm --size N` times numpy's (OpenBLAS) N x N x N f32 matmul instead.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kilobytes on Linux


def blas_library():
    """The BLAS this process loaded (Debian picks it by alternatives or LD_LIBRARY_PATH)."""
    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if "blas" in line and "/" in line}
    return ", ".join(sorted(os.path.basename(os.path.dirname(p)) + "/" + os.path.basename(p) for p in paths)) or "none"


def time_steps(step, warmup, steps):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append((time.perf_counter() - t) * 1000.0)
    return times


def sgemm(args):
    import numpy as np

    rng = np.random.default_rng(0)
    n = args.size
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    times = time_steps(lambda: np.matmul(a, b, out=c), args.warmup, args.steps)
    med = statistics.median(times)
    return {"gflops": 2.0 * n ** 3 / (med * 1e6), "median_ms": med, "min_ms": min(times)}


def build(name):
    """(model, optimizer, make inputs, loss, clip norm) for a workload; mirrors the .stag files."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    if name == "mlp":
        class MLP(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1, self.fc2, self.fc3 = nn.Linear(784, 512), nn.Linear(512, 256), nn.Linear(256, 10)
                self.drop = nn.Dropout(0.2)

            def forward(self, x):
                h = self.drop(F.relu(self.fc1(x.flatten(1))))
                h = self.drop(F.relu(self.fc2(h)))
                return self.fc3(h)

        m = MLP()
        return m, torch.optim.Adam(m.parameters(), lr=1e-3), "image", 10, None

    if name == "lenet5":
        class LeNet5(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv1 = nn.Conv2d(1, 6, kernel_size=5, padding=2)
                self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
                self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

            def forward(self, x):
                h = F.max_pool2d(F.relu(self.conv1(x)), 2)
                h = F.max_pool2d(F.relu(self.conv2(h)), 2)
                h = F.relu(self.fc1(h.flatten(1)))
                h = F.relu(self.fc2(h))
                return self.fc3(h)

        m = LeNet5()
        return m, torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9), "image", 10, None

    if name == "gpt":
        class Mlp(nn.Module):
            def __init__(self, e):
                super().__init__()
                self.c_fc, self.c_proj = nn.Linear(e, 4 * e), nn.Linear(4 * e, e)
                self.dropout = nn.Dropout(0.1)

            def forward(self, x):
                return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))

        class Block(nn.Module):
            def __init__(self, e, heads, t):
                super().__init__()
                self.ln_1 = nn.LayerNorm(e)
                self.attn = nn.MultiheadAttention(e, heads, batch_first=True)
                self.ln_2 = nn.LayerNorm(e)
                self.mlp = Mlp(e)
                self.register_buffer("causal", torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1))

            def forward(self, x):
                y = self.ln_1(x)
                x = x + self.attn(y, y, y, attn_mask=self.causal, need_weights=False)[0]
                return x + self.mlp(self.ln_2(x))

        class GPT(nn.Module):
            def __init__(self, v=65, t=64, e=128, layers=4, heads=4):
                super().__init__()
                self.wte, self.wpe = nn.Embedding(v, e), nn.Embedding(t, e)
                self.drop = nn.Dropout(0.1)
                self.h = nn.ModuleList([Block(e, heads, t) for _ in range(layers)])
                self.ln_f = nn.LayerNorm(e)
                self.lm_head = nn.Linear(e, v, bias=False)

            def forward(self, idx):
                x = self.drop(self.wte(idx) + self.wpe(torch.arange(idx.shape[1])))
                for block in self.h:
                    x = block(x)
                return self.lm_head(self.ln_f(x))

        m = GPT()
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
        return m, opt, ("tokens", 64), 65, 1.0

    if name == "lstm":
        class LSTMLM(nn.Module):
            def __init__(self, v=96, h=256):
                super().__init__()
                self.embed = nn.Embedding(v, 128)
                self.lstm = nn.LSTM(128, h, batch_first=True)
                self.drop = nn.Dropout(0.2)
                self.head = nn.Linear(h, v)

            def forward(self, x):
                seq, _ = self.lstm(self.embed(x))
                return self.head(self.drop(seq))

        m = LSTMLM()
        return m, torch.optim.Adam(m.parameters(), lr=2e-3), ("tokens", 64), 96, 1.0

    raise SystemExit(f"torch_bench.py: unknown workload '{name}'")


def train(args):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.torch_threads)
    torch.manual_seed(0)
    model, opt, kind, classes, clip = build(args.workload)
    model.train()
    # Steps cycle through 16 random batches, as stag bench does: one batch repeated is
    # memorized, and the vanishing gradients turn subnormal, which is not what training costs.
    batches = []
    for _ in range(16):
        if kind == "image":
            batches.append((torch.randn(args.batch, 1, 28, 28), torch.randint(0, classes, (args.batch,))))
        else:
            batches.append((torch.randint(0, classes, (args.batch, kind[1])), torch.randint(0, classes, (args.batch, kind[1]))))
    last = {"i": 0}

    def step():
        x, y = batches[last["i"] % len(batches)]
        last["i"] += 1
        opt.zero_grad(set_to_none=True)
        logits = model(x)
        loss = F.cross_entropy(logits.flatten(0, -2), y.flatten())
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        last["loss"] = loss.item()

    times = time_steps(step, args.warmup, args.steps)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "loss": last["loss"],
            "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def load_idx(path):
    """A gzip IDX file of Debian's dataset-fashion-mnist as a numpy array."""
    import gzip
    import numpy as np
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(data[3])]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * len(dims)).reshape(dims)


def epoch(args):
    """One epoch of the MLP on Fashion-MNIST as `stag train --epochs 1` runs it: 54,000 training
    examples in shuffled batches of 64 (the last partial batch dropped), Adam, dropout; then the
    loss and accuracy on the 6,000 held out and on the 10,000 test images."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.torch_threads)
    torch.manual_seed(0)
    root = "/usr/share/datasets/fashion-mnist"
    x = torch.from_numpy(load_idx(f"{root}/train-images-idx3-ubyte.gz").astype(np.float32) / 255).reshape(-1, 1, 28, 28)
    y = torch.from_numpy(load_idx(f"{root}/train-labels-idx1-ubyte.gz").astype(np.int64))
    tx = torch.from_numpy(load_idx(f"{root}/t10k-images-idx3-ubyte.gz").astype(np.float32) / 255).reshape(-1, 1, 28, 28)
    ty = torch.from_numpy(load_idx(f"{root}/t10k-labels-idx1-ubyte.gz").astype(np.int64))
    order = torch.randperm(len(x))
    train, val = order[:54000], order[54000:]
    model, opt, _, _, _ = build("mlp")
    model.train()
    shuffled = train[torch.randperm(len(train))]
    for i in range(len(shuffled) // args.batch):
        b = shuffled[i * args.batch:(i + 1) * args.batch]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x[b]), y[b])
        loss.backward()
        opt.step()
    model.eval()
    out = {}
    with torch.no_grad():
        for name, (ex, ey) in {"val": (x[val], y[val]), "test": (tx, ty)}.items():
            logits = torch.cat([model(ex[i:i + 1000]) for i in range(0, len(ex), 1000)])
            out[f"{name}_loss"] = F.cross_entropy(logits, ey).item()
            out[f"{name}_accuracy"] = (logits.argmax(1) == ey).float().mean().item()
    out.update({"torch": torch.__version__, "torch_threads": torch.get_num_threads()})
    return out


def dcgan(args):
    """models/dcgan.stag's train steps: `dcgan-d` the discriminator on a batch with 0/1 labels
    (bce with logits); `dcgan-g` the generator with an mse loss against a target image (the
    model has no loss of its own; stag's side is tools/bench/models/dcgan_g.stag). Adam
    (2e-4, betas 0.5, 0.999) as in the model's train section; `--channels-last` for NHWC."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(args.torch_threads)
    torch.manual_seed(0)
    if args.workload == "dcgan-d":
        model = nn.Sequential(nn.Conv2d(1, 64, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
                              nn.Conv2d(64, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
                              nn.Conv2d(128, 1, 7, bias=False))
        batches = [(torch.randn(args.batch, 1, 28, 28), (torch.rand(args.batch) > 0.5).float()) for _ in range(16)]
        loss_of = lambda x, t: F.binary_cross_entropy_with_logits(model(x).flatten(), t)
    else:
        model = nn.Sequential(nn.ConvTranspose2d(100, 128, 7, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
                              nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                              nn.ConvTranspose2d(64, 1, 4, 2, 1, bias=False), nn.Tanh())
        batches = [(torch.randn(args.batch, 100, 1, 1), torch.rand(args.batch, 1, 28, 28) * 2 - 1) for _ in range(16)]
        loss_of = lambda x, t: F.mse_loss(model(x), t)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    batches = [(x.contiguous(memory_format=fmt), t) for x, t in batches]
    opt = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.5, 0.999))
    last = {"i": 0}

    def step():
        x, t = batches[last["i"] % len(batches)]
        last["i"] += 1
        opt.zero_grad(set_to_none=True)
        loss = loss_of(x, t)
        loss.backward()
        opt.step()
        last["loss"] = loss.item()

    times = time_steps(step, args.warmup, args.steps)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "loss": last["loss"],
            "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def dcgan_pair(args):
    """One iteration of PyTorch's DCGAN example on models/dcgan.stag's pair, as `stag bench
    models/dcgan.stag` times it: D on a real batch (label 1) and on G(z) detached (label 0), D's
    Adam step; then D(G(z)) with label 1 through D into G, G's Adam step (the example reuses the
    D step's G(z); stag's generator step draws the same z again). bce with logits, Adam (2e-4,
    betas 0.5, 0.999), training-mode batch norm; `--channels-last` for NHWC."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(args.torch_threads)
    torch.manual_seed(0)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    net_g = nn.Sequential(nn.ConvTranspose2d(100, 128, 7, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
                          nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                          nn.ConvTranspose2d(64, 1, 4, 2, 1, bias=False), nn.Tanh()).to(memory_format=fmt)
    net_d = nn.Sequential(nn.Conv2d(1, 64, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
                          nn.Conv2d(64, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
                          nn.Conv2d(128, 1, 7, bias=False)).to(memory_format=fmt)
    opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    reals = [(torch.rand(args.batch, 1, 28, 28) * 2 - 1).contiguous(memory_format=fmt) for _ in range(16)]
    ones, zeros = torch.ones(args.batch), torch.zeros(args.batch)
    last = {"i": 0}

    def step():
        real = reals[last["i"] % len(reals)]
        last["i"] += 1
        opt_d.zero_grad(set_to_none=True)
        fake = net_g(torch.randn(args.batch, 100, 1, 1).contiguous(memory_format=fmt))
        loss_d = F.binary_cross_entropy_with_logits(net_d(real).flatten(), ones)
        loss_d = loss_d + F.binary_cross_entropy_with_logits(net_d(fake.detach()).flatten(), zeros)
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        loss_g = F.binary_cross_entropy_with_logits(net_d(fake).flatten(), ones)
        loss_g.backward()
        opt_g.step()
        last["loss"] = loss_d.item()

    times = time_steps(step, args.warmup, args.steps)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "loss": last["loss"],
            "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workload", choices=["mlp", "lenet5", "gpt", "lstm", "sgemm", "mlp-epoch", "dcgan-d", "dcgan-g", "dcgan-pair"])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=1024, help="sgemm: N")
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--channels-last", action="store_true", help="dcgan-*: NHWC tensors")
    args = p.parse_args()
    if args.steps < 1 or args.warmup < 0:
        p.error("--steps must be >= 1 and --warmup >= 0")
    result = (sgemm(args) if args.workload == "sgemm" else epoch(args) if args.workload == "mlp-epoch"
              else dcgan_pair(args) if args.workload == "dcgan-pair"
              else dcgan(args) if args.workload.startswith("dcgan") else train(args))
    result.update({"workload": args.workload, ("size" if args.workload == "sgemm" else "batch"):
                   args.size if args.workload == "sgemm" else args.batch, "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
                   "warmup": args.warmup, "steps": args.steps, "peak_rss_mb": peak_rss_mb(), "blas": blas_library()})
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
