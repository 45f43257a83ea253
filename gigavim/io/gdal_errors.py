"""GDAL decode problems during a read, caught as they happen (they are not exceptions).

A damaged JPEG tile in a GeoTIFF/COG is often only a *warning* to GDAL ("JPEGLib: Corrupt JPEG
data: bad Huffman code"), or an error it recovers from, and the read returns plausible-looking
pixels: a run would silently label garbage. rasterio reports these through the
``rasterio._err`` logger in the thread that read; :func:`gdal_messages` collects that thread's
messages during a read so :class:`~gigavim.io.raster_source.RasterSource` can turn a decode
problem into the same one-line "the file is corrupt" error OpenSlide inputs give. The handler
also keeps them off stderr.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_LOGGER = logging.getLogger("rasterio._err")
_local = threading.local()
_install_lock = threading.Lock()
#: Words of GDAL/libtiff/libjpeg messages that mean the pixel data could not be decoded faithfully.
_DECODE_WORDS = ("jpeg", "corrupt", "decod", "tiffread", "premature", "ireadblock", "huffman", "lzw",
                 "deflate", "zstd", "lerc", "webp", "marker")


class _ThreadCollector(logging.Handler):
    """Appends each record to the list of the thread that emitted it, when that thread listens."""

    def emit(self, record: logging.LogRecord) -> None:
        sink = getattr(_local, "sink", None)
        if sink is not None:
            sink.append(record.getMessage())


_HANDLER = _ThreadCollector(logging.DEBUG)


def _install() -> None:
    with _install_lock:
        if _HANDLER not in _LOGGER.handlers:
            _LOGGER.addHandler(_HANDLER)
            if _LOGGER.getEffectiveLevel() > logging.INFO:  # errors GDAL recovers from log at INFO
                _LOGGER.setLevel(logging.INFO)


@contextmanager
def gdal_messages() -> Iterator[list[str]]:
    """The GDAL warnings/errors this thread's code inside the block caused."""
    _install()
    outer = getattr(_local, "sink", None)
    messages: list[str] = []
    _local.sink = messages
    try:
        yield messages
    finally:
        _local.sink = outer
        if outer is not None:
            outer.extend(messages)


def decode_problem(messages: list[str]) -> str | None:
    """The first message saying pixel data was damaged, without rasterio's prefixes."""
    for text in messages:
        if any(word in text.lower() for word in _DECODE_WORDS):
            detail = text.split("msg=", 1)[-1].strip("'\"") if "msg=" in text else text
            return detail.removeprefix("CPLE_AppDefined:").strip()
    return None
