"""Multi-worker training: the strategy made before the run folder, a worker's own folder, and
what a worker that is not the chief does."""
from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from edgetl.errors import EdgetlError
from edgetl.runs import RunFolder
from edgetl.training import stop
from edgetl.training.config import TrainConfig
from edgetl.training.results import TrainResult
from edgetl.training.distribute import WorkerRole, make_strategy
from edgetl.training.runlog import RunLog
from edgetl.training.failures import Interrupted, peer_lost
from edgetl.training.loop import run_stages


logger = logging.getLogger(__name__)


def worker_folder(role: WorkerRole, source: Path | None = None) -> Path:
    """A worker other than the chief writes its checkpoints and logs to a temporary folder of its
    own (TensorFlow's rule for multi-worker training: only the chief writes the real one); when
    resuming, it starts from a copy of the run's state."""
    from edgetl.training.stages import CHECKPOINTS

    folder = Path(tempfile.mkdtemp(prefix=f"edgetl-worker{role.index}-"))
    if source:
        theirs, mine = RunFolder(source), RunFolder(folder)
        pairs = [(theirs.config, mine.config), (theirs.audit, mine.audit), (theirs.state, mine.state)]
        for a, b in pairs + [(theirs.checkpoint(w), mine.checkpoint(w)) for w in CHECKPOINTS]:
            if a.exists():
                shutil.copy2(a, b)
    return folder


def make_run_strategy(cfg: TrainConfig, role: WorkerRole, said: list[str]):
    """The tf.distribute strategy, made before the run folder: a worker that waits for the others,
    and gives up or is stopped while waiting, leaves nothing behind. What it says goes to the
    console and into ``said`` (for train.log)."""
    prefix = "" if role.chief else f"{role.name}: "

    def tell(message: str) -> None:
        logger.info("%s%s", prefix, message)
        said.append(message)

    return make_strategy(cfg.strategy, tell, cfg.worker_timeout)


def train_as_worker(cfg: TrainConfig, work: Path, resuming: bool, role: WorkerRole, run: Path,
                     strategy) -> TrainResult:
    """Train as a non-chief worker: the same steps as the chief, in a temporary folder removed at the end."""
    log = RunLog(RunFolder(work).log, prefix=f"{role.name}: ")
    log(f"{role.name} of {role.count}: the chief writes {run}; this worker's checkpoints go to {work} (removed at the end)")
    try:
        with stop.on_signals():
            run_stages(cfg, work, resuming, log, role, strategy)
    except KeyboardInterrupt:
        raise Interrupted(f"{role.name} stopped") from None
    except Exception as e:
        lost = peer_lost(e, cfg)
        if lost is e:
            raise
        raise EdgetlError(lost.message, fix="start every worker again with --resume") from None
    finally:
        log.close()
        shutil.rmtree(work, ignore_errors=True)
    return TrainResult(run, worker=role.index)
