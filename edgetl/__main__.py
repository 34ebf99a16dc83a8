"""`python -m edgetl` and the `edgetl` command. Ctrl-C while the CLI's modules load (numpy, OpenCV,
rich: a second on a Pi) ends quietly with 130, like Ctrl-C later on, not with an import traceback."""
import signal
import sys


def _stopped_while_starting(signum, frame) -> None:
    sys.exit(130)


def main() -> None:
    """Load the CLI with Ctrl-C meaning "exit 130", then run it with Python's own Ctrl-C handling.

    A multi-worker training blocks SIGINT and SIGTERM from the first instruction instead: every
    thread started later (numpy's, TensorFlow's) inherits the block, so while TensorFlow waits for
    the other workers (holding Python's lock, with a SIGTERM handler of its own) a stop stays
    pending where edgetl's watcher process sees it (edgetl.training.distribute); the signals are
    unblocked for the main thread once the workers have joined."""
    if "multiworker" in sys.argv[1:] and "train" in sys.argv[1:]:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    previous = signal.signal(signal.SIGINT, _stopped_while_starting)
    from edgetl.cli import main as run

    signal.signal(signal.SIGINT, previous)
    run()


if __name__ == "__main__":
    main()
