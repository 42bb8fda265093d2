#!/usr/bin/python3
"""Writes tests/ir/reference_cases/*.ir: one graph per op case, inputs as constants, with the
outputs PyTorch computes in float64 kept as `attr expected.NAME = [...]`. The C++ test runs each
graph in stag's reference interpreter and compares. Needs python3-torch; the tests do not.

    /usr/bin/python3 tests/ir/pytorch/gen_reference_cases.py   (Debian python3-torch)
"""
import os
import torch
import torch.nn.functional as F

torch.manual_seed(1234)
OUT = os.path.join(os.path.dirname(__file__), "..", "reference_cases")
DT = {torch.float64: "f64", torch.int64: "i64", torch.bool: "bool"}


def fmt_list(t):
    vals = t.detach().reshape(-1).tolist()
    if t.dtype == torch.bool:
        vals = [int(v) for v in vals]
    return "[" + ", ".join(repr(float(v)) if t.dtype == torch.float64 else str(int(v)) for v in vals) + "]"


def typ(t):
    return f"{DT[t.dtype]}[{','.join(str(d) for d in t.shape)}]"


def lit(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(str(x) for x in v) + "]"
    if isinstance(v, str):
        return v if v in DT.values() else f'"{v}"'
    return repr(v)


cases = []


def case(name, op, inputs, attrs, outputs):
    """inputs: list of tensors; outputs: tensor or list of tensors (PyTorch's results)."""
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    lines = [f"graph {name} {{"]
    for i, o in enumerate(outputs):
        lines.append(f"  attr expected.r{i} = {fmt_list(o)}")
    for i, t in enumerate(inputs):
        lines.append(f"  %in{i}: {typ(t)} = constant(value={fmt_list(t)})")
    args = [f"%in{i}" for i in range(len(inputs))] + [f"{k}={lit(v)}" for k, v in attrs.items()]
    results = ", ".join(f"%r{i}: {typ(o)}" for i, o in enumerate(outputs))
    lines.append(f"  {results} = {op}({', '.join(args)})")
    for i in range(len(outputs)):
        lines.append(f"  output r{i} = %r{i}")
    lines.append("}")
    cases.append((name, "\n".join(lines) + "\n"))


def r(*shape):
    return torch.randn(*shape, dtype=torch.float64)


x = r(3, 4)
pos = torch.rand(3, 4, dtype=torch.float64) + 0.1
for op, fn, inp in [("neg", torch.neg, x), ("abs", torch.abs, x), ("exp", torch.exp, x), ("log", torch.log, pos),
                    ("sqrt", torch.sqrt, pos), ("rsqrt", torch.rsqrt, pos), ("square", torch.square, x),
                    ("tanh", torch.tanh, x), ("sigmoid", torch.sigmoid, x), ("relu", torch.relu, x),
                    ("sign", torch.sign, x)]:
    case(f"unary_{op}", op, [inp], {}, fn(inp))
case("unary_leaky_relu", "leaky_relu", [x], {"alpha": 0.2}, F.leaky_relu(x, 0.2))
case("unary_gelu", "gelu", [x], {}, F.gelu(x))
case("unary_gelu_tanh", "gelu", [x], {"approximate": "tanh"}, F.gelu(x, approximate="tanh"))
case("cast_f64_i64", "cast", [x * 3], {"to": "i64"}, (x * 3).to(torch.int64))

a, b = r(3, 1, 4), r(5, 1)
for op, fn in [("add", torch.add), ("sub", torch.sub), ("mul", torch.mul), ("div", torch.div),
               ("maximum", torch.maximum), ("minimum", torch.minimum)]:
    case(f"binary_{op}", op, [a, b], {}, fn(a, b))
e = torch.linspace(-2, 2, 4, dtype=torch.float64)
case("binary_pow", "pow", [pos, e], {}, torch.pow(pos, e))
ia, ib = torch.randint(-20, 20, (4, 5)), torch.randint(1, 7, (5,)) * torch.tensor([1, -1, 1, -1, 1])
case("binary_add_int", "add", [ia, ib], {}, ia + ib)
ca, cb = torch.randint(0, 3, (2, 3)).double(), torch.randint(0, 3, (3,)).double()
for op, fn in [("gt", torch.gt), ("ge", torch.ge), ("lt", torch.lt), ("le", torch.le), ("eq", torch.eq)]:
    case(f"compare_{op}", op, [ca, cb], {}, fn(ca, cb))
cond = torch.rand(4, 1) > 0.5
sa, sb = r(1, 3), r(4, 3)
case("select_broadcast", "select", [cond, sa, sb], {}, torch.where(cond, sa, sb))

t = r(2, 3, 4)
case("sum_all", "sum", [t], {}, t.sum())
case("sum_axes", "sum", [t], {"axes": [0, -1]}, t.sum(dim=(0, 2)))
case("sum_keepdims", "sum", [t], {"axes": [1], "keepdims": True}, t.sum(dim=1, keepdim=True))
case("mean_axes", "mean", [t], {"axes": [2]}, t.mean(dim=2))
case("max_axes", "max", [t], {"axes": [1]}, t.amax(dim=1))
case("max_keepdims", "max", [t], {"axes": [0, 2], "keepdims": True}, t.amax(dim=(0, 2), keepdim=True))
ties = torch.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 1.0]], dtype=torch.float64)
case("argmax_ties", "argmax", [ties], {"axis": 1}, torch.argmax(ties, dim=1))
case("argmax_keepdims", "argmax", [t], {"axis": -2, "keepdims": True}, torch.argmax(t, dim=-2, keepdim=True))

m1, m2 = r(3, 5), r(5, 4)
case("matmul_2d", "matmul", [m1, m2], {}, m1 @ m2)
case("matmul_ta_tb", "matmul", [m1.t().contiguous(), m2.t().contiguous()], {"transpose_a": True, "transpose_b": True}, m1 @ m2)
b1, b2 = r(2, 1, 3, 4), r(5, 4, 2)
case("matmul_batched_broadcast", "matmul", [b1, b2], {}, b1 @ b2)

cx = r(2, 4, 7, 6)
for name, kw in [("plain", dict()), ("stride_pad", dict(stride=[2, 1], padding=[1, 2])),
                 ("dilation", dict(dilation=[2, 1], padding=[1, 1])), ("groups", dict(groups=2, stride=[2, 2]))]:
    g = kw.get("groups", 1)
    w = r(6, 4 // g, 3, 2)
    bias = r(6)
    y = F.conv2d(cx, w, bias, stride=kw.get("stride", [1, 1]), padding=kw.get("padding", [0, 0]),
                 dilation=kw.get("dilation", [1, 1]), groups=g)
    case(f"conv2d_{name}", "conv2d", [cx, w, bias], kw, y)
wn = r(5, 4, 1, 1)
case("conv2d_nobias_1x1", "conv2d", [cx, wn], {}, F.conv2d(cx, wn))
tx = r(2, 4, 3, 5)
for name, kw in [("plain", dict()), ("stride_pad_outpad", dict(stride=[2, 3], padding=[1, 0], output_padding=[1, 2])),
                 ("groups_dilation", dict(groups=2, dilation=[2, 1]))]:
    g = kw.get("groups", 1)
    w = r(4, 3, 3, 2)
    bias = r(3 * g)
    y = F.conv_transpose2d(tx, w, bias, stride=kw.get("stride", [1, 1]), padding=kw.get("padding", [0, 0]),
                           output_padding=kw.get("output_padding", [0, 0]), groups=g, dilation=kw.get("dilation", [1, 1]))
    case(f"conv_transpose2d_{name}", "conv_transpose2d", [tx, w, bias], kw, y)

px = r(2, 3, 7, 8)
case("max_pool2d_plain", "max_pool2d", [px], {"kernel": [2, 2]}, F.max_pool2d(px, 2))
case("max_pool2d_pad_ceil", "max_pool2d", [px], {"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1], "ceil_mode": True},
     F.max_pool2d(px, 3, 2, 1, ceil_mode=True))
case("max_pool2d_dilation", "max_pool2d", [px], {"kernel": [2, 3], "stride": [1, 2], "dilation": [2, 1]},
     F.max_pool2d(px, (2, 3), (1, 2), 0, dilation=(2, 1)))
case("avg_pool2d_plain", "avg_pool2d", [px], {"kernel": [2, 2]}, F.avg_pool2d(px, 2))
case("avg_pool2d_pad_include", "avg_pool2d", [px], {"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1]},
     F.avg_pool2d(px, 3, 2, 1))
case("avg_pool2d_pad_exclude_ceil", "avg_pool2d", [px],
     {"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1], "ceil_mode": True, "count_include_pad": False},
     F.avg_pool2d(px, 3, 2, 1, ceil_mode=True, count_include_pad=False))
case("avg_pool2d_ceil_include", "avg_pool2d", [px], {"kernel": [3, 3], "stride": [2, 2], "ceil_mode": True},
     F.avg_pool2d(px, 3, 2, 0, ceil_mode=True))
case("global_avg_pool", "global_avg_pool", [px], {}, F.adaptive_avg_pool2d(px, 1))

bx = r(4, 3, 2, 5)
gamma, beta, rm, rv = r(3), r(3), r(3), torch.rand(3, dtype=torch.float64) + 0.5
y = F.batch_norm(bx, rm.clone(), rv.clone(), gamma, beta, training=True, eps=1e-5)
mean = bx.mean(dim=(0, 2, 3))
var = bx.var(dim=(0, 2, 3), unbiased=False)
case("batch_norm_train", "batch_norm", [bx, gamma, beta, rm, rv], {"training": True}, [y, mean, var])
y = F.batch_norm(bx, rm, rv, gamma, beta, training=False, eps=1e-3)
case("batch_norm_eval", "batch_norm", [bx, gamma, beta, rm, rv], {"eps": 1e-3}, [y, rm, rv])
lx = r(2, 3, 4)
case("layer_norm_plain", "layer_norm", [lx], {}, F.layer_norm(lx, (4,)))
lw, lb = r(3, 4), r(3, 4)
case("layer_norm_affine_2d", "layer_norm", [lx, lw, lb], {"normalized_dims": 2, "eps": 1e-6}, F.layer_norm(lx, (3, 4), lw, lb, eps=1e-6))
case("dropout_eval", "dropout", [lx], {"training": False}, lx)
case("dropout_p0", "dropout", [lx], {"p": 0.0}, lx)
case("softmax_axis1", "softmax", [lx], {"axis": 1}, torch.softmax(lx, 1))
case("log_softmax_last", "log_softmax", [lx * 30], {}, torch.log_softmax(lx * 30, -1))
ew, ids = r(7, 3), torch.randint(0, 7, (2, 4))
case("embedding", "embedding", [ew, ids], {}, F.embedding(ids, ew))
case("one_hot", "one_hot", [ids], {"num_classes": 7, "dtype": "f64"}, F.one_hot(ids, 7).double())

sx = r(2, 3, 4)
case("reshape_infer", "reshape", [sx], {"shape": [4, -1]}, sx.reshape(4, -1))
case("transpose", "transpose", [sx], {"perm": [2, 0, 1]}, sx.permute(2, 0, 1))
bt = r(3, 1)
case("broadcast_to", "broadcast_to", [bt], {"shape": [2, 3, 4]}, bt.expand(2, 3, 4))
c1, c2 = r(2, 1, 4), r(2, 2, 4)
case("concat_axis1", "concat", [sx, c1, c2], {"axis": 1}, torch.cat([sx, c1, c2], 1))
case("slice_steps_negative", "slice", [sx], {"axes": [2, 1], "starts": [-3, 0], "ends": [4, 3], "steps": [2, 2]},
     sx[:, 0:3:2, 1:4:2])
case("pad_pairs", "pad", [sx], {"pads": [0, 1, 2, 0, 1, 1], "value": 1.5}, F.pad(sx, (1, 1, 2, 0, 0, 1), value=1.5))
fx = r(2, 3, 4, 5)
case("flatten_middle", "flatten", [fx], {"start_dim": 1, "end_dim": 2}, torch.flatten(fx, 1, 2))
case("split_axis2", "split", [sx], {"axis": 2, "sizes": [1, 3]}, list(torch.split(sx, [1, 3], dim=2)))

p, tg = r(3, 4), r(3, 4)
for red in ["mean", "sum", "none"]:
    case(f"mse_{red}", "mse", [p, tg], {"reduction": red}, F.mse_loss(p, tg, reduction=red))
    case(f"huber_{red}", "huber", [p, tg], {"reduction": red, "delta": 0.7}, F.huber_loss(p, tg, reduction=red, delta=0.7))
    prob = torch.rand(3, 4, dtype=torch.float64)
    case(f"bce_with_logits_{red}", "bce_with_logits", [p * 5, prob], {"reduction": red},
         F.binary_cross_entropy_with_logits(p * 5, prob, reduction=red))
logits, labels = r(5, 4), torch.tensor([0, 3, -100, 1, 3])
for red in ["mean", "sum", "none"]:
    case(f"cross_entropy_{red}", "cross_entropy", [logits, labels], {"reduction": red},
         F.cross_entropy(logits, labels, reduction=red))
    case(f"cross_entropy_smooth_{red}", "cross_entropy", [logits, labels], {"reduction": red, "label_smoothing": 0.2},
         F.cross_entropy(logits, labels, reduction=red, label_smoothing=0.2))
    lp = torch.log_softmax(logits, 1)
    case(f"nll_{red}", "nll", [lp, labels], {"reduction": red}, F.nll_loss(lp, labels, reduction=red))
case("l1_penalty", "l1_penalty", [p], {}, p.abs().sum())
case("l2_penalty", "l2_penalty", [p], {}, (p * p).sum())



# max_pool2d_grad(x, dy): PyTorch's gradient of max_pool2d, each window's dy added at its max's
# index. Last, so that the cases above keep their random draws.
def pool_grad_case(name, x, **kw):
    x = x.detach().clone().requires_grad_(True)
    y = F.max_pool2d(x, **kw)
    dy = r(*y.shape)
    y.backward(dy)
    attrs = {"kernel": list(kw["kernel_size"])}
    if "stride" in kw:
        attrs["stride"] = list(kw["stride"])
    for key in ["padding", "dilation"]:
        if key in kw:
            attrs[key] = list(kw[key])
    if kw.get("ceil_mode"):
        attrs["ceil_mode"] = True
    case(f"max_pool2d_grad_{name}", "max_pool2d_grad", [x.detach(), dy], attrs, x.grad)


pool_grad_case("plain", px, kernel_size=(2, 2))
# integers in {0, 1, 2}: most windows hold ties, and the first maximum takes the gradient
pool_grad_case("ties", torch.randint(0, 3, (2, 2, 6, 7)).double(), kernel_size=(2, 3), stride=(2, 2))
nan = r(1, 2, 6, 6)
nan[0, 0, 0, 0] = nan[0, 0, 1, 1] = nan[0, 1, 2, 3] = float("nan")  # two NaNs in a window: the last takes
nan[0, 1, 4, 4] = float("inf")
pool_grad_case("nan", nan, kernel_size=(2, 2))
# stride below the kernel: windows overlap and their gradients add up
pool_grad_case("overlap_pad_ceil", px, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), ceil_mode=True)
pool_grad_case("overlap_stride1", torch.randint(0, 4, (1, 2, 5, 6)).double(), kernel_size=(2, 2), stride=(1, 1))
pool_grad_case("dilation", px, kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1))
neg = torch.full((1, 1, 4, 5), float("-inf"), dtype=torch.float64)
neg[0, 0, 3, 4] = 1.0
# windows of -inf only, some over the padding: the first position inside takes the gradient
pool_grad_case("neg_inf_padding", neg, kernel_size=(3, 2), stride=(1, 2), padding=(1, 1), ceil_mode=True)


# embedding_grad(dy, ids): the weight's gradient PyTorch's embedding backward gives, repeated
# ids adding up (more ids than rows; some rows never named). Last, for the random draws above.
def embedding_grad_case(name, v, ids):
    w = r(v, 3).requires_grad_(True)
    y = F.embedding(ids, w)
    dy = r(*y.shape)
    y.backward(dy)
    case(f"embedding_grad_{name}", "embedding_grad", [dy, ids], {"num_embeddings": v}, w.grad)


embedding_grad_case("repeats", 5, torch.randint(0, 4, (3, 4)))
embedding_grad_case("scalar_id", 4, torch.tensor(2))

# cross_entropy with a -inf logit away from the label (a masked class): finite without smoothing
masked = torch.tensor([[0.0, float("-inf"), 1.0], [2.0, 0.5, float("-inf")]], dtype=torch.float64)
masked_labels = torch.tensor([0, 1])
case("cross_entropy_masked_logits", "cross_entropy", [masked, masked_labels], {"reduction": "none"},
     F.cross_entropy(masked, masked_labels, reduction="none"))

os.makedirs(OUT, exist_ok=True)
for f in os.listdir(OUT):
    if f.endswith(".ir"):
        os.remove(os.path.join(OUT, f))
for name, text in cases:
    with open(os.path.join(OUT, name + ".ir"), "w") as fh:
        fh.write(text)
print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)}")
