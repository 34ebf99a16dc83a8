"""`edgetl verify RUN`: a run's artifacts checked against its Keras model again, with the gates."""
from __future__ import annotations

from pathlib import Path

from edgetl import runs
from edgetl.data.audit import Audit
from edgetl.errors import EdgetlError
from edgetl.exporting.verify import Check, Gates, verify
from edgetl.runs import RunFolder
from edgetl.runtime.manifest import file_sha256
from edgetl.exporting.run_input import held_out_reference
from edgetl.exporting.pipeline import ExportResult


def verify_run(run: str | Path | None = None, gates: Gates | None = None, threads: int | None = None) -> ExportResult:
    """Verify the artifacts already in RUN/export/ again (same images, same gates as export).

    An artifact the manifest lists as verified that is missing, or whose sha256 differs from the
    one recorded at export (replaced or modified since), fails without being run."""
    run_path = Path(run) if run is not None else runs.latest_run()
    folder = RunFolder(run_path).export
    if not folder.manifest.is_file():
        raise EdgetlError("no export in this run", path=run_path, fix=f"run `edgetl export {run_path}` first")
    manifest = folder.read_manifest()
    if not manifest.verified:
        raise EdgetlError("the manifest lists no verified artifact", path=folder.manifest,
                          fix=f"export again: edgetl export {run_path}")
    pixels_val, ref = held_out_reference(run_path, Audit.load_file(RunFolder(run_path).audit), manifest.input)
    checks = []
    for a in manifest.verified:
        path, m = folder.path / a.file, a.manifest
        problem = ("missing: the file is gone since export" if not path.is_file()
                   else "modified since export: its sha256 differs from the manifest's"
                   if file_sha256(path) != m.sha256 else None)
        checks.append(Check.failed(a.file, m.format, m.precision, problem) if problem else
                      verify(path, ref, pixels_val, gates or Gates(), m.format, m.precision, threads))
    return ExportResult(folder.path, checks, [], ref.accuracy, {})
