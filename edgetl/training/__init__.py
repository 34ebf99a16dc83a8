"""Two-stage transfer learning (imports TensorFlow when a run starts): :func:`edgetl.train`."""
from edgetl.training.config import TrainConfig, load_config

__all__ = ["TrainConfig", "load_config"]
