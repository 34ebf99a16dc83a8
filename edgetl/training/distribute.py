"""tf.distribute for training: which strategy, which worker this process is, and the training loop
used when several worker processes train one model.

Several workers (``--strategy multiworker``) train with a custom loop under ``strategy.run``
rather than ``Model.fit``: Keras 3.15's TensorFlow trainer fails at the first step under
MultiWorkerMirroredStrategy (keras-team/keras#20585: ``strategy.reduce`` of a PerReplica value
while building the model; patched past that, tensorflow#72388 inside the train function). The
loop is a few lines: each replica computes the loss of its share summed over the global batch,
Keras's optimizer all-reduces the gradients across replicas, and the epoch's loss and accuracy
are summed across workers, so every worker sees the same figures and makes the same early-stopping
decision. Single-process runs keep ``fit``.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from edgetl.errors import EdgetlError


@dataclass(frozen=True)
class WorkerRole:
    """This process's place in a multi-worker cluster (a single process is the chief of one)."""

    index: int = 0
    count: int = 1
    chief: bool = True

    @property
    def name(self) -> str:
        """How logs name this worker."""
        return "chief" if self.chief else f"worker {self.index}"


SLURM_PORT_ENV = "EDGETL_SLURM_PORT"
"""First port of the workers under SLURM (a node's tasks take it and the next ones); default 8888."""


def _slurm_step() -> tuple[int, int] | None:
    """(rank, tasks) of a SLURM job step started by srun, or None outside one."""
    try:
        return int(os.environ["SLURM_PROCID"]), int(os.environ["SLURM_STEP_NUM_TASKS"])
    except (KeyError, ValueError):
        return None


def worker_role(strategy: str) -> WorkerRole:
    """This process's role for ``--strategy multiworker``, from TF_CONFIG, else from the SLURM job
    step (srun). The chief is the task of type "chief", or worker 0 when the cluster has none
    (TensorFlow's rule; under SLURM, rank 0). Other strategies: a single chief."""
    if strategy != "multiworker":
        return WorkerRole()
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        step = _slurm_step()
        if step is None:
            raise EdgetlError("--strategy multiworker needs the TF_CONFIG environment variable (or a SLURM job step)",
                              fix="set TF_CONFIG on every worker (cluster and task; see README), start the workers "
                                  "with srun, or use --strategy mirrored")
        return WorkerRole(step[0], step[1], step[0] == 0)
    try:
        config = json.loads(raw)
        cluster, task = config["cluster"], config["task"]
        kind, index = str(task["type"]), int(task["index"])
        members = [(k, i) for k in ("chief", "worker") for i in range(len(cluster.get(k, [])))]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise EdgetlError(f"TF_CONFIG is not a cluster and task description ({type(e).__name__})",
                          fix='set TF_CONFIG to {"cluster": {"worker": ["host1:port", ...]}, '
                              '"task": {"type": "worker", "index": 0}}') from None
    if (kind, index) not in members:
        raise EdgetlError(f"TF_CONFIG's task {kind} {index} is not in its cluster",
                          fix="give each worker its own index into the cluster's worker list")
    chief = kind == "chief" or (kind == "worker" and index == 0 and not cluster.get("chief"))
    return WorkerRole(members.index((kind, index)), len(members), chief)


def _slurm_resolver():
    """TensorFlow's SLURM cluster resolver. On nodes without GPUs it needs help: it would look for
    nvidia-smi, and with no GPU to hand out its task list comes out empty; there it is given one
    notional GPU per task and told not to touch CUDA_VISIBLE_DEVICES."""
    import shutil

    import tensorflow as tf

    try:
        port = int(os.environ.get(SLURM_PORT_ENV, "8888"))
    except ValueError:
        raise EdgetlError(f"{SLURM_PORT_ENV} must be a port number", fix=f"unset {SLURM_PORT_ENV} or give a number") from None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = len([d for d in visible.split(",") if d.strip()]) if visible is not None else (
        None if shutil.which("nvidia-smi") else 0)
    if gpus == 0:
        tasks = _slurm_step()[1]
        return tf.distribute.cluster_resolver.SlurmClusterResolver(port_base=port, gpus_per_node=tasks, gpus_per_task=1,
                                                                   auto_set_gpu=False)
    return tf.distribute.cluster_resolver.SlurmClusterResolver(port_base=port, gpus_per_node=gpus)


def own_address() -> str | None:
    """This worker's "host:port" in TF_CONFIG's cluster (None under SLURM or when unset)."""
    try:
        config = json.loads(os.environ["TF_CONFIG"])
        return str(config["cluster"][config["task"]["type"]][int(config["task"]["index"])])
    except (KeyError, ValueError, TypeError, IndexError):
        return None


def exposure_warning(address: str | None) -> str:
    """What every multi-worker process must be told before it starts TensorFlow's gRPC server.

    TensorFlow 2.21's ``GrpcServer::Init`` listens on ``0.0.0.0:PORT`` whatever host TF_CONFIG
    names (the address is hard-coded; its only listener settings are ``TF_GRPC_REUSE_PORT`` and
    the worker cache's threads), and the server runs any graph or eager operation a client sends,
    without authentication (TensorFlow's SECURITY.md: for trusted networks only). So edgetl cannot
    narrow it: it says so, on every worker, before the port opens."""
    port = address.rpartition(":")[2] if address else "its port"
    return (f"warning: this worker's TensorFlow gRPC server will listen on {'port ' + port if address else port} of "
            "every network interface (TensorFlow binds 0.0.0.0 whatever TF_CONFIG names) and runs any operation "
            "sent to it, without authentication: run workers only on a private, firewalled network "
            "(README: Security)")


def peers() -> str:
    """The other workers, in words: "worker 1 at host2:12345, ..." (TF_CONFIG) or "the other N tasks"."""
    try:
        config = json.loads(os.environ["TF_CONFIG"])
        me = (config["task"]["type"], int(config["task"]["index"]))
        others = [f"{kind} {i} at {addr}" for kind in ("chief", "worker")
                  for i, addr in enumerate(config["cluster"].get(kind, [])) if (kind, i) != me]
        return ", ".join(others) or "no other worker"
    except (KeyError, ValueError, TypeError):
        step = _slurm_step()
        return f"the other {step[1] - 1} task(s) of the job step" if step else "the other workers"


JOIN_NOTE_SECONDS = 30.0
"""How often a worker that waits for the others says so."""

_WATCHER = """
import os, select, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C reaches the worker too; this process acts for it
signal.signal(signal.SIGTERM, signal.SIG_IGN)
timeout, every, waiting_for, worker = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], os.getppid()
status = f"/proc/{worker}/status"

def pending():
    try:
        with open(status) as f:
            mask = int(next(line for line in f if line.startswith("ShdPnd:")).split()[1], 16)
    except (OSError, StopIteration, ValueError):
        return None
    return next((s for s in (signal.SIGTERM, signal.SIGINT) if mask >> (s - 1) & 1), None)

def end(message):
    sys.stderr.write(message + "\\n")
    sys.stderr.flush()
    os.kill(worker, signal.SIGKILL)
    sys.exit(0)

start = last = time.monotonic()
while True:
    now = time.monotonic()
    if now - start >= timeout:
        end(f"error: {waiting_for} did not join within {timeout:.0f} s; giving up (start every worker with the same "
            "TF_CONFIG cluster and addresses they can reach, or raise --worker-timeout)")
    if select.select([sys.stdin], [], [], 0.2)[0]:
        break  # the worker joined (it closed the pipe) or ended
    sig = pending()
    if sig is not None:
        end(f"stopped by {signal.Signals(sig).name} while waiting for {waiting_for}")
    if now - last >= every:
        last = now
        sys.stderr.write(f"still waiting for {waiting_for} ({now - start:.0f} s of {timeout:.0f} s)\\n")
        sys.stderr.flush()
"""
"""The watcher process of the wait for the other workers. TensorFlow holds Python's lock in its C++
code while it waits (retrying for ever) and installs a SIGTERM handler of its own there, so no
thread of the worker can keep time or answer a signal: the worker blocks SIGINT and SIGTERM, and
this process reads them as pending from /proc and ends the worker."""


@contextlib.contextmanager
def _bounded_wait(timeout: float, waiting_for: str) -> Iterator[None]:
    """While the block waits for the other workers: SIGINT and SIGTERM are blocked (the `edgetl`
    command blocks them from its first instruction, so that every thread inherits it; through
    the Python API, threads started before this, such as numpy's, may still take them, and
    TensorFlow's handler then swallows them), and a watcher process says every 30 s whom the worker
    waits for; after ``timeout`` seconds, or when SIGINT or SIGTERM is pending, it says why and
    ends the worker (SIGKILL: nothing has been written yet, the run folder comes after). Once the
    block is done the signals are delivered to edgetl's own handlers as usual."""
    watched = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, watched)  # already so from the start under `edgetl train`
    watcher = subprocess.Popen([sys.executable, "-c", _WATCHER, str(timeout), str(JOIN_NOTE_SECONDS), waiting_for],
                               stdin=subprocess.PIPE)
    try:
        yield
    finally:
        watcher.stdin.close()
        watcher.wait()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, watched)


def make_strategy(name: str, log, join_timeout: float = 600.0):
    """The tf.distribute strategy for ``--strategy``. Call before anything else touches TensorFlow's
    runtime (collective ops are configured at program start-up) and before the run folder is
    made: a multi-worker strategy waits for every worker to join, at most ``join_timeout``
    seconds, and Ctrl-C or SIGTERM during that wait ends the process at once."""
    from edgetl.native_logs import quiet_import

    tf = quiet_import("tensorflow")  # the first import of TensorFlow: its C++ banners are not the user's business

    if name == "multiworker":
        log(exposure_warning(own_address()))
        resolver = None if os.environ.get("TF_CONFIG") else _slurm_resolver()
        waiting_for = peers()
        log(f"waiting for {waiting_for} to join (at most {join_timeout:.0f} s: --worker-timeout)")
        with _bounded_wait(join_timeout, waiting_for):
            strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
        log(f"MultiWorkerMirroredStrategy: {strategy.num_replicas_in_sync} replica(s) in sync across the cluster")
        return strategy
    gpus = tf.config.list_logical_devices("GPU")
    if name == "none" or (name == "auto" and len(gpus) < 2):
        return tf.distribute.get_strategy()
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    log(f"MirroredStrategy over {len(devices)} device(s): {', '.join(devices)}")
    return tf.distribute.MirroredStrategy(devices)


def is_multiworker(strategy) -> bool:
    """True for a strategy whose replicas live in several processes."""
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


class DistributedFit:
    """``fit`` for several workers: epochs of a custom step under ``strategy.run``, the same
    callbacks as ``fit`` (the checkpointer), each worker reading its own shard."""

    def __init__(self, strategy, trainer, global_batch: int, label_smoothing: float, objective, positive_weights=None):
        import tensorflow as tf

        self.strategy, self.trainer, self.global_batch = strategy, trainer, global_batch
        opt = trainer.optimizer
        sum_ = tf.distribute.ReduceOp.SUM

        def totals(p, y, w):
            per = objective.per_example(y, p, label_smoothing, positive_weights)
            hit = objective.hit(y, p)
            return per, tf.stack([tf.reduce_sum(per * w), tf.reduce_sum(hit * w), tf.reduce_sum(w)])

        def train_step(x, y, w):
            with tf.GradientTape() as tape:
                p = trainer(x, training=True)
                per, sums = totals(p, y, w)
                # Summed over the global batch: the all-reduced gradients are then the global mean.
                loss = opt.scale_loss(tf.reduce_sum(per * w) / global_batch)
            variables = trainer.trainable_variables
            opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return sums

        def val_step(x, y, w):
            return totals(trainer(x, training=False), y, w)[1]

        @tf.function
        def run_train(batch):
            return strategy.reduce(sum_, strategy.run(train_step, args=batch), axis=None)

        @tf.function
        def run_val(batch):
            return strategy.reduce(sum_, strategy.run(val_step, args=batch), axis=None)

        self._train, self._val = run_train, run_val

    def _epoch(self, step, dataset) -> tuple[float, float]:
        from edgetl.training.stop import check

        total = np.zeros(3)
        for batch in dataset:
            total += step(batch).numpy()
            check()
        return total[0] / max(total[2], 1e-9), total[1] / max(total[2], 1e-9)

    def fit(self, train_ds, val_ds, epochs: int, initial_epoch: int, callbacks) -> None:
        """Train from ``initial_epoch`` to ``epochs`` (Keras's meaning), calling the callbacks'
        epoch hooks with the same logs ``fit`` gives."""
        for cb in callbacks:
            cb.set_model(self.trainer)
        self.trainer.stop_training = False
        for epoch in range(initial_epoch, epochs):
            for cb in callbacks:
                cb.on_epoch_begin(epoch)
            loss, acc = self._epoch(self._train, train_ds)
            val_loss, val_acc = self._epoch(self._val, val_ds)
            logs = {"loss": loss, "accuracy": acc, "val_loss": val_loss, "val_accuracy": val_acc}
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if self.trainer.stop_training:
                break


def shard(items: list, role: WorkerRole, seed: int) -> list:
    """This worker's share of ``items``: every worker takes turns through one seeded permutation,
    so the shards are disjoint, cover everything and differ in size by at most one. Each worker
    decodes and reads only its own share."""
    if role.count == 1:
        return items
    order = np.random.default_rng([seed, 7919]).permutation(len(items))
    return [items[i] for i in sorted(order[role.index::role.count])]
