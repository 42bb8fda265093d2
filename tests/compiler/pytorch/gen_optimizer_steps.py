#!/usr/bin/python3
"""Ten steps of every torch.optim optimizer stag implements, on a small linear model with an
MSE loss, written to optimizer_steps.txt, one configuration a line:

    name kind lr momentum dampening nesterov weight_decay beta1 beta2 eps alpha centered
         lr_decay initial_accumulator clip_norm clip_value | W after 10 steps... b...

tests/compiler/test_optimizers.cpp reads the configuration from the line, builds the same
step as graph ops, runs it compiled ten times and compares. Weights and data come from the
formula below on both sides. Needs python3-torch (Debian), not needed to run the tests:

    /usr/bin/python3 tests/compiler/pytorch/gen_optimizer_steps.py
"""
import math
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def formula(shape, k):
    n = int(np.prod(shape))
    return torch.from_numpy((0.5 * np.sin(0.7 * np.arange(n) + 1.3 * k)).astype(np.float32).reshape(shape))


CONFIGS = [
    # name, kind, lr, momentum, dampening, nesterov, wd, beta1, beta2, eps, alpha, centered, lr_decay, init_acc, clip_norm, clip_value
    ("sgd", "sgd", 0.1, 0, 0, 0, 0, 0.9, 0.999, 1e-8, 0.99, 0, 0, 0, 0, 0),
    ("sgd_momentum_dampening_wd", "sgd", 0.1, 0.9, 0.1, 0, 0.01, 0.9, 0.999, 1e-8, 0.99, 0, 0, 0, 0, 0),
    ("sgd_nesterov", "sgd", 0.05, 0.9, 0, 1, 0, 0.9, 0.999, 1e-8, 0.99, 0, 0, 0, 0, 0),
    ("adam", "adam", 0.01, 0, 0, 0, 0, 0.9, 0.999, 1e-8, 0.99, 0, 0, 0, 0, 0),
    ("adam_wd_betas", "adam", 0.01, 0, 0, 0, 0.1, 0.8, 0.99, 1e-6, 0.99, 0, 0, 0, 0, 0),
    ("adamw", "adamw", 0.01, 0, 0, 0, 0.1, 0.9, 0.999, 1e-8, 0.99, 0, 0, 0, 0, 0),
    ("adamax", "adamax", 0.02, 0, 0, 0, 0.01, 0.9, 0.999, 1e-8, 0.99, 0, 0, 0, 0, 0),
    ("adagrad", "adagrad", 0.1, 0, 0, 0, 0.01, 0.9, 0.999, 1e-10, 0.99, 0, 0.01, 0.1, 0, 0),
    ("rmsprop", "rmsprop", 0.01, 0, 0, 0, 0, 0.9, 0.999, 1e-8, 0.99, 0, 0, 0, 0, 0),
    ("rmsprop_centered_momentum_wd", "rmsprop", 0.01, 0.5, 0, 0, 0.01, 0.9, 0.999, 1e-8, 0.9, 1, 0, 0, 0, 0),
    ("sgd_momentum_clip_norm", "sgd", 0.1, 0.9, 0, 0, 0, 0.9, 0.999, 1e-8, 0.99, 0, 0, 0, 0.5, 0),
    ("adam_clip_value", "adam", 0.01, 0, 0, 0, 0, 0.9, 0.999, 1e-8, 0.99, 0, 0, 0, 0, 0.05),
]


def make(cfg, params):
    name, kind, lr, mom, damp, nest, wd, b1, b2, eps, alpha, centered, lr_decay, init_acc, _, _ = cfg
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=mom, dampening=damp, nesterov=bool(nest), weight_decay=wd)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    if kind == "adamax":
        return torch.optim.Adamax(params, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    if kind == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, lr_decay=lr_decay, weight_decay=wd, eps=eps,
                                   initial_accumulator_value=init_acc)
    return torch.optim.RMSprop(params, lr=lr, alpha=alpha, eps=eps, weight_decay=wd, momentum=mom, centered=bool(centered))


x, t = formula((5, 3), 10), formula((5, 2), 11)
lines = []
for cfg in CONFIGS:
    w = formula((3, 2), 0).requires_grad_()
    b = formula((2,), 1).requires_grad_()
    opt = make(cfg, [w, b])
    for _ in range(10):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(x @ w + b, t)
        loss.backward()
        if cfg[15]:
            torch.nn.utils.clip_grad_value_([w, b], cfg[15])
        if cfg[14]:
            torch.nn.utils.clip_grad_norm_([w, b], cfg[14])
        opt.step()
    values = [repr(float(v)) for v in torch.cat([w.detach().flatten(), b.detach().flatten()])]
    lines.append(" ".join(str(c) for c in cfg) + " | " + " ".join(values))
with open(os.path.join(HERE, "optimizer_steps.txt"), "w") as fh:
    fh.write("\n".join(lines) + "\n")
print(f"wrote {len(lines)} configurations")
