#!/usr/bin/env python3
"""Data-parallel scaling on paper (docs/distributed.md): a ring all-reduce's time,
2(N-1)/N * bytes / bandwidth + 2(N-1) * hop latency, against the measured compute time of a
step, projected to N nodes at a per-node batch fixed at the model's catalog batch (weak scaling).

  dist_cost.py --measure --stag build/tools/stag > tools/bench/dist_inputs.json   # measure here
  dist_cost.py tools/bench/dist_inputs.json                                      # the tables

Measured per model: the train step's time (stag bench --train, the fastest of --steps steps, since
the machine is shared), the forward's (stag bench, inference), and the bytes the processes
average (the loss and every gradient: the size `stag ir --processes 2 --stage kernels` prints on
its one bucket's split point). The backward (and update) is the step minus the forward: the
window in which bucketed all-reduces travel while the processor computes.
"""
import argparse
import json
import re
import subprocess
import sys

MODELS = ["mlp", "lenet5", "resnet", "gpt"]
NODES = [8, 64, 512]
GBITS = [10, 25, 100]
HOP_LATENCY_S = 10e-6  # one message over TCP on 10-100 GbE, per ring step


def bench(stag, model, train, threads, steps):
    cmd = [stag, "bench", f"models/{model}.stag", "--threads", str(threads), "--steps", str(steps), "--warmup", "2", "--json"]
    if train:
        cmd.append("--train")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def exchanged_bytes(stag, model):
    cmd = [stag, "ir", f"models/{model}.stag", "--processes", "2", "--bucket-mb", "100000", "--stage", "kernels"]
    text = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    m = re.search(r"exchange start bucket 0 \(.*\)  # (\d+) bytes", text)
    if not m:
        sys.exit(f"{model}: no split point in stag ir --processes 2")
    return int(m.group(1))


def measure(args):
    rows = []
    for model in args.models:
        step = bench(args.stag, model, True, args.threads, args.steps)
        fwd = bench(args.stag, model, False, args.threads, args.steps)
        rows.append({"model": model, "batch": step["batch"], "threads": args.threads, "step_ms": step["min_ms"],
                     "step_median_ms": step["median_ms"], "forward_ms": fwd["min_ms"], "bytes": exchanged_bytes(args.stag, model)})
        print(f"measured {rows[-1]}", file=sys.stderr)
    json.dump({"host": args.host, "rows": rows}, sys.stdout, indent=1)
    print()


def ring_seconds(nbytes, nodes, gbits):
    return 2 * (nodes - 1) / nodes * nbytes * 8 / (gbits * 1e9) + 2 * (nodes - 1) * HOP_LATENCY_S


def tables(data):
    out = []
    for r in data["rows"]:
        step = r["step_ms"] / 1e3
        backward = max(step - r["forward_ms"] / 1e3, 0.0)
        out.append(f"\n**{r['model']}** (batch {r['batch']} a node, {r['bytes'] / 2**20:.2f} MB averaged, step "
                   f"{r['step_ms']:.1f} ms of which backward and update {backward * 1e3:.1f} ms, {r['threads']} threads)\n")
        out.append("| nodes | Gbit/s | all-reduce ms | efficiency, after the backward | efficiency, overlapped |")
        out.append("|---:|---:|---:|---:|---:|")
        for n in NODES:
            for g in GBITS:
                comm = ring_seconds(r["bytes"], n, g)
                # After the backward: compute, then the whole all-reduce. Overlapped: the buckets travel
                # during the backward; what does not fit in it is exposed (at best; the last bucket's
                # latency is always exposed).
                exposed = max(comm - backward, 2 * (n - 1) * HOP_LATENCY_S)
                out.append(f"| {n} | {g} | {comm * 1e3:.2f} | {step / (step + comm):.1%} | {step / (step + exposed):.1%} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="?", help="measurements written by --measure")
    ap.add_argument("--measure", action="store_true", help="measure the models here and print the inputs as JSON")
    ap.add_argument("--stag", default="build/tools/stag")
    ap.add_argument("--models", nargs="+", default=MODELS)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--host", default="", help="a note on the machine and its load, kept with the numbers")
    args = ap.parse_args()
    if args.measure:
        measure(args)
    elif args.inputs:
        with open(args.inputs) as f:
            print(tables(json.load(f)))
    else:
        ap.error("give the measurements' file, or --measure")


if __name__ == "__main__":
    main()
