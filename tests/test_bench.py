"""Bench: harness statistics, local results, a real SSH device on 127.0.0.1, adb with a stand-in."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers.cli import run_cli
from helpers.fake_device import fake_device_python
from helpers.models import colour_images, keras_mean_colour, to_tflite
from edgetl.benchmark.android import parse_benchmark_output
from edgetl.benchmark.harness import BenchOptions, measure_callable

DATA = Path(__file__).parent / "data"
RESULT_KEYS = {"model", "runtime", "threads", "size_bytes", "init_ms", "first_ms", "mean_ms", "std_ms", "min_ms",
               "p50_ms", "p90_ms", "p99_ms", "fps", "peak_rss_mb", "device"}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    images, _ = colour_images()
    keras_model = keras_mean_colour(size=32)
    big = np.concatenate([np.kron(images, np.ones((1, 2, 2, 1), np.uint8))])
    return [to_tflite(keras_model, d / "fp32.tflite"), to_tflite(keras_model, d / "int8.tflite", "uint8", big)]


def busy(ms: float):
    """A call with known latency: spin for ``ms`` milliseconds."""
    ns = int(ms * 1e6)

    def call():
        end = time.perf_counter_ns() + ns
        while time.perf_counter_ns() < end:
            pass
    return call


def test_statistics_of_a_known_latency():
    """Facts no load can change: a 2 ms spin never ends early, the order of the percentiles, the
    count of runs, FPS from the mean. (How close p50 comes to 2 ms depends on how busy the machine
    is: that is the benchmark suite's to show, not a test's to assert.)"""
    m = measure_callable(busy(2.0), BenchOptions(runs=60, warmup=3, min_seconds=0))
    assert m["runs"] == 60
    assert 2.0 <= m["min_ms"] <= m["p50_ms"] <= m["p90_ms"] <= m["p99_ms"]
    assert abs(m["fps"] - 1000 / m["mean_ms"]) < 1e-9 and m["harness_overhead_pct"] >= 0


def test_the_harness_times_each_call_and_keeps_going_for_min_seconds(monkeypatch):
    """The harness's logic on a clock that advances 1 ms per call and 1 µs per reading: exact
    figures, whatever the machine is doing."""
    from edgetl.benchmark import harness

    now = [0]

    def clock() -> int:
        now[0] += 1_000
        return now[0]

    def call() -> None:
        now[0] += 1_000_000

    monkeypatch.setattr(harness.time, "perf_counter_ns", clock)
    samples = harness.time_calls(call, runs=5, min_seconds=0.3)
    assert len(samples) > 5 and set(samples.tolist()) == {1_001_000}  # min_seconds kept measuring past runs
    assert 0.3e9 <= len(samples) * 1_002_000 < 0.3e9 + 2 * 1_002_000  # and stopped right after it
    s = harness.stats(np.array([1_000_000, 2_000_000, 3_000_000, 4_000_000]))
    assert (s["min_ms"], s["p50_ms"], s["mean_ms"], s["fps"]) == (1.0, 2.5, 2.5, 400.0)


def test_local_bench_json_csv_plot(models, tmp_path):
    proc = run_cli("bench", *models, "--threads", "1,2", "--runs", "30", "--warmup", "3", "--min-seconds", "0",
                   "--json", "--csv", tmp_path / "b.csv", "--plot", tmp_path / "b.png",
                   "--e2e", DATA / "benchmark_model_v2.txt")
    assert proc.returncode == 2 and "cannot read image for --e2e" in proc.stderr
    image = tmp_path / "photo.png"
    import cv2

    cv2.imwrite(str(image), np.full((120, 160, 3), 90, np.uint8))
    proc = run_cli("bench", *models, "--threads", "1,2", "--runs", "30", "--warmup", "3", "--min-seconds", "0",
                   "--json", "--csv", tmp_path / "b.csv", "--plot", tmp_path / "b.png", "--e2e", image)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert len(results) == 4 and all(RESULT_KEYS <= set(r) for r in results)
    assert [r["threads"] for r in results] == [1, 2, 1, 2]
    assert results[0]["device"]["arch"] and results[0]["device"]["cores"] >= 1
    assert all(r["e2e"]["total_ms"] >= r["e2e"]["preprocess_ms"] > 0 for r in results)
    assert (tmp_path / "b.csv").read_text().count("\n") == 5
    assert (tmp_path / "b.png").stat().st_size > 5000


@pytest.mark.ssh
def test_bench_over_ssh_matches_local_form(ssh_server, models, tmp_path):
    device_python = fake_device_python(tmp_path / "dev")
    common = ["--threads", "1", "--runs", "20", "--warmup", "2", "--min-seconds", "0", "--json"]
    local = json.loads(run_cli("bench", models[1], *common).stdout)
    proc = run_cli("bench", *models, *common, "--device", "rpi", "--host", "mypi", "--host", "mypi",
                   "--ssh-config", ssh_server.config, "--remote-python", device_python)
    assert proc.returncode == 0, proc.stderr
    remote = json.loads(proc.stdout)
    assert len(remote) == 4  # two models on two (parallel) connections to the same host
    assert set(remote[0]) == set(local[0]) and set(remote[0]["device"]) == set(local[0]["device"])
    assert {r["device"]["target"] for r in remote} == {"ssh:mypi"}
    assert [r["model"] for r in remote[:2]] == ["fp32.tflite", "int8.tflite"]
    assert all(r["p50_ms"] > 0 and r["runtime"].startswith("ai-edge-litert") for r in remote)


@pytest.mark.ssh
@pytest.mark.parametrize("host,message", [("nohost", "cannot connect over SSH"), ("badkey", "cannot connect over SSH")])
def test_ssh_failures_are_one_line_exit_2(ssh_server, models, host, message):
    t0 = time.time()
    proc = run_cli("bench", models[0], "--device", "rpi", "--host", host, "--ssh-config", ssh_server.config,
                   "--min-seconds", "0", "--runs", "5")
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and host in errors[0], proc.stderr
    assert time.time() - t0 < 60


@pytest.mark.ssh
def test_missing_runtime_on_the_device(ssh_server, models, tmp_path):
    device_python = fake_device_python(tmp_path / "dev", blocked=("ai_edge_litert", "tflite_runtime", "tensorflow"))
    proc = run_cli("bench", models[0], "--device", "rpi", "--host", "mypi", "--ssh-config", ssh_server.config,
                   "--remote-python", device_python, "--min-seconds", "0", "--runs", "5")
    assert proc.returncode == 2
    assert "mypi: no TFLite runtime is installed" in proc.stderr and "Traceback" not in proc.stderr


def test_parse_benchmark_model_output_both_formats():
    old = parse_benchmark_output((DATA / "benchmark_model_v2.txt").read_text())
    assert old["init_ms"] == pytest.approx(31.412) and old["first_ms"] == pytest.approx(18.734)
    assert old["mean_ms"] == pytest.approx(12.2543) and old["min_ms"] == pytest.approx(11.986)
    assert old["runs"] == 80 and old["p50_ms"] is None and old["peak_rss_mb"] == pytest.approx(14.6289)
    new = parse_benchmark_output((DATA / "benchmark_model_v3.txt").read_text())
    assert new["p50_ms"] == pytest.approx(7.829) and new["runs"] == 128 and new["init_ms"] == pytest.approx(912.57)
    assert new["fps"] == pytest.approx(1e6 / 7868.02)


def test_android_command_sequence_with_a_stand_in_adb(models, tmp_path):
    """No phone exists here: a stand-in `adb` on PATH records its arguments and answers like a phone
    (getprop values, and recorded benchmark_model output). What is tested is edgetl's command
    sequence and parsing, not a phone."""
    log = tmp_path / "adb.log"
    fake = tmp_path / "bin" / "adb"
    fake.parent.mkdir()
    fake.write_text(f"""#!{sys.executable}
import sys, json, shlex
args = sys.argv[1:]
open({str(log)!r}, "a").write(json.dumps(args) + "\\n")
if args[:2] == ["-s", "PHONE1"]:
    args = args[2:]
words = shlex.split(args[1]) if args[0] == "shell" else []  # what the phone's sh -c would run
if words[:1] == ["getprop"]:
    print({{"ro.product.model": "Pixel 7", "ro.board.platform": "gs201", "ro.build.version.release": "14",
           "ro.product.cpu.abi": "arm64-v8a"}}[words[1]])
elif words and words[0].endswith("benchmark_model"):
    print(open({str(DATA / 'benchmark_model_v3.txt')!r}).read())
""")
    fake.chmod(0o755)
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF stand-in")
    env = {"PATH": f"{fake.parent}:{os.environ['PATH']}"}
    proc = run_cli("bench", models[1], "--device", "android", "--serial", "PHONE1", "--benchmark-binary", binary,
                   "--threads", "2,4", "--use-gpu", "--runs", "50", "--warmup", "5", "--min-seconds", "1", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert RESULT_KEYS <= set(results[0]) and results[0]["device"]["model"] == "Pixel 7"
    assert results[0]["p50_ms"] == pytest.approx(7.829) and [r["threads"] for r in results] == [2, 4]
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert all(c[:2] == ["-s", "PHONE1"] for c in calls)
    shell = [c[3].split() if c[2] == "shell" else c[2:] for c in calls]
    assert shell[0][:2] == ["mkdir", "-p"] and shell[0][2].startswith("/data/local/tmp/edgetl/run-")
    work = shell[0][2]  # a folder of this run's, removed at the end
    assert ["push", str(binary), f"{work}/benchmark_model"] == shell[1]
    assert shell[2] == ["chmod", "755", f"{work}/benchmark_model"]
    assert ["push", str(models[1]), f"{work}/0.tflite"] in shell  # a fixed name on the phone
    runs = [c for c in shell if c[0] == f"{work}/benchmark_model"]
    assert len(runs) == 2 and "--num_threads=4" in runs[1] and "--use_gpu=true" in runs[0]
    assert f"--graph={work}/0.tflite" in runs[0] and "--num_runs=50" in runs[0]
    assert shell[-1] == ["rm", "-rf", work]
    proc = run_cli("bench", models[1], "--device", "android", env={"PATH": str(fake.parent.parent / "empty")})
    assert proc.returncode == 2 and "adb is not installed" in proc.stderr


@pytest.mark.ssh
def test_the_runtimes_default_and_a_count_over_ssh_keep_each_result_with_its_model(ssh_server, models, tmp_path):
    """threads=[None, 2] with two models over SSH: the default was dropped on its way to the device,
    two results came back for four, and model b's result was labelled as model a's."""
    from edgetl import bench
    from edgetl.benchmark import BenchOptions

    results = bench(models, threads=[None, 2], device="rpi", hosts=["mypi"], ssh_config=str(ssh_server.config),
                    remote_python=str(fake_device_python(tmp_path / "dev")),
                    options=BenchOptions(runs=5, warmup=1, min_seconds=0))
    assert [(r.model, r.threads) for r in results] == [
        ("fp32.tflite", None), ("fp32.tflite", 2), ("int8.tflite", None), ("int8.tflite", 2)]
    assert [r.precision for r in results] == ["float", "float", "int8", "int8"]  # read from each file itself
    assert [Path(r.path).name for r in results] == [r.model for r in results]


def test_a_devices_facts_reach_the_terminal_as_text(models, monkeypatch, capsys):
    """A device's `cpu` string with escape codes (ESC[2J cleared the screen) is shown escaped, like
    every other text a device or a file supplies. The device here is this machine, its CPU name
    replaced by a hostile one."""
    from edgetl.benchmark import device
    from edgetl.cli import main

    monkeypatch.setattr(device, "cpu_model", lambda: "\x1b[2J\x1b]0;owned\x07Evil CPU [bold]x[/bold]")
    with pytest.raises(SystemExit) as done:
        main(["bench", str(models[0]), "--runs", "3", "--warmup", "1", "--min-seconds", "0"])
    assert done.value.code in (0, None)
    shown = capsys.readouterr().out
    assert "\x1b[2J" not in shown and "\x07" not in shown and "\\x1b[2J" in shown and "[bold]x[/bold]" in shown, shown


def test_each_models_memory_is_its_own(models):
    """Each model is measured in a fresh process: its peak RSS is not the highest so far of the
    caller (here a test process holding TensorFlow, as after a training) nor of the models before it."""
    import resource

    import tensorflow  # noqa: F401  (what a notebook or `edgetl demo` has loaded when it benches)

    from edgetl.benchmark.harness import BenchOptions
    from edgetl.benchmark.runner import run

    caller_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    options = BenchOptions(runs=5, warmup=1, min_seconds=0)
    forward = run([str(m) for m in models], [1], options)
    backward = run([str(m) for m in reversed(models)], [1], options)
    by_order = {r["model"]: r["peak_rss_mb"] for r in forward}
    # A fresh process per model: each figure is far below the caller's (TensorFlow loaded, over
    # 500 MB), whichever model came before it.
    assert max(by_order.values()) < caller_mb / 2, (by_order, caller_mb)
    assert max(r["peak_rss_mb"] for r in backward) < caller_mb / 2, (backward, caller_mb)
    assert {r["model"] for r in forward} == {m.name for m in models} and all(r["device"] for r in forward)


def test_a_device_result_edgetl_cannot_read_is_one_line_naming_the_device():
    from edgetl.benchmark.harness import BenchResult
    from edgetl.errors import EdgetlError

    good = {"model": "m.tflite", "runtime": "litert", "format": "tflite", "precision": "int8", "threads": None,
            "size_bytes": 10, "p50_ms": 1.5, "from_a_newer_runner": True}
    assert BenchResult.from_dict(good, "ssh:mypi").p50_ms == 1.5
    for broken in ({k: v for k, v in good.items() if k != "threads"}, ["not", "a", "result"]):
        with pytest.raises(EdgetlError, match="ssh:mypi sent a benchmark result edgetl cannot read"):
            BenchResult.from_dict(broken, "ssh:mypi")


def test_the_cli_device_options_default_as_the_transport():
    """bench, verify, deploy and doctor share one definition of the device options, whose defaults
    are the SSH transport's own."""
    from edgetl.cli import options
    from edgetl.remote.ssh import DEFAULT_TIMEOUT, SshTarget

    assert (options.REMOTE_PYTHON.default == SshTarget("mypi").remote_python
            and options.DEVICE_TIMEOUT.default == DEFAULT_TIMEOUT)
    source = "".join(p.read_text() for p in sorted(Path(options.__file__).parent.glob("*.py")))
    assert source.count('"--remote-python"') == 1 and source.count('"--ssh-config"') == 1


def test_profile_shows_time_per_op_for_onnx_and_what_xnnpack_leaves_for_tflite(models, tmp_path):
    """`bench --profile`: ONNX Runtime's own profiler, summed per op type over the timed runs; for
    TFLite, every node is counted once, inside XNNPACK or outside it."""
    from edgetl.exporting import onnx as onnx_export

    onnx_file = tmp_path / "m.onnx"
    proto = onnx_export.fp32(keras_mean_colour(size=32))
    onnx_file.write_bytes(proto.SerializeToString())
    proc = run_cli("bench", onnx_file, models[0], models[1], "--profile", "--threads", "1", "--runs", "10", "--json")
    assert proc.returncode == 0, proc.stderr
    onnx_profile, fp32_profile, tflite_profile = json.loads(proc.stdout)
    assert onnx_profile["runs"] == 10 and onnx_profile["ops"]
    assert all(o["ms"] > 0 for o in onnx_profile["ops"]) and abs(sum(o["share"] for o in onnx_profile["ops"]) - 1) < 1e-6
    assert 0 < onnx_profile["total_nodes"] <= len(proto.graph.node)
    ops = tflite_profile["ops"]
    assert sum(o["nodes"] for o in ops) == tflite_profile["total_nodes"] > 0
    assert sum(o["outside_delegate"] for o in ops) == tflite_profile["total_nodes"] - tflite_profile["delegated"]
    assert tflite_profile["delegated"] > 0 and tflite_profile["partitions"] >= 1
    # XNNPACK takes the whole float model; in the uint8-in/uint8-out int8 model, the two requantize
    # steps at its ends stay with LiteRT's kernels (pinned LiteRT 2.x).
    assert fp32_profile["delegated"] == fp32_profile["total_nodes"] and fp32_profile["partitions"] == 1
    assert {o["op"]: o["outside_delegate"] for o in ops}["QUANTIZE"] == 2
    shown = run_cli("bench", models[1], "--profile")
    assert f"XNNPACK runs {tflite_profile['delegated']} of {tflite_profile['total_nodes']} nodes" in shown.stdout
    assert "INFO: Created TensorFlow Lite XNNPACK delegate" not in shown.stdout + shown.stderr  # the model loads once, quietly


@pytest.mark.parametrize("args, message", [
    (["--profile", "--device", "rpi", "--host", "mypi"], "--profile runs on this machine"),
    (["--profile"], "no such model file"),
])
def test_profile_bad_input_is_one_line(models, tmp_path, args, message):
    model = models[0] if "--device" in args else tmp_path / "gone.tflite"
    proc = run_cli("bench", model, *args)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_bench_table_has_every_figure_and_warns_past_the_core_count(tmp_path):
    model = to_tflite(keras_mean_colour(), tmp_path / "m.tflite")
    too_many = (os.cpu_count() or 1) + 1
    proc = run_cli("bench", model, "--threads", f"1,{too_many}", "--runs", "5", "--warmup", "1", "--min-seconds", "0")
    assert proc.returncode == 0, proc.stderr
    for column in ("mean ms", "std ms", "p99 ms", "peak RSS MB"):
        assert column in proc.stdout, proc.stdout
    assert "None" not in proc.stdout
    assert f"--threads {too_many} is more than the device's" in proc.stderr
    csv_file = tmp_path / "b.csv"
    run_cli("bench", model, "--runs", "5", "--warmup", "1", "--min-seconds", "0", "--csv", csv_file)
    assert {"mean_ms", "std_ms", "p99_ms", "peak_rss_mb"} <= set(csv_file.read_text().splitlines()[0].split(","))
