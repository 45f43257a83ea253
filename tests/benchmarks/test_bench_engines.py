"""``bench engines``: medians, ratios to gigavim's time, and peers that are not installed."""

from __future__ import annotations

import pytest

from gigavim.benchmarks import engines


def test_rows_give_medians_and_each_engines_time_over_gigavims():
    runs = {
        ("pixel", "gigavim"): [{"seconds": s, "megapixels": 6.0, "peak_rss_mib": m}
                               for s, m in ((2.0, 400), (3.0, 420), (9.0, 410))],
        ("pixel", "monai"): [{"seconds": s, "megapixels": 6.0, "peak_rss_mib": 900} for s in (6.0, 4.5, 5.0)],
    }
    gigavim, monai, tiatoolbox = engines._rows(("pixel",), runs)
    assert gigavim["seconds"] == 3.0 and gigavim["peak_rss_mib"] == 410 and gigavim["vs_gigavim"] == 1.0
    assert gigavim["megapixels_per_s"] == pytest.approx(2.0)
    assert monai["seconds"] == 5.0 and monai["vs_gigavim"] == pytest.approx(5.0 / 3.0)
    assert monai["runs"] == "6.0 / 4.5 / 5.0"
    assert tiatoolbox == {"network": "pixel", "engine": "tiatoolbox", "runs": engines.NOT_INSTALLED}


def test_an_engine_that_did_not_run_says_so_instead_of_a_number():
    runs = {("unet", "gigavim"): [{"seconds": 1.0, "megapixels": 6.0, "peak_rss_mib": 1.0}]}
    rows = engines._rows(("unet",), runs)
    assert rows[1] == {"network": "unet", "engine": "monai", "runs": engines.NOT_INSTALLED}


def test_every_network_runs_at_the_benchmarks_tile_and_overlap():
    bundle = engines.network("pixel")
    assert (bundle.meta.tile, bundle.meta.overlap) == (engines.TILE, engines.OVERLAP)
