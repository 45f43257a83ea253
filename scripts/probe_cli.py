# ruff: noqa: E501  (case tables read best one per line)
"""Probe the command line the way issue 11's fuzz did, and count what happens.

Classes of probes: bad files, options, outputs, label files, hostile models, numerics (all the
cases of ``tests/fuzz`` plus option/output mistakes and runs that must succeed), signals
(Ctrl-C / SIGTERM on a running segment) and concurrency (a second run on an output being
written). Each case is classified as

* ``clean``     — an error expected and given as one ``gigavim: error:`` line, non-zero exit,
                  no traceback, nothing half-written in the output folder;
* ``ok``        — a run expected to succeed that exits 0 with its output;
* ``traceback`` — a Python traceback (or more than one line) on stderr;
* ``segfault``  — the process killed by a signal;
* ``hang``      — no answer within the timeout;
* ``garbage``   — exit 0 where an error was expected (or an expected output missing), or
                  something left half-written.

Cases run in-process in a worker (one import for all), with stderr captured at the file
descriptor; a worker that dies or stops answering marks its current case ``segfault``/``hang``
and a new worker takes the next case. Signals and concurrency run real ``gigavim`` processes.

    python scripts/probe_cli.py [--timeout 300] [--json probe.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fuzz import corpus  # noqa: E402
from fuzz.test_fuzz_cli import CASES as FUZZ_CASES  # noqa: E402
from fuzz.test_fuzz_cli import TRAIN  # noqa: E402

# name → (class, args(files, out), expect "error" | "ok")
EXTRA: dict[str, tuple[str, object, str]] = {
    "segment --mpp -1": ("options", lambda f, out: ["segment", str(f["images"]["scene"]), "--mpp", "-1", "-o", str(out / "x.tif")], "error"),
    "segment --gsd 0": ("options", lambda f, out: ["segment", str(f["images"]["scene"]), "--gsd", "0", "-o", str(out / "x.tif")], "error"),
    "segment --gsd nan": ("options", lambda f, out: ["segment", str(f["images"]["scene"]), "--gsd", "nan", "-o", str(out / "x.tif")], "error"),
    "segment --gsd 0.001 (10,000x upsampling)": ("options", lambda f, out: ["segment", str(f["images"]["scene"]), "--gsd", "0.001", "-o", str(out / "x.tif")], "error"),
    "segment --bands 9": ("options", lambda f, out: ["segment", str(f["images"]["scene"]), "--bands", "9,1,2", "-o", str(out / "x.tif")], "error"),
    "segment --bands 1,2": ("options", lambda f, out: ["segment", str(f["images"]["scene"]), "--bands", "1,2", "-o", str(out / "x.tif")], "error"),
    "segment --bands x,y,z": ("options", lambda f, out: ["segment", str(f["images"]["scene"]), "--bands", "x,y,z", "-o", str(out / "x.tif")], "error"),
    "segment --model no-such-model": ("options", lambda f, out: ["segment", str(f["images"]["scene"]), "--model", "no-such-model", "-o", str(out / "x.tif")], "error"),
    "segment --context bogus": ("options", lambda f, out: ["segment", str(f["images"]["scene"]), "--context", "bogus", "-o", str(out / "x.tif")], "error"),
    "segment --level 99": ("options", lambda f, out: ["segment", str(f["images"]["scene"]), "--level", "99", "-o", str(out / "x.tif")], "error"),
    "segment missing input": ("bad files", lambda f, out: ["segment", str(out / "missing.tif"), "-o", str(out / "x.tif")], "error"),
    "segment a directory as input": ("bad files", lambda f, out: ["segment", str(out), "-o", str(out / "x.tif")], "error"),
    "info missing input": ("bad files", lambda f, out: ["info", str(out / "missing.svs")], "error"),
    "eval missing mask": ("label files", lambda f, out: ["eval", "--model", "land-water", f"{f['images']['scene']}:{out / 'nope.geojson'}"], "error"),
    "train --steps -1": ("options", lambda f, out: ["train", f"{f['images']['scene']}:{f['labels']['mask on a disjoint grid']}", "-o", str(out / "m.pt"), *TRAIN[:0], "--steps", "-1"], "error"),
    "segment -o unknown extension": ("outputs", lambda f, out: ["segment", str(f["images"]["scene"]), "-o", str(out / "x.xyz")], "error"),
    "segment -o twice": ("outputs", lambda f, out: ["segment", str(f["images"]["scene"]), "-o", str(out / "x.tif"), "-o", str(out / "x.tif")], "error"),
    "segment -o in a missing folder": ("outputs", lambda f, out: ["segment", str(f["images"]["scene"]), "-o", str(out / "no" / "x.tif")], "error"),
    "segment -o existing, no --overwrite": ("outputs", lambda f, out: ["segment", str(f["images"]["scene"]), "-o", str(f["root"][""] / "scene.tif")], "error"),
    # runs that must work (and write their outputs)
    "info scene": ("bad files", lambda f, out: ["info", str(f["images"]["scene"])], "ok"),
    "segment scene (tif + geojson + zarr)": ("outputs", lambda f, out: ["segment", str(f["images"]["scene"]), "-q", "-o", str(out / "x.tif"), "-o", str(out / "x.geojson"), "-o", str(out / "x.ome.zarr")], "ok"),
    "segment A_log x1e38 bundle": ("numerics", lambda f, out: ["segment", str(f["images"]["scene"]), "-q", "--model", str(f["bundles"]["A_log x1e38"]), "-o", str(out / "x.tif")], "ok"),
    "segment weights +-1e38 bundle": ("numerics", lambda f, out: ["segment", str(f["images"]["scene"]), "--model", str(f["bundles"]["weights +-1e38"]), "-o", str(out / "x.tif")], "error"),
}


def _class_of(name: str) -> str:
    command, _, what = name.partition(": ")
    if "--model" in command or "bundle" in what:
        return "hostile models"
    if command in ("eval", "train"):
        return "label files"
    if "NaN" in what or "DBL_MAX" in what:
        return "numerics"
    if "output" in what or "overwrite" in command or "not ours" in what:
        return "outputs"
    return "bad files"


def all_cases() -> dict[str, tuple[str, object, str]]:
    cases = {name: (_class_of(name), make, "error") for name, make in FUZZ_CASES.items()}
    cases.update(EXTRA)
    return cases


# -- the worker: runs cases in-process, one JSON line per case --------------------------------
def worker(start: int, results: Path, corpus_root: Path, outs: Path) -> None:
    from gigavim.cli import main

    files = {"images": corpus.images(corpus_root), "labels": corpus.label_files(corpus_root),
             "bundles": corpus.bundles(corpus_root, corpus_root / "pwned"), "root": {"": corpus_root}}
    names = list(all_cases())
    for index in range(start, len(names)):
        name = names[index]
        kind, make, expect = all_cases()[name]
        out = outs / f"case{index}"
        out.mkdir(parents=True, exist_ok=True)
        if "not ours" in name:
            (out / "precious.zarr" / "data").mkdir(parents=True, exist_ok=True)
            (out / "precious.zarr" / "data" / "keep.txt").write_text("mine")
        before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
        with open(results, "a") as log:
            log.write(json.dumps({"start": index}) + "\n")
        args = make(files, out)  # type: ignore[operator]
        with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as std:
            sys.stdout.flush()
            sys.stderr.flush()
            saved = os.dup(1), os.dup(2)
            os.dup2(std.fileno(), 1)
            os.dup2(err.fileno(), 2)
            try:
                code = main(args)
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
            except BaseException as exc:  # an escaped exception is a finding
                import traceback

                traceback.print_exc()
                code = f"escaped {type(exc).__name__}"
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
            err.seek(0)
            stderr = err.read().decode(errors="replace")
        after = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
        wrote = sorted(set(after) - set(before))
        with open(results, "a") as log:
            log.write(json.dumps({"index": index, "name": name, "class": kind, "expect": expect,
                                  "code": code, "stderr": stderr[-2000:], "wrote": wrote[:20],
                                  "pwned": (corpus_root / "pwned").exists()}) + "\n")


def classify(row: dict) -> str:
    lines = row["stderr"].strip().splitlines()
    if "Traceback" in row["stderr"] or not isinstance(row["code"], int):
        return "traceback"
    if row.get("pwned"):
        return "garbage"
    if row["expect"] == "ok":
        wrote = bool(row["wrote"]) or row["name"].startswith("info")  # info writes nothing
        return "ok" if row["code"] == 0 and wrote else "garbage"
    if row["code"] == 0:
        return "garbage"
    if row["wrote"]:
        return "garbage"  # something left behind by a failed run
    if len(lines) == 1 and lines[0].startswith("gigavim: error: "):
        return "clean"
    return "traceback"  # several lines of noise: not the one clean line


def run_cases(timeout: float, scratch: Path) -> list[dict]:
    names = list(all_cases())
    results = scratch / "results.jsonl"
    corpus_root, outs = scratch / "corpus", scratch / "outs"
    corpus_root.mkdir(exist_ok=True)
    rows: dict[int, dict] = {}
    start = 0
    while start < len(names):
        proc = subprocess.Popen([sys.executable, __file__, "--worker", str(start), str(results), str(corpus_root), str(outs)])
        current, last_progress, seen = None, time.monotonic(), 0
        while True:
            time.sleep(0.5)
            lines = results.read_text().splitlines() if results.exists() else []
            if len(lines) != seen:
                seen, last_progress = len(lines), time.monotonic()
                for line in lines:
                    entry = json.loads(line)
                    if "start" in entry:
                        current = entry["start"]
                    else:
                        rows[entry["index"]] = entry
                        current = None
            done = proc.poll()
            if done is not None or time.monotonic() - last_progress > timeout:
                if done is None:
                    proc.kill()
                    proc.wait()
                if current is not None and current not in rows:
                    name = names[current]
                    kind, _, expect = all_cases()[name]
                    rows[current] = {"index": current, "name": name, "class": kind, "expect": expect,
                                     "code": proc.returncode, "stderr": "", "wrote": [],
                                     "verdict": "hang" if done is None else "segfault" if proc.returncode < 0 else "traceback"}
                    start = current + 1
                else:
                    start = len(names)
                break
    for row in rows.values():
        row.setdefault("verdict", classify(row))
    return [rows[i] for i in sorted(rows)]


# -- signals and concurrency: real processes ---------------------------------------------------
def _scene(path: Path) -> Path:
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", driver="GTiff", width=512, height=512, count=3, dtype="uint8",
                       crs="EPSG:32631", transform=from_origin(0, 0, 10, 10)) as ds:
        ds.write(rng.integers(0, 255, (3, 512, 512), dtype=np.uint8))
    return path


def _start(scene: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "gigavim", "segment", str(scene), "-o", str(out), "-q",
                             "--batch-size", "1", "--workers", "1", *extra], stderr=subprocess.PIPE, text=True)
    lock = out.with_name(out.name + ".gigavim-work.lock")
    deadline = time.monotonic() + 600
    while not lock.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc


def _verdict(proc: subprocess.Popen[str], stderr: str, want: str) -> str:
    if proc.returncode is not None and proc.returncode < 0:
        return "segfault"
    if "Traceback" in stderr:
        return "traceback"
    lines = stderr.strip().splitlines()
    return "clean" if proc.returncode != 0 and len(lines) == 1 and want in lines[0] else "garbage"


def run_processes(timeout: float, scratch: Path) -> list[dict]:
    scene = _scene(scratch / "big_scene.tif")
    rows = []
    for sig, name in ((signal.SIGINT, "Ctrl-C during segment"), (signal.SIGTERM, "SIGTERM during segment")):
        out = scratch / f"{sig.name}.tif"
        proc = _start(scene, out)
        proc.send_signal(sig)
        try:
            _, stderr = proc.communicate(timeout=timeout)
            verdict = _verdict(proc, stderr, "interrupted — rerun with --resume")
        except subprocess.TimeoutExpired:
            proc.kill()
            stderr, verdict = "", "hang"
        rows.append({"name": name, "class": "signals", "code": proc.returncode, "stderr": stderr[-2000:],
                     "verdict": verdict})
    for extra, name in (((), "second run on an output being written"), (("--resume",), "second run --resume"),
                        (("--overwrite",), "second run --overwrite")):
        out = scratch / f"busy{len(rows)}.tif"
        first = _start(scene, out)
        try:
            second = subprocess.run([sys.executable, "-m", "gigavim", "segment", str(scene), "-o", str(out), "-q", *extra],
                                    capture_output=True, text=True, timeout=timeout)
            verdict = _verdict(second, second.stderr, "another gigavim run (pid")  # type: ignore[arg-type]
            code, stderr = second.returncode, second.stderr
        except subprocess.TimeoutExpired:
            verdict, code, stderr = "hang", None, ""
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=timeout)
        rows.append({"name": name, "class": "concurrency", "code": code, "stderr": stderr[-2000:], "verdict": verdict})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds without progress = a hang")
    parser.add_argument("--json", type=Path, help="write every case's result here")
    parser.add_argument("--no-processes", action="store_true", help="skip the signal/concurrency probes")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        start, results, corpus_root, outs = args.worker
        worker(int(start), Path(results), Path(corpus_root), Path(outs))
        return
    with tempfile.TemporaryDirectory(prefix="gigavim-probe-") as tmp:
        scratch = Path(tmp)
        rows = run_cases(args.timeout, scratch)
        if not args.no_processes:
            rows += run_processes(args.timeout, scratch)
    counts = collections.Counter(row["verdict"] for row in rows)
    by_class: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for row in rows:
        by_class[row["class"]][row["verdict"]] += 1
    verdicts = ["clean", "ok", "traceback", "segfault", "hang", "garbage"]
    print(f"{len(rows)} probes: " + ", ".join(f"{counts[v]} {v}" for v in verdicts))
    print("| class | probes | " + " | ".join(verdicts) + " |")
    print("|---|---:|" + "---:|" * len(verdicts))
    for kind, c in sorted(by_class.items()):
        print(f"| {kind} | {sum(c.values())} | " + " | ".join(str(c[v]) for v in verdicts) + " |")
    for row in rows:
        if row["verdict"] not in ("clean", "ok"):
            print(f"  {row['verdict']}: {row['name']}: exit {row['code']}: {row['stderr'].strip()[-300:]}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
