"""`edgetl tune`: the most accurate model within a latency budget, measured on the device
(:func:`edgetl.tuning.search.tune`)."""
from edgetl.tuning.grid import Architecture, Candidate, Grid, Quant
from edgetl.tuning.latency import Statistic, Target
from edgetl.tuning.record import Row, Status, TuneRecord
from edgetl.tuning.search import Metric, TuneOptions, TuneResult, tune

__all__ = ["Architecture", "Candidate", "Grid", "Quant", "Statistic", "Target", "Row", "Status", "TuneRecord", "Metric",
           "TuneOptions", "TuneResult", "tune"]
