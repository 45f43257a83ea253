"""The segment widget's background job, free of Qt so it can be tested without a display.

``gigavim.segment`` reports progress through a callback on the thread that runs it; napari's
``thread_worker`` reports through ``yield`` in its generator. This generator runs the segment
call on a helper thread and yields each :class:`gigavim.engine.Progress` as it arrives, so the
worker can forward it to the GUI thread; the generator's return value is the ``SegmentResult``.
"""

from __future__ import annotations

import queue
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

#: How often (s) the generator wakes to check for progress while the run is silent.
POLL_S = 0.1

#: Appended to the input's name for the widget's default output (beside the input).
OUTPUT_SUFFIX = ".segmentation.ome.zarr"


def default_output(source: str | Path) -> Path:
    """``/data/slide.svs`` → ``/data/slide.segmentation.ome.zarr``: absolute, beside the input
    (never relative to wherever napari was started)."""
    source = Path(source).resolve()
    return source.with_name(source.name.split(".")[0] + OUTPUT_SUFFIX)


def resolve_output(source: str | Path, output: str | Path | None) -> Path:
    """The output the widget writes: the default when left empty, a relative name beside the
    input, an absolute path as given."""
    if output is None or str(output) in ("", "."):
        return default_output(source)
    output = Path(output).expanduser()
    return output if output.is_absolute() else Path(source).resolve().parent / output


def segment_outcome(source: str | Path, output: str | Path, **options: Any) -> Generator[Any, None, Any]:
    """:func:`segment_steps`, returning a ``GigavimError`` instead of raising it.

    napari's thread worker reports a raised exception itself (and re-raises it in the main
    thread, which ends a script that never started the event loop); a user error is a result to
    show once, as one line.
    """
    from gigavim.errors import GigavimError

    try:
        return (yield from segment_steps(source, output, **options))
    except GigavimError as err:
        return err


def segment_steps(
    source: str | Path, output: str | Path, *, model: str | None = None,
    resolution: float | None = None, overwrite: bool = False, **options: Any,
) -> Generator[Any, None, Any]:
    """Segment ``source`` into ``output``; yield progress, return the ``SegmentResult``.

    ``resolution`` is µm/px for slides and images, m/px for rasters (``None``: the model's).
    Errors (``GigavimError`` for anything the user can fix) are raised from the generator.
    """
    import gigavim
    from gigavim.io import open_image

    src = open_image(source)
    if resolution:
        options["gsd" if src.kind == "raster" else "mpp"] = float(resolution)
    updates: queue.Queue[Any] = queue.Queue()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gigavim-segment") as pool:
        future = pool.submit(gigavim.segment, src, [output], model=model, overwrite=overwrite,
                             progress=updates.put, **options)
        while True:
            try:
                yield updates.get(timeout=POLL_S)
            except queue.Empty:
                if future.done():
                    break
        while not updates.empty():
            yield updates.get_nowait()
        try:
            return future.result()
        finally:
            src.close()
