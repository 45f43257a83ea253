"""Hostile or damaged model bundles are refused on load with one line naming the file."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch

from gigavim.errors import ModelError
from gigavim.models.bundle import load_bundle_file
from gigavim.models.catalog import resolve_model_path


@pytest.fixture(scope="module")
def payload() -> dict:
    return torch.load(resolve_model_path("land-water"), weights_only=True)


def _first_float(sd: dict) -> str:
    return next(k for k, v in sd.items() if v.is_floating_point())


def _edit(p: dict, case: str) -> dict:
    meta, sd = p["meta"], p["state_dict"]
    if case == "nan weights":
        sd[_first_float(sd)][0] = float("nan")
    elif case == "zero std":
        meta["std"] = [0.0, 0.0, 0.0]
    elif case == "nan std":
        meta["std"] = [float("nan")] * 3
    elif case == "inf mean":
        meta["mean"] = [float("inf")] * 3
    elif case == "nan scale":
        meta["input_scale"] = float("nan")
    elif case == "tile 0":
        meta["tile"] = 0
    elif case == "no classes":
        meta["classes"], meta["colors"] = [], []
    elif case == "colour names":
        meta["colors"] = ["red", "blue"]
    elif case == "negative gsd":
        meta["gsd_m"] = -1.0
    elif case == "meta is a string":
        p["meta"] = "x"
    elif case == "arch is a list":
        meta["arch"] = [1]
    elif case == "state_dict is None":
        p["state_dict"] = None
    elif case == "64 GB arch":
        meta["arch"]["backbone"].update(embed_dim=1 << 17, depth=64)
    return p


CASES = {
    "nan weights": "weights are damaged", "zero std": "'std' must be positive",
    "nan std": "'std' must be 1 or 3 finite", "inf mean": "'mean' must be 1 or 3 finite",
    "nan scale": "'input_scale'", "tile 0": "tile 0", "no classes": "class names",
    "colour names": "RGB colour", "negative gsd": "'gsd_m'", "meta is a string": "no usable metadata",
    "arch is a list": "no usable metadata", "state_dict is None": "not a dict of tensors",
    "64 GB arch": "describes 7,148,690,210,946 weights but the file holds",
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_bundle_is_refused_before_building(payload: dict, tmp_path: Path, case: str) -> None:
    path = tmp_path / "model.pt"
    torch.save(_edit(copy.deepcopy(payload), case), path)
    with pytest.raises(ModelError) as err:
        load_bundle_file(path)
    line = str(err.value)
    assert line.startswith(f"{path}: ") and CASES[case] in line and "\n" not in line


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_an_unsafe_pickle_is_refused_without_torchs_retry_advice(payload: dict, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    torch.save({**payload, "x": _Evil(marker)}, tmp_path / "evil.pt")
    with pytest.raises(ModelError) as err:
        load_bundle_file(tmp_path / "evil.pt")
    assert "refusing: the file pickles posix.system" in str(err.value)
    assert "weights_only" not in str(err.value) and not marker.exists()


def test_a_byte_flipped_bundle_is_corrupt_not_silently_different(tmp_path: Path) -> None:
    data = bytearray(resolve_model_path("land-water").read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0x55 for b in data[middle:middle + 64])
    (tmp_path / "flipped.pt").write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"flipped\.pt: gigavim model file is corrupt"):
        load_bundle_file(tmp_path / "flipped.pt")


def test_loading_a_bundled_vim_does_not_import_torchs_compiler():
    """The shape check builds the network on the meta device; an op there (torch.arange in the
    mixer's init) used to import torch._dynamo and sympy: ~1 s added to every `gigavim segment`."""
    import subprocess
    import sys

    code = ("import sys; from gigavim.models.catalog import load_model; load_model('nuclei-he'); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
