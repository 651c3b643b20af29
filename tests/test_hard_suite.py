"""The hard scenario suite: every nuisance measurably present, deterministic per seed, split seeds, its scoring."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio

from scheduler.demo import DemoSpec, generate_demo
from scheduler.demo import scl as SCL
from scheduler.demo.events import apply_events
from scheduler.demo.fields import dilate
from scheduler.demo.grid import Grid
from scheduler.demo.hard import CLASS_CODES, TEST_SEEDS, TUNING_SEEDS, hard_spec
from scheduler.demo.haze import SMOKE
from scheduler.demo.landcover import make_landcover
from scheduler.demo.scenarios import plan_events
from scheduler.demo.scene import SceneContext, choose_overcast, render_scene
from scheduler.demo.schedule import acquisition_schedule
from scheduler.demo.surface import surface_reflectance
from scheduler.evaluation.suite import (
    ABLATIONS,
    DOC_BEGIN,
    DOC_END,
    SuiteScore,
    meets_targets,
    render_section,
    render_table,
    run_monitor,
    splice_suite,
    suite_section,
    summarise,
)

SIZE = 96


def _context(spec: DemoSpec) -> SceneContext:
    """What generate_demo builds before rendering, without writing anything."""
    grid = Grid.from_spec(spec)
    landcover = make_landcover(spec.seed, grid)
    events = plan_events(spec, grid, landcover)
    schedule = acquisition_schedule(spec)
    return SceneContext(spec, landcover, events, choose_overcast(spec, [a.index for a in schedule]))


def _ndvi(refl: dict[str, np.ndarray]) -> np.ndarray:
    return (refl["nir08"] - refl["red"]) / (refl["nir08"] + refl["red"])


@pytest.fixture(scope="module")
def hard() -> SceneContext:
    return _context(hard_spec(TUNING_SEEDS[0], SIZE))


def test_seed_split_and_defaults_off() -> None:
    assert TUNING_SEEDS and TEST_SEEDS and not set(TUNING_SEEDS) & set(TEST_SEEDS)
    default = DemoSpec()
    # The default archive has no nuisance (test_demo checks its pixels bit for bit).
    assert (default.leaked_cloud_fraction, default.psf_sigma_px, default.jitter_px, default.duplicate_fraction) == (
        0,
        0,
        0,
        0,
    )
    spec = hard_spec(101, SIZE)
    assert spec.scenario == "hard" and spec.epsg == 32721 and spec.leaked_cloud_fraction > 0
    # The density of events stays that of 256 x 256 px on larger grids; smaller ones keep twelve clear-cuts.
    assert [hard_spec(1, size).n_clearcuts for size in (64, 256, 512)] == [12, 12, 48]


def test_leaked_clouds_are_labelled_clear(hard: SceneContext) -> None:
    clean = replace(hard, spec=hard.spec.model_copy(update={"leaked_cloud_fraction": 0.0}))
    leaked_clear = clear_total = 0
    for acq in acquisition_schedule(hard.spec)[:60]:
        scene, plain = render_scene(hard, acq), render_scene(clean, acq)
        clear = np.isin(scene.scl, (SCL.VEGETATION, SCL.NOT_VEGETATED, SCL.WATER, SCL.UNCLASSIFIED))
        # SCL keeps every leaked pixel clear, and the leak changes nothing else.
        assert clear[scene.leaked].all()
        changed = scene.bands["red"] != plain.bands["red"]
        assert not (changed & ~scene.leaked).any()
        assert changed.sum() >= 0.8 * scene.leaked.sum()
        # Leaks brighten red: forest NDVI goes down where they are.
        if scene.leaked.any():
            assert scene.bands["red"][scene.leaked].mean() > plain.bands["red"][scene.leaked].mean()
        leaked_clear += int(scene.leaked.sum())
        clear_total += int(clear.sum())
    assert 0.01 <= leaked_clear / clear_total <= 0.05


def test_smoke_is_vegetation_and_drought_lowers_ndvi(hard: SceneContext) -> None:
    forest = hard.landcover.forest
    smoke = [e for e in hard.events if e.kind == "haze" and e.detail == SMOKE]
    assert smoke and all(e.date.month in (8, 9, 10) for e in smoke)
    event = max(smoke, key=lambda e: e.magnitude)
    when = event.date + dt.timedelta(days=1)
    before, after = surface_reflectance(hard.landcover, when), surface_reflectance(hard.landcover, when)
    apply_events([event], after, when)
    in_forest = forest[event.rows, event.cols]
    drop = (_ndvi(before) - _ndvi(after))[event.rows, event.cols][in_forest]
    assert 0.02 < drop.max() <= 0.095 and drop.min() >= 0
    labels = SCL.clear_sky_scl(after["red"], after["nir08"], hard.landcover.water)
    assert (labels[event.rows, event.cols][in_forest] == SCL.VEGETATION).all()

    (drought,) = [e for e in hard.events if e.kind == "drought"]
    assert 0.08 <= drought.n_pixels / forest.sum() <= 0.12
    assert forest[drought.rows, drought.cols].all()
    mid = drought.date + dt.timedelta(days=drought.duration_days // 2)
    before, after = surface_reflectance(hard.landcover, mid), surface_reflectance(hard.landcover, mid)
    apply_events([drought], after, mid)
    drop = (_ndvi(before) - _ndvi(after))[drought.rows, drought.cols]
    # Graded: up to about 0.09 at the core, far less towards the edge.
    assert 0.07 <= drop.max() <= 0.1 and np.median(drop) <= 0.05 and drop.min() >= 0


def test_blur_and_jitter_smear_edges(hard: SceneContext) -> None:
    sharp = replace(hard, spec=hard.spec.model_copy(update={"psf_sigma_px": 0.0, "jitter_px": 0.0}))
    forest = hard.landcover.forest
    edge = forest & dilate(~forest)
    interior = forest & ~dilate(dilate(dilate(~forest)))
    shifts = []
    for acq in acquisition_schedule(hard.spec)[:12]:
        a = render_scene(hard, acq).bands["nir08"].astype(float)
        b = render_scene(sharp, acq).bands["nir08"].astype(float)
        shifts.append(np.abs(a - b)[edge].mean() / max(np.abs(a - b)[interior].mean(), 1e-9))
    # Forest next to open land changes several times more than forest inside a stand.
    assert np.median(shifts) > 3


def test_events_and_classes_are_deterministic_per_seed(hard: SceneContext) -> None:
    again = _context(hard_spec(TUNING_SEEDS[0], SIZE))
    assert [(e.id, e.kind, e.date) for e in again.events] == [(e.id, e.kind, e.date) for e in hard.events]
    acq = acquisition_schedule(hard.spec)[40]
    first, second = render_scene(hard, acq), render_scene(again, acq)
    assert all(np.array_equal(first.bands[k], second.bands[k]) for k in first.bands)
    other = _context(hard_spec(TEST_SEEDS[0], SIZE))
    assert not np.array_equal(other.landcover.cover, hard.landcover.cover)
    kinds = [e.kind for e in hard.events]
    assert kinds.count("fire") == 2 and kinds.count("drought") == 1 and "selective-logging" in kinds


# -- a generated archive (shortened) ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory):
    spec = hard_spec(TUNING_SEEDS[1], 80).model_copy(
        update={"start": dt.date(2021, 7, 1), "end": dt.date(2023, 12, 31), "duplicate_fraction": 0.1}
    )
    return generate_demo(tmp_path_factory.mktemp("hard"), spec)


@pytest.mark.slow
def test_archive_has_duplicates_southern_utm_small_clearings_and_classes(archive) -> None:
    catalog = pystac.Catalog.from_file(str(archive.catalog_path))
    items = list(catalog.get_items(recursive=True))
    days: dict[dt.date, list[str]] = {}
    for item in items:
        days.setdefault(item.datetime.date(), []).append(item.id)
    twice = {day: ids for day, ids in days.items() if len(ids) > 1}
    assert len(days) == len(archive.dates) and 0.03 * len(days) <= len(twice) <= 0.2 * len(days)
    assert all(sorted(ids)[1] == sorted(ids)[0] + "_R2" for ids in twice.values())
    assert {item.properties["proj:code"] for item in items} == {"EPSG:32721"}
    assert all(item.bbox[3] < 0 for item in items)  # south of the equator
    # A duplicate holds the same pixels as its original.
    ids = sorted(next(iter(twice.values())))
    reds = []
    for item_id in ids:
        with rasterio.open(archive.root / "items" / item_id / f"{item_id}_red.tif") as src:
            reds.append(src.read(1))
    assert np.array_equal(*reds)

    features = [f["properties"] for f in json.loads(archive.ground_truth_path.read_text())["features"]]
    cuts = [f for f in features if f["kind"] == "clear-cut"]
    small = [f for f in cuts if f["area_ha"] <= 0.25]
    assert len(small) >= 3 and all(f["n_pixels"] >= 4 for f in small)
    assert max(f["area_ha"] for f in cuts) > 1
    with rasterio.open(archive.ground_truth_class_path) as src:
        classes = src.read(1)
        assert json.loads(src.tags()["CLASS_CODES"]) == CLASS_CODES
    with rasterio.open(archive.ground_truth_kind_path) as src:
        kinds = src.read(1)
    assert set(np.unique(classes)) == set(CLASS_CODES.values())
    # The class raster agrees with the kind raster on every disturbed pixel.
    assert (classes[kinds == 1] == CLASS_CODES["clear-cut"]).all()
    assert (classes[kinds == 4] == CLASS_CODES["fire"]).all()
    assert (classes[kinds == 3] == CLASS_CODES["selective-logging"]).all()


@pytest.mark.slow
def test_run_one_scores_per_class(archive, tmp_path: Path) -> None:
    score = run_monitor(tmp_path / "run", archive, "ccdc-nrt")
    assert score.error is None, score.error
    with rasterio.open(archive.ground_truth_class_path) as src:
        classes = src.read(1)
    with rasterio.open(archive.forest_mask_path) as src:
        forest = src.read(1) == 1
    # Every forest pixel is monitored here, so the class counts are the raster's.
    assert score.abrupt_pixels == int(np.isin(classes, (2, 3)).sum()) > 0
    assert score.stable_pixels == int((classes == 1).sum())
    assert score.drought_pixels == int((classes == 5).sum())
    assert (
        score.edge_pixels + score.stable_pixels + score.drought_pixels + score.abrupt_pixels + score.logging_pixels
        == (forest.sum())
    )
    features = [f["properties"] for f in json.loads(archive.ground_truth_path.read_text())["features"]]
    assert score.logging_gaps == sum(f["kind"] == "selective-logging" for f in features)
    assert 0 < score.abrupt_hits <= score.abrupt_pixels and len(score.lags_obs) == score.abrupt_hits
    summary = summarise([score], "ccdc-nrt")
    assert summary.pa == score.abrupt_hits / score.abrupt_pixels


def test_each_ablation_turns_off_only_its_nuisances() -> None:
    full = hard_spec(TUNING_SEEDS[0], 64)
    assert ABLATIONS["every nuisance"] == {}
    for name, update in ABLATIONS.items():
        variant = full.model_copy(update=update)
        changed = {k for k in type(full).model_fields if getattr(variant, k) != getattr(full, k)}
        assert changed == set(update) and all(getattr(variant, k) == 0 for k in changed), name


def test_summaries_pool_counts_over_seeds() -> None:
    a = SuiteScore(101, "m", abrupt_pixels=100, abrupt_hits=99, alerts=100, stable_pixels=1000, stable_alerts=1,
                   drought_pixels=200, drought_alerts=1, lags_obs=[2, 3, 3])  # fmt: skip
    b = SuiteScore(102, "m", abrupt_pixels=300, abrupt_hits=298, alerts=305, stable_pixels=3000, stable_alerts=2,
                   drought_pixels=200, drought_alerts=0, lags_obs=[3])  # fmt: skip
    failed = SuiteScore(103, "m", error="boom")
    s = summarise([a, b, failed], "m")
    assert s.seeds == (101, 102) and s.errors == ("seed 103: boom",)
    assert s.pa == pytest.approx(397 / 400) and s.ua == pytest.approx(397 / 405)
    assert s.fa_stable == pytest.approx(3 / 4000) and s.fa_drought == pytest.approx(1 / 400)
    assert s.lag_obs == 3.0
    assert meets_targets(s)
    assert not meets_targets(summarise([a, SuiteScore(104, "m", abrupt_pixels=100, alerts=1)], "m"))
    table = render_table([s, summarise([failed], "m")])
    assert "| m | 101, 102 (1 failed) | 0.993 |" in table and "| m | none (1 failed) | failed |" in table
    assert table.endswith("Failed runs:\n\n- m, seed 103: boom\n- m, seed 103: boom")


def test_doc_section_leads_and_is_replaced_not_repeated() -> None:
    summary = summarise([SuiteScore(101, "iqr", abrupt_pixels=10, abrupt_hits=9, alerts=12, stable_pixels=100)], "iqr")
    section = render_section([summary], seeds=(101,), size=64, generated="2026-12-07", note="1 min")
    assert section.startswith(DOC_BEGIN) and section.endswith(DOC_END)
    assert "| iqr | 101 | 0.900 | 0.750 | 0.818 | 0.00 % | n/a |" in section
    own = "# Own demo, every monitor on every scenario (tuned on)\n\ntable\n"
    doc = splice_suite(own, section)
    assert doc.startswith(section) and doc.endswith(own)
    newer = section.replace("0.900", "0.950")
    again = splice_suite(doc, newer)
    assert again == f"{newer}\n\n{own}" and again.count(DOC_BEGIN) == 1
    # The matrix rewrites its part and keeps the suite's section first.
    assert splice_suite("# Own demo v2\n", suite_section(again)) == f"{newer}\n\n# Own demo v2\n"


@pytest.mark.slow
def test_demo_command_serves_the_hard_suite_on_a_tuning_seed(tmp_path: Path) -> None:
    from scheduler.demo import load_demo
    from server.cli import main

    folder = tmp_path / "demo-hard"
    assert main(["demo", "--scenario", "hard", "--size", "64", "--dir", str(folder), "--no-serve"]) == 0
    archive = load_demo(folder / "archive")
    assert archive.spec == hard_spec(TUNING_SEEDS[0], 64)
    assert 'crs = "EPSG:32721"' in (folder / "nrt-alerts.toml").read_text()
    assert archive.ground_truth_class_path is not None and archive.ground_truth_class_path.exists()
