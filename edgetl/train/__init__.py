"""Two-stage transfer learning (imports TensorFlow when a run starts)."""
from edgetl.train.config import TrainConfig, load_config


def train(*args, **kwargs):
    """See :func:`edgetl.train.run.train`."""
    from edgetl.train.run import train as _train

    return _train(*args, **kwargs)


__all__ = ["TrainConfig", "load_config", "train"]
