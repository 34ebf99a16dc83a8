"""edgetl.native_logs: TensorFlow's Python logger is set to errors only when edgetl is the one that
imports TensorFlow (the CLI); a program that imported it first keeps its own level."""
from __future__ import annotations

import os
import subprocess
import sys

from helpers.shared import ROOT


def _logger_level(code: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "EDGETL_DEBUG"} | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return int(proc.stdout.split()[-1])


def test_tensorflows_logger_is_quieted_only_when_edgetl_imports_it():
    ours = _logger_level("from edgetl.native_logs import quiet_import; quiet_import('keras'); "
                         "import tensorflow as tf; print(tf.get_logger().level)")
    theirs = _logger_level("import logging, tensorflow as tf; tf.get_logger().setLevel(logging.INFO); "
                           "from edgetl.native_logs import quiet_import; quiet_import('keras'); print(tf.get_logger().level)")
    assert (ours, theirs) == (40, 20)  # logging.ERROR, logging.INFO
