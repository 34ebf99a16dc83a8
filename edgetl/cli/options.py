"""Options several commands share, defined once so that their names and help agree."""
from __future__ import annotations

import typer

from edgetl.exporting.formats import Gates


JSON = typer.Option(False, "--json", help="Machine-readable result on stdout.")
MAX_DROP = typer.Option(Gates.max_drop, "--max-drop", help="Largest accuracy drop vs Keras, in points.")
MIN_AGREEMENT = typer.Option(Gates.min_agreement, "--min-agreement", help="Smallest top-1 agreement with Keras (0..1).")
STRICT_GATES = typer.Option(Gates.strict, "--strict-gates/--evidence-gates",
                            help="Refuse on the figures alone; by default a missed limit refuses an artifact only when "
                                 "the held-out images prove the loss (McNemar), else it is kept as 'not proven'.")


CLASS_DEPTH = typer.Option(1, "--class-depth", min=1, max=2,
                           help="1: classes are DATA's (or each split's) sub-folders; 2: their sub-folders are, merged "
                                "across the folders above (batch folders such as 2023/cats, 2024/cats).")
EXAMPLES_PER_GROUP = 3


THREADS = typer.Option(None, "--threads", min=1, help="Inference threads (default: the runtime's choice).")
LABELS = typer.Option(None, "--labels", help="Labels file, one per line (overrides the model's own).")
THRESHOLD = typer.Option(None, "--threshold", min=0.0, max=1.0,
                         help="Answer 'unknown' below this top score (default: the model's own, chosen at training; "
                              "0 never).")
# The device options of bench, verify, deploy and doctor, defined once (defaults: SshTarget's and
# DEFAULT_TIMEOUT in edgetl.remote.ssh, which a test compares; not imported here to keep start-up light).
REMOTE_PYTHON = typer.Option("python3", "--remote-python", help="Python on the device (e.g. ~/edgetl-venv/bin/python).")
SSH_CONFIG = typer.Option(None, "--ssh-config", help="ssh_config file (default: ~/.ssh/config).")
DEVICE_TIMEOUT = typer.Option(900.0, "--timeout", min=1, help="Seconds a device may take before it is stopped.")


MISTAKES_SHOWN = 20
"""Misclassified files `eval` lists on the console (all of them in --json)."""
