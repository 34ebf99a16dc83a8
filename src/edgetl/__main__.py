"""`python -m edgetl` and the `edgetl` command. Ctrl-C while the CLI's modules load (numpy, OpenCV,
rich: a second on a Pi) ends quietly with 130, like Ctrl-C later on, not with an import traceback."""
import signal
import sys


def _stopped_while_starting(signum, frame) -> None:
    sys.exit(130)


def main() -> None:
    """Load the CLI with Ctrl-C meaning "exit 130", then run it with Python's own Ctrl-C handling."""
    previous = signal.signal(signal.SIGINT, _stopped_while_starting)
    from edgetl.cli import main as run

    signal.signal(signal.SIGINT, previous)
    run()


if __name__ == "__main__":
    main()
