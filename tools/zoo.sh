#!/usr/bin/env bash
# The catalog as a model zoo (issue 23; not in CI: the whole catalog takes hours): every catalog
# model trains with its own train section, a bare `stag train models/NAME.stag`, and the script
# writes the zoo table in markdown: model, trainable parameters, data, epochs, wall time,
# examples/s, the test metric, and the command. The numbers come from what each run leaves in its
# run folder: log.jsonl (epoch lines: steps and training seconds; the test line) and run.json
# (data, epochs, threads); the parameter count from `stag ir`; the wall time is the process's,
# compile, data loading, validation and test included.
#
# Test metric: a classifier's test accuracy (a text classifier's macro-F1 first, as bert.stag
# trains for it); the autoencoder's test reconstruction loss (mse); a language model's last
# validation bits per character (the trainer scores character models on the validation split);
# a GAN's last epoch's D and G losses.
#
# Usage: tools/zoo.sh [MODEL...]   (default: every models/*.stag; needs dataset-fashion-mnist, fortunes)
# Environment: STAG (default build/tools/stag), OUT (default a new temporary folder: the run folders
# OUT/NAME and each training's output OUT/NAME.out stay there), TABLE (default OUT/zoo.md),
# REPORT_ONLY=1 (train nothing: the table of the runs already in OUT).
# Exits 1 when a training fails (its row says so); the table is written either way.
set -u
TIMEFORMAT='%R %U %S'
root=$(cd "$(dirname "$0")/.." && pwd)
stag=${STAG:-$root/build/tools/stag}
out=${OUT:-$(mktemp -d -t zoo.XXXXXX)}
table=${TABLE:-$out/zoo.md}
models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  for f in "$root"/models/*.stag; do models+=("$(basename "$f" .stag)"); done
fi
[ -x "$stag" ] || { echo "zoo.sh: $stag is not an executable (build first, or set STAG)" >&2; exit 2; }
for name in "${models[@]}"; do
  [ -f "$root/models/$name.stag" ] || { echo "zoo.sh: no models/$name.stag" >&2; exit 2; }
done
mkdir -p "$out"

status=0
[ "${REPORT_ONLY:-0}" = 1 ] || for name in "${models[@]}"; do
  echo "zoo.sh: training $name (stag train models/$name.stag; output in $out/$name.out) ..." >&2
  rm -rf "${out:?}/$name"
  # bash's `time`: wall, user and system seconds of the whole process.
  { time (cd "$root" && "$stag" train "models/$name.stag" --run-dir "$out/$name" >"$out/$name.out" 2>&1); } 2>"$out/$name.time"
  echo $? >"$out/$name.rc"
  [ "$(cat "$out/$name.rc")" = 0 ] || status=1
done

python3 - "$stag" "$root" "$out" "${models[@]}" >"$table" <<'EOF' || status=1
import json, math, os, re, subprocess, sys

stag, root, out, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
PARAM = re.compile(r"^\s*%[^:\s]+: \w+\[([0-9, ]*)\] = parameter\((.*)$", re.M)


def ir(name, model=None):
    cmd = [stag, "ir", os.path.join(root, "models", name + ".stag")] + (["--model", model] if model else [])
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def trainable(name):
    """Trainable parameters by `stag ir` (both models of a GAN file), and the batch."""
    text = ir(name)
    models = re.findall(r"^model (\w+)", open(os.path.join(root, "models", name + ".stag")).read(), re.M)
    texts = [ir(name, m) for m in models] if re.search(r"^gan ", open(os.path.join(root, "models", name + ".stag")).read(), re.M) else [text]
    count = sum(math.prod(int(d) for d in shape.split(",") if d.strip())
                for t in texts for shape, attrs in PARAM.findall(t) if "trainable=false" not in attrs)
    batch = re.search(r"^  attr batch = (\d+)", texts[0], re.M)
    return count, int(batch.group(1)) if batch else None


def minutes(s):
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min" if s >= 3600 else f"{int(s // 60)} min {int(s % 60):02d} s"


def is_text(name):
    """A text classifier: its training printed the `text: N texts in C classes` line."""
    try:
        with open(os.path.join(out, name + ".out"), errors="replace") as f:
            return any(line.startswith("text: ") for line in f.read().replace("\r", "\n").splitlines())
    except OSError:
        return False


def metric(epochs, test, text):
    if epochs and "loss_d" in epochs[-1]:
        e = epochs[-1]
        return f"loss_d {e['loss_d']:.4f}, loss_g {e['loss_g']:.4f} (last epoch)"
    if test is not None:
        if test.get("accuracy") is None:
            return f"test loss {test['loss']:.4f}"
        if text and "macro_f1" in test:  # a text classifier: macro-F1 first
            return f"test macro-F1 {test['macro_f1']:.4f}, accuracy {test['accuracy']:.4f}"
        return f"test accuracy {test['accuracy']:.4f}"
    if epochs and epochs[-1].get("val_bpc") is not None:
        return f"val bpc {epochs[-1]['val_bpc']:.4f} (val_loss {epochs[-1]['val_loss']:.4f})"
    return "-"


print("| model | parameters | data | epochs | wall time | examples/s | test metric | command |")
print("|---|---:|---|---:|---:|---:|---|---|")
for name in names:
    command = f"`stag train models/{name}.stag`"
    rc = open(os.path.join(out, name + ".rc")).read().strip()
    wall = float(open(os.path.join(out, name + ".time")).read().split()[0])
    try:
        params, batch = trainable(name)
    except (subprocess.CalledProcessError, OSError):
        params, batch = None, None
    run = os.path.join(out, name)
    events = []
    if os.path.exists(os.path.join(run, "log.jsonl")):
        with open(os.path.join(run, "log.jsonl")) as f:
            events = [json.loads(line) for line in f if line.strip()]
    settings = {}
    if os.path.exists(os.path.join(run, "run.json")):
        settings = json.load(open(os.path.join(run, "run.json"))).get("settings", {})
    epochs = [e for e in events if e.get("event") == "epoch"]
    tests = [e for e in events if e.get("event") == "test"]
    # An epoch line's seconds are that epoch's training time; a GAN's line has its own rate.
    if epochs and all("examples_per_second" in e for e in epochs):
        rate = sum(e["examples_per_second"] for e in epochs) / len(epochs)
    elif epochs and batch and sum(e.get("seconds", 0) for e in epochs) > 0:
        rate = epochs[-1]["step"] * batch / sum(e["seconds"] for e in epochs)
    else:
        rate = None
    result = metric(epochs, tests[-1] if tests else None, is_text(name))
    if rc != "0":
        result = f"failed (exit {rc}; {out}/{name}.out)"
    cells = [name, f"{params:,}" if params is not None else "?", settings.get("data", "?"),
             f"{len(epochs)}" + ("" if str(settings.get("epochs", len(epochs))) == str(len(epochs)) else f" of {settings['epochs']}"),
             minutes(wall), f"{rate:,.0f}" if rate else "?", result, command]
    print("| " + " | ".join(cells) + " |")
EOF
cat "$table"
echo "zoo.sh: table in $table; run folders in $out" >&2
exit $status
