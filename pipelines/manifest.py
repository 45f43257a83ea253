"""The batch's record of what was processed: per-input status, outputs, summaries, errors.

Written atomically (temporary file + rename) every time an input finishes, so a crashed or
killed batch still leaves a valid manifest that says how far it got.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from gigavim.errors import OutputError

MANIFEST_NAME = "gigavim-batch.json"
Status = Literal["pending", "ok", "failed", "skipped"]


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class InputRecord:
    """What happened to one input; ``summary`` is :meth:`gigavim.engine.SegmentResult.to_dict`."""

    input: str
    outputs: list[str]
    status: Status = "pending"
    error: str | None = None  # one line: the GigavimError's message, or "Type: message" for bugs
    error_type: str | None = None
    summary: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: float | None = None
    worker: str | None = None
    started: str | None = None
    finished: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BatchReport:
    """The whole batch: records in input order plus the settings; ``to_dict`` is the manifest."""

    out_dir: Path
    records: list[InputRecord]
    settings: dict[str, Any]
    model: str | None
    started: str = field(default_factory=utc_now)
    finished: str | None = None
    seconds: float = 0.0

    @property
    def manifest_path(self) -> Path:
        return self.out_dir / MANIFEST_NAME

    def count(self, status: Status) -> int:
        return sum(r.status == status for r in self.records)

    @property
    def failed(self) -> list[InputRecord]:
        return [r for r in self.records if r.status == "failed"]

    @property
    def exit_code(self) -> int:
        """1 if any input failed (or never finished), else 0: what ``gigavim batch`` exits with."""
        return 1 if any(r.status in ("failed", "pending") for r in self.records) else 0

    def to_dict(self) -> dict[str, Any]:
        from gigavim import __version__

        return {
            "gigavim_version": __version__,
            "out_dir": str(self.out_dir),
            "model": self.model,
            "started": self.started,
            "finished": self.finished,
            "seconds": round(self.seconds, 3),
            "counts": {s: self.count(s) for s in ("ok", "failed", "skipped", "pending")},
            "settings": self.settings,
            "inputs": [r.to_dict() for r in self.records],
        }

    def write(self) -> Path:
        """Replace the manifest atomically (readers never see a half-written file)."""
        path = self.manifest_path
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise OutputError(f"{path}: cannot write the batch manifest ({exc.strerror})") from exc
        return path


def previous_records(out_dir: Path) -> dict[str, dict[str, Any]]:
    """The records of an earlier batch into ``out_dir`` by input path ({} if none or unreadable)."""
    try:
        data = json.loads((out_dir / MANIFEST_NAME).read_text())
        return {r["input"]: r for r in data.get("inputs", []) if isinstance(r, dict) and "input" in r}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}
