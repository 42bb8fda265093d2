#!/usr/bin/python3
"""Writes the PyTorch parity fixtures of tests/onnx (run with Debian's python3-torch; the tests
themselves need no torch): for each small model, NAME.onnx from torch.onnx.export (opset 13, or
17 for LayerNormalization), and NAME.expected.safetensors holding the input x, the labels y, the
logits, the cross-entropy loss and every parameter's gradient (grad.PARAM) for that input; for
the recurrent models also the recurrent weights' gradients in ONNX's layout (onnx.W.LAYER, ...),
since the exporter stores those weights reordered under names of its own.

    /usr/bin/python3 tests/onnx/pytorch/make_fixtures.py tests/onnx/pytorch
"""
import json, math, pathlib, struct, sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(784, 32), nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5, padding=2), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        h = F.max_pool2d(torch.relu(self.conv1(x)), 2)
        h = F.max_pool2d(torch.relu(self.conv2(h)), 2)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(h.flatten(1))))))


class ResBlock(nn.Module):
    """A ResNet basic block with BatchNorm (eval mode: running statistics), then a classifier."""
    def __init__(self, c=8):
        super().__init__()
        self.stem = nn.Conv2d(1, c, 3, padding=1, bias=False)
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        y = torch.relu(self.bn1(self.conv1(h)))
        y = torch.relu(self.bn2(self.conv2(y)) + h)
        return self.fc(F.adaptive_avg_pool2d(y, 1).flatten(1))


class GPTBlock(nn.Module):
    """One pre-norm transformer block with causal attention over 8 tokens, then a classifier."""
    def __init__(self, d=16, heads=2, t=8):
        super().__init__()
        self.heads, self.t = heads, t
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.head = nn.Linear(d * t, 10)
        self.register_buffer("mask", torch.tril(torch.ones(t, t)).bool())

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = [z.reshape(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v)]
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)
        att = att.masked_fill(~self.mask, float("-inf")).softmax(-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(b, t, d))
        x = x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))
        return self.head(x.flatten(1))


class LSTMNet(nn.Module):
    """A two-layer bidirectional LSTM over 5 steps, then a classifier of its outputs and its last
    h and c (so that all three of ONNX's outputs carry gradient)."""
    def __init__(self, features=6, hidden=8, t=5):
        super().__init__()
        self.rnn = nn.LSTM(features, hidden, num_layers=2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden * t + 2 * 4 * hidden, 10)

    def forward(self, x):
        y, (h, c) = self.rnn(x)
        return self.head(torch.cat([y.flatten(1), h.transpose(0, 1).flatten(1), c.transpose(0, 1).flatten(1)], 1))


class GRUNet(nn.Module):
    """A GRU (time major) from a learned initial state, then a classifier of its last output."""
    def __init__(self, features=6, hidden=8, batch=3):
        super().__init__()
        self.rnn = nn.GRU(features, hidden)
        self.h0 = nn.Parameter(torch.randn(1, batch, hidden) * 0.5)
        self.head = nn.Linear(hidden, 10)

    def forward(self, x):
        y, _ = self.rnn(x.transpose(0, 1), self.h0)
        return self.head(y[-1])


def onnx_rnn_grads(rnn, gate_order):
    """PyTorch's recurrent weights' gradients in ONNX's layout, one set per layer (one ONNX node a
    layer): W [dirs, gates*hidden, in], R [dirs, gates*hidden, hidden], B [dirs, 2*gates*hidden],
    the gate blocks reordered (PyTorch's i,f,g,o to ONNX's i,o,f,c; r,z,n to z,r,h)."""
    def reorder(g):
        return torch.cat([g.chunk(len(gate_order))[i] for i in gate_order])
    dirs = ["", "_reverse"] if rnn.bidirectional else [""]
    out = {}
    for layer in range(rnn.num_layers):
        grad = lambda name, d: reorder(getattr(rnn, f"{name}_l{layer}{d}").grad)
        out[f"onnx.W.{layer}"] = torch.stack([grad("weight_ih", d) for d in dirs])
        out[f"onnx.R.{layer}"] = torch.stack([grad("weight_hh", d) for d in dirs])
        out[f"onnx.B.{layer}"] = torch.stack([torch.cat([grad("bias_ih", d), grad("bias_hh", d)]) for d in dirs])
    return out


def safetensors(tensors):
    header, blob = {}, b""
    for name, t in tensors.items():
        t = t.detach().contiguous()
        dtype = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        data = t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def distinct_affine(*norms):
    """Norm layers left at weight 1, bias 0 export as ONE shared initializer (the exporter merges equal
    constants), whose gradient is then the sum of theirs: give each its own values, as after training."""
    with torch.no_grad():
        for norm in norms:
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)


def export(name, model, x, out, opset=13, extra=lambda model: {}):
    model.eval()
    y = torch.arange(x.shape[0]) * 3 % 10
    # PRESERVE keeps BatchNormalization a node of its own instead of folding it into the conv.
    torch.onnx.export(model, x, str(out / f"{name}.onnx"), input_names=["x"], output_names=["logits"],
                      opset_version=opset, do_constant_folding=True, training=torch.onnx.TrainingMode.PRESERVE)
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    model.zero_grad()
    loss.backward()
    tensors = {"x": x, "y": y, "logits": logits, "loss": loss}
    tensors.update({f"grad.{n}": p.grad for n, p in model.named_parameters()})
    tensors.update(extra(model))
    (out / f"{name}.expected.safetensors").write_bytes(safetensors(tensors))
    print(name, sum(p.numel() for p in model.parameters()), "parameters")


def main():
    out = pathlib.Path(sys.argv[1])
    torch.manual_seed(0)
    export("mlp", MLP(), torch.randn(4, 1, 28, 28), out)
    export("lenet5", LeNet5(), torch.randn(2, 1, 28, 28), out)
    block = ResBlock()
    for bn in (block.bn1, block.bn2):  # running statistics that are not the defaults
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2)
    distinct_affine(block.bn1, block.bn2)
    export("resblock", block, torch.randn(2, 1, 12, 12), out)
    gpt = GPTBlock()
    distinct_affine(gpt.ln1, gpt.ln2)
    export("gpt_block", gpt, torch.randn(2, 8, 16), out, opset=17)
    export("lstm", LSTMNet(), torch.randn(3, 5, 6), out, extra=lambda m: onnx_rnn_grads(m.rnn, [0, 3, 1, 2]))
    export("gru", GRUNet(), torch.randn(3, 4, 6), out, extra=lambda m: onnx_rnn_grads(m.rnn, [1, 0, 2]))


if __name__ == "__main__":
    main()
