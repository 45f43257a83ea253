"""``gigavim models``: the bundled models and what each is for."""

from __future__ import annotations

import json

import typer

from gigavim.cli._app import app


@app.command()
def models(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List the bundled models: name, task, classes, input kind and contract (bands, values,
    scaling), resolution, size."""
    from gigavim.models.catalog import DEFAULT_MODELS, RASTER_DEFAULTS, list_models

    rows = list_models()
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    defaults = {}
    for name, bands, _, coarsest in RASTER_DEFAULTS:
        size = f" at ≤ {coarsest:g} m/px" if coarsest != float("inf") else ""
        defaults.setdefault(name, []).append(f"{bands}-band rasters{size}")
    for kind, name in DEFAULT_MODELS.items():
        defaults.setdefault(name, []).append("other rasters" if kind == "raster" else kind)
    table = Table(title="bundled models")
    for col in ("name", "task", "classes", "input", "resolution", "size", "trained", "default for"):
        table.add_column(col)
    for r in rows:
        res = r["resolution"]
        res_text = (f"{res['mpp']:.3g} µm/px" if "mpp" in res else
                    f"{res['gsd_m']:.3g} m/px" if "gsd_m" in res else "native")
        table.add_row(r["name"], r["task"], ", ".join(r["classes"]), r["input_kind"], res_text,
                      f"{r['size_bytes'] / 1e6:.2f} MB", "yes" if r["trained"] else "NO (random)",
                      ", ".join(defaults.get(r["name"], [])))
    contracts = Table(title="input contracts (what each model expects; see docs/models.md)")
    for col in ("name", "bands", "sensor", "values", "scaling", "nodata"):
        contracts.add_column(col)
    for r in rows:
        c = r["input"]
        contracts.add_row(r["name"], ", ".join(c["bands"]), c["sensor"] or "", c["values"], c["scaling_text"],
                          c["nodata"] + (" (derived: stored before contracts)" if c["derived"] else ""))
    from gigavim.cli._tables import print_table

    console = Console()
    print_table(console, table)  # whole names at any width (a table, or one block per model)
    print_table(console, contracts)
