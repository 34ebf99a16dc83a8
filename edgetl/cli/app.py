"""The typer application and its command groups, listed in the order a user meets them."""
from __future__ import annotations

from typer.core import TyperGroup
import typer

from edgetl import __version__
from edgetl.console import out


WORKFLOW = ("data", "train", "tune", "export", "verify", "calibrate", "predict", "eval", "bench", "live", "deploy", "harvest", "label", "compare", "report",
            "doctor", "demo")


class WorkflowOrder(TyperGroup):
    """Lists commands in the order a user meets them, not alphabetically or by definition."""

    def list_commands(self, ctx) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: WORKFLOW.index(n) if n in WORKFLOW else len(WORKFLOW))


# Plain click help (rich_markup_mode=None): no "<bool>" beside flags, argument names as typed.
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, cls=WorkflowOrder,
                  rich_markup_mode=None, help="edgetl: photos in, a fast verified classifier for the edge out.")
data_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Inspect a photo folder.")
app.add_typer(data_app, name="data")


def _version(value: bool) -> None:
    if value:
        out.print(f"edgetl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit."),
          debug: bool = typer.Option(False, "--debug", help="Show full tracebacks.")) -> None:
    """edgetl: photos in, a fast verified classifier for the edge out."""
