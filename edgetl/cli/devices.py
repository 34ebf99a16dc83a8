"""Commands that run on or talk to a device: bench, live, deploy, harvest, doctor."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from rich.table import Table
import typer

from edgetl.console import err, out, print_json
from edgetl.benchmark import BenchOptions
from edgetl.errors import EdgetlError
from edgetl.text import clean, safe
from edgetl.cli.app import app
from edgetl.cli.options import DEVICE_TIMEOUT, JSON, LABELS, REMOTE_PYTHON, SSH_CONFIG, THREADS, THRESHOLD
from edgetl.cli.show import print_live_summary, print_profiles, say_served, scores_line


@app.command()
def bench(
    models: list[Path] = typer.Argument(..., help="Models to compare (.tflite, .onnx; .keras locally)."),
    threads: str = typer.Option("", "--threads", help="Comma-separated thread counts, e.g. 1,2,4 (default: runtime's)."),
    runs: int = typer.Option(BenchOptions.runs, help="Timed inferences at least."),
    warmup: int = typer.Option(BenchOptions.warmup, help="Untimed inferences first."),
    min_seconds: float = typer.Option(BenchOptions.min_seconds, help="Measure at least this long per model and thread count."),
    e2e: Optional[Path] = typer.Option(None, "--e2e", help="Also time decode + preprocessing of this image."),
    device: str = typer.Option("local", "--device", help="local, rpi (any Linux board over SSH) or android (adb)."),
    host: list[str] = typer.Option([], "--host", help="SSH host or ~/.ssh/config alias (repeat for several)."),
    remote_python: str = REMOTE_PYTHON,
    ssh_config: Optional[Path] = SSH_CONFIG,
    serial: Optional[str] = typer.Option(None, help="adb device serial."),
    benchmark_binary: Optional[str] = typer.Option(None, help="benchmark_model: a local file (pushed) or a path on the phone."),
    use_gpu: bool = typer.Option(False, "--use-gpu", help="Android: GPU delegate."),
    use_nnapi: bool = typer.Option(False, "--use-nnapi", help="Android: NNAPI delegate."),
    timeout: float = DEVICE_TIMEOUT,
    csv_file: Optional[Path] = typer.Option(None, "--csv", help="Write the comparison as CSV."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a latency box plot PNG."),
    profile: bool = typer.Option(False, "--profile", help="Where the time goes, op by op, on this machine (ONNX: time "
                                                          "per op type; TFLite: the ops XNNPACK leaves to LiteRT)."),
    json_out: bool = JSON,
) -> None:
    """Latency benchmark: init, first, mean/p50/p90/p99, FPS, memory, device facts; one table for all."""
    from edgetl import bench as run_bench
    from edgetl.benchmark import parse_threads
    from edgetl.benchmark.report import device_line, oversubscribed, plot as draw, rows, write_csv

    thread_list = parse_threads(threads)
    if profile:
        if device != "local":
            raise EdgetlError("--profile runs on this machine", fix="run `edgetl bench MODEL --profile` on the device itself")
        print_profiles(models, thread_list, runs, json_out)
        return
    opts = BenchOptions(runs=runs, warmup=warmup, min_seconds=min_seconds, e2e_image=str(e2e) if e2e else None)
    results = run_bench(models, thread_list, device=device, hosts=host, options=opts, remote_python=remote_python,
                        ssh_config=str(ssh_config) if ssh_config else None, serial=serial,
                        benchmark_binary=benchmark_binary, use_gpu=use_gpu, use_nnapi=use_nnapi, timeout=timeout)
    if csv_file:
        write_csv(results, csv_file)
    if plot:
        draw(results, plot)
    if json_out:
        print_json([r.to_dict() for r in results])
        return
    table = Table(title="edgetl bench")
    columns = ("model", "format", "precision", "size MB", "accuracy", "device", "threads", "init ms", "mean ms",
               "std ms", "p50 ms", "p90 ms", "p99 ms", "FPS", "peak RSS MB")
    longest = max((len(safe(r.model)) for r in results), default=5)
    for col in columns:
        # a model's name is what the row is about: never cut (the other columns give way)
        table.add_column(col, justify="left" if col in ("model", "format", "precision", "device") else "right",
                         no_wrap=col == "model", min_width=min(longest, 48) if col == "model" else None)

    def num(v, f: str) -> str:
        return "—" if v is None else format(v, f)

    for row in rows(results):
        table.add_row(safe(row["model"]), safe(row["format"]), safe(row["precision"]), f"{row['size_mb']:.2f}",
                      num(row["accuracy"], ".4f"), safe(row["target"]), str(row["threads"] or "default"),
                      num(row["init_ms"], ".0f"), num(row["mean_ms"], ".2f"), num(row["std_ms"], ".2f"),
                      num(row["p50_ms"], ".2f"), num(row["p90_ms"], ".2f"), num(row["p99_ms"], ".2f"),
                      num(row["fps"], ".1f"), num(row["peak_rss_mb"], ".0f"))
    out.print(table)
    for line in dict.fromkeys(device_line(r.device) for r in results):
        out.print(line, markup=False)
    out.print("runtime: " + ", ".join(sorted({r.runtime for r in results})), markup=False)
    if any(r.own_process is False for r in results):
        out.print("peak RSS: measured one model after another in one process (this Python cannot start a fresh "
                  "one), so each figure is the highest so far", markup=False)
    for t, cores in oversubscribed(results):
        err.print(f"[yellow]warning:[/] --threads {t} is more than the device's {cores} cores: threads then wait for "
                  "each other and latency rises; measure up to the core count")
    for r in results:
        if r.e2e:
            out.print(f"{safe(r.model)} ({r.threads or 'default'} thr) end to end: preprocess "
                      f"{r.e2e['preprocess_ms']:.2f} ms, with inference {r.e2e['total_ms']:.2f} ms (p50s, in sequence)")
    overheads = [r.harness_overhead_pct for r in results if r.harness_overhead_pct is not None]
    if overheads:
        out.print(f"harness overhead vs a bare loop: {min(overheads):+.2f}% to {max(overheads):+.2f}%")


@app.command()
def live(
    model: Path = typer.Argument(..., help="A .tflite or .onnx model."),
    source: str = typer.Option("0", "--source", help="Camera index, video file, rtsp/http URL, folder or glob, or picamera2."),
    width: int = typer.Option(0, help="Camera width request (default: the smallest common size covering the model's input)."),
    height: int = typer.Option(0, help="Camera height request."),
    full_decode: bool = typer.Option(False, "--full-decode",
                                     help="Decode JPEG/MJPEG frames whole (default: at 1/2, 1/4 or 1/8 scale when "
                                          "still at least the model's input size)."),
    fps: float = typer.Option(0, help="Camera FPS request."),
    top_k: int = typer.Option(3, "--top-k", min=1, help="Labels shown per frame."),
    smooth: int = typer.Option(0, help="Average scores over about N frames (exponential moving average)."),
    threshold: Optional[float] = THRESHOLD,
    realtime: bool = typer.Option(False, "--realtime", help="Drop frames of a video file like a camera would."),
    loop: bool = typer.Option(False, "--loop", help="Read a video file or folder again from its start when it ends."),
    headless: bool = typer.Option(False, "--headless", help="No window, print instead (automatic without a display)."),
    record: Optional[Path] = typer.Option(None, "--record", help="Write the annotated video (e.g. out.mp4)."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", help="Stop after N frames."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Stop after S seconds."),
    reconnect: float = typer.Option(10.0, "--reconnect", help="Seconds to retry a lost camera or stream."),
    labels: Optional[Path] = LABELS,
    threads: Optional[int] = THREADS,
    json_out: bool = typer.Option(False, "--json", help="One JSON line per frame, then a summary line."),
    serve: Optional[str] = typer.Option(None, "--serve", metavar="[HOST:]PORT",
                                        help="Serve the live page and its API (127.0.0.1 unless HOST is given; "
                                             "another address needs the printed token)."),
    capture: Optional[Path] = typer.Option(None, "--capture", metavar="DIR",
                                           help="Keep frames answered 'unknown', with close scores or a flip-flopping "
                                                "label here, to label later (edgetl harvest brings them home)."),
    capture_max_files: int = typer.Option(500, "--capture-max-files", help="Frames the outbox keeps (oldest go first)."),
    capture_max_mb: float = typer.Option(200.0, "--capture-max-mb", help="Megabytes the outbox keeps."),
    capture_every: float = typer.Option(1.0, "--capture-every", metavar="SECONDS", help="At most one frame kept per this many seconds."),
) -> None:
    """Classify a camera, video, stream or folder frame by frame, on screen, headless or in a browser."""
    from edgetl.live import CaptureRequest, Ended, LiveOptions, OutboxPolicy, run
    from edgetl.live.overlay import has_gui

    show = False
    if not headless and serve is None:
        show, why = has_gui()
        if not show:
            err.print(f"running headless: {why}")

    def serving(url: str) -> None:
        say_served("the live page", url)

    def on_frame(r) -> None:
        if json_out:
            print(json.dumps(r.to_dict()), flush=True)
        elif not show:
            scores = scores_line(r.top)
            shown = f"unknown ({scores})" if r.unknown else scores
            out.print(f"frame {r.index}: {shown} ({r.latency_ms['total']:.1f} ms)", markup=False)

    summary = run(model, source, LiveOptions(top_k=top_k, smooth=smooth, threshold=threshold, realtime=realtime,
                                             loop=loop, max_frames=max_frames, duration=duration, reconnect=reconnect),
                  CaptureRequest(width, height, fps, full_decode=full_decode), show=show, record=record, on_frame=on_frame,
                  threads=threads, labels=labels, serve=serve, on_serving=serving,
                  capture=OutboxPolicy(capture, capture_max_files, int(capture_max_mb * 1e6), capture_every)
                  if capture else None)
    if json_out:
        print(json.dumps(summary.to_dict()), flush=True)
    else:
        print_live_summary(summary, record)
    raise typer.Exit(1 if summary.ended == Ended.SOURCE_LOST else 0)


@app.command()
def deploy(
    model: Optional[Path] = typer.Argument(None, help="An exported model (RUN/export/model_int8.tflite)."),
    host: str = typer.Option(..., "--host", help="SSH host or ~/.ssh/config alias of the device."),
    service: bool = typer.Option(False, "--service", help="Also run `live --serve` there as a systemd user service."),
    serve: str = typer.Option("127.0.0.1:8080", "--serve", metavar="[HOST:]PORT", help="What the service listens on."),
    source: str = typer.Option("0", "--source", help="The service's --source (camera index, picamera2, URL...)."),
    status: bool = typer.Option(False, "--status", help="Show what is deployed there and whether the service runs."),
    remove: bool = typer.Option(False, "--remove", help="Stop and remove the service and the deployed model."),
    capture: Optional[str] = typer.Option(None, "--capture", metavar="DIR",
                                          help="The service keeps the frames it doubted here (e.g. ~/edgetl-outbox; "
                                               "edgetl harvest brings them home); with --status: the outbox to size."),
    remote_dir: str = typer.Option(".local/share/edgetl/deploy", "--remote-dir",
                                   help="Deployment folder on the device (relative to its home, or absolute)."),
    if_better: bool = typer.Option(False, "--if-better", help="Deploy only when MODEL is proven better than what the "
                                                              "device runs now (edgetl compare on the old run's "
                                                              "validation images); say why not otherwise (exit 1)."),
    than: Optional[Path] = typer.Option(None, "--than", metavar="RUN",
                                        help="--if-better: the run whose export the device runs (default: found by "
                                             "its hash among the runs beside MODEL's and in runs/)."),
    remote_python: str = REMOTE_PYTHON,
    ssh_config: Optional[Path] = SSH_CONFIG,
    timeout: float = DEVICE_TIMEOUT,
    json_out: bool = JSON,
) -> None:
    """Put an exported model on a device over SSH, check it answers as at export, optionally as a service."""
    from edgetl.devices import deploy as deploying
    from edgetl.remote.ssh import SshTarget

    target = SshTarget(host, remote_python=remote_python, ssh_config=str(ssh_config) if ssh_config else None,
                       timeout=timeout)
    if status:
        done = deploying.status(target, remote_dir, capture or "~/edgetl-outbox")
    elif remove:
        done = deploying.remove(target, remote_dir)
    else:
        if model is None:
            raise EdgetlError("deploy needs a MODEL", fix="edgetl deploy runs/exp/export/model_int8.tflite --host mypi")
        if if_better:
            from edgetl.devices.if_better import judge

            verdict = judge(model, target, remote_dir, than)
            if json_out and not verdict.deploy:
                print_json(verdict.to_dict())
            elif not json_out:
                out.print(("deploying: " if verdict.deploy else "not deployed: ") + verdict.reason, markup=False,
                          soft_wrap=True)
            if not verdict.deploy:
                raise typer.Exit(1)
        done = deploying.deploy(model, target, deploying.DeployOptions(remote_dir, service, serve, source,
                                                                       capture=capture))
    if json_out:
        print_json(done.to_dict())
        return
    for key, value in done.to_dict().items():
        out.print(f"{key}: {clean(value if not isinstance(value, dict) else json.dumps(value))}", markup=False)


@app.command()
def harvest(
    host: str = typer.Argument(..., help="The device: a host name, user@host or an alias from ~/.ssh/config."),
    outbox: str = typer.Option("~/edgetl-outbox", "--outbox", help="The device's `live --capture` folder."),
    to: Optional[Path] = typer.Option(None, "--to", help="Where the frames go (default harvest/HOST)."),
    keep: bool = typer.Option(False, "--keep", help="Leave the frames on the device (default: remove what arrived intact)."),
    max_frames: int = typer.Option(500, "--max-frames", min=1, help="Frames one harvest takes at most (the rest stays on the device)."),
    max_mb: float = typer.Option(200.0, "--max-mb", min=0.001, help="Megabytes one harvest takes at most."),
    remote_python: str = REMOTE_PYTHON,
    ssh_config: Optional[Path] = SSH_CONFIG,
    timeout: float = typer.Option(900.0, "--timeout", min=1, help="Seconds the whole harvest may take before it is stopped."),
    json_out: bool = JSON,
) -> None:
    """Bring a device's doubtful frames home: DEST/unsorted/ to label, the model's guesses in DEST/guesses.csv."""
    from edgetl.remote.ssh import SshTarget, check_host
    from edgetl.devices.harvest import HarvestLimits, default_folder, harvest as run_harvest

    check_host(host)
    dest = to or default_folder(host)
    result = run_harvest(SshTarget(host, remote_python, str(ssh_config) if ssh_config else None, timeout=timeout),
                         outbox, dest, remove=not keep, limits=HarvestLimits(max_frames, int(max_mb * 1e6)))
    if json_out:
        print_json(result.to_dict())
        return
    out.print(f"{len(result.images)} frame(s) from {safe(host)} in {safe(dest / 'unsorted')} (guesses in "
              f"{safe(dest / 'guesses.csv')}); {result.removed} removed from the device", soft_wrap=True)
    for why in result.refused:
        out.print(f"[yellow]not taken:[/] {safe(why)}")
    if result.capped:
        out.print(f"[yellow]stopped at the cap of {safe(result.capped)}:[/] the rest is still on the device; "
                  "harvest again for it (or raise --max-frames / --max-mb)")


@app.command()
def doctor(
    host: Optional[str] = typer.Option(None, "--host", help="Check a device over SSH instead (runtimes, versions, conflicts)."),
    remote_python: str = REMOTE_PYTHON,
    ssh_config: Optional[Path] = SSH_CONFIG,
    json_out: bool = JSON,
) -> None:
    """Versions, runtimes that load, cached ImageNet weights, cameras, GPUs and known conflicts."""
    from edgetl.doctor import diagnose

    if host is not None:
        _doctor_host(host, remote_python, ssh_config, json_out)
        return
    d = diagnose()
    if json_out:
        print_json(d.to_dict())
        raise typer.Exit(1 if d.conflicts else 0)
    table = Table("package", "version", title="installed")
    for pkg, ver in d.versions.items():
        if ver:
            table.add_row(pkg, ver)
    out.print(table)
    loaded = [name for name, info in d.runtimes.items() if info.loads]
    for name, info in d.runtimes.items():
        extra = info.providers or info.delegates or []
        if info.loads:
            out.print(f"runtime {name}: [green]loads[/] " + ", ".join(extra))
        elif name == "tflite-runtime" and "ai-edge-litert" in loaded:
            out.print(f"runtime {name}: [dim]not installed (optional: the older TFLite runtime; ai-edge-litert is used)[/]")
        else:
            out.print(f"runtime {name}: [red]missing[/] ({safe(info.error)})")
    tf = d.tensorflow
    out.print("TensorFlow: " + (f"{tf.version}, GPUs: {', '.join(tf.gpus or []) or 'none visible'}" if tf.installed
                                else "not installed (fine on a device; training needs edgetl[train])"))
    w = d.imagenet_weights
    for name, path in w.cached.items():
        out.print(f"ImageNet weights {name}: " + (f"cached at {path}" if path else
                  f"[yellow]not cached[/] in {w.cache_dir} (downloads on first use; offline use --weights PATH)"))
    cv = d.opencv
    if cv.version:
        out.print(f"OpenCV {cv.version}: window {'yes' if cv.window else 'no (' + str(cv.why_not) + ')'}; "
                  f"cameras that open: {cv.cameras or 'none'}")
    for c in d.conflicts:
        out.print(f"[red]conflict:[/] {safe(c)}")
    for note in d.notes:
        out.print(f"[yellow]note:[/] {safe(note)}")
    raise typer.Exit(1 if d.conflicts else 0)


def _doctor_host(host: str, remote_python: str, ssh_config: Optional[Path], json_out: bool) -> None:
    from edgetl.remote.runner import doctor_on_host
    from edgetl.remote.ssh import SshTarget

    d = doctor_on_host(SshTarget(host, remote_python=remote_python, ssh_config=str(ssh_config) if ssh_config else None))
    if json_out:
        print_json(d.to_dict())
        raise typer.Exit(1 if d.conflicts else 0)
    out.print(f"{safe(host)}: {safe(d.machine)}, Python {safe(d.python)}, numpy {safe(d.versions.get('numpy'))}")
    for name, info in d.runtimes.items():
        out.print(f"  runtime {safe(name)}: " + ("[green]loads[/]" if info.loads else f"not usable ({safe(info.error)})"))
    for c in d.conflicts:
        out.print(f"[red]conflict:[/] {safe(c)}")
    raise typer.Exit(1 if d.conflicts else 0)
