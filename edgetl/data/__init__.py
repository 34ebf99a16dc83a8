"""Dataset audit, splitting and fast cached loading."""
from edgetl.data.audit import Audit, AuditOptions, ImageRecord, Problem, audit
from edgetl.data.cache import ArrayStore, load_images, open_images

__all__ = ["Audit", "AuditOptions", "ImageRecord", "Problem", "audit", "load_images", "open_images", "ArrayStore"]
