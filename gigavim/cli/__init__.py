"""The ``gigavim`` command line: a thin Typer shell over the library API.

Each sub-command lives in its own module and only parses options, calls the library and
renders the result. User errors (:class:`gigavim.GigavimError`) become one line on stderr and a
non-zero exit; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import signal
import sys

import typer

from gigavim.cli._app import app, state
from gigavim.cli._signals import (
    USER_OS_ERRORS,
    Interrupted,
    interrupted_message,
    interrupts_as_exceptions,
    silence_late_noise,
)

# Sub-commands register themselves on import (one module each); this order is --help's.
from gigavim.cli import segment as _segment  # noqa: F401  isort: skip
from gigavim.cli import batch as _batch  # noqa: F401  isort: skip
from gigavim.cli import info as _info  # noqa: F401  isort: skip
from gigavim.cli import train as _train  # noqa: F401  isort: skip
from gigavim.cli import eval as _eval  # noqa: F401  isort: skip
from gigavim.cli import models as _models  # noqa: F401  isort: skip
from gigavim.cli import bench as _bench  # noqa: F401  isort: skip
from gigavim.cli import view as _view  # noqa: F401  isort: skip

__all__ = ["app", "main", "run"]


#: The exceptions module of the click that typer runs on: ``click.exceptions``, or the copy
#: bundled inside typer ≥ 0.29 (whose classes the standalone ``click`` package does not match).
_CLICK_EXCEPTIONS = sys.modules[typer.BadParameter.__module__]


def run() -> None:
    """The ``gigavim`` console script and ``python -m gigavim``: :func:`main`, then a fast exit
    (:mod:`gigavim.cli._exit`: no module-by-module teardown, ~0.5 s per run)."""
    from gigavim.cli._exit import exit_process

    exit_process(main())


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: run the app, turning user errors into one line."""
    from gigavim.errors import GigavimError
    from gigavim.malloc import limit_malloc_arenas

    limit_malloc_arenas()  # before any thread: one arena keeps freed tile buffers in one place

    args = list(sys.argv[1:] if argv is None else argv)
    state.debug = "--debug" in args
    try:
        # Non-standalone click returns (not raises) the code of typer.Exit(code=N).
        with interrupts_as_exceptions():
            rc = app(args=args, prog_name="gigavim", standalone_mode=False)
    except GigavimError as err:
        if state.debug:
            raise
        typer.echo(f"gigavim: error: {err}", err=True)
        return err.exit_code
    except (Interrupted, KeyboardInterrupt) as exc:
        typer.echo(f"gigavim: {interrupted_message(args)}", err=True)
        if not state.debug:
            silence_late_noise()
        return 128 + getattr(exc, "signum", signal.SIGINT)
    except MemoryError as err:
        if state.debug:
            raise
        typer.echo(f"gigavim: error: not enough memory ({err or 'allocation failed'}); try a smaller "
                   "--batch-size or --tile", err=True)
        return 1
    except OSError as err:  # a path the file system refuses (name too long, permissions, ...)
        if state.debug or err.errno not in USER_OS_ERRORS:
            raise
        where = f"{err.filename}: " if err.filename else ""
        typer.echo(f"gigavim: error: {where}{err.strerror or err}", err=True)
        return 2
    except SystemExit as exc:  # raised by commands that must set the exit code themselves
        return int(exc.code or 0)
    except typer.Exit as exc:
        return int(getattr(exc, "exit_code", 0) or 0)
    except typer.Abort:
        typer.echo("gigavim: aborted", err=True)
        return 1
    except _CLICK_EXCEPTIONS.ClickException as exc:  # usage errors: bad option, missing argument
        if state.debug:
            raise
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        typer.echo(f"gigavim: error: {exc.format_message()}{hint}", err=True)
        return exc.exit_code
    return rc if isinstance(rc, int) else 0
