"""What a reader sees in the pictures stag writes, for tests/cli/pictures.sh.

Each subcommand reads a picture as the tool a person would open it with has drawn it (Graphviz's
SVG of a DOT file, a JSON trace as a trace viewer loads it, stag's own SVG) and checks it against
the text stag prints for the same thing. It exits non-zero with the reason on a mismatch.

  dot SVG IR_TEXT [KERNEL_TEXT FUNCTION]  every node of the IR drawn once with its op and
                                          results on lines of their own; kernels as clusters
  shares SVG FUNCTION                     kernel clusters give their share of FUNCTION
  trace JSON KERNEL_TEXT FUNCTION         a Chrome trace with the kernels of FUNCTION
  roc SVG EVAL_OUT                        area under each drawn ROC curve = the printed AUC
  pr SVG                                  the drawn precision-recall curves give their AP
  confusion SVG EVAL_OUT                  every cell's count = the printed confusion matrix
  layers SVG IR_TEXT MAX_PT [KERNEL_TEXT FUNCTION]
                                          a large graph by its layers: a box for each layer's
                                          forward, each box once, every node in one box (and
                                          every kernel counted once), at most MAX_PT a side
  scope IR_TEXT SCOPE MAX_PT KERNEL_TEXT FUNCTION SVG...
                                          the pictures of one layer's phases: every node of the
                                          layer drawn once in them, kernels as clusters, each at
                                          most MAX_PT a side
"""
import json
import math
import re
import sys
import xml.etree.ElementTree as ET

SVG = "{http://www.w3.org/2000/svg}"


def fail(msg):
    sys.exit(f"{sys.argv[1]}: {msg}")


def texts(el):
    return [t.text or "" for t in el.iter(SVG + "text")]


def graph_values(ir_text):
    """{value name: (op, type)} of every node in graph IR text."""
    values = {}
    for line in ir_text.splitlines():
        m = re.match(r"\s+(%.*?) = (\w+)\(", line)
        if not m:
            continue
        for name, typ in re.findall(r"%([^\s:]+): (\w+(?:\[[^\]]*\])?)", m.group(1)):
            values[name] = (m.group(2), typ)
    return values


def sinks_of(ir_text):
    """The graph's outputs and updates as their drawn labels: ("output", NAME), ("update", %NAME)."""
    return set(re.findall(r"^\s+(output|update) (\S+) =", ir_text, re.M))


def drawn_nodes(root):
    """{node id: its text lines} and {cluster title: (its text lines, its box)}."""
    nodes, clusters = {}, {}
    for g in root.iter(SVG + "g"):
        title = g.find(SVG + "title").text if g.find(SVG + "title") is not None else ""
        if g.get("class") == "node":
            nodes[title] = (texts(g), point(g))
        elif g.get("class") == "cluster":
            poly = g.find(SVG + "polygon")
            xy = [tuple(map(float, p.split(","))) for p in poly.get("points").split()]
            box = (min(x for x, _ in xy), min(y for _, y in xy), max(x for x, _ in xy), max(y for _, y in xy))
            clusters[title] = (texts(g), box)
    return nodes, clusters


def point(g):
    t = g.find(SVG + "text")
    return (float(t.get("x")), float(t.get("y"))) if t is not None else (0.0, 0.0)


def kernels_of(kernel_text, function):
    """{kernel name: value names its comment says it computes} of one function of the kernel IR."""
    body = re.search(r"^  func %s \{\n(.*?)^  \}" % re.escape(function), kernel_text, re.M | re.S)
    if not body:
        fail(f"the kernel IR has no function {function}")
    kernels = {}
    for name, comment in re.findall(r"^    kernel (\w+)[^\n]*?\{(?:\s*#([^\n]*))?", body.group(1), re.M):
        kernels[name] = set(re.findall(r"%([^\s,=]+) =", comment or ""))
    return kernels


def check_dot(svg, ir_path, kernel_path=None, function=None):
    root = ET.parse(svg).getroot()
    for t in texts(root):
        if "\\" in t:
            fail(f"the label line {t!r} shows a literal escape sequence")
    ir = open(ir_path).read()
    values = graph_values(ir)
    nodes, clusters = drawn_nodes(root)
    where = {}
    for node_id, (lines, xy) in nodes.items():
        for line in lines[1:]:
            m = re.fullmatch(r"%(\S+): (.+)", line)
            if not m:
                continue
            name, typ = m.groups()
            if name not in values:
                fail(f"node {node_id} draws %{name}, which the IR does not define")
            if (lines[0], typ) != values[name]:
                fail(f"%{name} is drawn as {lines[0]} {typ}, the IR says {values[name]}")
            if name in where:
                fail(f"%{name} is drawn twice")
            where[name] = xy
    missing = sorted(set(values) - set(where))
    if missing:
        fail(f"{len(missing)} nodes are not drawn: {missing[:5]}")
    drawn_sinks = {tuple(ls) for ls, _ in nodes.values() if len(ls) == 2 and ls[0] in ("output", "update")}
    if drawn_sinks != sinks_of(ir):
        fail(f"outputs and updates drawn {sorted(drawn_sinks)[:4]}..., in the IR {sorted(sinks_of(ir))[:4]}...")
    if kernel_path:
        check_clusters(where, clusters, kernels_of(open(kernel_path).read(), function))
    print(f"{svg}: {len(where)} nodes, each with its op and results on lines of their own; {len(clusters)} clusters")


def check_clusters(where, clusters, kernels):
    """Every kernel cluster names a kernel of the function, and holds a node its kernel computes."""
    titled = {}
    for lines, box in clusters.values():
        m = re.fullmatch(r"kernel (\w+)", lines[0]) if lines else None
        if m:
            if m.group(1) not in kernels:
                fail(f"the cluster {lines[0]!r} is not a kernel of the function")
            titled.setdefault(m.group(1), []).append(box)
    if not titled:
        fail("no kernel is drawn as a cluster")
    inside = lambda xy, b: b[0] <= xy[0] <= b[2] and b[1] <= xy[1] <= b[3]
    for v, xy in where.items():
        boxes = [b for k, vs in kernels.items() if v in vs and k in titled for b in titled[k]]
        if boxes and not any(inside(xy, b) for b in boxes):
            fail(f"%{v} is drawn outside the cluster of the kernel that computes it")


def check_shares(svg, function):
    root = ET.parse(svg).getroot()
    shares = []
    for g in root.iter(SVG + "g"):
        lines = texts(g) if g.get("class") == "cluster" else []
        if len(lines) >= 2 and lines[0].startswith("kernel "):
            m = re.fullmatch(r"([\d.]+)% of (\w+)", lines[1])
            if not m or m.group(2) != function:
                fail(f"the cluster {lines[0]!r} says {lines[1]!r}, not its share of {function}")
            shares.append(float(m.group(1)))
    if not shares or not 0 < sum(shares) <= 100.5:
        fail(f"kernel shares {shares} do not add up to at most 100%")
    print(f"{svg}: {len(shares)} kernel clusters give their share of {function}, {sum(shares):.1f}% in all")


def check_trace(path, kernel_path, function):
    trace = json.load(open(path))
    events = trace["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "thread_name"}
    spans = [e for e in events if e.get("ph") == "X"]
    for e in spans:
        if not (isinstance(e["name"], str) and e["name"] and math.isfinite(e["ts"]) and e["dur"] >= 0 and e["tid"] in names):
            fail(f"the event {e} has no name, time or named track")
    fn = [e for e in spans if e.get("cat") == "function" and e["name"] == function]
    if len(fn) != 1:
        fail(f"{len(fn)} events of the function {function}")
    fn = fn[0]
    ks = [e for e in spans if e.get("cat") == "kernel" and e["tid"] == fn["tid"]]
    for k in ks:
        if k["ts"] < fn["ts"] - 1 or k["ts"] + k["dur"] > fn["ts"] + fn["dur"] + 1:
            fail(f"the kernel {k['name']} lies outside its call of {function}")
    expected = set(kernels_of(open(kernel_path).read(), function))
    if {k["name"] for k in ks} != expected:
        fail(f"the trace's kernels {sorted(k['name'] for k in ks)} are not the compiled {sorted(expected)}")
    print(f"{path}: {function} on track {names[fn['tid']]!r} with its {len(ks)} kernels inside it")


def chart(root):
    """The mapping from pixels to data: grid lines at the first and last tick, which read 0 and 1."""
    grid = [l for l in root.iter(SVG + "line") if l.get("stroke") == "#e4e4e4"]
    xs = sorted(float(l.get("x1")) for l in grid if l.get("x1") == l.get("x2"))
    ys = sorted(float(l.get("y1")) for l in grid if l.get("y1") == l.get("y2"))
    ticks = [t.text for t in root.iter(SVG + "text") if t.get("font-size") == "11"]
    if ticks.count("0.0") != 2 or ticks.count("1.0") != 2:
        fail(f"the axes do not run from 0.0 to 1.0: {ticks}")
    return lambda x, y: ((x - xs[0]) / (xs[-1] - xs[0]), (ys[-1] - y) / (ys[-1] - ys[0]))


def curves(root):
    """{colour: [(x, y) in data]} of each drawn curve, and {colour: (class, legend value)}."""
    to_data = chart(root)
    drawn = {}
    for p in root.iter(SVG + "polyline"):
        pts = [to_data(*map(float, xy.split(","))) for xy in p.get("points").split()]
        drawn[p.get("stroke")] = pts
    legend = {}
    elements = list(root)
    for i, el in enumerate(elements):
        if el.tag == SVG + "line" and el.get("stroke-width") == "2.5":
            legend[el.get("stroke")] = (elements[i + 1].text, elements[i + 2].text)
    if set(drawn) != set(legend) or not drawn:
        fail(f"curves {sorted(drawn)} and legend {sorted(legend)} differ")
    return drawn, legend


def class_table(eval_out):
    """{class: auc text} from the per-class table stag eval prints."""
    rows = {}
    lines = open(eval_out).read().splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("class ") and "auc" in l)
    for line in lines[start + 1:]:
        parts = line.split()
        if len(parts) < 6 or parts[0] == "macro":
            break
        rows[" ".join(parts[:-5])] = parts[-2]
    return rows


def check_roc(svg, eval_out):
    drawn, legend = curves(ET.parse(svg).getroot())
    printed = class_table(eval_out)
    for colour, pts in drawn.items():
        name, value = legend[colour]
        area = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(pts, pts[1:]))
        if value != f"AUC {printed[name]}":
            fail(f"the legend says {name} {value}, stag eval printed AUC {printed[name]}")
        if abs(area - float(printed[name])) > 1e-4:
            fail(f"the area under the drawn curve of {name} is {area:.6f}, the printed AUC {printed[name]}")
        if pts[0] != (0.0, 0.0) or pts[-1] != (1.0, 1.0):
            fail(f"the curve of {name} runs from {pts[0]} to {pts[-1]}, not (0, 0) to (1, 1)")
    print(f"{svg}: the area under each of the {len(drawn)} drawn ROC curves is its printed AUC")


def check_pr(svg):
    drawn, legend = curves(ET.parse(svg).getroot())
    for colour, pts in drawn.items():
        name, value = legend[colour]
        ap = sum((x1 - x0) * y1 for (x0, _), (x1, y1) in zip(pts, pts[1:]))
        if abs(ap - float(value.split()[1])) > 2e-3 or pts[-1][0] != 1.0:
            fail(f"the drawn curve of {name} has average precision {ap:.4f}, its legend says {value}")
    print(f"{svg}: {len(drawn)} precision-recall curves reaching recall 1 with their average precision")


def check_confusion(svg, eval_out):
    root = ET.parse(svg).getroot()
    counts = [int(t.text) for t in root.iter(SVG + "text") if (t.text or "").isdigit() and t.get("transform") is None]
    lines = open(eval_out).read().splitlines()
    n = int(math.isqrt(len(counts)))
    start = next(i for i, l in enumerate(lines) if l.startswith("true") or "predicted" in l)
    rows = [list(map(int, l.split()[-n:])) for l in lines[start + 1:start + 1 + n]]
    if n * n != len(counts) or [c for r in rows for c in r] != counts:
        fail(f"the drawn counts {counts[:12]}... are not the printed matrix {rows[:2]}...")
    print(f"{svg}: the {n}x{n} cells show the printed confusion matrix")


def size_pt(root):
    return tuple(float(root.get(k).rstrip("pt")) for k in ("width", "height"))


def check_size(svg, root, max_pt):
    w, h = size_pt(root)
    if max(w, h) > float(max_pt):
        fail(f"the picture is {w:.0f} x {h:.0f} pt, more than {max_pt} pt a side")


def no_escapes(root):
    for t in texts(root):
        if "\\" in t:
            fail(f"the label line {t!r} shows a literal escape sequence")


def node_scopes(ir_text):
    """[(first value name, its layer path or '')] of every node of graph IR text."""
    nodes = []
    for line in ir_text.splitlines():
        m = re.match(r"\s+%([^\s:]+): .*? = \w+\(.*?(?:loc\(\"[^\"]*\":\d+:\d+(?: in \"([^\"]*)\")?\))?$", line)
        if m:
            nodes.append((m.group(1), m.group(2) or ""))
    return nodes


def top_layer(scope):
    parts = scope.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and parts[1].isdigit() else parts[0]


def check_layers(svg, ir_path, max_pt, kernel_path=None, function=None):
    root = ET.parse(svg).getroot()
    no_escapes(root)
    check_size(svg, root, max_pt)
    nodes, _ = drawn_nodes(root)
    boxes = {}
    for lines, _ in nodes.values():
        m = re.fullmatch(r"(\d+) nodes?(?:, \d+ (?:parameters?|state tensors?))?", lines[1]) if len(lines) > 1 else None
        if m:
            if lines[0] in boxes:
                fail(f"the box {lines[0]!r} is drawn twice")
            boxes[lines[0]] = (int(m.group(1)), lines[2:])
    ir = node_scopes(open(ir_path).read())
    layers = {top_layer(s) for _, s in ir if s}
    if not layers or layers - set(boxes):
        fail(f"the layers {sorted(layers - set(boxes))} have no box of their own")
    if sum(n for n, _ in boxes.values()) != len(ir):
        fail(f"the boxes hold {sum(n for n, _ in boxes.values())} nodes, the IR has {len(ir)}")
    if kernel_path:
        kernels = sum(int(re.match(r"(\d+) kernels?", k[0]).group(1)) for _, k in boxes.values() if k)
        if kernels != len(kernels_of(open(kernel_path).read(), function)):
            fail(f"the boxes count {kernels} kernels, {function} has {len(kernels_of(open(kernel_path).read(), function))}")
    w, h = size_pt(root)
    print(f"{svg}: {len(boxes)} boxes holding all {len(ir)} nodes, every layer's forward one of them; {w:.0f} x {h:.0f} pt")


def check_scope(ir_path, scope, max_pt, kernel_path, function, *svgs):
    ir_text = open(ir_path).read()
    values = graph_values(ir_text)
    kernels = kernels_of(open(kernel_path).read(), function)
    where = {}
    for svg in svgs:
        root = ET.parse(svg).getroot()
        no_escapes(root)
        check_size(svg, root, max_pt)
        nodes, clusters = drawn_nodes(root)
        here = drawn_values(nodes, values, where)
        check_clusters(here, clusters, kernels)
    layer = {name for name, s in node_scopes(ir_text) if s == scope or s.startswith(scope + ".")}
    if layer - set(where):
        fail(f"{len(layer - set(where))} nodes of {scope} are not drawn: {sorted(layer - set(where))[:5]}")
    print(f"{scope}: {len(where)} nodes drawn once in {len(svgs)} pictures, all {len(layer)} of its source among them")


def drawn_values(nodes, values, where):
    """{value: its point} of the drawn nodes, each checked against the IR and drawn once in `where`."""
    here = {}
    for node_id, (lines, xy) in nodes.items():
        for line in lines[1:]:
            m = re.fullmatch(r"%(\S+): (.+)", line)
            if not m:
                continue
            name, typ = m.groups()
            if values.get(name) != (lines[0], typ):
                fail(f"node {node_id} draws %{name} as {lines[0]} {typ}, the IR says {values.get(name)}")
            if name in where:
                fail(f"%{name} is drawn twice")
            where[name] = here[name] = xy
    return here


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    sys.argv = [args[0]] + args  # messages name the file
    {"dot": check_dot, "shares": check_shares, "trace": check_trace, "roc": check_roc, "pr": check_pr,
     "confusion": check_confusion, "layers": check_layers, "scope": check_scope}[cmd](*args)


if __name__ == "__main__":
    main()
