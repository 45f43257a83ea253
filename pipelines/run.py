"""``run_batch``: many slides and scenes through ``gigavim.segment`` on dask.distributed.

Plans every input (outputs, skip if done), sends the rest to the cluster as independent tasks,
and records each result in the manifest as it arrives. One input failing never stops the
others; the report's ``exit_code`` is 1 when any failed.
"""

from __future__ import annotations

import inspect
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from gigavim.pipelines.cluster import ClusterPlan, batch_client, plan_cluster
from gigavim.pipelines.inputs import expand_inputs, format_suffixes, output_names
from gigavim.pipelines.manifest import BatchReport, InputRecord, previous_records, utc_now
from gigavim.pipelines.task import segment_one

from gigavim.errors import OutputError, UsageError

#: Called after each input is settled (skipped, ok or failed): (record, settled, total).
BatchProgress = Callable[[InputRecord, int, int], None]
#: ``segment`` options that the batch itself decides per input.
_BATCH_OWNED = ("source", "outputs", "model", "resume", "overwrite", "progress", "workdir")
#: Re-runs of a task that raised something other than a GigavimError (flaky I/O, lost files).
TASK_RETRIES = 1


def run_batch(
    inputs: str | Path | Iterable[str | Path],
    out_dir: str | Path,
    *,
    formats: Sequence[str] = ("ome.zarr",),
    model: str | Path | None = None,
    address: str | None = None,
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    skip_existing: bool = True,
    resume: bool = True,
    overwrite: bool = False,
    segment_kwargs: dict[str, Any] | None = None,
    progress: BatchProgress | None = None,
) -> BatchReport:
    """Segment every input into ``out_dir/<name>.<format>`` and write ``out_dir/gigavim-batch.json``.

    ``inputs``: files, directories (their image files) and glob patterns. ``model=None`` uses
    each input's default model (slides and rasters differ). Inputs whose outputs all exist are
    skipped unless ``overwrite``; with ``resume`` an input a crashed batch left half done
    continues from its work dir. ``address`` runs on an existing dask scheduler instead of a
    new LocalCluster of ``n_workers`` processes. Raises a GigavimError only for problems with
    the batch as a whole (no inputs, bad options, unwritable ``out_dir``).
    """
    started = time.perf_counter()
    kwargs = _check_segment_kwargs(segment_kwargs or {})
    if model is not None:
        _check_model(model, context=kwargs.get("context", "tile"), tta=kwargs.get("tta"))
    suffixes = format_suffixes(formats)
    out_dir = _prepare_out_dir(Path(out_dir))
    sources = [p for p in expand_inputs([inputs] if isinstance(inputs, (str, Path)) else inputs)
               if not p.resolve().is_relative_to(out_dir.resolve())]  # never our own outputs
    if not sources:
        raise UsageError(f"no inputs left outside the output directory {out_dir}")
    names = output_names(sources)
    records = [InputRecord(str(src), [str(out_dir / (name + sfx)) for sfx in suffixes])
               for src, name in zip(sources, names, strict=True)]
    todo = _plan_skips(records, out_dir, skip_existing=skip_existing, overwrite=overwrite)
    cluster = plan_cluster(address, n_workers, threads_per_worker, max(1, len(todo)))
    report = BatchReport(out_dir, records, model=None if model is None else str(model),
                         settings=_settings(suffixes, kwargs, cluster, skip_existing, resume, overwrite))
    report.write()
    settled = 0
    for record in records:
        if record.status == "skipped":
            settled += 1
            _notify(progress, record, settled, len(records))
    if todo:
        task_kwargs = {**kwargs, "model": model, "overwrite": overwrite,
                       "resume": resume and not overwrite}
        with batch_client(cluster) as client:
            report.settings["cluster"]["dashboard"] = client.dashboard_link if address else None
            for record in _run_on(client, todo, task_kwargs, cluster.torch_threads, report):
                settled += 1
                _notify(progress, record, settled, len(records))
    report.finished = utc_now()
    report.seconds = time.perf_counter() - started
    report.write()
    return report


def _run_on(client: Any, todo: list[tuple[InputRecord, list[str]]], kwargs: dict[str, Any],
            torch_threads: int | None, report: BatchReport) -> Iterable[InputRecord]:
    """Submit every input, then settle records as tasks finish (manifest rewritten each time)."""
    from distributed import as_completed

    tag = uuid.uuid4().hex[:8]
    futures = {}
    for i, (record, outputs) in enumerate(todo):
        key = f"gigavim-segment-{i}-{Path(record.input).name}-{tag}"
        future = client.submit(segment_one, record.input, outputs, kwargs, torch_threads,
                               key=key, retries=TASK_RETRIES, pure=False)
        futures[future] = record
    for future in as_completed(list(futures)):
        record = futures.pop(future)
        _settle(record, future)
        report.write()
        yield record


def _settle(record: InputRecord, future: Any) -> None:
    """Copy a finished task's outcome into its record; a raised exception becomes one line."""
    if future.status == "finished":
        for name, value in future.result().items():
            setattr(record, name, value)
        return
    record.status = "failed"
    record.finished = utc_now()
    if future.status == "error":
        exc = future.exception()
        record.error_type = type(exc).__name__
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else "(no message)"
        record.error = f"{record.input}: {type(exc).__name__}: {message}"
    else:  # cancelled: the scheduler or its workers went away
        record.error_type = "Cancelled"
        record.error = f"{record.input}: task {future.status} (lost contact with the dask cluster)"


def _plan_skips(records: list[InputRecord], out_dir: Path, *, skip_existing: bool,
                overwrite: bool) -> list[tuple[InputRecord, list[str]]]:
    """Mark inputs whose outputs all exist as skipped; the rest with the outputs still to write."""
    previous = previous_records(out_dir)
    todo = []
    for record in records:
        missing = [o for o in record.outputs if not Path(o).exists()]
        if overwrite or not skip_existing:
            todo.append((record, record.outputs))
        elif missing:
            todo.append((record, missing))  # an earlier batch may have written some formats
        else:
            record.status = "skipped"
            before = previous.get(record.input, {})
            record.summary = before.get("summary")  # keep what the run that wrote them said
    return todo


def _check_segment_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    from gigavim.engine import segment

    owned = sorted(set(kwargs) & set(_BATCH_OWNED))
    if owned:
        raise UsageError(f"segment_kwargs may not set {', '.join(owned)}: the batch sets them per input")
    known = set(inspect.signature(segment).parameters)
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise UsageError(f"unknown segment option(s) {', '.join(unknown)}")
    return dict(kwargs)


def _check_model(model: str | Path, *, context: str, tta: int | bool | None = None) -> None:
    """An unknown or unreadable model, views ``tta`` cannot use, or a model that cannot run the
    whole image as one sequence when ``context="image"``: one error for the batch, not one per
    input."""
    from gigavim.models.catalog import load_model, read_meta, resolve_model_path

    meta = read_meta(resolve_model_path(str(model)))
    if tta is not None:
        from gigavim.models.tta import resolve_views

        resolve_views(meta, tta, context)
    if context != "image":
        return
    from gigavim.models.streaming import check_streamable

    bundle = load_model(str(model))
    check_streamable(bundle.net, bundle.meta.name)


def _prepare_out_dir(out_dir: Path) -> Path:
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: output directory is a file")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out_dir}: cannot create the output directory ({exc.strerror})") from exc
    return out_dir


def _settings(suffixes: list[str], kwargs: dict[str, Any], cluster: ClusterPlan,
              skip_existing: bool, resume: bool, overwrite: bool) -> dict[str, Any]:
    return {"formats": [s.lstrip(".") for s in suffixes], "segment": kwargs,
            "skip_existing": skip_existing, "resume": resume, "overwrite": overwrite,
            "cluster": cluster.to_dict()}


def _notify(progress: BatchProgress | None, record: InputRecord, settled: int, total: int) -> None:
    if progress is not None:
        progress(record, settled, total)
