"""Writing a finished run: the model with its rule folded in, labels, manifest, metrics, plots,
predictions, the page; then the folder is renamed into place."""
from __future__ import annotations

import json

import numpy as np

from edgetl.atomic import replacing
from edgetl import runs
from edgetl.runs import RunFolder
from edgetl.runtime.confidence import with_temperature
from edgetl.runtime.folder_manifest import ArtifactEntry, RunManifest
from edgetl.runtime.manifest import ModelManifest, file_sha256
from edgetl.runtime.task import Task
from edgetl.versions import package_versions
from edgetl.training.results import BestEpoch, ClassFigures, RunMetrics, TrainResult
from edgetl.training.splits import open_split, predict
from edgetl.training.answer_rules import choose_confidence, choose_unknown_rule


def finish(cfg, work, state, model, records: dict, data: dict, classes, log, load_s, skipped: int,
            multiworker: bool, task: Task = Task.SINGLE_LABEL) -> TrainResult:
    """Write the run folder: the best model, its held-out figures, plots, manifest and metrics.
    Single-label: the temperature and the "unknown" rules; multi-label: each label's threshold,
    folded into the model."""
    import keras

    from edgetl.metrics import plot_confusion, report
    from edgetl.training.plots import plot_history
    from edgetl.training.stages import CHECKPOINTS, load_checkpoint

    load_checkpoint(model, RunFolder(work).checkpoint("best"))
    best = next(h for h in state.history if h.epoch == state.best_epoch)
    log(f"best epoch {state.best_epoch + 1} (stage {best.stage}): val_loss {best.val_loss:.4f} "
        f"val_acc {best.val_accuracy:.4f}")
    with replacing(RunFolder(work).model) as tmp:
        model.save(tmp)
    # The saved model, loaded outside any distribution strategy: a model built under a multi-worker
    # strategy would wait for the other workers' collectives when predicting, and one built under
    # MirroredStrategy returns every replica's copy of a batch from predict_on_batch.
    plain = keras.saving.load_model(str(RunFolder(work).model), compile=False)
    probs, labels, opened = {}, {}, {}
    for split in [s for s in ("val", "test") if s in records]:
        # A worker's data is its shard; the figures are for the whole split.
        whole = opened[split] = (data[split] if split in data and not multiworker
                                 else open_split(records[split], cfg, quiet=True, num_labels=len(classes)))
        # Batches of the training batch size: a batch's activations are most of the memory at 224
        # (about 0.5 GB for 32 images through MobileNetV2), and the user sized it to fit.
        probs[split] = predict(plain, (b.astype(np.float32) for b in whole.store.batches(cfg.batch_size)))
        labels[split] = whole.labels
    thresholds, multi = None, None
    if task == Task.MULTI_LABEL:
        from edgetl.label_metrics import plot_pr_curves
        from edgetl.training.label_thresholds import choose_and_fold

        conf, calibration = None, {}
        thresholds, evals, folded = choose_and_fold(cfg, work, plain, probs, labels, classes, log)
        multi = {s: e.to_dict() for s, e in evals.items()} | {"thresholds": thresholds}
        predictions = {split: [{"path": r.path, "true": [int(i) for i in np.flatnonzero(t)],
                                "pred": [int(i) for i in np.flatnonzero(p >= 0.5)], "scores": [round(float(x), 5) for x in p]}
                               for r, t, p in zip(records[split], labels[split], folded[split])]
                       for split in folded}
        plot_pr_curves(labels["val"], folded["val"], classes, RunFolder(work).pr_plot)
    else:
        conf, calibration = choose_confidence(cfg, work, plain, probs["val"], labels["val"], classes, log)
        conf = choose_unknown_rule(cfg, work, plain, records["train"], opened["val"],
                             with_temperature(probs["val"], conf.temperature), conf, len(classes), log)
        calibration["manifest"] = conf.to_dict()
        evals, predictions = {}, {}
        for split, p_split in probs.items():
            p_split = with_temperature(p_split, conf.temperature).astype(np.float32)
            y = labels[split]
            evals[split] = report(y, p_split.argmax(1), classes)
            predictions[split] = [{"path": r.path, "true": int(t), "pred": int(p.argmax()), "score": float(p.max()),
                                   "true_score": float(p[t])} for r, t, p in zip(records[split], y, p_split)]
        plot_confusion(evals["val"], str(RunFolder(work).confusion_plot), title="val")

    stage2_start = next((h.epoch for h in state.history if h.stage == 2), None)
    plot_history(state.history, RunFolder(work).history_plot, stage2_start)
    RunFolder(work).history.write_text(json.dumps([h.to_dict() for h in state.history], indent=1))
    # Per held-out image: what the report shows as mistakes, without running the model again.
    RunFolder(work).predictions.write_text(json.dumps(predictions))
    contract = ModelManifest(classes, cfg.pixels, "keras", "fp32", backbone=cfg.backbone,
                             split={"val_split": cfg.val_split, "seed": cfg.seed},
                             versions=package_versions(("tensorflow", "tensorflow-cpu", "keras")),
                             sha256=file_sha256(RunFolder(work).model), confidence=conf, task=task,
                             thresholds=thresholds)
    # The run's own fields (what export reads), and model.keras's manifest as its one artifact.
    RunFolder(work).write_manifest(RunManifest(
        contract.labels, contract.input, contract.backbone, contract.split, contract.versions, contract.confidence,
        cfg.alpha, [ArtifactEntry(RunFolder.model.name, contract)], task=task, thresholds=thresholds))
    s1 = [h for h in state.history if h.stage == 1]
    s2 = [h for h in state.history if h.stage == 2]
    metrics = RunMetrics(
        val_accuracy=evals["val"].accuracy,
        best=BestEpoch(state.best_epoch + 1, best.stage, best.val_loss, best.val_accuracy),
        # Epochs are counted from 1 here, as in the log (history.json keeps Keras's 0-based index).
        final_epoch={k: state.history[-1].figure(k) for k in ("loss", "accuracy", "val_loss", "val_accuracy")}
        | {"epoch": state.history[-1].epoch + 1},
        per_class={c.label: ClassFigures(c.precision, c.recall, c.support)
                   for c in getattr(evals["val"], "per_label", None) or getattr(evals["val"], "per_class", [])},
        confusion=getattr(evals["val"], "confusion", []),
        test_accuracy=evals["test"].accuracy if "test" in evals else None,
        epochs={"stage1": len(s1), "stage2": len(s2)},
        seconds={"load": load_s, **state.seconds},
        images_per_s={f"stage{i}": len(h) * len(records["train"]) / state.seconds[f"stage{i}"] if h else None
                      for i, h in ((1, s1), (2, s2))},
        stage1_path=state.path_taken,
        images={s: len(v) for s, v in records.items()},
        skipped_files=skipped,
        confidence=calibration,
        multi_label=multi,
    )
    RunFolder(work).metrics.write_text(json.dumps(metrics.to_dict(), indent=1))
    for which in CHECKPOINTS:  # model.keras holds the best weights now
        RunFolder(work).checkpoint(which).unlink(missing_ok=True)
    final = runs.finish(work)
    from edgetl.report import refresh

    page = refresh(final)
    log(f"val accuracy {metrics.val_accuracy:.4f}; run saved to {final}" + (f"; report: {page}" if page else ""))
    return TrainResult(final, metrics)
