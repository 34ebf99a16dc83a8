"""Where the tests find the shared data beside the project (``EDGETL_SHARED``, default
``../shared``), and the marks that skip a test with a reason when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("EDGETL_SHARED", ROOT.parent / "shared")).resolve()
WEIGHTS = SHARED / "weights" / "mobilenet_v2_imagenet_no_top.weights.h5"
HYMENOPTERA = SHARED / "datasets" / "hymenoptera"

needs_weights = pytest.mark.skipif(not WEIGHTS.exists(), reason=f"no shared weights at {WEIGHTS} (set EDGETL_SHARED)")
needs_hymenoptera = pytest.mark.skipif(not HYMENOPTERA.exists(),
                                       reason=f"no hymenoptera dataset at {HYMENOPTERA} (set EDGETL_SHARED)")
