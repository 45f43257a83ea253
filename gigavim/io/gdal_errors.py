"""GDAL decode problems during a read, caught as they happen (they are not exceptions).

A damaged JPEG tile in a GeoTIFF/COG is often only a *warning* to GDAL ("JPEGLib: Corrupt JPEG
data: bad Huffman code"), or an error it recovers from, and the read returns plausible-looking
pixels: a run would silently label garbage. rasterio reports these through the
``rasterio._err`` logger in the thread that read; :func:`gdal_messages` collects that thread's
messages during a read so :class:`~gigavim.io.raster_source.RasterSource` can turn a decode
problem into the same one-line "the file is corrupt" error OpenSlide inputs give. The handler
also keeps them off stderr. :func:`corrupt_file_errors` does both for any block of GDAL reads
(label rasters, label reprojection); the writers collect the messages of what they write.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from rasterio._err import CPLE_BaseError  # GDAL errors rasterio passes through unwrapped
from rasterio.errors import RasterioError

from gigavim.errors import InputError

#: rasterio logs GDAL's errors and warnings on these loggers (``_env``: those of its error handler).
_LOGGERS = (logging.getLogger("rasterio._err"), logging.getLogger("rasterio._env"))
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
        for logger in _LOGGERS:
            if _HANDLER not in logger.handlers:
                logger.addHandler(_HANDLER)
                if logger.getEffectiveLevel() > logging.INFO:  # errors GDAL recovers from log at INFO
                    logger.setLevel(logging.INFO)


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


@contextmanager
def corrupt_file_errors(path: str | Path, what: str) -> Iterator[list[str]]:
    """GDAL reads of ``path`` in the block: a failed read, or a decode problem GDAL recovered
    from, is one :class:`InputError` "cannot decode WHAT (...); the file is corrupt"; every
    GDAL message stays off stderr. Yields the messages collected so far."""
    with gdal_messages() as messages:
        try:
            yield messages
        except (RasterioError, CPLE_BaseError) as err:
            detail = decode_problem(messages) or err.__cause__ or err  # GDAL's message rides on the cause
            raise InputError(f"{path}: cannot read {what} ({detail}); the file is corrupt") from err
    problem = decode_problem(messages)
    if problem is not None:
        raise InputError(f"{path}: cannot decode {what} ({problem}); the file is corrupt")


#: What libtiff's default handlers print straight to the C stderr (``_tiffWriteProc: No space
#: left on device.``): GDAL's TIFF I/O callbacks report through them, not through GDAL.
_LIBTIFF_LINE = re.compile(rb"^(_tiff\w*Proc|TIFF\w+|\w+\.tif\w*): .*$")


class _StderrToFile:
    """fd 2 on a temporary file while at least one block is inside (fd 2 is process-wide, so
    concurrent blocks share one redirection, undone by the last to leave)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.saved = -1
        self.sink: IO[bytes] | None = None

    def enter(self) -> None:
        with self.lock:
            if self.depth == 0:
                sys.stderr.flush()
                self.saved, self.sink = os.dup(2), tempfile.TemporaryFile()
                os.dup2(self.sink.fileno(), 2)
            self.depth += 1

    def leave(self) -> None:
        with self.lock:
            self.depth -= 1
            if self.depth or self.sink is None:
                return
            sys.stderr.flush()
            os.dup2(self.saved, 2)
            os.close(self.saved)
            with self.sink as sink:
                sink.seek(0)
                kept = [line for line in sink.read().splitlines(keepends=True)
                        if not _LIBTIFF_LINE.match(line.rstrip(b"\r\n"))]
            self.sink = None
        if kept:
            os.write(2, b"".join(kept))


_STDERR = _StderrToFile()


@contextmanager
def quiet_libtiff() -> Iterator[None]:
    """Keep libtiff's own lines off stderr while the block writes TIFFs.

    They reach file descriptor 2 from C, below Python and GDAL's error handlers, so the block runs
    with fd 2 on a temporary file; afterwards every other line (a Python warning, a progress
    bar) is written back to stderr. The error itself still reaches the user as an exception.
    """
    _STDERR.enter()
    try:
        yield
    finally:
        _STDERR.leave()
