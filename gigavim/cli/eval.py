"""``gigavim eval``: per-class IoU/Dice, pixel accuracy and confusion matrix against masks."""

from __future__ import annotations

import json

import typer

from gigavim.cli._app import app
from gigavim.cli._options import Context, bands_option, context_option, stain_norm_option, tta_option
from gigavim.errors import UsageError


@app.command("eval")
def eval_cmd(
    pairs: list[str] = typer.Argument(..., help="IMAGE:MASK pairs (label image, raster or GeoJSON)."),
    model: str = typer.Option(None, "--model", "-m", help="Bundled model name or model file path."),
    image_mpp: float = typer.Option(None, help="µm/px of images that do not record one (PNG tiles)."),
    value_map: str = typer.Option(None, help="Raw mask value → class id, e.g. 0:0,255:1 (255 = ignore)."),
    label_nodata: str = typer.Option(
        "tag", help="tag: mask pixels equal to the mask's nodata value are unlabelled; none: ignore "
                    "the tag (masks that tag their background 0 as nodata)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    context: Context = context_option(),
    tta: int | None = tta_option(),
    stain_norm: bool | None = stain_norm_option(),
    instances: bool = typer.Option(
        None, "--instances/--no-instances",
        help="Score objects (AJI, PQ, object F1) from instance-id masks; default: when the model "
             "says how it makes objects."),
    bands: str | None = bands_option(),
    json_out: bool = typer.Option(False, "--json", help="Print all numbers as JSON."),
) -> None:
    """Evaluate a model on images with ground-truth masks, per image and overall."""
    from gigavim.cli.train import parse_value_map
    from gigavim.models.catalog import load_model
    from gigavim.train.evaluate import evaluate, parse_pair

    if label_nodata not in ("tag", "none"):
        raise UsageError(f"--label-nodata must be tag or none, not {label_nodata!r}")
    parsed = [parse_pair(p) for p in pairs]
    if model is None:
        from gigavim import open_image

        with open_image(parsed[0][0]) as src:
            kind, band_count, gsd_m = src.kind, src.bands, src.gsd_m
        bundle = load_model(None, input_kind=kind, bands=band_count, gsd_m=gsd_m)
    else:
        bundle = load_model(model)
    result = evaluate(bundle, parsed, image_mpp=image_mpp, value_map=parse_value_map(value_map),
                      device=device, context=context.value, instances=instances,
                      label_nodata=label_nodata, bands=bands, tta=tta, stain_norm=stain_norm)  # type: ignore[arg-type]
    if json_out:
        typer.echo(json.dumps(result, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    views = f", TTA {result['tta']} views" if result["tta"] > 1 else ""
    views += ", stain-normalised" if result["stain_norm"] else ""
    table = Table(title=f"{result['model']} ({result['context']} context{views}): per-class IoU / Dice")
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
    if "instances" in result["overall"]:
        console.print(_object_table(result))


def _object_table(result: dict) -> object:
    """Objects vs the masks' instances: pixel IoU/Dice of objects, AJI, PQ (DQ × SQ), object F1."""
    from rich.table import Table

    overall = result["overall"]["instances"]
    name = overall["objects"]["per_class"][1]["class"]
    table = Table(title=f"{name} objects (match at IoU ≥ {overall['match_iou']:g})")
    for col in ("image", "truth", "found", "IoU", "Dice", "AJI", "PQ", "DQ", "SQ", "object F1"):
        table.add_column(col, justify="left" if col == "image" else "right")

    def cells(label: str, s: dict, pixels: dict | None, truth: object = "", found: object = "") -> list[str]:
        fg = pixels["per_class"][1] if pixels else {}
        return [label, str(truth), str(found), _fmt(fg.get("iou")), _fmt(fg.get("dice")), _fmt(s["aji"]),
                _fmt(s["pq"]),
                _fmt(s["dq"]), _fmt(s["sq"]), _fmt(s["object_f1"])]

    for row in result["images"]:
        s = row["instances"]
        table.add_row(*cells(row["image"], s, s["objects"], s["truth_objects"], s["pred_objects"]))
    pooled = overall["pooled"]
    table.add_row(*cells("pooled", pooled, overall["objects"], pooled["tp"] + pooled["fn"],
                         pooled["tp"] + pooled["fp"]))
    table.add_row(*cells("mean of images", overall["mean"], None))
    return table


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"
