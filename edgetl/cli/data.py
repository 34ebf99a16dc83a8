"""`edgetl data check`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgetl.console import print_json
from edgetl.cli.app import data_app
from edgetl.cli.options import CLASS_DEPTH, JSON
from edgetl.cli.show import print_audit


@data_app.command("check")
def data_check(
    folder: Path = typer.Argument(..., metavar="DATA", help="DATA/<class>/*, DATA/{train,validation[,test]}/<class>/* "
                                                            "or a CSV of path,label[,split]"),
    val_split: float = typer.Option(0.2, help="Validation fraction when DATA has no validation folder."),
    seed: int = typer.Option(0, help="Seed of the stratified split."),
    min_side: int = typer.Option(32, help="Note images whose shorter side is below this (they are upscaled)."),
    class_depth: int = CLASS_DEPTH,
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", min=1,
                                             help="Refuse images whose header claims more pixels (default 100,000,000 "
                                                  "or $EDGETL_MAX_PIXELS): decompression bombs cost nothing."),
    json_out: bool = JSON,
) -> None:
    """Audit a photo folder: counts per class and split, every bad file with its reason, imbalance."""
    from edgetl.data.audit import AuditOptions, audit

    options = AuditOptions(val_split=val_split, seed=seed, min_side=min_side, class_depth=class_depth)
    if max_pixels:
        options.max_pixels = max_pixels
    result = audit(folder, options)
    if json_out:
        print_json(result.to_dict())
    else:
        print_audit(result)
    raise typer.Exit(0 if result.clean else 1)
