"""``gigavim info``: what a slide, raster or image holds, and whether its pixels can be read.

Human-readable tables by default; ``--json`` prints one JSON object per input, one per line
(JSON Lines), so several inputs stream and each line parses on its own. Every input is
probed (a few tiles read) so damaged files fail here rather than mid-run. With several inputs
the good ones are reported, each bad one gets one error line, and the exit code is non-zero.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from gigavim.cli._app import app, state
from gigavim.errors import GigavimError, OutputError, UsageError


@app.command()
def info(
    paths: list[Path] = typer.Argument(None, help="Slides, rasters or images to describe."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per input, one per line."),
    thumbnail: Path | None = typer.Option(
        None,
        "--thumbnail",
        help="Write a PNG thumbnail here; with several inputs (or an existing directory) a "
        "directory receiving <input name>.png per input.",
    ),
    sample: bool = typer.Option(False, "--sample", help="Also describe the bundled sample slide."),
) -> None:
    """Describe slides and rasters: levels, pixel size, CRS, bands, nodata."""
    from gigavim.data import sample_slide

    inputs = list(paths or []) + ([sample_slide()] if sample else [])
    if not inputs:
        raise UsageError("info needs at least one PATH (or --sample)")
    failures = 0
    for path, thumb in zip(inputs, _thumbnail_targets(thumbnail, inputs), strict=True):
        try:
            facts = describe_file(path, thumb)
        except GigavimError as err:
            if state.debug:
                raise
            typer.echo(f"gigavim: error: {err}", err=True)
            failures += 1
            continue
        if as_json:
            typer.echo(json.dumps(facts))
        else:
            _render(facts)
    if failures:
        # SystemExit, not typer.Exit: main() runs click with standalone_mode=False, where
        # click returns typer.Exit's code instead of raising it, and main() drops that value.
        raise SystemExit(2)


def describe_file(path: Path, thumbnail: Path | None = None) -> dict[str, Any]:
    """Open, probe and describe one input; the facts ``--json`` prints."""
    from gigavim.io import open_image, probe_read, valid_fraction
    from gigavim.io.preview import save_preview

    with open_image(path) as source:
        probe_read(source)
        facts = source.describe()
        found = valid_fraction(source)
        facts["valid_fraction"] = round(found.fraction, 4)
        facts["valid_fraction_exact"] = found.exact
        if thumbnail is not None:
            facts["thumbnail"] = str(save_preview(source, thumbnail))
    return facts


def _thumbnail_targets(out: Path | None, inputs: list[Path]) -> list[Path | None]:
    """Where each thumbnail goes: ``out`` itself for one input, else ``out/<name>.png`` (made unique)."""
    if out is None:
        return [None] * len(inputs)
    if len(inputs) == 1 and not out.is_dir():
        return [out]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{out}: cannot create the thumbnail directory ({err.strerror})") from err
    targets: list[Path | None] = []
    used: set[str] = set()
    for path in inputs:
        name, n = f"{path.name}.png", 1
        while name in used:  # same file name from different folders
            n += 1
            name = f"{path.name}-{n}.png"
        used.add(name)
        targets.append(out / name)
    return targets


def _render(facts: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    # The path on a line of its own, never re-wrapped: a table title breaks it mid-name at the
    # table's width, and copying it back from the terminal then fails.
    console.print(facts["path"], soft_wrap=True, highlight=False, markup=False)
    table = Table(show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in _readable_rows(facts):
        table.add_row(key, value)
    console.print(table)


def _readable_rows(facts: dict[str, Any]) -> list[tuple[str, str]]:
    levels = ", ".join(f"{lv['width']}×{lv['height']} (÷{lv['downsample']:.3g})" for lv in facts["levels"])
    rows = [
        ("format", f"{facts['kind']}: {facts['format']}"),
        ("size", f"{facts['width']} × {facts['height']} px"),
        ("levels", f"{len(facts['levels'])}: {levels}"),
        ("bands", f"{facts['bands']} × {facts['dtype']}" + _names(facts["band_names"])),
    ]
    if facts["mpp"] is not None:
        rows.append(("pixel size", f"{facts['mpp']:.4g} µm/px"))
    if facts["gsd_m"] is not None:
        per_axis = facts.get("ground_pixel_yx_m")
        axes = f" (y {per_axis[0]:.4g} m, x {per_axis[1]:.4g} m on the ground)" if per_axis else ""
        rows.append(("ground distance", f"{facts['gsd_m']:.4g} m/px{axes}"))
    if facts["crs"] is not None:
        rows.append(("CRS", _short_crs(facts["crs"])))
    if facts["objective_power"] is not None:
        rows.append(("objective", f"{facts['objective_power']:g}×"))
    if facts["nodata"] is not None:
        rows.append(("nodata", str(facts["nodata"])))
    valid = f"{facts['valid_fraction']:.1%}" + ("" if facts["valid_fraction_exact"] else " (sampled)")
    if facts["valid_fraction"] == 0:
        valid += " — every pixel is nodata: nothing to process"
    rows.append(("valid pixels", valid))
    if "thumbnail" in facts:
        rows.append(("thumbnail", facts["thumbnail"]))
    return rows


def _names(names: list[str]) -> str:
    return f" ({', '.join(names)})" if names else ""


def _short_crs(crs: str) -> str:
    """EPSG codes as they are; a WKT by its name and projection method."""
    if not crs.lstrip().startswith(("PROJCS", "GEOGCS", "PROJCRS", "GEOGCRS")):
        return crs
    name = crs.split('"')[1] if '"' in crs else "custom"
    method = crs.split('PROJECTION["')[1].split('"')[0] if 'PROJECTION["' in crs else ""
    return f"custom WKT: {name}" + (f", {method}" if method else "")
