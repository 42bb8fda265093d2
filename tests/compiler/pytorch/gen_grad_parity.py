#!/usr/bin/python3
"""PyTorch's loss gradients for catalog models (mlp, lenet5, gpt; inference mode, so that
dropout is off on both sides) on the formula weights and inputs of gen_forward_parity.py.
Full gradients would be megabytes, so each parameter's gradient g is summarised by
    |g|,  sum_i g_i sin(0.31 i + 0.5),  sum_i g_i cos(0.17 i)
which any wrong element moves. Writes NAME.grads.txt: `name norm proj1 proj2` a line, and the
loss on the first line. Needs python3-torch; the tests do not:

    /usr/bin/python3 tests/compiler/pytorch/gen_grad_parity.py
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

from gen_forward_parity import GPT, MLP, LeNet5, float_input, formula_weights, int_input

HERE = os.path.dirname(os.path.abspath(__file__))


def summarise(name, model, loss):
    model.zero_grad()
    loss.backward()
    lines = [f"loss {loss.item()!r}"]
    for pname, p in model.named_parameters():
        g = p.grad.detach().double().flatten().numpy()
        i = np.arange(g.size, dtype=np.float64)
        lines.append(f"{pname} {np.linalg.norm(g)!r} {float(g @ np.sin(0.31 * i + 0.5))!r} {float(g @ np.cos(0.17 * i))!r}")
    with open(os.path.join(HERE, f"{name}.grads.txt"), "w") as fh:
        fh.write("\n".join(lines) + "\n")


torch.set_grad_enabled(True)
for name, model in [("mlp", MLP()), ("lenet5", LeNet5())]:
    formula_weights(model)
    model.eval()
    x, y = float_input((4, 1, 28, 28)), int_input((4,), 10)
    summarise(name, model, F.cross_entropy(model(x), y))
gpt = GPT()
formula_weights(gpt)
gpt.eval()
idx, targets = int_input((2, 64), 65), int_input((2, 64), 65)
summarise("gpt", gpt, F.cross_entropy(gpt(idx).flatten(0, 1), targets.flatten()))
print("wrote mlp, lenet5 and gpt gradient summaries")
