"""The readers benchmark times reading, not Python imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import json, sys, time
from pathlib import Path
from gigavim.benchmarks import readers
path = Path(sys.argv[1])
readers.write_geotiff(path, 256)
real, seen = time.perf_counter, []
def clock():
    seen.append("dask.array" in sys.modules)
    return real()
time.perf_counter = clock
readers.measure("read-dask", str(path), 256, 0)
print(json.dumps(seen))
"""


def test_the_dask_read_starts_its_clock_after_importing_dask(tmp_path: Path) -> None:
    """Importing dask takes ~0.4 s: on the clock it halved the quick run's whole-level MP/s."""
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "r.tif")], capture_output=True,
                         text=True, check=True)
    clock_reads = json.loads(out.stdout.strip().splitlines()[-1])
    assert clock_reads and all(clock_reads), "dask was imported after the clock started"
