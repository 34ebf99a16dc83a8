"""The `edgetl` command: parse options, call one library function, print the result.

One module per group of commands; importing them registers their commands on the app."""
from __future__ import annotations

import os
import signal
import sys


from edgetl.console import attach_logging, err, error_line, use_rich
from edgetl.errors import EdgetlError
from edgetl.native_logs import DEBUG_ENV
from edgetl.cli.app import app
from edgetl.cli import data, demo, devices, export, inference, loop, report, training, tune  # noqa: F401  (registers the commands)


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning EdgetlError into one line and exit code 2 (1 for gates)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        os.environ[DEBUG_ENV] = "1"  # native libraries' own log lines are shown too
    for stream in (sys.stdout, sys.stderr):  # file names need not be UTF-8: never die printing one
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    # systemd and `kill` stop a program with SIGTERM: end like Ctrl-C (live prints its summary,
    # training stays resumable), not mid-write.
    signal.signal(signal.SIGTERM, _terminate)
    attach_logging(debug)  # the library's log records, as plain lines on stderr
    use_rich()  # and its progress as bars on a terminal
    try:
        app(args=args, prog_name="edgetl")  # typer handles usage errors (exit 2) and typer.Exit
    except EdgetlError as e:
        if debug:
            raise
        error_line(str(e))
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as e:  # a bug or an unexpected environment: still one line unless --debug
        if debug:
            raise
        error_line(f"{type(e).__name__}: {e} (run with --debug for the traceback)")
        sys.exit(1)
