"""Two-stage transfer learning (imports TensorFlow when a run starts)."""
from edgetl._callable import make_callable
from edgetl.train.config import TrainConfig, load_config


def train(*args, **kwargs):
    """See :func:`edgetl.train.run.train`."""
    from edgetl.train.run import train as _train

    return _train(*args, **kwargs)


__all__ = ["TrainConfig", "load_config", "train"]

make_callable(__name__, train)
