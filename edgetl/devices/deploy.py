"""`edgetl deploy MODEL --host HOST [--service]`: put an exported model on a device over SSH, prove
it answers there as at export (the golden check), and optionally run `live --serve` as a service.

On the device everything lives in one folder (default ``~/.local/share/edgetl/deploy``): the
model under a fixed name, its manifest and labels, the golden set, and the runner zipapp when
edgetl is not installed there. A deployment is built in a fresh sibling folder, checked there, and
only then exchanged with the previous one, so a failed step leaves the old deployment as it was
and nothing half-installed. Deploying the same model again is the same exchange: idempotent.

The service is a systemd *user* unit (``~/.config/systemd/user/edgetl-live.service``): edgetl
never asks for a password (SSH runs in BatchMode, no sudo), the unit runs as the user who owns the
model and the camera, and ``loginctl enable-linger`` starts it at boot without a login. It needs
edgetl installed on the device (devices/rpi/install.sh), since the runner zipapp carries no camera
loop. TensorFlow-free."""
from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from edgetl.errors import EdgetlError
from edgetl.live.outbox import NAME
from edgetl.remote.runner import run_golden, runner_command
from edgetl.remote.ssh import SshTarget, check, copy_file, remote_command, remove_remote_dir, ssh
from edgetl.runs import ExportFolder
from edgetl.runtime.golden import GOLDEN_FILE, Golden
from edgetl.runtime.manifest import MANIFEST
from edgetl.text import clean, device_count, has_control

DEFAULT_DIR = ".local/share/edgetl/deploy"
"""Relative to the device user's home (where ssh commands start)."""
UNIT = "edgetl-live.service"
_UNIT_DIR = 'printf %s "${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user"'
"""Where systemd looks for user units, as the device's shell resolves it."""
MARKER = ".edgetl-deploy"
"""The file every folder edgetl deploys into holds: only such folders are replaced or removed."""
_OURS = 'ours() { [ ! -e "$1" ] || { [ -d "$1" ] && { [ -e "$1/' + MARKER + '" ] || [ -z "$(ls -A "$1")" ]; }; }; }; '
"""Shell: is ``$1`` absent, an empty folder, or a folder edgetl deployed (its marker inside)?"""
NOT_OURS = 3
_PREFLIGHT = _OURS + 'ours "$1" || exit ' + str(NOT_OURS) + '; for d in "$1".new.*; do ' \
             '[ -e "$d/' + MARKER + '" ] && rm -rf -- "$d"; done; true'
"""Refuse a folder edgetl did not make; sweep the work folders a killed deploy left (marked ones only)."""
_SWAP = _OURS + 'set -e; new=$1; final=$2; old="$final.old.$3"; ours "$final" || exit ' + str(NOT_OURS) + '; ' \
        'if [ -e "$final" ]; then mv "$final" "$old"; fi; mv "$new" "$final"; rm -rf "$old"'
_REMOVE = _OURS + 'ours "$1" || exit ' + str(NOT_OURS) + '; rm -rf -- "$1"; for d in "$1".new.*; do ' \
          '[ -e "$d/' + MARKER + '" ] && rm -rf -- "$d"; done; true'
_DIGESTS = ("import hashlib, sys\nfor p in sys.argv[1:]:\n    h = hashlib.sha256()\n    with open(p, 'rb') as f:\n"
            "        for b in iter(lambda: f.read(1 << 20), b''):\n            h.update(b)\n    print(h.hexdigest())")
"""What the device runs to hash the copied files (its own Python: no sha256sum needed)."""


@dataclass
class DeployOptions:
    """Where the model goes on the device and how the service runs it."""

    remote_dir: str = DEFAULT_DIR
    service: bool = False
    serve: str = "127.0.0.1:8080"
    """What the service's `live --serve` listens on (loopback: reach it through ssh -L)."""
    source: str = "0"
    threads: int | None = None
    capture: str | None = None
    """The service keeps the frames it doubted here (`live --capture`; ``~/`` is the device's home)."""


def unit_text(python: str, model: str, opts: DeployOptions) -> str:
    """The systemd user unit that runs `live --serve` on the deployed model, restarting on failure.
    A word with a control character is refused (a newline would start a directive of its own);
    ``%`` and ``$`` are escaped, so systemd reads every word as typed."""
    args = ["live", model, "--source", opts.source, "--serve", opts.serve, "--headless"]
    args += ["--threads", str(opts.threads)] if opts.threads else []
    args += ["--capture", opts.capture] if opts.capture else []
    words = [python, "-m", "edgetl", *args]
    bad = next((w for w in words if has_control(w)), None)
    if bad is not None:
        raise EdgetlError(f"{clean(bad)!r} holds a control character (a newline, a tab, an escape): a service unit "
                          "cannot carry it", fix="give the source, model path and address without control characters")
    quoted = " ".join(_systemd_quote(a) for a in words)
    description = opts.serve.replace("%", "%%")
    return (f"[Unit]\nDescription=edgetl live classifier on {description}\nAfter=network-online.target\n\n"
            f"[Service]\nExecStart={quoted}\nRestart=on-failure\nRestartSec=5\n"
            f"# SIGTERM ends `live` like Ctrl-C: the summary is written to the journal.\nKillSignal=SIGTERM\n\n"
            f"[Install]\nWantedBy=default.target\n")


def _systemd_quote(word: str) -> str:
    """A word for ExecStart: systemd splits on spaces and expands % and $, so quote and escape."""
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def _model_files(model: Path) -> dict[str, Path]:
    """Local files a deployment carries, by their name on the device."""
    folder = ExportFolder(model.parent)
    # Each under its name in the export folder: the device's runtime reads them beside the model.
    files = {f"model{model.suffix.lower()}": model, folder.manifest.name: folder.manifest,
             folder.golden.name: folder.golden}
    if folder.labels.is_file():
        files[folder.labels.name] = folder.labels
    missing = [p for p in files.values() if not p.is_file()]
    if missing:
        raise EdgetlError(f"{missing[0].name} is missing beside the model", path=model,
                          fix="deploy a model from an `edgetl export` folder (RUN/export/)")
    return files


def _not_ours(target: SshTarget, folder: str) -> EdgetlError:
    return EdgetlError(f"{target.host}: {folder} exists and edgetl did not make it (no {MARKER} inside); nothing was "
                       "changed", fix="give --remote-dir a new or empty folder, or the one edgetl deployed to before")


def _run_checked(target: SshTarget, script: str, folder: str, what: str, *more: str) -> None:
    proc = ssh(target, remote_command("sh", "-c", script, "sh", folder, *more))
    if proc.returncode == NOT_OURS:
        raise _not_ours(target, folder)
    check(target, proc, what)


@dataclass
class ServiceState:
    """The user unit written for `live --serve`, and whether systemd started it."""

    unit: str
    serve: str | None
    started: bool
    starts_at_boot: bool
    """Lingering is on, so the user's units start without a login."""
    why_not_started: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "why_not_started" or v is not None}


@dataclass
class Deployment:
    """What `deploy` put where, the runtime that answered the golden check there, and the service."""

    host: str
    folder: str
    model: str
    runtime: str
    golden: str
    service: ServiceState | None = None

    def to_dict(self) -> dict:
        return asdict(self) | {"service": self.service.to_dict() if self.service else None}


@dataclass
class OutboxSize:
    """The device's `live --capture` folder: complete frames and bytes (None when unreadable)."""

    folder: str
    frames: int | None
    bytes: int | None


@dataclass
class DeployStatus:
    """What `deploy --status` found on the device."""

    host: str
    folder: str
    deployed: bool
    model: str | None
    labels: list[str] | None
    service: str
    """systemd's word for the unit (active, inactive, failed, unknown)."""
    outbox: OutboxSize

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Removal:
    """What `deploy --remove` removed."""

    host: str
    removed: str

    def to_dict(self) -> dict:
        return asdict(self)


def deploy(model: str | Path, target: SshTarget, opts: DeployOptions | None = None) -> Deployment:
    """Copy the model (with manifest, labels, golden set and, when needed, the runner), check that
    every file arrived as it is here, run the golden check there, put the deployment in place, and
    with ``opts.service`` install and start the service. Returns what was done. The model must be
    the one its export verified (sha256), and the folder on the device new, empty or edgetl's."""
    opts = opts or DeployOptions()
    path = Path(model)
    gold = Golden.beside(path)
    files = _model_files(path)
    contents = {name: local.read_bytes() for name, local in files.items()}
    model_name = next(n for n in files if n.startswith("model"))
    recorded = gold.sha256
    if recorded is None or hashlib.sha256(contents[model_name]).hexdigest() != recorded:
        raise EdgetlError("the model differs from the one its export verified (sha256)" if recorded else
                          "the export manifest records no sha256 for this model", path=path,
                          fix="export the run again (edgetl export RUN), or `edgetl verify` it to see what changed")
    _run_checked(target, _PREFLIGHT, opts.remote_dir, "checking the deployment folder")
    new = f"{opts.remote_dir}.new.{secrets.token_hex(4)}"
    check(target, ssh(target, remote_command("mkdir", "-p", new)), "creating the deployment folder")
    try:
        copy_file(target, b"", f"{new}/{MARKER}", MARKER)
        for name, data in contents.items():
            copy_file(target, data, f"{new}/{name}", files[name].name)
        _check_copies(target, new, contents)
        doc = run_golden(target, runner_command(target, new), f"{new}/{model_name}", f"{new}/{GOLDEN_FILE}")
        results = gold.compare(doc["probabilities"])
        bad = [r for r in results if not r.ok]
        if bad:
            r = bad[0]
            raise EdgetlError(f"{target.host}: the golden check failed on {len(bad)} of {len(results)} images, e.g. "
                              f"{r.image}: {r.expected_top1} {r.expected_score:.3f} at export, {r.got_top1} "
                              f"{r.got_score:.3f} there; nothing was changed on the device",
                              fix=f"run `edgetl verify {path} --host {target.host}` for every image; check the runtime "
                                  "there (`edgetl doctor`)")
        proc = ssh(target, remote_command("sh", "-c", _SWAP, "sh", new, opts.remote_dir, secrets.token_hex(4)))
        if proc.returncode == NOT_OURS:
            raise _not_ours(target, opts.remote_dir)
        check(target, proc, "putting the deployment in place")
    except BaseException:
        remove_remote_dir(target, new)
        raise
    installed = f"{opts.remote_dir}/{model_name}"
    done = Deployment(target.host, opts.remote_dir, installed, doc["runtime"],
                      f"{len(results)} of {len(results)} images answer as at export")
    if opts.service:
        done.service = install_service(target, installed, opts)
    return done


def _check_copies(target: SshTarget, folder: str, contents: dict[str, bytes]) -> None:
    """Every copied file, hashed on the device, has the digest of what was sent."""
    names = list(contents)
    proc = ssh(target, remote_command(target.remote_python, "-c", _DIGESTS, *(f"{folder}/{n}" for n in names)))
    check(target, proc, "hashing the copied files")
    got = proc.stdout.decode(errors="replace").split()
    for name, digest in zip(names, got + [""] * (len(names) - len(got))):
        if digest != hashlib.sha256(contents[name]).hexdigest():
            raise EdgetlError(f"{target.host}: {name} arrived changed (sha256 differs); nothing was changed on the device",
                              fix="check the device's storage and free space, then deploy again")


def _remote_shell(target: SshTarget, script: str) -> str:
    """What a fixed shell snippet prints on the device (used to resolve $HOME and XDG paths there)."""
    proc = ssh(target, remote_command("sh", "-c", script))
    check(target, proc, "reading the device's folders")
    return proc.stdout.decode(errors="replace").strip()


def install_service(target: SshTarget, installed: str, opts: DeployOptions) -> ServiceState:
    """Write the user unit for `live --serve` and (re)start it. Needs edgetl installed there."""
    has = ssh(target, remote_command(target.remote_python, "-c", "import edgetl.live.serve"), timeout=120)
    if has.returncode != 0:
        raise EdgetlError(f"{target.host}: the service runs `{target.remote_python} -m edgetl live`, and edgetl "
                          "(with OpenCV) is not installed there; the model is deployed",
                          fix="install edgetl on the device (devices/rpi/install.sh), then deploy again with --service, "
                              "and give --remote-python ~/edgetl-venv/bin/python")
    home, unit_dir = _remote_shell(target, 'printf %s "$HOME"'), _remote_shell(target, _UNIT_DIR)
    model_path = installed if installed.startswith("/") else f"{home}/{installed.removeprefix('~/')}"
    python = f"{home}/{target.remote_python[2:]}" if target.remote_python.startswith("~/") else target.remote_python
    if opts.capture and not opts.capture.startswith("/"):  # systemd expands no ~: the device's home, spelled out
        opts = replace(opts, capture=f"{home}/{opts.capture.removeprefix('~/')}")
    unit = unit_text(python, model_path, opts)
    check(target, ssh(target, remote_command("mkdir", "-p", unit_dir)), "creating the unit folder")
    copy_file(target, unit.encode(), f"{unit_dir}/{UNIT}", UNIT)
    _verify_unit(target, f"{unit_dir}/{UNIT}")
    start = ssh(target, remote_command("sh", "-c", f"systemctl --user daemon-reload && systemctl --user enable {UNIT} "
                                                   f"&& systemctl --user restart {UNIT}"))
    linger = ssh(target, remote_command("sh", "-c", 'loginctl enable-linger "$(id -un)"'))
    state = ServiceState(f"{unit_dir}/{UNIT}", opts.serve, start.returncode == 0, linger.returncode == 0)
    if start.returncode != 0:
        why = start.stderr.decode(errors="replace").strip().splitlines()
        state.why_not_started = why[-1] if why else f"exit code {start.returncode}"
    return state


_VERIFY_UNIT = 'command -v systemd-analyze >/dev/null 2>&1 || exit 0; systemd-analyze --user verify "$1" 2>&1 | ' \
               'grep -F "$(basename "$1")"; true'
"""Lines systemd-analyze prints about the unit itself (none when it is sound, or no systemd-analyze there)."""


def _verify_unit(target: SshTarget, unit: str) -> None:
    """Ask the device's systemd whether it accepts the unit, where it can tell; refuse to report
    a service done that systemd would not start."""
    proc = ssh(target, remote_command("sh", "-c", _VERIFY_UNIT, "sh", unit))
    problems = proc.stdout.decode(errors="replace").strip().splitlines()
    if problems:
        raise EdgetlError(f"{target.host}: systemd does not accept the unit: {clean(problems[0])}", path=unit,
                          fix="check --remote-python and --source, then deploy again with --service")


_OUTBOX_SIZE = (f"import os, re, sys\nname = re.compile({NAME.pattern!r})\nn = b = 0\n"
                "try:\n    entries = list(os.scandir(sys.argv[1]))\nexcept OSError:\n    entries = []\n"
                "for e in entries:\n    if name.fullmatch(e.name) and e.is_file(follow_symlinks=False):\n"
                "        n += e.name.endswith('.json'); b += e.stat(follow_symlinks=False).st_size\nprint(n, b)")
"""What the device runs to size its outbox: complete frames and bytes, symlinks never followed."""


def status(target: SshTarget, remote_dir: str = DEFAULT_DIR, outbox: str = "~/edgetl-outbox") -> DeployStatus:
    """What is deployed on the device, whether the service runs, and how full its outbox is."""
    marker = "--edgetl-files--"
    proc = ssh(target, remote_command("sh", "-c", 'cat "$1/$3" 2>/dev/null; printf "\\n%s\\n" "$2"; '
                                      'ls "$1" 2>/dev/null', "sh", remote_dir, marker, MANIFEST))
    check(target, proc, "reading the deployment")
    first, _, rest = proc.stdout.decode(errors="replace").partition(marker)
    models = [clean(n)[:120] for n in rest.split() if n.startswith("model.") or n.startswith("model_")]
    active = ssh(target, remote_command("systemctl", "--user", "is-active", UNIT))
    sized = ssh(target, remote_command(target.remote_python, "-c", _OUTBOX_SIZE, outbox))
    frames, size = (sized.stdout.decode(errors="replace").split() + ["?", "?"])[:2] if sized.returncode == 0 else ("?", "?")
    return DeployStatus(target.host, remote_dir, bool(models), models[0] if models else None, _device_labels(first),
                        clean(active.stdout.decode(errors="replace").strip())[:40] or "unknown",
                        OutboxSize(outbox, device_count(frames), device_count(size)))


def _device_labels(text: str) -> list[str] | None:
    """The labels of the device's deployed manifest, when it is one; None for anything else
    (a manifest of ``[1]``, a damaged file, a note nested too deep): status reports, never crashes."""
    try:
        doc = json.loads(text) if text.strip() else None
    except (ValueError, RecursionError):
        return None
    labels = doc.get("labels") if isinstance(doc, dict) else None
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        return None
    return [clean(x)[:200] for x in labels[:10_000]]


def remove(target: SshTarget, remote_dir: str = DEFAULT_DIR) -> Removal:
    """Stop and remove the service (when there is one) and the deployment folder, and work
    folders a killed deploy left. Idempotent. A folder edgetl did not make is refused, untouched."""
    _run_checked(target, _OURS + 'ours "$1" || exit ' + str(NOT_OURS), remote_dir, "checking the deployment folder")
    ssh(target, remote_command("sh", "-c", f"systemctl --user disable --now {UNIT} 2>/dev/null; true"))
    unit_dir = _remote_shell(target, _UNIT_DIR)
    check(target, ssh(target, remote_command("rm", "-f", "--", f"{unit_dir}/{UNIT}")), "removing the unit")
    _run_checked(target, _REMOVE, remote_dir, "removing")
    ssh(target, remote_command("sh", "-c", "systemctl --user daemon-reload 2>/dev/null; true"))
    return Removal(target.host, remote_dir)
