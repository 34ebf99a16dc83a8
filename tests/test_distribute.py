"""Training input from disk and training across processes: shards, epochs, two real workers on loopback."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers.cli import run_cli
from helpers.images import make_shapes
from helpers.shared import needs_weights, WEIGHTS


def _store_of(values: np.ndarray):
    from edgetl.data.cache import temporary_store

    store = temporary_store(len(values), values.shape[1:], values.dtype)
    store.write(0, values)
    return store


def test_each_epoch_reads_every_item_once_in_a_new_seeded_order():
    from edgetl.training.inputs import Split, dataset

    values = np.arange(50, dtype=np.float32).reshape(50, 1)
    split = Split(_store_of(values), np.arange(50) % 3)
    ds = dataset(split, 3, 8, seed=4, shuffle=True)
    epochs = [np.concatenate([x.numpy()[:, 0] for x, _, _ in ds]) for _ in range(2)]
    assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(50))
    assert list(epochs[0]) != list(epochs[1])  # reshuffled
    again = np.concatenate([x.numpy()[:, 0] for x, _, _ in dataset(split, 3, 8, seed=4, shuffle=True)])
    assert list(again) == list(epochs[0])  # seeded: a resumed run reads what it would have read
    for x, y, w in ds:  # labels and weights travel with their items
        assert (y.numpy().argmax(1) == x.numpy()[:, 0].astype(int) % 3).all() and (w.numpy() == 1).all()


def test_augmented_views_are_read_one_view_per_epoch():
    from edgetl.training.inputs import Split, dataset

    n, views = 10, 3
    values = np.array([[v * 100 + i] for v in range(views) for i in range(n)], np.float32)  # view-major
    ds = dataset(Split(_store_of(values), np.zeros(n, np.int64)), 2, 4, seed=0, shuffle=True, first_epoch=1, views=views)
    for epoch in (1, 2, 3):
        seen = sorted(int(v) for x, _, _ in ds for v in x.numpy()[:, 0])
        assert seen == [(epoch % views) * 100 + i for i in range(n)]


def test_an_epoch_from_the_disk_cache_holds_a_few_batches_not_the_split(tmp_path):
    """One shuffled epoch over 3,000 images at 224 (450 MB on disk, 1.8 GB as float32) raises the
    process's peak RSS by a few batches only; read rate printed (the suite measures it for real)."""
    code = f"""
import re, time, numpy as np
from edgetl.data.cache import temporary_store
from edgetl.training.inputs import Split, dataset
def hwm():
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) // 1024
store = temporary_store(3000, (224, 224, 3), np.uint8, folder={str(tmp_path)!r})
for i in range(0, 3000, 100):
    store.write(i, np.random.default_rng(i).integers(0, 256, (100, 224, 224, 3), np.uint8))
ds = dataset(Split(store, np.arange(3000) % 4), 4, 32, seed=0, shuffle=True)
for _ in ds.take(3):
    pass
before, t = hwm(), time.perf_counter()
n = sum(int(x.shape[0]) for x, _, _ in ds)
print(n, hwm() - before, n / (time.perf_counter() - t))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    n, grew, rate = proc.stdout.split()
    print(f"epoch of {n} images: peak RSS +{grew} MB, {float(rate):.0f} images/s")
    assert int(n) == 3000 and int(grew) < 150


def test_workers_get_disjoint_shards_and_the_same_number_of_whole_batches():
    from edgetl.training.distribute import WorkerRole, shard
    from edgetl.training.inputs import Split, dataset

    items = list(range(23))
    shards = [shard(items, WorkerRole(i, 3, i == 0), seed=1) for i in range(3)]
    assert sorted(sum(shards, [])) == items and {len(s) for s in shards} <= {7, 8}
    seen, counts = [], []
    for part in shards:
        values = np.array(part, np.float32).reshape(-1, 1)
        ds = dataset(Split(_store_of(values), np.zeros(len(part), np.int64)), 2, 4, seed=0, shuffle=True,
                     weights=np.array([2.0, 1.0], np.float32), batches=2)
        batches = list(ds)
        counts.append([len(x) for x, _, _ in batches])
        for x, _, w in batches:  # padding is weighted 0, real images carry their class weight
            seen += [v for v, wt in zip(x.numpy()[:, 0], w.numpy()) if wt > 0]
            assert set(w.numpy()) <= {0.0, 2.0}
    assert counts == [[4, 4]] * 3  # every worker runs the same steps, or a collective would wait for ever
    assert sorted(seen) == items


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@needs_weights
def test_two_workers_on_loopback_train_one_run(tmp_path):
    """Two `edgetl train` processes with TF_CONFIG on 127.0.0.1: both exit 0, the chief writes one
    complete run folder, the other worker's temporary folder is gone, both saw the same losses
    (the gradients really were all-reduced), and accuracy matches one process."""
    data = make_shapes(tmp_path / "data", per_class=30, size=64, splits=("train", "train", "train", "val"))
    common = ["train", data, "--weights", WEIGHTS, "--size", "96", "--epochs", "3", "--fine-tune-epochs", "1",
              "--no-augment", "--batch-size", "16", "--seed", "3"]
    cluster = {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]}
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    procs = []
    for i in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
                   TMPDIR=str(scratch))
        procs.append(subprocess.Popen([sys.executable, "-m", "edgetl", *map(str, common), "--strategy", "multiworker",
                                       "--out", str(tmp_path / "run")], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (_, stderr) in zip(procs, outs):
        assert p.returncode == 0, stderr[-3000:]
    run = tmp_path / "run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "run", "tmp"]
    assert {"model.keras", "metrics.json", "manifest.json", "history.png", "report.html"} <= {p.name for p in run.iterdir()}
    assert not [p for p in scratch.iterdir() if p.name.startswith("edgetl-worker")]
    assert "the chief wrote" in outs[1][0]

    def losses(log: str) -> list[str]:
        return re.findall(r"epoch \d+/\d+: loss (\S+) acc \S+ val_loss (\S+)", log)

    assert len(losses(outs[0][1])) == 4 and losses(outs[0][1]) == losses(outs[1][1])
    multi = json.loads((run / "metrics.json").read_text())
    proc = run_cli(*common, "--strategy", "none", "--out", tmp_path / "single")
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = json.loads((tmp_path / "single" / "metrics.json").read_text())
    print(f"val accuracy: two workers {multi['val_accuracy']:.3f}, one process {single['val_accuracy']:.3f}")
    assert multi["val_accuracy"] >= 0.9 and abs(multi["val_accuracy"] - single["val_accuracy"]) <= 0.1


def _two_free_ports() -> int:
    """A port p with p and p + 1 both free (SLURM's resolver gives a node's tasks consecutive ports)."""
    for _ in range(50):
        p = _free_port()
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", p + 1))
            return p
        except OSError:
            continue
    raise RuntimeError("no two consecutive free ports")


@pytest.mark.slow
@needs_weights
def test_two_workers_under_a_slurm_job_step(tmp_path):
    """The variables srun sets for a two-task step on one node, no TF_CONFIG: TensorFlow's own SLURM
    cluster resolver (made to work on a node without GPUs) joins the two processes."""
    data = make_shapes(tmp_path / "data", per_class=12, size=64, splits=("train", "train", "train", "val"))
    base = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"} | {
        "SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_NODELIST": "localhost", "SLURM_STEP_TASKS_PER_NODE": "2",
        "EDGETL_SLURM_PORT": str(_two_free_ports())}
    procs = [subprocess.Popen([sys.executable, "-m", "edgetl", "train", str(data), "--weights", str(WEIGHTS), "--size", "64",
                               "--epochs", "1", "--fine-tune-epochs", "0", "--no-augment", "--batch-size", "8",
                               "--strategy", "multiworker", "--out", str(tmp_path / "run")],
                              env=base | {"SLURM_PROCID": str(i)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, stderr) in zip(procs, outs):
        assert p.returncode == 0, stderr[-3000:]
    assert "2 replica(s) in sync" in outs[0][1] and "worker 1 of 2" in outs[1][1]
    assert (tmp_path / "run" / "model.keras").exists() and "the chief wrote" in outs[1][0]


@pytest.mark.parametrize("case", ["missing", "not_json", "not_in_cluster", "no_out"])
def test_bad_multiworker_settings_are_one_line_exit_2(tmp_path, case):
    data = make_shapes(tmp_path / "data", classes=("a", "b"), per_class=4, size=32)
    tf_config = {"missing": None, "not_json": "{cluster", "no_out": json.dumps({"cluster": {"worker": ["127.0.0.1:1"]},
                                                                               "task": {"type": "worker", "index": 0}}),
                 "not_in_cluster": json.dumps({"cluster": {"worker": ["127.0.0.1:1"]},
                                               "task": {"type": "worker", "index": 5}})}[case]
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG" and not k.startswith("SLURM_")} | (
        {"TF_CONFIG": tf_config} if tf_config else {})
    out = [] if case == "no_out" else ["--out", str(tmp_path / "run")]
    proc = subprocess.run([sys.executable, "-m", "edgetl", "train", str(data), "--weights", "none", "--strategy",
                           "multiworker", *out], capture_output=True, text=True, env=env, timeout=300)
    expected = {"missing": "needs the TF_CONFIG", "not_json": "TF_CONFIG is not a cluster",
                "not_in_cluster": "is not in its cluster", "no_out": "needs --out"}[case]
    assert proc.returncode == 2 and expected in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "run").exists()


def test_mixed_precision_keeps_the_softmax_float32():
    """Under mixed_float16 (what --mixed-precision sets on a GPU) the layers compute in float16 but
    the class scores stay float32, and compile wraps the optimizer for loss scaling, which the
    multi-worker loop relies on (it scales the loss through the optimizer)."""
    import keras

    from edgetl.models.backbones import build_base, build_classifier, get_backbone
    from edgetl.training.stages import optimizer

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        spec = get_backbone("mobilenet_v2")
        model, _ = build_classifier(spec, build_base(spec, 32, 0.35, "none"), 32, 3, 0.2)
        model.compile(optimizer(1e-3, "constant", 10), "categorical_crossentropy")
        assert model.get_layer("predictions").compute_dtype == "float32"
        assert model.output.dtype == "float32" and model(np.zeros((1, 32, 32, 3), np.float32)).dtype == "float32"
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _listening(port: int) -> list[str]:
    """Local addresses listening on ``port`` (TCP, IPv4 and IPv6), from /proc/net."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, _, p = local.rpartition(":")
            if int(p, 16) == port and state == "0A":  # 0A: LISTEN
                found.append("0.0.0.0" if set(addr) == {"0"} and len(addr) == 8 else
                             "::" if set(addr) == {"0"} else "loopback" if addr in ("0100007F", "0" * 24 + "01000000")
                             else addr)
    return found


def test_a_worker_says_its_grpc_server_listens_on_every_interface(tmp_path):
    """TF_CONFIG names 127.0.0.1, yet TensorFlow's gRPC server listens on every interface (its bind
    address is hard-coded): the worker warns before the port opens, and the warning is true."""
    port = _free_port()
    script = ("import sys; from edgetl.training.distribute import make_strategy; "
              "make_strategy('multiworker', lambda m: print(m, flush=True)); print('READY', flush=True); "
              "sys.stdin.readline()")
    env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}"]},
                                                 "task": {"type": "worker", "index": 0}}))
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not lines or lines[-1] != "READY":
            line = proc.stdout.readline()
            assert line, proc.stderr.read()[-2000:]
            lines.append(line.strip())
        listening = _listening(port)
    finally:
        proc.communicate("\n", timeout=60)
    warning = next(line for line in lines if line.startswith("warning:"))
    assert f"listen on port {port} of every network interface" in warning and "firewalled" in warning
    assert listening and any(a in ("0.0.0.0", "::") for a in listening), listening


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            ppid = next(line for line in status.read_text().splitlines() if line.startswith("PPid:"))
        except (OSError, StopIteration):
            continue
        if int(ppid.split()[1]) == pid:
            found.append(int(status.parent.name))
    return found


def _lone_worker(tmp_path, *extra: str) -> tuple[subprocess.Popen, int]:
    """Worker 0 of a two-worker cluster whose worker 1 never comes."""
    data = make_shapes(tmp_path / "data", per_class=6, size=40, splits=("train", "val"))
    other = _free_port()
    cluster = {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{other}"]}
    env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    proc = subprocess.Popen([sys.executable, "-m", "edgetl", "train", str(data), "--weights", "none", "--size", "32",
                             "--alpha", "0.35", "--epochs", "1", "--fine-tune-epochs", "0", "--no-augment",
                             "--strategy", "multiworker", "--out", str(tmp_path / "run"), *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, other


@pytest.mark.slow
def test_a_worker_whose_peer_never_comes_says_whom_it_waits_for_and_gives_up(tmp_path):
    proc, other = _lone_worker(tmp_path, "--worker-timeout", "5")
    try:
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()  # a worker that never gave up must not outlive the test
    assert proc.returncode == -signal.SIGKILL, err[-2000:]  # the watcher ends the worker TensorFlow holds
    assert f"waiting for worker 1 at 127.0.0.1:{other} to join (at most 5 s" in err
    assert f"error: worker 1 at 127.0.0.1:{other} did not join within 5 s" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob(".run*"))


@pytest.mark.slow
def test_sigterm_stops_a_worker_that_waits_for_its_peers(tmp_path):
    """Under SLURM or systemd a stop is a SIGTERM: it once went unanswered while TensorFlow waited.
    The wait comes before the run folder, so the worker ends leaving nothing."""
    proc, other = _lone_worker(tmp_path)
    try:
        line = proc.stderr.readline()
        while "waiting for worker 1" not in line:
            assert line, "the worker ended before it waited"
            line = proc.stderr.readline()
        # The watcher of the wait has started (a fact, polled, not a guess of how long start-up
        # takes): from then on a SIGTERM is pending for it to read, whatever TensorFlow is doing.
        deadline = time.monotonic() + 120
        while not _children(proc.pid):
            assert time.monotonic() < deadline, "no watcher process in 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert f"stopped by SIGTERM while waiting for worker 1 at 127.0.0.1:{other}" in err, err[-2000:]
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob(".run*"))


@pytest.mark.slow
def test_when_a_worker_dies_the_others_end_in_one_resumable_line(tmp_path):
    """What really happens (the README once said the others wait for ever): TensorFlow's heartbeat
    notices within seconds and aborts the collective; the chief says so in one line, exit 2, and
    the run folder stays, resumable."""
    data = make_shapes(tmp_path / "data", per_class=40, size=48, splits=("train", "train", "train", "val"))
    cluster = {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]}
    procs = []
    for i in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "edgetl", "train", str(data), "--weights", "none", "--alpha", "0.35", "--size", "48",
             "--epochs", "50", "--fine-tune-epochs", "0", "--no-augment", "--batch-size", "8", "--strategy",
             "multiworker", "--out", str(tmp_path / "run")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True))
    try:
        line = procs[0].stderr.readline()
        while "epoch 2/" not in line:  # the chief has finished an epoch: the run is resumable
            assert line, "the chief ended before its second epoch"
            line = procs[0].stderr.readline()
        procs[1].kill()
        _, err = procs[0].communicate(timeout=300)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    last = err.strip().splitlines()[-1]
    assert procs[0].returncode == 2 and "stopped answering (TensorFlow's heartbeat)" in last, err[-2000:]
    assert f"edgetl train --resume {tmp_path / 'run'}" in last and (tmp_path / ".run.incomplete").is_dir()


@pytest.mark.slow
@needs_weights
def test_two_workers_train_a_multi_label_run(tmp_path):
    """The multi-worker loop with the multi-label objective (sigmoid, weighted binary cross-entropy,
    exact-match accuracy): both workers see the same losses, the chief writes a multi-label run
    with each label's threshold folded in. Shapes read with --multi-label: each image's class as
    its one label."""
    data = make_shapes(tmp_path / "data", per_class=16, size=64, splits=("train", "train", "train", "val"))
    cluster = {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]}
    procs = []
    for i in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}))
        procs.append(subprocess.Popen([sys.executable, "-m", "edgetl", "train", str(data), "--weights", str(WEIGHTS),
                                       "--size", "64", "--epochs", "2", "--fine-tune-epochs", "0", "--no-augment",
                                       "--batch-size", "16", "--multi-label", "--strategy", "multiworker",
                                       "--out", str(tmp_path / "run")], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (_, stderr) in zip(procs, outs):
        assert p.returncode == 0, stderr[-3000:]
    losses = [re.findall(r"epoch \d+/\d+: loss (\S+) acc \S+ val_loss (\S+)", err) for _, err in outs]
    assert len(losses[0]) == 2 and losses[0] == losses[1]
    assert "multi-label: 3 sigmoid outputs" in outs[0][1]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["task"] == "multi-label" and len(manifest["thresholds"]) == 3
