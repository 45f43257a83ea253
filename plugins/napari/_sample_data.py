"""npe2 sample data: the bundled CMU-1 H&E region, opened exactly like a slide from disk."""

from __future__ import annotations

from gigavim.napari._reader import LayerData, image_layers


def sample_slide_layers() -> list[LayerData]:
    """The bundled sample slide (CC0 Aperio SVS, 0.499 µm/px) as a multiscale image layer."""
    from gigavim.data import sample_slide

    return image_layers(sample_slide())
