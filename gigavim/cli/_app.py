"""The Typer application object and the global options shared by every command."""

from __future__ import annotations

from dataclasses import dataclass

import typer


@dataclass
class _State:
    debug: bool = False


state = _State()


def _hide_flag_types() -> None:
    """Typer ≥ 0.2x prints a type beside every option, ``<bool>`` for flags too, as if
    ``--quick`` took a value; flags take none, so show nothing there."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "_gigavim", False):
        return

    def display_type_rich(self, ctx):  # type: ignore[no-untyped-def]
        return None if self.is_flag else shown(self, ctx)

    display_type_rich._gigavim = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_hide_flag_types()

app = typer.Typer(
    name="gigavim",
    help="Segment gigapixel slides and satellite scenes with Vision Mamba.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from gigavim import __version__

        typer.echo(f"gigavim {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Segment gigapixel slides and satellite scenes with Vision Mamba."""
    state.debug = state.debug or debug
