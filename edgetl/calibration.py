"""`edgetl calibrate RUN`: choose the "unknown" rule again without retraining, and rewrite what
carries it in seconds: model.keras, the run's and the export's manifests, and each exported file's
folded constant and metadata, then verify the artifacts against the new Keras model as export does.

What changes is one number: the rule's threshold (the folded gate's bias, ``-sharpness *
threshold``), and with it the score threshold every consumer applies (the manifest, the TFLite
metadata MediaPipe reads, ONNX's metadata). The class means, the backbone and the head stay as
trained, so nothing is converted or quantized again: each file's one bias value is found and
replaced where the converter put it, and the file's embedded manifest is written anew."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edgetl import runs
from edgetl.atomic import replacing, write_atomic
from edgetl.errors import EdgetlError
from edgetl.runs import RunFolder
from edgetl.runtime.confidence import Confidence
from edgetl.runtime.unknown_rule import LAYER_PREFIX, FeatureRule

logger = logging.getLogger(__name__)

GATE = f"{LAYER_PREFIX}gate"
SIMILARITY = f"{LAYER_PREFIX}similarity"


@dataclass
class CalibrateOptions:
    """What to choose the rule at (None: as the run chose it)."""

    answer_rate: float | None = None
    """Share of the validation images the rule answers (``--answer-rate``)."""
    unknown: str | None = None
    """A folder of images that are none of the classes: the score threshold is then chosen with
    them to meet ``min_precision``, the answer rate a floor (as ``train --unknown``)."""
    min_precision: float | None = None
    threads: int | None = None

    def check(self) -> "CalibrateOptions":
        """One clear error for a value out of range."""
        if self.answer_rate is not None and not 0 < self.answer_rate <= 1:
            raise EdgetlError(f"--answer-rate {self.answer_rate:g} is not a share of the images",
                              fix="give a value above 0 and at most 1, e.g. --answer-rate 0.95")
        if self.min_precision is not None and not 0 < self.min_precision <= 1:
            raise EdgetlError(f"--min-precision {self.min_precision:g} is not a precision",
                              fix="give a value above 0 and at most 1, e.g. --min-precision 0.95")
        if self.unknown is not None and not Path(self.unknown).is_dir():
            raise EdgetlError("--unknown needs a folder of images that are none of the classes", path=self.unknown,
                              fix="give a folder of photos of what the camera sees that is none of the classes")
        return self


@dataclass
class CalibrateResult:
    """The rule before and after, the confidence the files now carry, what was rewritten, and
    the verification of the exported artifacts (None when the run has no export yet)."""

    run: Path
    before: FeatureRule
    after: FeatureRule
    confidence: Confidence
    rewritten: list[str] = field(default_factory=list)
    verified: object | None = None
    """The :class:`~edgetl.exporting.pipeline.ExportResult` of the artifacts against Keras."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every kept artifact passed its gates again (or there was none to verify)."""
        return self.verified is None or self.verified.ok

    def to_dict(self) -> dict:
        """What ``calibrate --json`` prints."""
        return {"run": str(self.run), "before": self.before.to_dict(), "after": self.after.to_dict(),
                "confidence": self.confidence.to_dict(), "rewritten": self.rewritten, "ok": self.ok,
                "checks": [c.to_dict() for c in self.verified.checks] if self.verified is not None else [],
                "seconds": self.seconds}


def calibrate(run: str | Path | None = None, options: CalibrateOptions | None = None) -> CalibrateResult:
    """Choose RUN's "unknown" rule again on its validation images and rewrite what carries it.

    Raises:
        EdgetlError: the run is not finished, its model carries no rule (trained elsewhere or on
            too few validation images), or the options are out of range.
    """
    from edgetl.exporting.run_input import read_run

    t0 = time.perf_counter()
    opts = (options or CalibrateOptions()).check()
    run_path, manifest = read_run(run)
    if manifest.multi_label:
        raise EdgetlError("calibrate chooses a single-label run's \"unknown\" rule; a multi-label run has a threshold "
                          "per label instead", path=run_path,
                          fix="train again with --label-threshold f1 or precision (--min-precision) to choose them")
    conf = manifest.confidence
    if conf is None or conf.feature_rule is None:
        raise EdgetlError("this run's model carries no \"unknown\" rule to choose again (it was trained without "
                          "one: on fewer than 20 validation images, or by an older edgetl)", path=run_path,
                          fix="train it again with more validation images (every run chooses the rule)")
    with runs.locked(run_path, "a calibration"):
        new_conf, model = _choose(run_path, manifest, conf, opts)
        rewritten = _rewrite(run_path, manifest, model, conf, new_conf)
        verified = None
        if RunFolder(run_path).export.manifest.is_file():
            from edgetl.exporting.verify_run import verify_run

            verified = verify_run(run_path, threads=opts.threads)
    from edgetl.report import refresh

    refresh(run_path)
    return CalibrateResult(run_path, conf.feature_rule, new_conf.feature_rule, new_conf, rewritten, verified,
                           time.perf_counter() - t0)


def _choose(run_path: Path, manifest, conf: Confidence, opts: CalibrateOptions):
    """The new confidence (rule, score threshold, coverage) and the Keras model with it folded in."""
    from edgetl.data.audit import Audit
    from edgetl.data.cache import open_images
    from edgetl.native_logs import quiet_import
    from edgetl.training import unknown_rule
    from edgetl.training.answer_rules import unknown_probs, with_both_rules
    from edgetl.training.config import TrainConfig, load_config

    keras = quiet_import("keras")  # the first import of TensorFlow: its C++ banners are not the user's business
    folder = RunFolder(run_path)
    cfg = load_config(folder.config, {}) if folder.config.is_file() else TrainConfig()
    model = keras.saving.load_model(str(folder.model), compile=False)
    names = {layer.name for layer in model.layers}
    if not {GATE, SIMILARITY} <= names:
        raise EdgetlError("model.keras has no folded \"unknown\" rule (its layers are not there)", path=folder.model,
                          fix="train the run again with this edgetl")
    val = Audit.load_file(folder.audit).split("val")
    labels = np.array([r.label for r in val])
    probe = keras.Model(model.inputs, [model.get_layer(unknown_rule.FEATURE_LAYER).input,
                                       model.get_layer("predictions").output])
    images = open_images([r.path for r in val], manifest.input, hashes=[r.sha256 for r in val], quiet=True)
    features, probs = [], []
    for batch in images.batches(cfg.batch_size):
        f, p = probe.predict_on_batch(batch.astype(np.float32))
        features.append(np.asarray(f))
        probs.append(np.asarray(p))
    features, probs = np.concatenate(features), np.concatenate(probs)
    means = model.get_layer(SIMILARITY).get_weights()[0].T
    rate = opts.answer_rate if opts.answer_rate is not None else conf.feature_rule.answer_rate
    choice = unknown_rule.choose(features, labels, probs, means, np.ones(len(means), np.int64), rate)
    if choice.rule is None:
        raise EdgetlError(f"no rule could be chosen: {choice.why}", path=run_path,
                          fix="give more validation images (train again with a larger --val-split)")
    rule = replace(choice.rule, class_images=conf.feature_rule.class_images, sharpness=conf.feature_rule.sharpness)
    gate = model.get_layer(GATE)
    kernel, _ = gate.get_weights()
    gate.set_weights([kernel, np.array([-rule.sharpness * rule.threshold], np.float32)])
    scores = probs * unknown_rule.gate(unknown_rule.nearest_similarity(features, means), rule.threshold,
                                       rule.sharpness)[:, None]
    logger.info(f"unknown rule: {rule.said()} (before: threshold {conf.feature_rule.threshold:.3f} at "
                f"{conf.feature_rule.answer_rate:.0%})")
    unknown_scores = (unknown_probs(model, opts.unknown, manifest.input, cfg.batch_size, logger.info)
                      if opts.unknown else None)
    softmax_t = conf.softmax_threshold if conf.softmax_threshold is not None else conf.threshold
    min_precision = opts.min_precision if opts.min_precision is not None else cfg.min_precision
    new = with_both_rules(conf, scores, labels, rule, softmax_t, min_precision, unknown_scores, len(manifest.labels),
                          logger.info)
    return new, model


def _rewrite(run_path: Path, manifest, model, old: Confidence, new: Confidence) -> list[str]:
    """model.keras, RUN/manifest.json, metrics.json's figure, and every exported file with its
    manifest entry; returns the files rewritten (relative to the run)."""
    from edgetl.exporting import retune
    from edgetl.runtime import golden, load
    from edgetl.runtime.folder_manifest import GoldenAnswers
    from edgetl.runtime.manifest import file_sha256

    folder = RunFolder(run_path)
    with replacing(folder.model) as tmp:
        model.save(tmp)
    folder.write_manifest(replace(manifest, confidence=new, artifacts=[
        replace(a, manifest=replace(a.manifest, confidence=new)) for a in manifest.artifacts]))
    rewritten = [folder.model.name, folder.manifest.name]
    try:
        metrics = json.loads(folder.metrics.read_text(encoding="utf-8"))
        metrics.setdefault("confidence", {})["manifest"] = new.to_dict()
        write_atomic(folder.metrics, json.dumps(metrics, indent=1), leftover_ok=True)
        rewritten.append(folder.metrics.name)
    except (OSError, ValueError, AttributeError):
        logger.warning("metrics.json could not be updated with the new rule (the manifest is)")
    export = folder.export
    if not export.manifest.is_file():
        return rewritten
    exported = export.read_manifest()
    old_bias = -old.feature_rule.sharpness * old.feature_rule.threshold
    new_bias = -new.feature_rule.sharpness * new.feature_rule.threshold
    entries = []
    for a in exported.artifacts:
        path = export.path / a.file
        if not path.is_file():
            entries.append(a)
            continue
        contract = replace(a.manifest, confidence=new)
        write_atomic(path, retune.rewrite(path, old_bias, new_bias, contract), leftover_ok=True)
        entries.append(replace(a, manifest=replace(contract, sha256=file_sha256(path))))
        rewritten.append(f"export/{a.file}")
    gold = exported.golden
    if gold is not None and (export.path / gold.file).is_file():
        pixels = np.load(export.path / gold.file, allow_pickle=False)
        gold = replace(gold, expected={f: GoldenAnswers(**golden.expected(load(export.path / f), pixels))
                                       for f in gold.expected if (export.path / f).is_file()})
    replace(exported, artifacts=entries, golden=gold).write(export.manifest)
    rewritten.append("export/manifest.json")
    logger.info(f"rewrote {len(entries)} exported file(s)' rule and manifest, and the golden answers")
    return rewritten
