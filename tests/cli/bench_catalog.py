#!/usr/bin/env python3
"""Every catalog model is in the benchmark (issue 23), without PyTorch: tools/bench/run.py's
TRAIN table has a row for each models/*.stag, each row's .stag file exists and names a catalog
model, its PyTorch workload is one torch_bench.py offers (and every one it offers is used), and
the trainable parameter count the row records (the count its PyTorch mirror was checked at with
`run.py --check-mirrors`) is still what `stag ir` gives, so a catalog model changed without its
mirror fails here.

    python3 tests/cli/bench_catalog.py STAG REPOSITORY_ROOT
"""
import glob
import importlib.util
import os
import sys


def load(name, path):
    sys.dont_write_bytecode = True  # no __pycache__ in the source tree
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: bench_catalog.py STAG REPOSITORY_ROOT")
    stag, root = sys.argv[1], os.path.abspath(sys.argv[2])
    run = load("bench_run", os.path.join(root, "tools", "bench", "run.py"))
    torch_bench = load("torch_bench", os.path.join(root, "tools", "bench", "torch_bench.py"))  # imports torch lazily
    problems = []

    catalog = sorted(os.path.basename(p)[:-len(".stag")] for p in glob.glob(os.path.join(root, "models", "*.stag")))
    if len(catalog) < 10:
        problems.append(f"only {len(catalog)} catalog models under {root}/models")
    covered = {row.catalog for row in run.TRAIN}
    for name in catalog:
        if name not in covered:
            problems.append(f"models/{name}.stag has no row in tools/bench/run.py's TRAIN table")
    names = [row.name for row in run.TRAIN]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"workload {name} appears twice")

    workloads = set(torch_bench.TRAIN_WORKLOADS) | {"dcgan-pair"}
    used_files = set()
    for row in run.TRAIN:
        where = f"TRAIN row {row.name}"
        if row.catalog not in catalog:
            problems.append(f"{where}: catalog model {row.catalog} is not in models/")
        path = os.path.join(root, row.stag)
        used_files.add(os.path.normpath(path))
        if not os.path.isfile(path):
            problems.append(f"{where}: {row.stag} does not exist")
            continue
        if os.path.dirname(row.stag) == "models" and row.stag != f"models/{row.catalog}.stag":
            problems.append(f"{where}: times {row.stag} but says it measures models/{row.catalog}.stag")
        if row.workload not in workloads:
            problems.append(f"{where}: torch_bench.py has no workload {row.workload}")
        for label, setting in (("full", row.full), ("quick", row.quick)):
            if setting is not None and not (len(setting) == 2 and setting[0] >= 0 and setting[1] >= 1):
                problems.append(f"{where}: {label} (warm-up, steps) is {setting}")
        if not row.name.startswith(row.workload.split("-")[0]) or not row.name.endswith(f"-b{row.batch}"):
            problems.append(f"{where}: the name should start with the workload and end with -b{row.batch}")
        params, trainable, err = run.stag_params(stag, path, row.models)
        if err:
            problems.append(f"{where}: {err}")
        elif not params:
            problems.append(f"{where}: no parameters read from `stag ir {row.stag}`")
        elif trainable != row.params:
            problems.append(f"{where}: `stag ir {row.stag}` gives {trainable} trainable parameters, the row records "
                            f"{row.params} (the count its PyTorch mirror was checked at; change the mirror in "
                            "tools/bench/torch_bench.py, run `run.py --check-mirrors`, then the count)")
    for workload in sorted(workloads - {row.workload for row in run.TRAIN}):
        problems.append(f"torch_bench.py's workload {workload} is in no TRAIN row")
    for path in sorted(glob.glob(os.path.join(root, "tools", "bench", "models", "*.stag"))):
        if os.path.normpath(path) not in used_files:
            problems.append(f"tools/bench/models/{os.path.basename(path)} is in no TRAIN row")

    for p in problems:
        print("FAIL:", p)
    print(f"bench_catalog: {len(catalog)} catalog models, {len(run.TRAIN)} workloads; "
          f"{'0 failed' if not problems else f'{len(problems)} failed'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
