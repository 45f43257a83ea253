"""Batch segmentation of many slides and scenes on dask.distributed (``gigavim batch``).

``run_batch`` expands folders and globs into inputs, runs :func:`gigavim.segment` for each on
a LocalCluster or an existing scheduler, isolates failures per input, skips finished inputs,
resumes half-done ones, and keeps a manifest (``gigavim-batch.json``) of what happened.
"""

from __future__ import annotations

from gigavim.pipelines.manifest import MANIFEST_NAME, BatchReport, InputRecord
from gigavim.pipelines.run import BatchProgress, run_batch

__all__ = ["MANIFEST_NAME", "BatchProgress", "BatchReport", "InputRecord", "run_batch"]
