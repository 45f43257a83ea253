"""``gigavim eval``: per-class IoU/Dice, pixel accuracy and confusion matrix against masks."""

from __future__ import annotations

import json

import typer

from gigavim.cli._app import app
from gigavim.cli._options import Context, context_option


@app.command("eval")
def eval_cmd(
    pairs: list[str] = typer.Argument(..., help="IMAGE:MASK pairs (label image, raster or GeoJSON)."),
    model: str = typer.Option(None, "--model", "-m", help="Bundled model name or model file path."),
    image_mpp: float = typer.Option(None, help="µm/px of images that do not record one (PNG tiles)."),
    value_map: str = typer.Option(None, help="Raw mask value → class id, e.g. 0:0,255:1 (255 = ignore)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    context: Context = context_option(),
    json_out: bool = typer.Option(False, "--json", help="Print all numbers as JSON."),
) -> None:
    """Evaluate a model on images with ground-truth masks, per image and overall."""
    from gigavim.cli.train import parse_value_map
    from gigavim.models.catalog import load_model
    from gigavim.train.evaluate import evaluate, parse_pair

    parsed = [parse_pair(p) for p in pairs]
    if model is None:
        from gigavim import open_image

        with open_image(parsed[0][0]) as src:
            kind = src.kind
        bundle = load_model(None, input_kind=kind)
    else:
        bundle = load_model(model)
    result = evaluate(bundle, parsed, image_mpp=image_mpp, value_map=parse_value_map(value_map),
                      device=device, context=context.value)
    if json_out:
        typer.echo(json.dumps(result, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result['model']} ({result['context']} context): per-class IoU / Dice")
    table.add_column("image")
    for c in result["classes"]:
        table.add_column(f"{c} IoU", justify="right")
        table.add_column(f"{c} Dice", justify="right")
    table.add_column("pixel acc.", justify="right")
    for row in [*result["images"], {"image": "overall", **result["overall"]}]:
        cells = [row["image"]]
        for c in row["per_class"]:
            cells += [_fmt(c["iou"]), _fmt(c["dice"])]
        table.add_row(*cells, _fmt(row["pixel_accuracy"]))
    from gigavim.cli._tables import print_table

    console = Console()
    print_table(console, table)  # image names whole at any width
    console.print(f"confusion matrix (rows = truth, columns = prediction; {', '.join(result['classes'])}):")
    for line in result["overall"]["confusion_matrix"]:
        console.print("  " + "  ".join(f"{v:>10d}" for v in line))


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"
