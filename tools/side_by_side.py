#!/usr/bin/env python3
"""One side of the training comparison in tools/bench_suite.py, in a process of its own so its
peak memory is its own: TensorFlow's transfer-learning tutorial written as plain Keras, or
`edgetl train` with the same image size and epochs. Prints one JSON line: wall seconds (from
before the data is read to the trained model), the final model's val accuracy, peak RSS.

    python tools/side_by_side.py tutorial|edgetl DATA WEIGHTS [--size 160] [--epochs 10] [--fine-tune-epochs 10]

The tutorial's recipe (tensorflow.org/tutorials/images/transfer_learning): image_dataset_from_directory,
RandomFlip + RandomRotation(0.2), MobileNetV2's own preprocessing, the base frozen under a global
pooling, dropout 0.2 and one logit; Adam 1e-4; then the layers from 100 up fine-tuned with
RMSprop 1e-5. DATA holds train/ and val/ class folders."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def tutorial(data: Path, weights: str, size: int, epochs: int, fine_tune_epochs: int) -> float:
    """The tutorial's recipe; returns the final model's accuracy on val/."""
    import keras
    import tensorflow as tf

    shape = (size, size)
    train = keras.utils.image_dataset_from_directory(data / "train", shuffle=True, batch_size=32, image_size=shape,
                                                     verbose=False)
    val = keras.utils.image_dataset_from_directory(data / "val", shuffle=False, batch_size=32, image_size=shape,
                                                   verbose=False)
    train, val = train.prefetch(tf.data.AUTOTUNE), val.prefetch(tf.data.AUTOTUNE)
    augment = keras.Sequential([keras.layers.RandomFlip("horizontal"), keras.layers.RandomRotation(0.2)])
    base = keras.applications.MobileNetV2(input_shape=shape + (3,), include_top=False, weights=weights)
    base.trainable = False
    inputs = keras.Input(shape=shape + (3,))
    x = keras.applications.mobilenet_v2.preprocess_input(augment(inputs))
    x = base(x, training=False)
    x = keras.layers.Dropout(0.2)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    metric = [keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")]
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=loss, metrics=metric)
    history = model.fit(train, epochs=epochs, validation_data=val, verbose=2)
    base.trainable = True
    for layer in base.layers[:100]:
        layer.trainable = False
    model.compile(optimizer=keras.optimizers.RMSprop(1e-5), loss=loss, metrics=metric)
    model.fit(train, epochs=epochs + fine_tune_epochs, initial_epoch=len(history.epoch), validation_data=val, verbose=2)
    return float(model.evaluate(val, verbose=0)[1])


def edgetl_train(data: Path, weights: str, size: int, epochs: int, fine_tune_epochs: int) -> float:
    """`edgetl train` with the same size and epochs, every other setting its default."""
    import tempfile

    from edgetl import TrainConfig, train

    project = tempfile.mkdtemp(prefix="edgetl-side-by-side-")
    result = train(TrainConfig(data=str(data), weights=weights, size=size, epochs=epochs,
                               fine_tune_epochs=fine_tune_epochs, project=project, name="edgetl"))
    return float(result.metrics.val_accuracy)


SIDES = {"tutorial": tutorial, "edgetl": edgetl_train}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("side", choices=SIDES)
    p.add_argument("data", type=Path)
    p.add_argument("weights")
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--fine-tune-epochs", type=int, default=10)
    a = p.parse_args()
    t = time.perf_counter()
    accuracy = SIDES[a.side](a.data, a.weights, a.size, a.epochs, a.fine_tune_epochs)
    print(json.dumps({"side": a.side, "seconds": time.perf_counter() - t, "val_accuracy": accuracy,
                      "peak_rss_mb": peak_rss_mb()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
