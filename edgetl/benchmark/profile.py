"""`edgetl bench --profile`: where a model's time goes, op by op, on the machine it runs on.

ONNX Runtime times every node with its own profiler: time per op type per inference. LiteRT's
Python API has no per-op timer, so for TFLite the profile says which ops XNNPACK runs and which
fall back to LiteRT's own kernels: an op outside the delegate (a float op in an int8 graph, a
quantize step) is what usually keeps int8 from its speed-up, and what a change to the graph can
move. TensorFlow-free: it runs on devices too."""
from __future__ import annotations

import json
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgetl.errors import EdgetlError

WARMUP = 5


@dataclass
class OpShare:
    """One kind of op in a model."""

    op: str
    nodes: int
    """How many of the model's nodes are of this kind."""
    ms: float | None = None
    """Time per inference in these nodes (None where the runtime cannot time ops)."""
    share: float | None = None
    """Of the time in all nodes."""
    outside_delegate: int = 0
    """TFLite: nodes of this kind that XNNPACK left to LiteRT's own kernels."""


@dataclass
class Profile:
    """A model's ops, most expensive (ONNX) or most numerous (TFLite) first."""

    model: str
    runtime: str
    threads: int | None
    runs: int
    ops: list[OpShare] = field(default_factory=list)
    delegated: int | None = None
    """TFLite: nodes XNNPACK runs, of ``total_nodes``."""
    total_nodes: int = 0
    partitions: int | None = None
    """TFLite: how many pieces XNNPACK runs the graph in (each boundary costs a hand-over)."""

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


def profile(path: str | Path, threads: int | None = None, runs: int = 50) -> Profile:
    """Profile ``path`` (.onnx: time per op type over ``runs`` inferences after a warm-up;
    .tflite: which ops XNNPACK takes)."""
    path = Path(path)
    if not path.is_file():
        raise EdgetlError("no such model file", path=path, fix="give .tflite or .onnx files (edgetl export writes RUN/export/)")
    kinds = {".onnx": _onnx, ".tflite": _tflite}
    if path.suffix.lower() not in kinds:
        raise EdgetlError(f"--profile reads .onnx and .tflite models, not '{path.suffix or path.name}'", path=path,
                          fix="profile an exported model (RUN/export/)")
    return kinds[path.suffix.lower()](path, threads, runs)


def _random_input(clf) -> np.ndarray:
    """One prepared input, made the way every edgetl runtime makes it (the model's own contract)."""
    h, w = clf.pixels.height, clf.pixels.width
    return clf.to_input(np.random.default_rng(0).integers(0, 256, (1, h, w, 3), dtype=np.uint8))


def _onnx(path: Path, threads: int | None, runs: int) -> Profile:
    import onnxruntime as ort

    from edgetl.runtime import load

    # ONNX Runtime profiles only a session created to: the runtime's own makes the input.
    x = _random_input(load(path, threads=threads))
    with tempfile.TemporaryDirectory(prefix="edgetl-profile-") as tmp:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: x}
        for _ in range(WARMUP + runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text(encoding="utf-8"))
    # Only the timed runs: node events after the warm-up's last model_run began.
    starts = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    cutoff = starts[WARMUP] if len(starts) > WARMUP else 0
    time_us: Counter = Counter()
    nodes: dict[str, set] = {}
    for e in events:
        if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time") and e.get("ts", 0) >= cutoff:
            op = str((e.get("args") or {}).get("op_name", "?"))
            time_us[op] += e.get("dur", 0)
            nodes.setdefault(op, set()).add(e["name"])
    total = sum(time_us.values()) or 1
    ops = [OpShare(op, len(nodes[op]), us / 1000 / runs, us / total) for op, us in time_us.most_common()]
    return Profile(path.name, f"onnxruntime {ort.__version__}", threads, runs, ops,
                   total_nodes=sum(o.nodes for o in ops))


def _ops(interpreter) -> list[dict]:
    # LiteRT's Python API lists a model's nodes only through this private method (no public
    # equivalent). Once XNNPACK has run, each partition it took is one more DELEGATE node.
    return interpreter._get_ops_details()


def _inside_delegates(ops: list[dict]) -> set[int]:
    """The model's own nodes that XNNPACK runs: everything on a path back from a DELEGATE node's
    outputs to its inputs (a partition's internal nodes are exactly those)."""
    producer = {t: op["index"] for op in ops if op["op_name"] != "DELEGATE" for t in op["outputs"]}
    inside: set[int] = set()
    for partition in (op for op in ops if op["op_name"] == "DELEGATE"):
        stop, todo = set(partition["inputs"]), list(partition["outputs"])
        while todo:
            tensor = todo.pop()
            node = producer.get(tensor)
            if tensor in stop or node is None or node in inside:
                continue
            inside.add(node)
            todo.extend(ops[node]["inputs"])
    return inside


def _tflite(path: Path, threads: int | None, runs: int) -> Profile:
    from edgetl.runtime import load

    # The runtime's own interpreter (loaded once, its delegate's native notice kept quiet): no
    # timing option is needed, only the nodes once XNNPACK has taken its partitions on a first run.
    clf = load(path, threads=threads)
    clf.backend.run(_random_input(clf))
    ops = _ops(clf.backend.interpreter)
    own = [op for op in ops if op["op_name"] != "DELEGATE"]
    inside = _inside_delegates(ops)
    every = Counter(op["op_name"] for op in own)
    outside = Counter(op["op_name"] for op in own if op["index"] not in inside)
    ops_shares = [OpShare(op, n, outside_delegate=outside.get(op, 0)) for op, n in every.most_common()]
    return Profile(path.name, clf.runtime, threads, 0, ops_shares, delegated=len(inside), total_nodes=len(own),
                   partitions=len(ops) - len(own))
