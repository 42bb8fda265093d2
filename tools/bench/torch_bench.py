#!/usr/bin/python3
"""The PyTorch side of the stag benchmark (issues 8, 17, 23): every catalog model's train step
(models/*.stag, or its copy in tools/bench/models/) in PyTorch, the same layers in the same order
with the same parameter names and shapes, batch, dropout, batch norm in training mode, loss,
optimizer with the train section's settings and gradient clipping, on random data. Prints one
JSON object: median and min ms per step after warm-up, peak RSS.

    OPENBLAS_NUM_THREADS=2 /usr/bin/python3 tools/bench/torch_bench.py mlp --batch 64 --torch-threads 1
    /usr/bin/python3 tools/bench/torch_bench.py resnet --autocast     # forward and loss in bf16 autocast
    /usr/bin/python3 tools/bench/torch_bench.py resnet --params       # the mirror's names and shapes

A learning-rate schedule changes only the lr a step is given, not its work, so none is run here.

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


def bgemm(args):
    """PyTorch's bf16 matmul (oneDNN on CPUs with bf16 units), the bar for stag's bf16 GEMM."""
    import torch

    torch.set_num_threads(args.torch_threads)
    n = args.size
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(torch.bfloat16)
    b = torch.randn(n, n, generator=gen).to(torch.bfloat16)
    c = torch.empty(n, n, dtype=torch.bfloat16)
    times = time_steps(lambda: torch.matmul(a, b, out=c), args.warmup, args.steps)
    med = statistics.median(times)
    return {"gflops": 2.0 * n ** 3 / (med * 1e6), "median_ms": med, "min_ms": min(times), "torch_threads": torch.get_num_threads()}


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


# The train-step workloads: tools/bench/run.py's TRAIN table names one of these for every row.
TRAIN_WORKLOADS = ["mlp", "lenet5", "gpt", "lstm", "char-rnn", "gru-lm", "alexnet", "autoencoder", "bow-logreg", "bert",
                   "resnet", "vgg", "vit-tiny", "dcgan-d", "dcgan-g", "row-rnn"]


class Workload:
    """What a train step needs: the model, its optimizer, a maker of one random batch (a tuple of
    tensors), the loss of a batch, and the gradient-clipping norm (None: no clipping)."""

    def __init__(self, model, opt, make_batch, loss_of, clip=None, image_inputs=()):
        self.model, self.opt, self.make_batch, self.loss_of, self.clip = model, opt, make_batch, loss_of, clip
        self.image_inputs = image_inputs  # positions in a batch of NCHW images (for --channels-last)


def images(batch, classes=10):
    """A classifier's random batch as `stag bench` draws it: standard normal images, labels below the class count."""
    import torch
    return lambda: (torch.randn(batch, 1, 28, 28), torch.randint(0, classes, (batch,)))


def tokens(batch, seq, vocab, classes=None):
    """A language model's batch (ids and next ids, both below the vocabulary) or, with classes, a
    text classifier's (ids and one label a sequence)."""
    import torch
    if classes is None:
        return lambda: (torch.randint(0, vocab, (batch, seq)), torch.randint(0, vocab, (batch, seq)))
    return lambda: (torch.randint(0, vocab, (batch, seq)), torch.randint(0, classes, (batch,)))


def classify(model, label_smoothing=0.0):
    """The loss of a (input, labels) batch: cross entropy of the logits over every position."""
    import torch.nn.functional as F
    return lambda b: F.cross_entropy(model(b[0]).flatten(0, -2), b[1].flatten(), label_smoothing=label_smoothing)


def mirror(name):
    """The PyTorch module of a workload alone (no optimizer): tools/bench/run.py compares its
    state_dict, names and shapes, with the stag model's parameters."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Holder(nn.Module):
        """A Sequential kept under the attribute `net`, as the DCGAN files name it (net.0.weight)."""
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x)

    if name == "mlp":  # models/mlp.stag
        class MLP(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1, self.fc2, self.fc3 = nn.Linear(784, 512), nn.Linear(512, 256), nn.Linear(256, 10)
                self.drop = nn.Dropout(0.2)

            def forward(self, x):
                h = self.drop(F.relu(self.fc1(x.flatten(1))))
                h = self.drop(F.relu(self.fc2(h)))
                return self.fc3(h)
        return MLP()

    if name == "lenet5":  # models/lenet5.stag
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
        return LeNet5()

    if name == "gpt":  # tools/bench/models/gpt.stag (models/gpt.stag at batch 16)
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
                self.register_buffer("causal", torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1), persistent=False)

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
        return GPT()

    if name == "lstm":  # models/lstm_lm.stag
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
        return LSTMLM()

    if name in ("char-rnn", "gru-lm"):  # models/char_rnn.stag, models/gru_lm.stag
        class RecurrentLM(nn.Module):
            def __init__(self, cell, v, e, h, **kw):
                super().__init__()
                self.embed = nn.Embedding(v, e)
                setattr(self, cell, (nn.RNN if cell == "rnn" else nn.GRU)(e, h, batch_first=True, **kw))
                self.cell = cell
                self.head = nn.Linear(h, v)

            def forward(self, x):
                seq, _ = getattr(self, self.cell)(self.embed(x))
                return self.head(seq)
        if name == "char-rnn":
            return RecurrentLM("rnn", 96, 64, 128)
        return RecurrentLM("gru", 96, 128, 256, num_layers=2, dropout=0.2)

    if name == "alexnet":  # models/alexnet.stag
        class AlexNet(nn.Module):
            def __init__(self):
                super().__init__()
                self.features = nn.Sequential(
                    nn.Conv2d(1, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                    nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                    nn.Conv2d(128, 192, 3, padding=1), nn.ReLU(),
                    nn.Conv2d(192, 192, 3, padding=1), nn.ReLU(),
                    nn.Conv2d(192, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
                self.classifier = nn.Sequential(
                    nn.Dropout(0.5), nn.Linear(128 * 3 * 3, 512), nn.ReLU(),
                    nn.Dropout(0.5), nn.Linear(512, 512), nn.ReLU(),
                    nn.Linear(512, 10))

            def forward(self, x):
                return self.classifier(self.features(x).flatten(1))
        return AlexNet()

    if name == "autoencoder":  # models/autoencoder.stag
        class Autoencoder(nn.Module):
            def __init__(self, latent=16):
                super().__init__()
                self.encoder = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, latent))
                self.decoder = nn.Sequential(nn.Linear(latent, 64), nn.ReLU(), nn.Linear(64, 256), nn.ReLU(),
                                             nn.Linear(256, 784), nn.Sigmoid())

            def forward(self, x):
                return self.decoder(self.encoder(x.flatten(1)))
        return Autoencoder()

    if name == "bow-logreg":  # models/bow_logreg.stag
        class BowLogReg(nn.Module):
            def __init__(self, v=2048, c=39):
                super().__init__()
                self.weights = nn.Embedding(v, c)
                nn.init.zeros_(self.weights.weight)

            def forward(self, tokens):
                return self.weights(tokens).mean(1)
        return BowLogReg()

    if name == "bert":  # models/bert.stag: post-norm layers, dropout after attention and the feed-forward only
        class EncoderLayer(nn.Module):
            def __init__(self, width, heads, ffn):
                super().__init__()
                self.attention = nn.MultiheadAttention(width, heads, dropout=0.1, batch_first=True)
                self.norm1 = nn.LayerNorm(width, eps=1e-12)
                self.intermediate = nn.Linear(width, ffn)
                self.output = nn.Linear(ffn, width)
                self.norm2 = nn.LayerNorm(width, eps=1e-12)
                self.dropout = nn.Dropout(0.1)

            def forward(self, x):
                x = self.norm1(x + self.dropout(self.attention(x, x, x, need_weights=False)[0]))
                return self.norm2(x + self.dropout(self.output(F.gelu(self.intermediate(x)))))

        class Bert(nn.Module):
            def __init__(self, v=2048, t=64, c=39, e=128):
                super().__init__()
                self.word_embeddings = nn.Embedding(v, e)
                self.position_embeddings = nn.Embedding(t, e)
                self.embed_norm = nn.LayerNorm(e, eps=1e-12)
                self.encoder = nn.Sequential(*[EncoderLayer(e, 4, 4 * e) for _ in range(2)])
                self.pooler = nn.Linear(e, e)
                self.classifier = nn.Linear(e, c)

            def forward(self, tokens):
                pos = torch.arange(tokens.shape[1])
                x = self.embed_norm(self.word_embeddings(tokens) + self.position_embeddings(pos))
                x = self.encoder(x)
                return self.classifier(torch.tanh(self.pooler(x[:, 0])))
        return Bert()

    if name == "resnet":  # models/resnet.stag: torchvision's BasicBlock, its names
        class BasicBlock(nn.Module):
            def __init__(self, inplanes, planes, stride=1):
                super().__init__()
                self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
                self.bn1 = nn.BatchNorm2d(planes)
                self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
                self.bn2 = nn.BatchNorm2d(planes)
                self.downsample = None
                if stride != 1 or inplanes != planes:
                    self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))

            def forward(self, x):
                identity = x if self.downsample is None else self.downsample(x)
                out = F.relu(self.bn1(self.conv1(x)))
                out = self.bn2(self.conv2(out))
                return F.relu(out + identity)

        class ResNet(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv1 = nn.Conv2d(1, 16, 3, padding=1, bias=False)
                self.bn1 = nn.BatchNorm2d(16)
                self.layer1 = nn.Sequential(BasicBlock(16, 16), BasicBlock(16, 16))
                self.layer2 = nn.Sequential(BasicBlock(16, 32, stride=2), BasicBlock(32, 32))
                self.layer3 = nn.Sequential(BasicBlock(32, 64, stride=2), BasicBlock(64, 64))
                self.fc = nn.Linear(64, 10)

            def forward(self, x):
                h = F.relu(self.bn1(self.conv1(x)))
                h = self.layer3(self.layer2(self.layer1(h)))
                return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))
        return ResNet()

    if name == "vgg":  # models/vgg.stag
        class ConvBnRelu(nn.Module):
            def __init__(self, cin, cout):
                super().__init__()
                self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
                self.bn = nn.BatchNorm2d(cout)

            def forward(self, x):
                return F.relu(self.bn(self.conv(x)))

        class Stage(nn.Module):
            def __init__(self, cin, cout):
                super().__init__()
                self.first, self.second, self.pool = ConvBnRelu(cin, cout), ConvBnRelu(cout, cout), nn.MaxPool2d(2)

            def forward(self, x):
                return self.pool(self.second(self.first(x)))

        class VGG(nn.Module):
            def __init__(self, w=32):
                super().__init__()
                self.features = nn.Sequential(Stage(1, w), Stage(w, 2 * w), Stage(2 * w, 4 * w))
                self.classifier = nn.Sequential(nn.Linear(4 * w * 3 * 3, 256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, 10))

            def forward(self, x):
                return self.classifier(self.features(x).flatten(1))
        return VGG()

    if name == "vit-tiny":  # models/vit_tiny.stag: pre-norm blocks, no dropout in attention
        class EncoderBlock(nn.Module):
            def __init__(self, width, heads):
                super().__init__()
                self.norm1 = nn.LayerNorm(width, eps=1e-6)
                self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
                self.norm2 = nn.LayerNorm(width, eps=1e-6)
                self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Dropout(0.1), nn.Linear(2 * width, width))

            def forward(self, x):
                y = self.norm1(x)
                x = x + self.attn(y, y, y, need_weights=False)[0]
                return x + self.mlp(self.norm2(x))

        class ViT(nn.Module):
            def __init__(self, p=7, e=64):
                super().__init__()
                n = (28 // p) ** 2
                self.patch_embed = nn.Conv2d(1, e, p, stride=p)
                self.cls_token = nn.Parameter(torch.zeros(1, 1, e))
                self.pos_embed = nn.Parameter(torch.randn(1, n + 1, e) * 0.02)
                self.blocks = nn.Sequential(*[EncoderBlock(e, 4) for _ in range(4)])
                self.norm = nn.LayerNorm(e, eps=1e-6)
                self.head = nn.Linear(e, 10)

            def forward(self, x):
                patches = self.patch_embed(x).flatten(2).transpose(1, 2)
                h = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), patches], dim=1) + self.pos_embed
                h = self.norm(self.blocks(h))
                return self.head(h[:, 0])
        return ViT()

    if name == "row-rnn":  # models/row_rnn.stag: a GRU written out by hand over an image's rows
        class RowRNN(nn.Module):
            def __init__(self, h=128):
                super().__init__()
                self.h = h
                self.gates_x, self.gates_h = nn.Linear(28, 2 * h), nn.Linear(h, 2 * h, bias=False)
                self.new_x, self.new_h = nn.Linear(28, h), nn.Linear(h, h, bias=False)
                self.head = nn.Linear(h, 10)

            def forward(self, x):
                rows = x.reshape(x.shape[0], 28, 28)
                gx, nx = self.gates_x(rows), self.new_x(rows)
                h = torch.zeros(x.shape[0], self.h)
                for t in range(28):
                    z, r = torch.sigmoid(gx[:, t] + self.gates_h(h)).split(self.h, dim=1)
                    h = (1 - z) * torch.tanh(nx[:, t] + self.new_h(r * h)) + z * h
                return self.head(h)
        return RowRNN()

    if name == "dcgan-d":  # models/dcgan.stag's discriminator
        return Holder(nn.Sequential(nn.Conv2d(1, 64, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
                                    nn.Conv2d(64, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
                                    nn.Conv2d(128, 1, 7, bias=False)))

    if name == "dcgan-g":  # models/dcgan.stag's generator
        return Holder(nn.Sequential(nn.ConvTranspose2d(100, 128, 7, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
                                    nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                                    nn.ConvTranspose2d(64, 1, 4, 2, 1, bias=False), nn.Tanh()))

    raise SystemExit(f"torch_bench.py: unknown workload '{name}'")


def build(name, batch):
    """A workload's train step as the model file's train section has it: the mirror, its
    optimizer with the section's settings, random batches, the loss and the clipping norm."""
    import torch
    import torch.nn.functional as F

    m = mirror(name)
    p = m.parameters()
    if name == "mlp":
        return Workload(m, torch.optim.Adam(p, lr=1e-3), images(batch), classify(m), image_inputs=(0,))
    if name == "lenet5":  # tools/bench/models/lenet5.stag: SGD with momentum
        return Workload(m, torch.optim.SGD(p, lr=0.01, momentum=0.9), images(batch), classify(m), image_inputs=(0,))
    if name == "gpt":
        opt = torch.optim.AdamW(p, lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
        return Workload(m, opt, tokens(batch, 64, 65), classify(m), clip=1.0)
    if name == "lstm":
        return Workload(m, torch.optim.Adam(p, lr=2e-3), tokens(batch, 64, 96), classify(m), clip=1.0)
    if name == "char-rnn":
        return Workload(m, torch.optim.Adam(p, lr=2e-3), tokens(batch, 32, 96), classify(m), clip=5.0)
    if name == "gru-lm":
        return Workload(m, torch.optim.RMSprop(p, lr=1e-3, alpha=0.99, eps=1e-8), tokens(batch, 64, 96), classify(m), clip=1.0)
    if name == "alexnet":
        opt = torch.optim.SGD(p, lr=0.01, momentum=0.9, weight_decay=5e-4)
        return Workload(m, opt, images(batch), classify(m), image_inputs=(0,))
    if name == "autoencoder":
        return Workload(m, torch.optim.Adam(p, lr=1e-3), lambda: (torch.randn(batch, 1, 28, 28),),
                        lambda b: F.mse_loss(m(b[0]), b[0].flatten(1)), image_inputs=(0,))
    if name == "bow-logreg":
        return Workload(m, torch.optim.Adam(p, lr=0.05), tokens(batch, 64, 2048, classes=39), classify(m))
    if name == "bert":
        opt = torch.optim.AdamW(p, lr=5e-4, weight_decay=0.01)
        return Workload(m, opt, tokens(batch, 64, 2048, classes=39), classify(m))
    if name == "resnet":
        opt = torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-4)
        return Workload(m, opt, images(batch), classify(m), image_inputs=(0,))
    if name == "vgg":
        opt = torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
        return Workload(m, opt, images(batch), classify(m), image_inputs=(0,))
    if name == "row-rnn":
        return Workload(m, torch.optim.Adam(p, lr=2e-3), images(batch), classify(m), image_inputs=(0,))
    if name == "vit-tiny":
        return Workload(m, torch.optim.AdamW(p, lr=1e-3, weight_decay=0.05), images(batch), classify(m, label_smoothing=0.1),
                        image_inputs=(0,))
    adam = torch.optim.Adam(p, lr=2e-4, betas=(0.5, 0.999))
    if name == "dcgan-d":  # tools/bench/models/dcgan_d.stag: bce with logits against 0/1 labels
        return Workload(m, adam, lambda: (torch.randn(batch, 1, 28, 28), (torch.rand(batch) > 0.5).float()),
                        lambda b: F.binary_cross_entropy_with_logits(m(b[0]).flatten(), b[1]), image_inputs=(0,))
    if name == "dcgan-g":  # tools/bench/models/dcgan_g.stag: mse against a target image
        return Workload(m, adam, lambda: (torch.randn(batch, 100, 1, 1), torch.rand(batch, 1, 28, 28) * 2 - 1),
                        lambda b: F.mse_loss(m(b[0]), b[1]), image_inputs=(0,))
    raise SystemExit(f"torch_bench.py: unknown workload '{name}'")


def autocast(args):
    """PyTorch's CPU mixed precision around forward and loss, as its documentation has it (the
    backward and the optimizer step outside), or nothing without --autocast."""
    import contextlib
    import torch
    return torch.autocast("cpu", dtype=torch.bfloat16) if args.autocast else contextlib.nullcontext()


def train(args):
    import torch

    torch.set_num_threads(args.torch_threads)
    torch.manual_seed(0)
    w = build(args.workload, args.batch)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    w.model = w.model.to(memory_format=fmt)
    w.model.train()
    # Steps cycle through 16 random batches, as stag bench does: one batch repeated is
    # memorized, and the vanishing gradients turn subnormal, which is not what training costs.
    batches = []
    for _ in range(16):
        b = list(w.make_batch())
        for i in w.image_inputs:
            b[i] = b[i].contiguous(memory_format=fmt)
        batches.append(tuple(b))
    last = {"i": 0}

    def step():
        b = batches[last["i"] % len(batches)]
        last["i"] += 1
        w.opt.zero_grad(set_to_none=True)
        with autocast(args):
            loss = w.loss_of(b)
        loss.backward()
        if w.clip is not None:
            torch.nn.utils.clip_grad_norm_(w.model.parameters(), w.clip)
        w.opt.step()
        last["loss"] = loss.item()

    times = time_steps(step, args.warmup, args.steps)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "loss": last["loss"],
            "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def params(args):
    """The mirror's state_dict as names and shapes (num_batches_tracked left out: stag keeps no
    such counter) and its trainable parameter count, for run.py's check against stag."""
    import torch
    models = [mirror("dcgan-g"), mirror("dcgan-d")] if args.workload == "dcgan-pair" else [mirror(args.workload)]
    state = {}
    for m in models:
        state.update({k: list(v.shape) for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")})
    return {"params": state, "trainable": sum(p.numel() for m in models for p in m.parameters() if p.requires_grad),
            "torch": torch.__version__}


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
    w = build("mlp", args.batch)
    model, opt = w.model, w.opt
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


def dcgan_pair(args):
    """One iteration of PyTorch's DCGAN example on models/dcgan.stag's pair, as `stag bench
    models/dcgan.stag` times it: D on a real batch (label 1) and on G(z) detached (label 0), D's
    Adam step; then D(G(z)) with label 1 through D into G, G's Adam step (the example reuses the
    D step's G(z); stag's generator step draws the same z again). bce with logits, Adam (2e-4,
    betas 0.5, 0.999), training-mode batch norm; `--channels-last` for NHWC; `--autocast` around
    each forward and loss."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.torch_threads)
    torch.manual_seed(0)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    net_g = mirror("dcgan-g").to(memory_format=fmt)
    net_d = mirror("dcgan-d").to(memory_format=fmt)
    opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    reals = [(torch.rand(args.batch, 1, 28, 28) * 2 - 1).contiguous(memory_format=fmt) for _ in range(16)]
    ones, zeros = torch.ones(args.batch), torch.zeros(args.batch)
    last = {"i": 0}

    def step():
        real = reals[last["i"] % len(reals)]
        last["i"] += 1
        opt_d.zero_grad(set_to_none=True)
        with autocast(args):
            fake = net_g(torch.randn(args.batch, 100, 1, 1).contiguous(memory_format=fmt))
            loss_d = F.binary_cross_entropy_with_logits(net_d(real).flatten(), ones)
            loss_d = loss_d + F.binary_cross_entropy_with_logits(net_d(fake.detach()).flatten(), zeros)
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        with autocast(args):
            loss_g = F.binary_cross_entropy_with_logits(net_d(fake).flatten(), ones)
        loss_g.backward()
        opt_g.step()
        last["loss"] = loss_d.item()

    times = time_steps(step, args.warmup, args.steps)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "loss": last["loss"],
            "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workload", choices=TRAIN_WORKLOADS + ["dcgan-pair", "sgemm", "bgemm", "mlp-epoch"])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=1024, help="sgemm, bgemm: N")
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--channels-last", action="store_true", help="NHWC images and convolution weights")
    p.add_argument("--autocast", action="store_true",
                   help='forward and loss under torch.autocast("cpu", dtype=torch.bfloat16) (train workloads)')
    p.add_argument("--params", action="store_true",
                   help="print the mirror's parameter names and shapes instead of timing it (train workloads)")
    args = p.parse_args()
    if args.steps < 1 or args.warmup < 0:
        p.error("--steps must be >= 1 and --warmup >= 0")
    if (args.autocast or args.params) and args.workload in ("sgemm", "bgemm", "mlp-epoch"):
        p.error("--autocast and --params are for train workloads")
    if args.params:
        print(json.dumps(dict(params(args), workload=args.workload)))
        return 0
    result = (sgemm(args) if args.workload == "sgemm" else bgemm(args) if args.workload == "bgemm"
              else epoch(args) if args.workload == "mlp-epoch"
              else dcgan_pair(args) if args.workload == "dcgan-pair" else train(args))
    result["autocast"] = bool(args.autocast)
    gemm = args.workload in ("sgemm", "bgemm")
    result.update({"workload": args.workload, ("size" if gemm else "batch"): args.size if gemm else args.batch, "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
                   "warmup": args.warmup, "steps": args.steps, "peak_rss_mb": peak_rss_mb(), "blas": blas_library()})
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
