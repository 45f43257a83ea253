"""A benchmark network as plain data that another Python interpreter rebuilds, weights and all.

``bench engines`` runs TIAToolbox under a side interpreter (TIAToolbox pins an older torch than
gigavim's), which cannot import gigavim. The parent saves each network as a description
(the layer kind and its constructor arguments, the state dict, and the input scaling
``((raw - offset) * scale - mean) / std``) with ``torch.save``; the child rebuilds the same
module and loads the same weights. torch only (MONAI for the U-Net), no gigavim imports: this
file also runs as a sibling module of the TIAToolbox child script.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

# The benchmark U-Net (MONAI's, 101 k parameters); seeded and built by ``bench engines``.
UNET_CONFIG: dict[str, Any] = {
    "spatial_dims": 2, "in_channels": 3, "out_channels": 2, "channels": [8, 16, 32, 64],
    "strides": [2, 2, 2], "num_res_units": 2,
}


def build(kind: str, config: dict[str, Any]) -> nn.Module:
    """An untrained module of ``kind`` (``conv2d`` or ``monai-unet``) from its constructor arguments."""
    if kind == "conv2d":
        return nn.Conv2d(**config)
    if kind == "monai-unet":
        from monai.networks.nets import UNet

        return UNet(**config)
    raise ValueError(f"unknown portable network kind {kind!r} (conv2d or monai-unet)")


def describe(net: nn.Module, kind: str, config: dict[str, Any], offset: Any, scale: Any,
             mean: Any, std: Any) -> dict[str, Any]:
    """``net`` (built as ``build(kind, config)``) and its input scaling, as plain data."""
    return {
        "kind": kind, "config": dict(config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
        "offset": [float(v) for v in offset], "scale": [float(v) for v in scale],
        "mean": [float(v) for v in mean], "std": [float(v) for v in std],
    }


def conv2d_config(net: nn.Conv2d) -> dict[str, Any]:
    """The constructor arguments of a plain (bias, no groups, stride 1) ``nn.Conv2d``."""
    return {"in_channels": net.in_channels, "out_channels": net.out_channels,
            "kernel_size": list(net.kernel_size), "padding": list(net.padding)}


def save(description: dict[str, Any], path: str | Path) -> Path:
    torch.save(description, path)
    return Path(path)


def load(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The rebuilt module in eval mode, with the very weights saved, and its description."""
    description = torch.load(path, weights_only=True)
    net = build(description["kind"], description["config"])
    net.load_state_dict(description["state_dict"], strict=True)
    return net.eval(), description


def normalize(pixels: torch.Tensor, description: dict[str, Any]) -> torch.Tensor:
    """(B, h, w, bands) raw pixels → (B, bands, h, w) float32 network input, as gigavim scales them."""
    def band(key: str) -> torch.Tensor:
        return torch.tensor(description[key], dtype=torch.float32).view(1, -1, 1, 1)

    x = pixels.permute(0, 3, 1, 2).to(torch.float32)
    return ((x - band("offset")) * band("scale") - band("mean")) / band("std")
