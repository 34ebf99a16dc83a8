"""The benchmark as a device runs it: `python -m edgetl.bench.runner MODEL... --json` or the same
inside the zipapp copied to a device without edgetl. Prints a JSON list of results on stdout.

Needs numpy and a TFLite or ONNX runtime only (OpenCV for --e2e)."""
from __future__ import annotations

import argparse
import json
import sys

from edgetl.bench.device import device_facts
from edgetl.bench.harness import BenchOptions, bench_model
from edgetl.errors import EdgetlError


def run(models: list[str], threads: list[int | None], options: BenchOptions) -> list[dict]:
    """Every (model, threads) result as a dict, with this device's facts."""
    facts = device_facts()
    out = []
    for model in models:
        for t in threads:
            opts = BenchOptions(**{**options.__dict__, "threads": t})
            out.append(bench_model(model, opts, facts).to_dict(samples=True))
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line of the runner (the same options as `edgetl bench` on the device)."""
    p = argparse.ArgumentParser(prog="edgetl-bench-runner")
    p.add_argument("models", nargs="+")
    p.add_argument("--threads", default="")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--min-seconds", type=float, default=5.0)
    p.add_argument("--e2e", default=None)
    a = p.parse_args(argv)
    threads = [int(t) for t in a.threads.split(",") if t] or [None]
    try:
        results = run(a.models, threads, BenchOptions(runs=a.runs, warmup=a.warmup, min_seconds=a.min_seconds,
                                                       e2e_image=a.e2e))
    except EdgetlError as e:
        print(json.dumps({"error": str(e)}))
        return 2
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
