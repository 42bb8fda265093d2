#!/usr/bin/env python3
"""The benchmark of issues 8, 17 and 23: stag against PyTorch on the same machine, in the same run.

    python3 tools/bench/run.py --stag build/tools/stag [--quick] [--only WORKLOAD,...] [--out table.md]
    python3 tools/bench/run.py --stag build/tools/stag --check-mirrors     # the mirrors' parameters only

Every catalog model's train step (models/*.stag, the TRAIN table) runs in stag at 1 and 2 threads
(`stag bench ... --json`, one process each; where the CPU has bf16 units, also with `--precision
bf16`, autocast's semantics) and in PyTorch (tools/bench/torch_bench.py, a mirror
of the model) at each thread setting, intra-op + OpenBLAS threads (1+1, 1+2, 2+2), and where the
CPU has bf16 units (/proc/cpuinfo's avx512_bf16 or amx_bf16) also with bf16 autocast at 1+1 and
2+2, reporting PyTorch at its fastest setting and naming it. OpenBLAS reads its thread count
when it loads, hence one process per setting. Before timing a workload the mirror's parameter
names and shapes are compared with `stag ir`'s; a difference is an error (exit 1). sgemm compares stag's matmul with numpy's (OpenBLAS) at
the same thread count; on CPUs with bf16 units bgemm compares stag's bf16 GEMM with PyTorch's bf16 matmul, and
the table opens with the host's f32 FMA and bf16 peaks by stag's own loops (`stag bench --peak`). Timings are
medians of separately timed steps after warm-up.

Debian's PyTorch and numpy do their GEMMs in whatever libblas.so.3 the system selects; without
OpenBLAS installed that is the slow reference BLAS, which the table then says. `--blas-dir DIR`
puts DIR (e.g. an unpacked libopenblas0-pthread's usr/lib/x86_64-linux-gnu/openblas-pthread)
first on the PyTorch processes' library path without installing anything.

Standard library only; the PyTorch columns say n/a when `import torch` fails.
"""
import argparse
import collections
import datetime
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODELS = os.path.join(HERE, "models")
TORCH_SCRIPT = os.path.join(HERE, "torch_bench.py")


class Train(collections.namedtuple("Train", "name stag batch workload full quick catalog models params")):
    """A train-step workload: its name; the .stag file stag times (relative to the repository);
    the batch; torch_bench.py's workload; (warm-up, steps); the same for --quick, or None to leave
    it out of the smoke run (as the LSTM's 20 s compile is); the catalog model (models/NAME.stag)
    it measures; the models of the file whose parameters the mirror's must equal (None: the
    file's first); and the trainable parameter count the mirror was checked at, which `stag ir`
    must still give (tests/cli/bench_catalog.py checks it without PyTorch: a changed catalog
    model needs its mirror changed and checked again, `run.py --check-mirrors`)."""


def train_row(name, stag, batch, workload, full, quick, catalog, models=None, params=None):
    return Train(name, stag, batch, workload, full, quick, catalog, models, params)


# Every catalog model has a row (tests/bench/catalog_test.py checks it). Where the benchmark
# times a copy in tools/bench/models/ the copy says how it differs from the catalog's file.
TRAIN = [
    train_row("mlp-b64", "tools/bench/models/mlp.stag", 64, "mlp", (5, 50), (1, 3), "mlp", params=535_818),
    train_row("mlp-b256", "tools/bench/models/mlp.stag", 256, "mlp", (3, 30), None, "mlp", params=535_818),
    train_row("lenet5-b64", "tools/bench/models/lenet5.stag", 64, "lenet5", (3, 30), (1, 2), "lenet5", params=61_706),
    train_row("gpt-b16", "tools/bench/models/gpt.stag", 16, "gpt", (3, 15), (1, 2), "gpt", params=818_176),
    train_row("lstm-b32", "tools/bench/models/lstm_lm.stag", 32, "lstm", (3, 15), None, "lstm_lm", params=432_224),
    train_row("char-rnn-b32", "models/char_rnn.stag", 32, "char-rnn", (3, 30), (1, 2), "char_rnn", params=43_360),
    train_row("gru-lm-b32", "models/gru_lm.stag", 32, "gru-lm", (3, 15), None, "gru_lm", params=728_160),
    train_row("alexnet-b64", "models/alexnet.stag", 64, "alexnet", (3, 15), None, "alexnet", params=1_708_298),
    train_row("autoencoder-b128", "models/autoencoder.stag", 128, "autoencoder", (5, 50), (1, 3), "autoencoder", params=437_664),
    train_row("bow-logreg-b64", "models/bow_logreg.stag", 64, "bow-logreg", (5, 50), (1, 3), "bow_logreg", params=79_872),
    train_row("bert-b32", "models/bert.stag", 32, "bert", (3, 15), (1, 2), "bert", params=688_679),
    train_row("resnet-b64", "models/resnet.stag", 64, "resnet", (3, 15), None, "resnet", params=174_970),
    train_row("vgg-b64", "models/vgg.stag", 64, "vgg", (3, 15), None, "vgg", params=584_618),
    train_row("vit-tiny-b64", "models/vit_tiny.stag", 64, "vit-tiny", (3, 20), None, "vit_tiny", params=139_018),
    train_row("row-rnn-b64", "models/row_rnn.stag", 64, "row-rnn", (3, 20), (1, 2), "row_rnn", params=61_578),
    train_row("dcgan-d-b64", "tools/bench/models/dcgan_d.stag", 64, "dcgan-d", (3, 20), None, "dcgan", params=138_624),
    train_row("dcgan-g-b64", "tools/bench/models/dcgan_g.stag", 64, "dcgan-g", (3, 20), None, "dcgan", params=759_680),
    # The GAN's whole iteration: `stag bench` on a file with a `gan` times D step + G step, compiled as one
    # pair_step (G(z) computed once) when d_steps = 1; `--separate-steps` times them compiled apart.
    train_row("dcgan-pair-b64", "models/dcgan.stag", 64, "dcgan-pair", (3, 20), None, "dcgan",
              models=["generator", "discriminator"], params=898_304),
]
# (N, (warmup, steps), quick): fewer steps as the size grows, so the default run stays short.
# (size, (warm-up, steps), quick or None). Large sizes still take a dozen steps: on a shared VM
# a few slow steps make the median of five meaningless.
SGEMM = [(128, (5, 30), (1, 3)), (256, (3, 20), (1, 3)), (512, (3, 15), None),
         (1024, (3, 15), None), (2048, (2, 9), None)]
# bf16 GEMM sizes, on CPUs with bf16 units only (issue 17: at least 2,000 GFLOP/s a core at 1024 on AMX).
BGEMM = [(256, (3, 20), (1, 3)), (512, (3, 15), None), (1024, (3, 15), None), (2048, (2, 9), None)]
STAG_THREADS = [1, 2]
# (torch.set_num_threads, OPENBLAS_NUM_THREADS, autocast): f32 at every thread setting; where the
# CPU has bf16 units (cpu_info()), also forward and loss under torch.autocast("cpu", bfloat16).
TORCH_SETTINGS = [(1, 1, False), (1, 2, False), (2, 2, False)]
AUTOCAST_SETTINGS = [(1, 1, True), (2, 2, True)]
# The /proc/cpuinfo flags that decide which kernels stag and PyTorch can use.
CPU_FLAGS = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16"]
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_info():
    """(model name, {flag: present} for CPU_FLAGS), from /proc/cpuinfo's first processor."""
    name, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and name == "unknown CPU":
                    name = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return name, {flag: flag in flags for flag in CPU_FLAGS}


def setting_name(setting):
    intra, blas, autocast = setting
    return f"{intra}+{blas}" + (" bf16 autocast" if autocast else "")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run_json(cmd, env=None, timeout=1800):
    """Runs a command that prints one JSON object last; returns (dict or None, error text)."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s: {' '.join(cmd)}"
    except OSError as e:
        return None, f"cannot run {cmd[0]}: {e}"
    if p.returncode != 0:
        return None, f"exit {p.returncode}: {' '.join(cmd)}\n{p.stderr.strip()[-2000:]}"
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return None, f"no JSON from {' '.join(cmd)}:\n{p.stdout[-2000:]}"
    return json.loads(lines[-1]), ""


class Torch:
    def __init__(self, python, blas_dir):
        self.python, self.blas_dir = python, blas_dir
        ok = subprocess.run([python, "-c", "import torch, numpy"], capture_output=True).returncode == 0
        self.available = ok
        self.version = None
        if ok:
            out = subprocess.run([python, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True)
            self.version = out.stdout.strip()

    def env(self, blas_threads):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(blas_threads))
        if self.blas_dir:
            env["LD_LIBRARY_PATH"] = self.blas_dir + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
        return env

    def run(self, args, blas_threads):
        return run_json([self.python, TORCH_SCRIPT] + args, env=self.env(blas_threads))


def stag_bench(stag, args):
    return run_json([stag, "bench"] + args + ["--json"])


def fmt_ms(x):
    return "n/a" if x is None else (f"{x:.3f}" if x < 10 else f"{x:.1f}" if x < 1000 else f"{x:.0f}")


def fmt_ratio(torch_ms, stag_ms):
    return "n/a" if torch_ms is None or stag_ms is None else f"{torch_ms / stag_ms:.2f}"


def selected(name, only):
    return not only or any(name.startswith(o) for o in only)


def bench_gemm(args, torch, errors, kind):
    """sgemm: stag's f32 matmul against numpy's (the BLAS); bgemm: its bf16 GEMM (bf16 operands,
    f32 accumulation) against PyTorch's bf16 matmul. [(N, threads, stag result, theirs)]."""
    rows = []
    for n, full, quick in SGEMM if kind == "sgemm" else BGEMM:
        if not selected(f"{kind}-{n}", args.only) or (args.quick and quick is None):
            continue
        warmup, steps = quick if args.quick else full
        timing = ["--warmup", str(warmup), "--steps", str(steps)]
        for t in STAG_THREADS:
            log(f"{kind} {n}: stag on {t} thread(s) ...")
            precision = ["--precision", "bf16"] if kind == "bgemm" else []
            s, err = stag_bench(args.stag, ["--matmul", str(n)] + precision + ["--threads", str(t)] + timing)
            if err:
                errors.append(err)
            b = None
            if torch.available:
                log(f"{kind} {n}: {'numpy/BLAS' if kind == 'sgemm' else 'PyTorch'} on {t} thread(s) ...")
                b, err = torch.run([kind, "--size", str(n), "--torch-threads", str(t)] + timing, t)
                if err:
                    errors.append(err)
            rows.append((n, t, s, b))
    return rows


PEAK_LINE = re.compile(r"^peak (.+) on (\d+) threads?: ([0-9.]+) GFLOP/s$", re.M)


def bench_peaks(args, errors):
    """The host's peaks by stag's built-in loops (`stag bench --peak`): [(what, threads, GFLOP/s)]."""
    log("peaks: stag bench --peak ...")
    try:
        p = subprocess.run([args.stag, "bench", "--peak", "--threads", str(max(STAG_THREADS))], capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        errors.append(f"stag bench --peak: {e}")
        return []
    if p.returncode != 0:
        errors.append(f"stag bench --peak: exit {p.returncode}: {p.stderr.strip()[-500:]}")
    return [(what, int(t), float(g)) for what, t, g in PEAK_LINE.findall(p.stdout)]


def stag_params(stag, file, models):
    """{name: shape} of the parameters (running statistics included) of the models of a .stag
    file, and the trainable count, as `stag ir` prints them; (None, None, error) on failure."""
    params, trainable = {}, 0
    for model in models or [None]:
        cmd = [stag, "ir", file] + (["--model", model] if model else [])
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, None, f"{' '.join(cmd)}: {e}"
        if p.returncode != 0:
            return None, None, f"exit {p.returncode}: {' '.join(cmd)}\n{p.stderr.strip()[-2000:]}"
        for name, shape, attrs in PARAM_LINE.findall(p.stdout):
            dims = [int(d) for d in shape.split(",") if d.strip()]
            params[name] = dims
            if "trainable=false" not in attrs:
                trainable += math.prod(dims)
    return params, trainable, ""


# `  %layer1.0.conv1.weight: f32[16,16,3,3] = parameter(init="kaiming_uniform", a=2.2) loc(...)`
PARAM_LINE = re.compile(r"^\s*%([^:\s]+): \w+\[([0-9, ]*)\] = parameter\((.*)$", re.M)


def check_mirror(args, torch, row):
    """Compares the PyTorch mirror's state_dict (names and shapes) with the stag model's
    parameters. Returns (stag trainable count, torch trainable count, problem or "")."""
    ours, ours_trainable, err = stag_params(args.stag, os.path.join(ROOT, row.stag), row.models)
    if err:
        return None, None, err
    if not torch.available:
        return ours_trainable, None, ""
    theirs, err = torch.run([row.workload, "--params"], 1)
    if err:
        return ours_trainable, None, err
    problems = []
    if row.params != ours_trainable:
        problems.append(f"run.py's TRAIN row records {row.params} trainable parameters, stag has {ours_trainable}")
    if theirs["trainable"] != ours_trainable:
        problems.append(f"trainable parameters: stag {ours_trainable}, PyTorch {theirs['trainable']}")
    for name in sorted(set(ours) | set(theirs["params"])):
        a, b = ours.get(name), theirs["params"].get(name)
        if a != b:
            problems.append(f"{name}: stag {a if a is not None else 'none'}, PyTorch {b if b is not None else 'none'}")
    if problems:
        return ours_trainable, theirs["trainable"], (f"{row.name}: the PyTorch mirror ({row.workload}) differs from "
                                                     f"{row.stag}: " + "; ".join(problems[:8]))
    return ours_trainable, theirs["trainable"], ""


def torch_settings(args, bf16):
    if args.quick:
        return [(1, 2, False)] + ([(1, 1, True)] if bf16 else [])
    return TORCH_SETTINGS + (AUTOCAST_SETTINGS if bf16 else [])


def stag_precisions(bf16):
    """stag in f32 and, where the CPU has bf16 units, with --precision bf16 (autocast's semantics)."""
    return ["f32", "bf16"] if bf16 else ["f32"]


def bench_train(args, torch, errors, bf16):
    rows = []
    for row in TRAIN:
        if not selected(row.name, args.only) or (args.quick and row.quick is None):
            continue
        warmup, steps = row.quick if args.quick else row.full
        log(f"{row.name}: parameters of {row.stag} and its PyTorch mirror ...")
        ours, theirs, err = check_mirror(args, torch, row)
        if err:
            errors.append(err)
        stag_runs = {}
        for t in STAG_THREADS:
            for precision in stag_precisions(bf16):
                log(f"{row.name}: stag {precision} on {t} thread(s) ...")
                r, err = stag_bench(args.stag, [os.path.join(ROOT, row.stag), "--train", "--batch", str(row.batch), "--threads",
                                                str(t), "--warmup", str(warmup), "--steps", str(steps), "--precision", precision])
                if err:
                    errors.append(err)
                stag_runs[(t, precision)] = r
        torch_runs = {}
        if torch.available:
            for setting in torch_settings(args, bf16):
                intra, blas, autocast = setting
                log(f"{row.name}: PyTorch {setting_name(setting)} ...")
                r, err = torch.run([row.workload, "--batch", str(row.batch), "--torch-threads", str(intra), "--warmup", str(warmup),
                                    "--steps", str(steps)] + (["--autocast"] if autocast else []), blas)
                if err:
                    errors.append(err)
                if r:
                    torch_runs[setting] = r
        rows.append((row.name, stag_runs, torch_runs, (ours, theirs)))
    return rows


def timed(cmd, env=None, timeout=1800):
    """Wall seconds of a whole process, start to exit (None and the error on failure)."""
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{' '.join(cmd)}: {e}"
    seconds = time.monotonic() - t0
    if p.returncode != 0:
        return None, f"exit {p.returncode}: {' '.join(cmd)}\n{p.stderr.strip()[-2000:]}"
    return seconds, ""


def bench_epoch(args, torch, errors):
    """A whole epoch of the MLP on Fashion-MNIST (batch 64, Adam), process start to exit:
    `stag train` (compile, load, train, validate, test) against the same in PyTorch."""
    if not selected("mlp-epoch", args.only) or args.quick:
        return None
    if not os.path.isdir("/usr/share/datasets/fashion-mnist"):
        log("mlp-epoch: no dataset-fashion-mnist; skipped")
        return None
    # Cold: LLVM compiles everything. Cached: the same command again with the JIT's object cache
    # filled by an untimed first run, as a user's second run finds it.
    # --no-save: PyTorch's side writes no checkpoint either.
    train = [args.stag, "train", os.path.join(MODELS, "mlp.stag"), "--epochs", "1", "--no-save"]
    log("mlp-epoch: stag train (cold) ...")
    stag_s, err = timed(train, env=dict(os.environ, STAG_JIT_CACHE="off"))
    if err:
        errors.append(err)
    with tempfile.TemporaryDirectory() as cache:
        cached_env = dict(os.environ, STAG_JIT_CACHE=cache)
        log("mlp-epoch: stag train (cached code) ...")
        _, err = timed(train + ["--max-steps", "1", "--no-test"], env=cached_env)
        cached_s, err2 = (None, err) if err else timed(train, env=cached_env)
        if err or err2:
            errors.append(err or err2)
    runs = {}
    if torch.available:
        for intra, blas, _ in TORCH_SETTINGS[:2]:
            log(f"mlp-epoch: PyTorch {intra}+{blas} ...")
            sec, err = timed([torch.python, TORCH_SCRIPT, "mlp-epoch", "--torch-threads", str(intra)], env=torch.env(blas))
            if err:
                errors.append(err)
            elif sec is not None:
                runs[(intra, blas)] = sec
    return stag_s, cached_s, runs


def render_gemm(title, other, rows):
    out = [title, "", f"| size | threads | stag ms | stag GFLOP/s | {other} ms | {other} GFLOP/s | ratio | stag compile s |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, t, s, b in rows:
        sm, bm = (s["median_ms"] if s else None), (b["median_ms"] if b else None)
        cells = [fmt_ms(sm) if s else "error", f"{s['gflops']:.2f}" if s else "n/a", fmt_ms(bm),
                 f"{b['gflops']:.2f}" if b else "n/a", fmt_ratio(bm, sm), f"{s['compile_s']:.2f}" if s else "n/a"]
        out.append("| " + " | ".join([str(n), str(t)] + cells) + " |")
    return out + [""]


def render(args, torch, sgemm_rows, train_rows, blas_name, epoch_row=None, cpu=None, bgemm_rows=(), peaks=()):
    name, flags = cpu or cpu_info()
    have = " ".join(f for f, on in flags.items() if on) or "none"
    lack = " ".join(f for f, on in flags.items() if not on)
    out = [f"Measured {datetime.date.today().isoformat()} on {name}, {os.cpu_count()} cores, {platform.system()}; "
           f"PyTorch {torch.version or 'n/a'} on {blas_name}{' (quick run)' if args.quick else ''}.",
           f"CPU flags: {have}" + (f" (not: {lack})" if lack else "") + "; PyTorch bf16 autocast settings "
           + ("run (the CPU has bf16 units)." if any(flags.get(f) for f in BF16_FLAGS) else "not run (no bf16 units)."), ""]
    if train_rows:
        out += ["Train steps (forward, backward, optimizer update); ratio = PyTorch ms / stag ms, > 1: stag is faster. "
                "PyTorch at its fastest setting (intra-op + OpenBLAS threads, f32 or with bf16 autocast around forward "
                "and loss); the others in the last column. Parameters: the trainable count, equal in stag and the "
                "PyTorch mirror (names and shapes checked).", "",
                "| workload | params | threads | stag precision | stag ms/step | PyTorch ms/step | ratio | stag compile s | "
                "stag peak RSS MB | PyTorch peak RSS MB | PyTorch setting |",
                "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|"]
        for name, stag_runs, torch_runs, (ours, theirs) in train_rows:
            best = min(torch_runs.items(), key=lambda kv: kv[1]["median_ms"]) if torch_runs else None
            setting = "n/a"
            if best:
                others = ", ".join(f"{setting_name(k)}: {fmt_ms(r['median_ms'])}" for k, r in torch_runs.items() if k != best[0])
                setting = setting_name(best[0]) + (f" (others {others})" if others else "")
            tm = best[1]["median_ms"] if best else None
            torch_rss = f"{best[1]['peak_rss_mb']:.0f}" if best else "n/a"
            count = "n/a" if ours is None else f"{ours:,}" if theirs in (None, ours) else f"{ours:,} (PyTorch {theirs:,})"
            for (t, precision), s in sorted(stag_runs.items(), key=lambda kv: (kv[0][0], kv[0][1] != "f32")):
                if s:
                    cells = [fmt_ms(s["median_ms"]), fmt_ms(tm), fmt_ratio(tm, s["median_ms"]), f"{s['compile_s']:.2f}",
                             f"{s['peak_rss_mb']:.0f}"]
                else:
                    cells = ["error", fmt_ms(tm), "n/a", "n/a", "n/a"]
                out.append("| " + " | ".join([name, count, str(t), precision] + cells + [torch_rss, setting]) + " |")
        out.append("")
    if epoch_row:
        stag_s, cached_s, runs = epoch_row
        best = min(runs.items(), key=lambda kv: kv[1]) if runs else None
        out += ["A whole epoch of the MLP on Fashion-MNIST (batch 64, Adam; training, validation and test), "
                "process start to exit; PyTorch at its faster setting. Cold: stag compiles with LLVM; cached: a second "
                "run, its code from the JIT's object cache.", "",
                "| workload | stag s | PyTorch s | ratio | PyTorch setting |", "|---|---:|---:|---:|---|"]
        for label, sec in (("mlp-epoch (cold)", stag_s), ("mlp-epoch (cached)", cached_s)):
            out.append("| {} | {} | {} | {} | {} |".format(
                label, f"{sec:.2f}" if sec else "error", f"{best[1]:.2f}" if best else "n/a",
                f"{best[1] / sec:.2f}" if best and sec else "n/a", f"{best[0][0]}+{best[0][1]}" if best else "n/a"))
        out.append("")
    if peaks:
        out += ["Peaks of this host by stag's built-in loops (`stag bench --peak`): " +
                "; ".join(f"{what} on {t} thread{'s' if t > 1 else ''} {g:.1f} GFLOP/s" for what, t, g in peaks) + ".", ""]
    if sgemm_rows:
        out += render_gemm("sgemm (N x N x N, f32); the comparison is numpy's matmul on the same BLAS at the same thread count.",
                           "BLAS", sgemm_rows)
    if bgemm_rows:
        out += render_gemm("bgemm (N x N x N, bf16 operands, f32 accumulation: `stag bench --matmul N --precision bf16`); the "
                           "comparison is PyTorch's bf16 matmul (torch.matmul on bfloat16 tensors) at the same thread count.",
                           "PyTorch", bgemm_rows)
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stag", required=True, help="the stag executable (build/tools/stag)")
    p.add_argument("--quick", action="store_true", help="a one-minute smoke run: few steps, small sizes")
    p.add_argument("--only", default="", help="comma-separated workloads or prefixes: sgemm, sgemm-512, mlp, mlp-b64, "
                                             "lenet5, gpt, lstm, char-rnn, gru-lm, alexnet, autoencoder, bow-logreg, "
                                             "bert, resnet, vgg, vit-tiny, row-rnn, dcgan")
    p.add_argument("--out", help="also write the table (markdown) to this file")
    p.add_argument("--check-mirrors", action="store_true",
                   help="only compare every selected workload's PyTorch mirror with its stag model (names, shapes, "
                        "trainable count) and time nothing")
    p.add_argument("--python", default="/usr/bin/python3", help="the interpreter with torch and numpy")
    p.add_argument("--blas-dir", help="a directory put first on the PyTorch processes' LD_LIBRARY_PATH (e.g. OpenBLAS's)")
    args = p.parse_args()
    # Compile times are cold: no stag process here takes code from the JIT's object cache
    # unless it says so (the cached epoch).
    os.environ["STAG_JIT_CACHE"] = "off"
    args.only = [o for o in args.only.split(",") if o]
    if not os.access(args.stag, os.X_OK):
        p.error(f"--stag {args.stag}: not an executable")
    known = [w.name for w in TRAIN] + ["mlp-epoch"] + [f"sgemm-{n}" for n, _, _ in SGEMM] + [f"bgemm-{n}" for n, _, _ in BGEMM]
    for o in args.only:
        if not any(selected(k, [o]) for k in known):
            p.error(f"--only {o}: no such workload; workloads: {', '.join(known)}")
    if args.blas_dir and not os.path.isdir(args.blas_dir):
        p.error(f"--blas-dir {args.blas_dir}: not a directory")

    torch = Torch(args.python, args.blas_dir)
    blas_name = "n/a"
    if torch.available:
        r, _ = torch.run(["sgemm", "--size", "8", "--warmup", "0", "--steps", "1"], 1)
        blas_name = r["blas"] if r else "unknown BLAS"
        if r and "openblas" not in blas_name:
            blas_name += " (the reference BLAS, not OpenBLAS: PyTorch's GEMMs are far from their fast path; see --blas-dir)"
    else:
        log(f"{args.python}: cannot import torch and numpy; the PyTorch columns say n/a")

    cpu = cpu_info()
    bf16 = any(cpu[1].get(f) for f in BF16_FLAGS)
    errors = []
    if args.check_mirrors:
        if not torch.available:
            p.error("--check-mirrors needs torch")
        for row in TRAIN:
            if selected(row.name, args.only):
                ours, theirs, err = check_mirror(args, torch, row)
                print(err if err else f"{row.name}: {ours:,} trainable parameters, names and shapes equal "
                      f"({row.stag}, torch_bench.py {row.workload})")
                if err:
                    errors.append(err)
        return 1 if errors else 0
    train_rows = bench_train(args, torch, errors, bf16)
    epoch_row = bench_epoch(args, torch, errors)
    sgemm_rows = bench_gemm(args, torch, errors, "sgemm")
    bgemm_rows = bench_gemm(args, torch, errors, "bgemm") if bf16 else []
    peaks = bench_peaks(args, errors) if sgemm_rows or bgemm_rows else []
    table = render(args, torch, sgemm_rows, train_rows, blas_name, epoch_row, cpu, bgemm_rows, peaks)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")
    for e in errors:
        log("error: " + e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
