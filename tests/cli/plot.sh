#!/usr/bin/env bash
# `stag plot`: a real training log and a GAN-style log become SVG panels with finite coordinates;
# PNG through rsvg-convert when it is installed; errors name the file and line.
# Usage: plot.sh STAG MODELS_DIR   (needs the dataset-fashion-mnist package and python3)
set -u
stag=$1 models=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# expect STATUS TEXT -- ARGS...: stag exits with STATUS and says TEXT on stderr.
expect() {
  local want=$1 text=$2
  shift 3
  "$stag" "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  [ "$got" -eq "$want" ] || { cat "$tmp/err"; fail "stag $* exited $got, expected $want"; }
  grep -qF -- "$text" "$tmp/err" || { cat "$tmp/err"; fail "stag $*: expected '$text' on stderr"; }
}

# check_svg FILE TITLE...: the SVG parses as XML, every coordinate is a finite number, and each
# TITLE is the heading of a panel (bold text).
check_svg() {
  python3 - "$@" <<'EOF' || fail "$1 is not the expected SVG"
import math, re, sys, xml.etree.ElementTree as ET
path, titles = sys.argv[1], sys.argv[2:]
root = ET.parse(path).getroot()
ns = "{http://www.w3.org/2000/svg}"
numbers = 0
for el in root.iter():
    for attr in ("x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "width", "height"):
        if attr in el.attrib:
            assert math.isfinite(float(el.attrib[attr])), (el.tag, attr, el.attrib[attr])
            numbers += 1
    for pair in el.attrib.get("points", "").split():
        assert all(math.isfinite(float(v)) for v in pair.split(",")), pair
        numbers += 1
headings = [t.text for t in root.iter(ns + "text") if t.get("font-weight") == "bold"]
missing = [t for t in titles if t not in headings]
assert not missing, f"missing panels {missing}; headings: {headings}"
assert numbers > 100, numbers
EOF
}

# A short real run: one epoch line (300 of its steps), steps 1..300.
"$stag" train "$models/mlp.stag" --epochs 2 --max-steps 300 --validation 0.05 --no-test --threads 2 \
  --log "$tmp/L.jsonl" >"$tmp/train.out" 2>&1 || { cat "$tmp/train.out"; fail "training failed"; }
"$stag" plot "$tmp/L.jsonl" -o "$tmp/L.svg" || fail "stag plot failed on a training log"
check_svg "$tmp/L.svg" "$tmp/L.jsonl" loss "train_loss, val_loss" val_accuracy val_macro_f1 lr
# The step curve has all 300 steps, raw and smoothed (two polylines of 300 points).
python3 - "$tmp/L.svg" <<'EOF' || fail "the step panel does not hold 300 raw and 300 smoothed points"
import sys, xml.etree.ElementTree as ET
lines = [p.get("points").split() for p in ET.parse(sys.argv[1]).getroot().iter("{http://www.w3.org/2000/svg}polyline")]
assert [len(p) for p in lines[:2]] == [300, 300], [len(p) for p in lines]
assert lines[0] != lines[1], "smoothing changed nothing"
EOF
# Smoothing 0 draws the smoothed curve on the raw one.
"$stag" plot "$tmp/L.jsonl" -o "$tmp/L0.svg" --smoothing 0 || fail "--smoothing 0 failed"
python3 - "$tmp/L0.svg" <<'EOF' || fail "--smoothing 0 changed the curve"
import sys, xml.etree.ElementTree as ET
lines = [p.get("points") for p in ET.parse(sys.argv[1]).getroot().iter("{http://www.w3.org/2000/svg}polyline")]
assert lines[0] == lines[1]
EOF
"$stag" plot "$tmp/L.jsonl" -o - --title "my run" > "$tmp/stdout.svg" || fail "-o - failed"
check_svg "$tmp/stdout.svg" "my run" loss

# A GAN's log (the keys the GAN trainer writes), with a resumed stretch that logs steps 91..100
# again: each step is drawn once, with its last value.
python3 - "$tmp/gan.jsonl" <<'EOF'
import json, math, sys
with open(sys.argv[1], "w") as f:
    def step(s, shift=0.0):
        f.write(json.dumps({"event": "step", "step": s, "epoch": 1 + (s - 1) // 50, "lr": 2e-4, "seconds": 0.01 * s,
                            "loss_d": 1.3 - 0.4 * math.tanh(s / 80) + 0.1 * math.sin(s) + shift,
                            "loss_g": 0.7 + 0.5 * math.tanh(s / 80) + 0.1 * math.cos(s) + shift,
                            "d_real_accuracy": 0.5 + 0.3 * math.tanh(s / 60), "d_fake_accuracy": 0.5 + 0.25 * math.tanh(s / 90)}) + "\n")
    for s in range(1, 101): step(s)
    for s in range(91, 201): step(s, 0.05)
    for e in range(1, 5):
        f.write(json.dumps({"event": "epoch", "epoch": e, "step": 50 * e, "seconds": 0.5 * e, "loss_d": 1.1, "loss_g": 0.9,
                            "fid": 120 / e, "classifier_score": 3 + e / 2}) + "\n")
    f.write("\n")
EOF
"$stag" plot "$tmp/gan.jsonl" -o "$tmp/gan.svg" || fail "stag plot failed on a GAN log"
check_svg "$tmp/gan.svg" "loss_d, loss_g" "d_real_accuracy, d_fake_accuracy" fid classifier_score
python3 - "$tmp/gan.svg" <<'EOF' || fail "the GAN's step curves are not 200 steps each"
import sys, xml.etree.ElementTree as ET
lines = [p.get("points").split() for p in ET.parse(sys.argv[1]).getroot().iter("{http://www.w3.org/2000/svg}polyline")]
assert [len(p) for p in lines[:8]] == [200] * 8, [len(p) for p in lines]
EOF

# PNG through rsvg-convert: the size of the SVG, and far from blank.
if command -v rsvg-convert >/dev/null; then
  "$stag" plot "$tmp/gan.jsonl" -o "$tmp/gan.png" || fail "PNG output failed"
  python3 - "$tmp/gan.png" "$tmp/gan.svg" <<'EOF' || fail "the PNG is not a rendering of the curves"
import re, struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, ihdr = 8, b"", None
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR": ihdr = struct.unpack(">IIBB", body[:10])
    if kind == b"IDAT": idat += body
    pos += 12 + n
w, h, depth, color = ihdr
svg = open(sys.argv[2]).read()
assert (w, h) == tuple(int(float(v)) for v in re.search(r'width="([\d.]+)" height="([\d.]+)"', svg).groups()), (w, h)
channels = {0: 1, 2: 3, 4: 2, 6: 4}[color]
raw = zlib.decompress(idat)
assert len(raw) == h * (1 + w * channels * depth // 8), "truncated pixel data"
assert len(idat) > 20000, f"only {len(idat)} compressed bytes: a nearly blank picture"
EOF
  ls "$tmp" | grep -q 'tmp' && fail "a temporary file was left behind"
else
  echo "SKIPPED: PNG output (rsvg-convert is not installed; apt-get install librsvg2-bin)"
fi

# Errors: a missing file and bad flags exit 2; a bad line or a log without numbers exit 1.
expect 2 "cannot open '$tmp/missing.jsonl'" -- plot "$tmp/missing.jsonl" -o "$tmp/x.svg"
expect 2 "must end in .svg or .png" -- plot "$tmp/L.jsonl" -o "$tmp/x.pdf"
expect 2 "smoothing" -- plot "$tmp/L.jsonl" -o "$tmp/x.svg" --smoothing 1.5
expect 2 "log" -- plot -o "$tmp/x.svg"
head -2 "$tmp/L.jsonl" > "$tmp/bad.jsonl"
echo '{"event":"step","step":3,"loss":' >> "$tmp/bad.jsonl"
expect 1 "$tmp/bad.jsonl:3: not a JSON object" -- plot "$tmp/bad.jsonl" -o "$tmp/x.svg"
echo '{"event":"start","model":"mlp"}' > "$tmp/empty.jsonl"
expect 1 "$tmp/empty.jsonl: no numbers to plot" -- plot "$tmp/empty.jsonl" -o "$tmp/x.svg"
[ -e "$tmp/x.svg" ] && fail "a failed plot wrote its output"
echo "plot: all checks passed"
