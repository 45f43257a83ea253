"""Objects handed to the writers: the instance id map and one record per object.

An instance model (``ModelMeta.instances``) gives every object (a nucleus, a building) its own
integer id. The engine stores the ids as a (H, W) uint32 map on the working grid and appends
one line per object to a records file while it works, so that no writer ever holds all objects
in memory. A line is ``id <TAB> measurements (JSON object) <TAB> geometry (GeoJSON, output
coordinates)``: the GeoJSON writer pastes the geometry text as it is, the table writer reads the
measurements only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

_PLURALS = {"nucleus": "nuclei", "cell": "cells", "building": "buildings"}


def plural(name: str) -> str:
    """English plural of an object class name, for labels and summaries ("nucleus" → "nuclei")."""
    low = name.lower()
    if low in _PLURALS:
        return _PLURALS[low]
    return name if low.endswith("s") else name + "s"


@dataclass(frozen=True)
class ObjectRecord:
    """One object: its id, measurements (name → number) and outline (GeoJSON text)."""

    id: int
    measurements: dict[str, float]
    geometry: str

    def line(self) -> str:
        return f"{self.id}\t{json.dumps(self.measurements)}\t{self.geometry}\n"

    @classmethod
    def parse(cls, line: str, *, geometry: bool = True) -> ObjectRecord:
        ident, measurements, geom = line.rstrip("\n").split("\t", 2)
        return cls(int(ident), json.loads(measurements), geom if geometry else "")


@dataclass
class InstanceMap:
    """The objects of one run: id map (0 = no object), records file and what they are.

    ``columns`` names the measurements in table order (units in the names: ``area_um2`` for
    slides, ``area_m2`` for rasters, ``area_px`` when the input has no physical pixel size).
    """

    labels: Any
    object_class: str
    color: tuple[int, int, int]
    records: Path
    count: int
    columns: list[str]

    @property
    def name(self) -> str:
        """The plural used for the NGFF labels group and summaries ("nuclei")."""
        return plural(self.object_class)

    def __iter__(self) -> Iterator[ObjectRecord]:
        yield from self.iter_records(geometry=True)

    def iter_records(self, *, geometry: bool = True) -> Iterator[ObjectRecord]:
        with open(self.records, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield ObjectRecord.parse(line, geometry=geometry)


class RecordWriter:
    """Appends object records to a file (the engine's side of :class:`InstanceMap`)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fh: IO[str] = open(self.path, "w", encoding="utf-8")
        self.count = 0

    def write(self, record: ObjectRecord) -> None:
        self._fh.write(record.line())
        self.count += 1

    def close(self) -> None:
        self._fh.close()
