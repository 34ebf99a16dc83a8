"""Backbone registry and model builders (TensorFlow/Keras imported only when building)."""
from edgetl.models.backbones import BACKBONES, BackboneSpec, get_backbone

__all__ = ["BACKBONES", "BackboneSpec", "get_backbone"]
