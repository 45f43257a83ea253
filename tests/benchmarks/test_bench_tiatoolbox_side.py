"""``bench engines``' TIAToolbox case: the plumbing to a side interpreter, without TIAToolbox.

The TIAToolbox child runs under another venv's Python (TIAToolbox pins an older torch); what
must hold here is that it gets the very network the other engines run, the right command line,
needs no gigavim, and that without that interpreter the table says why its rows are empty.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gigavim.benchmarks import engines, portable_net, tiatoolbox_case
from gigavim.errors import UsageError


def _rebuilt_output(name: str, tmp_path: Path, pixels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of ``network(name)`` and of its description saved, loaded and rebuilt."""
    bundle = engines.network(name)
    path = portable_net.save(engines.describe_network(name), tmp_path / f"{name}.pt")
    rebuilt, description = portable_net.load(path)
    x = bundle.normalize(pixels)
    # gigavim's own input scaling, bit for bit (NHWC memory, as TIAToolbox's models permute it)
    assert torch.equal(portable_net.normalize(torch.from_numpy(pixels), description), x)
    with torch.inference_mode():
        return bundle.net(x), rebuilt(x)


def test_the_pixel_network_travels_with_its_exact_weights_and_scaling(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    ours, theirs = _rebuilt_output("pixel", tmp_path, pixels)
    assert torch.equal(ours, theirs)


def test_the_unet_travels_with_its_exact_weights(tmp_path):
    pytest.importorskip("monai", reason="the benchmark U-Net is MONAI's (pip install monai)")
    pixels = np.random.default_rng(1).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    ours, theirs = _rebuilt_output("unet", tmp_path, pixels)
    assert torch.equal(ours, theirs)


def test_a_gigavim_vim_is_not_offered_to_the_side_interpreter():
    with pytest.raises(ValueError, match="not portable"):
        engines.describe_network("nuclei-he")


def test_the_child_command_runs_the_script_by_path_with_the_benchmarks_settings(tmp_path):
    cmd = engines.tiatoolbox_command("/venvs/tia/bin/python", tmp_path, "pixel", "slide.svs",
                                     tmp_path / "out.zarr", "cpu", 2)
    description = tmp_path / "pixel.network.pt"
    assert cmd == ["/venvs/tia/bin/python", str(Path(tiatoolbox_case.__file__).resolve()), str(description),
                   "slide.svs", str(tmp_path / "out.zarr"), "cpu", "2", str(engines.TILE),
                   str(engines.OVERLAP), str(engines.BATCH)]
    assert portable_net.load(description)[1]["kind"] == "conv2d"  # saved once for the child


def test_the_child_script_needs_no_gigavim(tmp_path):
    """Run by path with gigavim unimportable, it gets as far as its arguments (its siblings import)."""
    script = Path(tiatoolbox_case.__file__).resolve()
    code = ("import runpy, sys; sys.modules['gigavim'] = None; "
            f"sys.path.insert(0, {str(script.parent)!r}); sys.argv = [{str(script)!r}]; "
            f"runpy.run_path({str(script)!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("usage: tiatoolbox_case.py DESCRIPTION SLIDE")


def test_without_a_side_interpreter_the_tiatoolbox_rows_say_why():
    runs = {("pixel", "gigavim"): [{"seconds": 1.0, "megapixels": 6.0, "peak_rss_mib": 1.0}],
            ("pixel", "monai"): [{"seconds": 2.0, "megapixels": 6.0, "peak_rss_mib": 1.0}]}
    missing = engines.missing_reasons(("pixel",), None)
    if engines.available("monai"):
        assert missing == {("pixel", "tiatoolbox"): engines.NO_SIDE_PYTHON}
    rows = engines._rows(("pixel",), runs, missing)
    assert rows[2] == {"network": "pixel", "engine": "tiatoolbox", "runs": engines.NO_SIDE_PYTHON}


def test_with_one_only_the_networks_it_can_run_are_asked_of_it():
    side = {"tiatoolbox": "2.1.3", "torch": "2.12.1", "monai": None}
    missing = engines.missing_reasons(("pixel", "unet", "nuclei-he"), side)
    assert ("pixel", "tiatoolbox") not in missing
    assert "monai not installed in TIAToolbox's venv" in missing["unet", "tiatoolbox"]
    assert missing["nuclei-he", "tiatoolbox"] == engines.NOT_PORTABLE


def _fake_python(tmp_path: Path, versions: dict[str, str | None]) -> str:
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\necho '{json.dumps(versions)}'\n")
    fake.chmod(0o755)
    return str(fake)


def test_the_side_interpreters_versions_are_read_and_a_wrong_one_is_one_line(tmp_path):
    good = {"tiatoolbox": "2.1.3", "torch": "2.12.1", "monai": "1.6.1"}
    assert engines.side_versions(_fake_python(tmp_path, good)) == good
    with pytest.raises(UsageError, match="tiatoolbox is not installed in that interpreter"):
        engines.side_versions(_fake_python(tmp_path, {**good, "tiatoolbox": None}))
    with pytest.raises(UsageError, match="does not run as Python"):
        engines.side_versions(str(tmp_path / "no-such-python"))
