"""The Python API and the CLI offer the same settings (issue 41): every option of a command is a
parameter of its API function or a field of the options object it takes, under the same name or
one listed here, so the two cannot drift apart again; and every public function of the API says
what it takes, returns and raises."""
from __future__ import annotations

import dataclasses
import inspect

import pytest

import edgetl
from edgetl.benchmark import BenchOptions
from edgetl.calibration import CalibrateOptions
from edgetl.cli import data, devices, export, inference, loop, training, tune
from edgetl.data.audit import AuditOptions
from edgetl.exporting.formats import Gates, Int8Settings
from edgetl.exporting.pipeline import ExportOptions
from edgetl.live import LiveOptions, run as live_run
from edgetl.live.sources import CaptureRequest
from edgetl.runtime import load
from edgetl.training.config import TrainConfig
from edgetl.tuning import Grid, Target, TuneOptions

# command -> (CLI function, API functions, option objects, CLI name -> API name, presentation-only options)
SURFACES = {
    "data check": (data.data_check, [edgetl.audit], [AuditOptions], {"folder": "root"}, {"json_out"}),
    "eval": (inference.eval_cmd, [edgetl.evaluate], [], {}, {"plot", "json_out"}),
    "predict": (inference.predict, [load], [], {"model": "path", "images": None, "top_k": None}, {"json_out"}),
    "train": (training.train, [edgetl.train], [TrainConfig], {"out_dir": "out"}, {"json_out"}),
    "export": (export.export, [edgetl.export], [ExportOptions, Gates, Int8Settings],
               {"fp16": "formats", "dynamic": "formats", "onnx": "formats", "all_formats": "formats",
                "strict_gates": "strict"}, {"json_out"}),
    "verify": (export.verify, [edgetl.verify], [Gates], {"host": "hosts", "strict_gates": "strict"}, {"json_out"}),
    "bench": (devices.bench, [edgetl.bench], [BenchOptions], {"host": "hosts", "e2e": "e2e_image"},
              {"csv_file", "plot", "profile", "json_out"}),
    "calibrate": (export.calibrate, [edgetl.calibrate], [CalibrateOptions], {}, {"json_out"}),
    "live": (devices.live, [live_run], [LiveOptions, CaptureRequest],
             {"capture_max_files": "capture", "capture_max_mb": "capture", "capture_every": "capture"},
             {"headless", "json_out"}),
    "label": (loop.label, [edgetl.label], [], {}, {"json_out"}),
    "compare": (loop.compare, [edgetl.compare], [], {}, {"json_out"}),
    "tune": (tune.tune, [edgetl.tune], [TuneOptions, Target, Grid, TrainConfig],
             {"formats": "quants", "out_dir": "out"}, {"json_out"}),
}


def _api_names(functions, objects) -> set[str]:
    names = {p for f in functions for p in inspect.signature(f).parameters}
    return names | {f.name for o in objects for f in dataclasses.fields(o)}


@pytest.mark.parametrize("command", sorted(SURFACES))
def test_every_cli_option_reaches_the_api(command):
    cli, functions, objects, renamed, presentation = SURFACES[command]
    api = _api_names(functions, objects)
    cli_options = list(inspect.signature(cli).parameters)
    unmatched = [o for o in cli_options if o not in api and o not in renamed and o not in presentation]
    assert not unmatched, f"`edgetl {command}` options with no API counterpart: {unmatched}"
    # a renamed option names something the API has (None: the CLI's own iteration over inputs)
    wrong = {o: a for o, a in renamed.items() if a is not None and a not in api}
    assert not wrong, wrong
    stale = [o for o in list(renamed) + list(presentation) if o not in cli_options]
    assert not stale, f"listed here but no longer an option of `edgetl {command}`: {stale}"


def test_the_check_finds_a_missing_parameter():
    """The comparison itself: a CLI option the API lacks is reported."""
    def cli(model, fancy_new_option=False):
        pass

    def api(model):
        pass

    assert [o for o in inspect.signature(cli).parameters if o not in _api_names([api], [])] == ["fancy_new_option"]


API_FUNCTIONS = ["train", "tune", "export", "verify", "bench", "evaluate", "calibrate"]


@pytest.mark.parametrize("name", API_FUNCTIONS)
def test_api_functions_have_explicit_documented_signatures(name):
    fn = getattr(edgetl, name)
    sig = inspect.signature(fn)
    hidden = [p.name for p in sig.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD and name not in ("train", "tune")]  # TrainConfig fields
    assert not hidden, f"edgetl.{name} hides parameters behind **{hidden[0]}"
    doc = inspect.getdoc(fn) or ""
    for section in ("Args:", "Returns:", "Raises:"):
        assert section in doc, f"edgetl.{name}'s docstring has no {section}"
    for p in sig.parameters:
        assert f"{p}:" in doc, f"edgetl.{name}'s docstring does not describe {p}"
