#!/usr/bin/python3
"""Writes tests/ir/reference_cases/scan_torch_*.ir: torch.nn.RNN, LSTM and GRU cells written as
a scan whose body is the cell, with PyTorch's weights and inputs as constants and PyTorch's
float64 outputs (every step's h, the final h, for the LSTM the final c) as `attr expected.rN`.
test_reference.cpp runs them in stag's reference interpreter. Needs python3-torch; the tests
do not.

    /usr/bin/python3 tests/ir/pytorch/gen_scan_cases.py   (Debian python3-torch)
"""
import os
import torch

torch.manual_seed(19)
OUT = os.path.join(os.path.dirname(__file__), "..", "reference_cases")
B, I, H, T = 2, 3, 4, 5


def vals(t):
    return "[" + ", ".join(repr(float(v)) for v in t.detach().reshape(-1).tolist()) + "]"


def typ(shape):
    return f"f64[{','.join(str(d) for d in shape)}]"


def const(name, t):
    return f"  %{name}: {typ(t.shape)} = constant(value={vals(t)})"


# The cell bodies; %x is one step's input [B, I], %h (and %c) the carries. Weights are
# PyTorch's: w_ih [G*H, I], w_hh [G*H, H], so the products use transpose_b.
PRODUCTS = """    %xw: f64[2,{g}] = matmul(%x, %wih, transpose_b=true)
    %xb: f64[2,{g}] = add(%xw, %bih)
    %hw: f64[2,{g}] = matmul(%h, %whh, transpose_b=true)
    %hb: f64[2,{g}] = add(%hw, %bhh)
"""
BODIES = {
    "rnn": (1, ["h"], """    %s: f64[2,4] = add(%xb, %hb)
    %h1: f64[2,4] = tanh(%s)
"""),
    "lstm": (4, ["h", "c"], """    %z: f64[2,16] = add(%xb, %hb)
    %zi: f64[2,4], %zf: f64[2,4], %zg: f64[2,4], %zo: f64[2,4] = split(%z, axis=1, sizes=[4, 4, 4, 4])
    %i: f64[2,4] = sigmoid(%zi)
    %f: f64[2,4] = sigmoid(%zf)
    %g: f64[2,4] = tanh(%zg)
    %o: f64[2,4] = sigmoid(%zo)
    %fc: f64[2,4] = mul(%f, %c)
    %ig: f64[2,4] = mul(%i, %g)
    %c1: f64[2,4] = add(%fc, %ig)
    %tc: f64[2,4] = tanh(%c1)
    %h1: f64[2,4] = mul(%o, %tc)
"""),
    "gru": (3, ["h"], """    %xr: f64[2,4], %xz: f64[2,4], %xn: f64[2,4] = split(%xb, axis=1, sizes=[4, 4, 4])
    %hr: f64[2,4], %hz: f64[2,4], %hn: f64[2,4] = split(%hb, axis=1, sizes=[4, 4, 4])
    %ar: f64[2,4] = add(%xr, %hr)
    %r: f64[2,4] = sigmoid(%ar)
    %az: f64[2,4] = add(%xz, %hz)
    %z: f64[2,4] = sigmoid(%az)
    %rh: f64[2,4] = mul(%r, %hn)
    %an: f64[2,4] = add(%xn, %rh)
    %n: f64[2,4] = tanh(%an)
    %one: f64[] = constant(value=[1.0])
    %omz: f64[2,4] = sub(%one, %z)
    %a: f64[2,4] = mul(%omz, %n)
    %zh: f64[2,4] = mul(%z, %h)
    %h1: f64[2,4] = add(%a, %zh)
"""),
}


def write(kind, reverse, batch_first):
    gates, carries, body = BODIES[kind]
    module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    cell = module(I, H, batch_first=batch_first).double()
    xs = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=torch.float64)
    init = [torch.randn(1, B, H, dtype=torch.float64) for _ in carries]
    axis = 1 if batch_first else 0
    seq = xs.flip(axis) if reverse else xs
    with torch.no_grad():
        out, state = cell(seq, tuple(init) if kind == "lstm" else init[0])
    if reverse:
        out = out.flip(axis)
    finals = list(state) if kind == "lstm" else [state]
    expected = [out] + finals
    name = f"scan_torch_{kind}" + ("_reverse" if reverse else "") + ("_axis1" if batch_first else "")
    ys = (B, T, H) if batch_first else (T, B, H)
    lines = [f"graph {name} {{"]
    lines += [f"  attr expected.r{i} = {vals(e)}" for i, e in enumerate(expected)]
    lines += [const(f"{c}0", t.reshape(B, H)) for c, t in zip(carries, init)]
    lines.append(const("xs", xs))
    for p in ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]:
        lines.append(const(p, getattr(cell, p)))
    results = ", ".join(f"%{c}T: f64[2,4]" for c in carries)
    operands = ", ".join(f"%{c}0" for c in carries)
    lines.append(f"  {results}, %ys: {typ(ys)} = scan({operands}, %xs, %weight_ih_l0, %weight_hh_l0, %bias_ih_l0, "
                 f"%bias_hh_l0, num_carries={len(carries)}, num_xs=1, length={T}, axis={axis}, "
                 f"reverse={'true' if reverse else 'false'}) {{")
    lines += [f"    %{c}: f64[2,4] = input()" for c in carries]
    g = gates * H
    lines += ["    %x: f64[2,3] = input()", f"    %wih: f64[{g},3] = input()", f"    %whh: f64[{g},4] = input()",
              f"    %bih: f64[{g}] = input()", f"    %bhh: f64[{g}] = input()"]
    lines.append((PRODUCTS.format(g=g) + body).rstrip("\n"))
    lines += [f"    output {c} = %{c}1" for c in carries] + ["    output y = %h1", "  }"]
    lines += ["  output r0 = %ys"] + [f"  output r{i + 1} = %{c}T" for i, c in enumerate(carries)]
    lines.append("}")
    with open(os.path.join(OUT, name + ".ir"), "w") as f:
        f.write("\n".join(lines) + "\n")


for kind in ["rnn", "lstm", "gru"]:
    write(kind, False, False)
write("rnn", True, True)
write("lstm", True, False)
write("gru", False, True)
