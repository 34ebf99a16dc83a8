"""Reaching devices: the SSH transport (:mod:`edgetl.remote.ssh`) and edgetl's device program over
it (:mod:`edgetl.remote.runner`). Used by bench, deploy, verify, doctor and harvest."""
