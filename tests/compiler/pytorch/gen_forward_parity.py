#!/usr/bin/python3
"""PyTorch's forward outputs for catalog models (models/mlp.stag, lenet5.stag, gpt.stag) on
weights and inputs that both sides compute from a formula, so no weights are checked in:

    parameter k (state_dict order), element i:  a * sin(0.7 * i + 1.3 * k) + d
        a = 0.1, d = 1   for 1-D tensors named *.weight (layer norm scales)
        a = 0.1, d = 0   for other 1-D tensors (biases)
        a = 1/sqrt(numel / shape[0]), d = 0   otherwise (1/sqrt(fan_in))
    float input element i:  sin(0.37 * i)
    integer input element i:  (7 * i + 3) mod bound  (bound: classes or vocabulary)

Values are computed in float64 and rounded to float32. Writes NAME.logits.npy and NAME.loss.npy
next to this script; tests/compiler/test_pytorch_parity.cpp compares stag's compiled forward.
Needs python3-torch and python3-numpy (Debian), not needed to run the tests:

    /usr/bin/python3 tests/compiler/pytorch/gen_forward_parity.py
"""
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(784, 512), nn.Linear(512, 256), nn.Linear(256, 10)

    def forward(self, x):
        h = F.relu(self.fc1(x.flatten(1)))
        h = F.relu(self.fc2(h))
        return self.fc3(h)


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


class Mlp(nn.Module):
    def __init__(self, e):
        super().__init__()
        self.c_fc, self.c_proj = nn.Linear(e, 4 * e), nn.Linear(4 * e, e)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, e, heads):
        super().__init__()
        self.ln_1 = nn.LayerNorm(e)
        self.attn = nn.MultiheadAttention(e, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(e)
        self.mlp = Mlp(e)

    def forward(self, x):
        t = x.shape[1]
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)  # True: masked
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, attn_mask=causal, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, v=65, t=64, e=128, layers=4, heads=4):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(v, e), nn.Embedding(t, e)
        self.h = nn.ModuleList([Block(e, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(e)
        self.lm_head = nn.Linear(e, v, bias=False)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def formula_weights(model):
    with torch.no_grad():
        for k, (name, p) in enumerate(model.state_dict().items()):
            i = np.arange(p.numel(), dtype=np.float64)
            if p.dim() == 1:
                a, d = 0.1, (1.0 if name.endswith(".weight") else 0.0)
            else:
                a, d = 1 / math.sqrt(p.numel() / p.shape[0]), 0.0
            values = (a * np.sin(0.7 * i + 1.3 * k) + d).astype(np.float32)
            p.copy_(torch.from_numpy(values).reshape(p.shape))


def float_input(shape):
    n = int(np.prod(shape))
    return torch.from_numpy(np.sin(0.37 * np.arange(n, dtype=np.float64)).astype(np.float32).reshape(shape))


def int_input(shape, bound):
    n = int(np.prod(shape))
    return torch.from_numpy(((7 * np.arange(n) + 3) % bound).astype(np.int64).reshape(shape))


def save(name, logits, loss):
    np.save(os.path.join(HERE, f"{name}.logits.npy"), logits.detach().numpy().astype(np.float32))
    np.save(os.path.join(HERE, f"{name}.loss.npy"), np.array(loss.item(), dtype=np.float32))


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    for name, model, batch in [("mlp", MLP(), 4), ("lenet5", LeNet5(), 4)]:
        formula_weights(model)
        model.eval()
        x, y = float_input((batch, 1, 28, 28)), int_input((batch,), 10)
        logits = model(x)
        save(name, logits, F.cross_entropy(logits, y))
    gpt = GPT()
    formula_weights(gpt)
    gpt.eval()
    idx, targets = int_input((2, 64), 65), int_input((2, 64), 65)
    logits = gpt(idx)
    save("gpt", logits, F.cross_entropy(logits.flatten(0, 1), targets.flatten()))
    print("wrote mlp, lenet5 and gpt outputs to", HERE)
