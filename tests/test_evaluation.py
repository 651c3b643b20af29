"""Evaluation of published alerts against a reference: metrics, reference loaders, the evaluate and sweep commands."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from matplotlib.image import imread
from pyproj import Transformer
from rasterio.crs import CRS

from catalog.mosaic import AreaGrid
from catalog.store import CatalogLayout, read_index
from scheduler.evaluation.errors import EvaluationError, ReferenceDataError, SweepGridError
from scheduler.evaluation.metrics import accuracy_curve, classify, compute_metrics, initial_delay
from scheduler.evaluation.observations import count_between
from scheduler.evaluation.reference import load_reference
from scheduler.evaluation.sweep import RunScore, load_grid, rank
from server.cli import main

from conftest import DemoRun, make_workspace

# -- metrics on hand-built arrays --------------------------------------------------------------------------


def test_confusion_accuracies_and_lags_are_exact() -> None:
    ref = np.array([100, 100, 100, 0, 0, 0])
    status = np.array([3, 6, 0, 3, 0, 1])  # a first detection (1) is no alert
    det = np.array([105, 110, 0, 50, 0, 40])
    m = compute_metrics(classify(ref, status, det))
    c = m.counts
    assert (c.evaluated, c.disturbed, c.undisturbed, c.alerts) == (6, 3, 3, 3)
    assert (c.true_positives, c.false_positives, c.false_negatives, c.true_negatives) == (2, 1, 1, 2)
    assert m.producers_accuracy == pytest.approx(2 / 3)
    assert m.users_accuracy == pytest.approx(2 / 3)
    assert m.f1 == pytest.approx(2 / 3)
    assert m.omission_error == pytest.approx(1 / 3) and m.commission_error == pytest.approx(1 / 3)
    assert m.false_alarm_rate == pytest.approx(1 / 3)
    assert (m.lag_days.n, m.lag_days.median, m.lag_days.mean, m.lag_days.p90) == (2, 7.5, 7.5, 9.5)
    assert (m.lag_days.min, m.lag_days.max) == (5, 10)
    assert m.lag_observations is None
    # PA by lag: nothing within 0..4 days, one hit from 5, both from 10.
    pa = [p.producers_accuracy for p in m.accuracy_vs_lag_days]
    assert len(pa) == 11 and pa[:5] == [0] * 5 and pa[5] == pytest.approx(1 / 3) and pa[10] == pytest.approx(2 / 3)
    assert m.accuracy_vs_lag_days[5].f1 == pytest.approx(2 * 1 / 6)
    assert m.initial_delay_days == 5


def test_detection_before_the_event_is_a_false_alarm_and_a_miss() -> None:
    ref, status, det = np.array([100, 200]), np.array([6, 3]), np.array([90, 203])
    m = compute_metrics(classify(ref, status, det))
    c = m.counts
    assert (c.true_positives, c.false_positives, c.false_negatives, c.early_detections) == (1, 1, 1, 1)
    assert c.false_alarms_on_undisturbed == 0
    assert m.producers_accuracy == 0.5 and m.users_accuracy == 0.5 and m.f1 == 0.5
    assert m.lag_days.median == 3
    # With a 10-day tolerance the early detection is a hit with a negative lag.
    m = compute_metrics(classify(ref, status, det, tolerance_days=10))
    assert m.counts.true_positives == 2 and m.counts.early_detections == 0
    assert (m.lag_days.min, m.lag_days.max) == (-10, 3)
    assert m.accuracy_vs_lag_days[0].producers_accuracy == 0.5  # negative lags count from lag 0


def test_provisional_counts_only_when_asked() -> None:
    ref, status, det = np.array([100, 100, 0]), np.array([2, 5, 3]), np.array([101, 102, 40])
    confirmed_only = compute_metrics(classify(ref, status, det))
    assert confirmed_only.counts.true_positives == 0 and confirmed_only.counts.alerts == 1
    assert confirmed_only.producers_accuracy == 0 and confirmed_only.users_accuracy == 0
    with_provisional = compute_metrics(classify(ref, status, det, include_provisional=True))
    assert with_provisional.counts.true_positives == 2 and with_provisional.counts.alerts == 3
    assert with_provisional.producers_accuracy == 1 and with_provisional.users_accuracy == pytest.approx(2 / 3)
    assert with_provisional.f1 == pytest.approx(0.8)


def test_finished_alerts_are_confirmed() -> None:
    m = compute_metrics(classify(np.array([100, 100]), np.array([7, 8]), np.array([100, 104])))
    assert m.counts.true_positives == 2 and m.lag_days.median == 2


def test_no_alerts_at_all() -> None:
    m = compute_metrics(classify(np.array([100, 0, 0]), np.zeros(3, int), np.zeros(3, int)))
    assert m.producers_accuracy == 0 and m.users_accuracy is None and m.commission_error is None
    assert m.f1 == 0 and m.lag_days.n == 0 and m.lag_days.median is None
    assert m.initial_delay_days is None
    assert [p.lag for p in m.accuracy_vs_lag_days] == [0]


def test_no_reference_disturbances() -> None:
    m = compute_metrics(classify(np.zeros(3, int), np.array([3, 0, 0]), np.array([50, 0, 0])))
    assert m.producers_accuracy is None and m.omission_error is None
    assert m.users_accuracy == 0 and m.f1 == 0 and m.false_alarm_rate == pytest.approx(1 / 3)
    nothing = compute_metrics(classify(np.zeros(2, int), np.zeros(2, int), np.zeros(2, int)))
    assert nothing.f1 is None and nothing.users_accuracy is None and nothing.false_alarm_rate == 0


def test_observation_lags_and_initial_delay() -> None:
    outcome = classify(np.array([100, 100, 100, 100]), np.array([3, 3, 3, 0]), np.array([100, 110, 130, 0]))
    m = compute_metrics(outcome, np.array([0, 2, 5]))
    assert (m.lag_observations.n, m.lag_observations.median, m.lag_observations.max) == (3, 2, 5)
    pa = [p.producers_accuracy for p in m.accuracy_vs_lag_observations]
    assert len(pa) == 11 and pa[:2] == [0.25, 0.25] and pa[2:5] == [0.5] * 3 and pa[5:] == [0.75] * 6
    assert m.initial_delay_observations == 0
    with pytest.raises(ValueError):
        compute_metrics(outcome, np.array([1]))
    # nrt-validate's initial delay: PA must exceed 2 %, equal is not enough.
    curve = accuracy_curve(np.array([5, 5, 7]), positives=100, alerts=3, max_lag=7)
    assert curve[5].producers_accuracy == 0.02 and initial_delay(curve) == 7
    assert initial_delay(accuracy_curve(np.array([5]), positives=100, alerts=1, max_lag=5)) is None


def test_count_between_counts_clear_observations_after_the_reference() -> None:
    days = np.array([10, 12, 15, 20])
    clear = np.array([[True, True, True], [True, False, True], [True, True, True], [True, True, True]])
    ref, det = np.array([11, 11, 15]), np.array([15, 15, 10])
    # pixel 0: 12 and 15; pixel 1: 12 is cloudy, so 15 only; pixel 2 detected 5 days early: -(12 and 15).
    assert count_between(days, clear, ref, det).tolist() == [2, 1, -2]
    # On the reference day itself: not strictly after, so 0.
    assert count_between(days, clear[:, :1], np.array([12]), np.array([12])).tolist() == [0]


# -- reference loaders on a tiny synthetic grid --------------------------------------------------------------

GRID = AreaGrid(crs=CRS.from_epsg(32633), transform=Affine(20, 0, 500000, 0, -20, 5400000), width=8, height=6)
TO_LONLAT = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
DAY = (dt.date(2023, 5, 1) - dt.date(1970, 1, 1)).days


def _xy(row: float, col: float) -> tuple[float, float]:
    """UTM coordinates of a (fractional) pixel position of GRID."""
    return GRID.transform * (col, row)


def _lonlat_box(row0: int, col0: int, row1: int, col1: int) -> list[list[list[float]]]:
    """A GeoJSON polygon ring around pixel rows row0..row1-1 and cols col0..col1-1."""
    corners = [(row0, col0), (row0, col1), (row1, col1), (row1, col0), (row0, col0)]
    return [[list(TO_LONLAT.transform(*_xy(r, c))) for r, c in corners]]


def _point(row: int, col: int) -> list[float]:
    return list(TO_LONLAT.transform(*_xy(row + 0.5, col + 0.5)))


def _feature(kind: str, coords: object, **props: object) -> dict:
    return {"type": "Feature", "geometry": {"type": kind, "coordinates": coords}, "properties": props}


def _write(path: Path, features: list[dict], **extra: object) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features, **extra}))
    return path


def _write_raster(path: Path, data: np.ndarray, *, nodata: float | None = None, crs: str | None = "EPSG:32633") -> Path:
    profile = {
        "driver": "GTiff",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": data.dtype.name,
        "transform": GRID.transform,
        "nodata": nodata,
    }
    if crs:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return path


def test_raster_reference(tmp_path: Path) -> None:
    days = np.zeros((6, 8), dtype=np.uint16)
    days[1:3, 2:4] = DAY
    days[5, 7] = 65535
    # nodata 65535 hides its pixel; 0 stays "undisturbed" even though it is not declared.
    ref = load_reference(_write_raster(tmp_path / "r.tif", days, nodata=65535), GRID)
    assert ref.kind == "raster" and ref.labelled.sum() == 47 and not ref.labelled[5, 7]
    assert (ref.day == np.where(days == DAY, DAY, 0)).all()
    assert ref.describe()["disturbed_pixels"] == 4 and ref.describe()["first_date"] == "2023-05-01"
    # A declared nodata of 0 does not hide the undisturbed pixels: 0 means undisturbed in this format.
    ref0 = load_reference(_write_raster(tmp_path / "r0.tif", days.clip(0, DAY), nodata=0), GRID)
    assert ref0.labelled.all()
    with pytest.raises(ReferenceDataError, match="expected integer days"):
        load_reference(_write_raster(tmp_path / "f.tif", days.astype(np.float32)), GRID)
    with pytest.raises(ReferenceDataError, match="no CRS"):
        load_reference(_write_raster(tmp_path / "n.tif", days, crs=None), GRID)
    with pytest.raises(ReferenceDataError, match="not found"):
        load_reference(tmp_path / "missing.tif", GRID)
    (tmp_path / "junk.tif").write_text("not a raster")
    with pytest.raises(ReferenceDataError, match="cannot read reference"):
        load_reference(tmp_path / "junk.tif", GRID)


def test_polygon_reference_with_an_undisturbed_area(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "polygons.geojson",
        [
            _feature("Polygon", _lonlat_box(1, 1, 3, 3), date="2023-06-01"),
            _feature("Polygon", _lonlat_box(2, 2, 4, 4), date="2023-05-01T09:30:00Z"),  # overlaps: earliest wins
            _feature("Polygon", _lonlat_box(3, 5, 5, 7), disturbance=False, note="drought"),
        ],
    )
    ref = load_reference(path, GRID)
    assert ref.kind == "polygons"
    june = DAY + 31
    expected = np.zeros((6, 8), dtype=np.int32)
    expected[1:3, 1:3] = june
    expected[2:4, 2:4] = DAY
    assert (ref.day == expected).all()
    assert ref.labelled.all()  # wall to wall: outside the polygons is undisturbed
    assert ref.known_undisturbed.sum() == 4 and ref.known_undisturbed[3:5, 5:7].all()
    described = ref.describe()
    assert described["disturbed_features"] == 2 and described["undisturbed_features"] == 1
    assert described["disturbed_pixels"] == 7


def test_polygon_errors(tmp_path: Path) -> None:
    box = _lonlat_box(1, 1, 3, 3)
    with pytest.raises(ReferenceDataError, match=r"feature 1 \(id cut-2\) has no 'date'"):
        load_reference(
            _write(
                tmp_path / "a.geojson",
                [_feature("Polygon", box, date="2023-01-01"), _feature("Polygon", box, id="cut-2")],
            ),
            GRID,
        )
    utm_crs = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}}
    with pytest.raises(ReferenceDataError, match="must be EPSG:4326"):
        load_reference(_write(tmp_path / "b.geojson", [_feature("Polygon", box, date="2023-01-01")], crs=utm_crs), GRID)
    utm_box = [[list(_xy(r, c)) for r, c in [(1, 1), (1, 3), (3, 3), (1, 1)]]]
    with pytest.raises(ReferenceDataError, match="not longitude/latitude"):
        load_reference(_write(tmp_path / "c.geojson", [_feature("Polygon", utm_box, date="2023-01-01")]), GRID)
    with pytest.raises(ReferenceDataError, match="mixes points and polygons"):
        features = [_feature("Polygon", box, date="2023-01-01"), _feature("Point", _point(0, 0), date=None)]
        load_reference(_write(tmp_path / "d.geojson", features), GRID)
    with pytest.raises(ReferenceDataError, match="is not an ISO date"):
        load_reference(_write(tmp_path / "e.geojson", [_feature("Polygon", box, date="May 2023")]), GRID)
    with pytest.raises(ReferenceDataError, match="is a LineString"):
        load_reference(_write(tmp_path / "g.geojson", [_feature("LineString", box[0], date="2023-01-01")]), GRID)
    with pytest.raises(ReferenceDataError, match="bad coordinates"):
        load_reference(_write(tmp_path / "h.geojson", [_feature("Polygon", [["a", "b"]], date="2023-01-01")]), GRID)
    (tmp_path / "f.geojson").write_text("{not json")
    with pytest.raises(ReferenceDataError, match="not valid GeoJSON"):
        load_reference(tmp_path / "f.geojson", GRID)


def test_point_reference(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "points.geojson",
        [
            _feature("Point", _point(1, 1), date="2023-05-01"),
            _feature("Point", _point(1, 1), date="2023-05-11"),  # same pixel: the earliest date stays
            _feature("Point", _point(2, 5), date=None),
            _feature("Point", _point(4, 6), disturbance=False, date="2023-05-01"),
            _feature("Point", _point(3, 3), date="2023-05-01"),
            _feature("Point", _point(3, 3), disturbance=False),  # contradicts the one above: ambiguous
            _feature("Point", list(TO_LONLAT.transform(*_xy(-3, 2))), date=None),  # north of the area
        ],
    )
    ref = load_reference(path, GRID)
    assert ref.kind == "points"
    assert sorted(zip(*np.nonzero(ref.labelled), strict=True)) == [(1, 1), (2, 5), (4, 6)]
    assert ref.day[1, 1] == DAY and ref.day[2, 5] == 0 and ref.day[4, 6] == 0
    assert ref.known_undisturbed[2, 5] and ref.known_undisturbed[4, 6]
    described = ref.describe()
    assert described["points"] == 7 and described["points_outside_area"] == 1 and described["ambiguous_pixels"] == 1
    with pytest.raises(ReferenceDataError, match="lies in the monitored area"):
        far = list(TO_LONLAT.transform(*_xy(-100, -100)))
        load_reference(_write(tmp_path / "far.geojson", [_feature("Point", far, date=None)]), GRID)


# -- evaluate on the full demo run ---------------------------------------------------------------------------


def _truth(run: DemoRun) -> Path:
    return run.cfg.source.catalog.parent / "ground_truth.tif"


def _config(run: DemoRun) -> str:
    return str(run.cfg.output.dir.parent / "nrt-alerts.toml")


def _check_report(out: Path) -> dict:
    """The four files exist and parse; return the JSON."""
    report = json.loads((out / "evaluation.json").read_text())
    markdown = (out / "evaluation.md").read_text()
    assert "| Producer's accuracy (recall) |" in markdown and "| days to confirmation |" in markdown
    parser = HTMLParser()
    parser.feed((out / "evaluation.html").read_text())
    parser.close()
    assert 'src="data:image/png;base64,' in (out / "evaluation.html").read_text()
    image = imread(out / "accuracy_vs_lag.png")
    assert image.ndim == 3 and image.shape[0] > 100
    return report


def test_evaluate_demo_run(static_run: DemoRun, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert main(["evaluate", "-c", _config(static_run), "--reference", str(_truth(static_run)), "--out", str(out)]) == 0
    report = _check_report(out)
    latest = read_index(CatalogLayout(static_run.cfg.output.stac_dir)).latest
    assert report["publication"]["version"] == latest.id
    assert report["reference"]["kind"] == "raster" and report["counts"]["disturbed"] > 200
    assert report["producers_accuracy"] >= 0.95 and report["users_accuracy"] >= 0.95 and report["f1"] >= 0.95
    assert 0 <= report["lag_days"]["median"] <= 20
    assert 0 <= report["lag_observations"]["median"] <= 4
    assert report["lag_observations"]["n"] == report["counts"]["true_positives"]
    # IQR confirms on the third anomalous observation: confirmation lags the first detection by 2+ valid obs.
    confirm = report["confirmation_lag_observations"]
    assert confirm["n"] == report["counts"]["true_positives"]
    assert report["lag_observations"]["median"] + 2 <= confirm["median"] <= 5
    assert report["confirmation_lag_days"]["median"] >= report["lag_days"]["median"]
    assert report["config"]["monitor"]["algorithm"] == "iqr"
    # An older version: disturbances after its data time count as undisturbed.
    first = read_index(CatalogLayout(static_run.cfg.output.stac_dir)).publications[1]
    old = tmp_path / "old"
    assert main(["evaluate", "-c", _config(static_run), "--reference", str(_truth(static_run)),
                 "--version", first.id, "--out", str(old)]) == 0  # fmt: skip
    old_report = json.loads((old / "evaluation.json").read_text())
    assert old_report["publication"]["version"] == first.id
    assert old_report["scope"]["disturbed_after_data_counted_undisturbed"] > 0


def test_evaluate_demo_with_polygons_and_points(static_run: DemoRun, tmp_path: Path) -> None:
    archive = static_run.cfg.source.catalog.parent
    collection = json.loads((archive / "ground_truth.geojson").read_text())
    with rasterio.open(archive / "ground_truth.tif") as src:
        days, transform, crs = src.read(1), src.transform, src.crs
    with rasterio.open(archive / "forest_mask.tif") as src:
        forest = src.read(1) == 1
    to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    # A "drought" area marked undisturbed: a block of stable forest.
    rows, cols = np.nonzero(forest & (days == 0))
    r, c = rows[len(rows) // 2], cols[len(cols) // 2]
    ring = [to_lonlat.transform(*(transform * (c + dc, r + dr))) for dr, dc in [(0, 0), (0, 3), (3, 3), (3, 0), (0, 0)]]
    collection["features"].append(_feature("Polygon", [[list(p) for p in ring]], disturbance=False))
    polygons = _write(tmp_path / "polygons.geojson", collection["features"])
    out = tmp_path / "polygons"
    assert main(["evaluate", "-c", _config(static_run), "--reference", str(polygons), "--out", str(out)]) == 0
    report = json.loads((out / "evaluation.json").read_text())
    assert report["reference"]["kind"] == "polygons" and report["known_undisturbed"]["pixels"] > 0
    assert report["producers_accuracy"] >= 0.95 and report["users_accuracy"] >= 0.95
    # Points: every 5th disturbed pixel and as many stable forest pixels.
    disturbed = np.argwhere(days > 0)[::5]
    stable = np.argwhere(forest & (days == 0))[:: max(1, int((forest & (days == 0)).sum() // len(disturbed)))]

    def centre(r: int, c: int) -> list[float]:
        return list(to_lonlat.transform(*(transform * (c + 0.5, r + 0.5))))

    def iso(day: int) -> str:
        return (dt.date(1970, 1, 1) + dt.timedelta(days=int(day))).isoformat()

    points = [_feature("Point", centre(r, c), date=iso(days[r, c])) for r, c in disturbed]
    points += [_feature("Point", centre(r, c), date=None) for r, c in stable]
    out = tmp_path / "points"
    path = _write(tmp_path / "points.geojson", points)
    assert main(["evaluate", "-c", _config(static_run), "--reference", str(path), "--out", str(out)]) == 0
    report = json.loads((out / "evaluation.json").read_text())
    assert report["reference"]["kind"] == "points"
    assert report["counts"]["disturbed"] == len(disturbed)
    assert report["counts"]["evaluated"] == len(disturbed) + len(stable)
    assert report["producers_accuracy"] >= 0.95 and report["users_accuracy"] >= 0.95


def test_evaluate_console_script(static_run: DemoRun, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    truth = str(_truth(static_run))
    done = subprocess.run(
        ["nrt-alerts", "evaluate", "-c", _config(static_run), "--reference", truth, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    summary = [line for line in done.stderr.splitlines() if "nrt_alerts: evaluation of" in line]
    assert len(summary) == 1
    assert re.search(r"PA \d\.\d{3}, UA \d\.\d{3}, F1 \d\.\d{3}, median lag \d+(\.\d+)? days", summary[0])
    assert (out / "evaluation.json").exists()
    bad = subprocess.run(
        ["nrt-alerts", "evaluate", "-c", _config(static_run), "--reference", str(tmp_path / "nope.tif")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode != 0
    errors = [line for line in bad.stderr.splitlines() if line.startswith("nrt-alerts: error:")]
    assert len(errors) == 1 and "nope.tif" in errors[0]
    assert "Traceback" not in bad.stderr


def test_evaluate_errors(static_run: DemoRun, tmp_path: Path) -> None:
    from scheduler.evaluation import evaluate

    with pytest.raises(EvaluationError, match="no publication 'nope'"):
        evaluate(static_run.cfg, _truth(static_run), version="nope")
    empty = static_run.cfg.model_copy(
        update={"output": static_run.cfg.output.model_copy(update={"dir": tmp_path / "empty"})}
    )
    with pytest.raises(EvaluationError, match="nothing has been published"):
        evaluate(empty, _truth(static_run))
    with pytest.raises(EvaluationError, match="tolerance"):
        evaluate(static_run.cfg, _truth(static_run), tolerance_days=-1)


# -- sweep ---------------------------------------------------------------------------------------------------

GRID_TOML = """\
[base]
monitor = { algorithm = "iqr", harmonic_order = 3, boundary = 3 }

[[run]]
name = "iqr-1.5"
monitor = { algorithm = "iqr", sensitivity = 1.5 }

[[run]]
name = "iqr-2.5"
monitor = { algorithm = "iqr", sensitivity = 2.5 }
"""


def test_sweep_ranks_by_f1(tmp_path: Path, demo_archive) -> None:
    cfg = make_workspace(tmp_path / "ws", demo_archive)
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID_TOML)
    out = tmp_path / "sweep"
    truth = demo_archive.ground_truth_raster_path
    args = ["sweep", "-c", str(tmp_path / "ws" / "nrt-alerts.toml"), "--reference", str(truth), "--grid", str(grid)]
    assert main([*args, "--out", str(out), "--until", "2024-06-30"]) == 0
    result = json.loads((out / "sweep.json").read_text())
    runs = result["runs"]
    assert {r["name"] for r in runs} == {"iqr-1.5", "iqr-2.5"}
    assert [r["rank"] for r in runs] == [1, 2]
    f1 = [r["f1"] for r in runs]
    assert f1 == sorted(f1, reverse=True) and all(v is not None for v in f1)
    assert runs[0]["name"] == "iqr-2.5", "the demo's chosen sensitivity should win"
    assert {r["monitor"]["sensitivity"] for r in runs} == {1.5, 2.5}
    for run in runs:
        assert (Path(run["output_dir"]) / "evaluation" / "evaluation.json").exists()
        assert Path(run["output_dir"]).parent == out
    assert "| 1 | iqr-2.5 |" in (out / "sweep.md").read_text()
    # The workspace's own outputs are untouched: each run writes under --out.
    assert not cfg.output.stac_dir.exists()


def test_sweep_grid_errors_name_the_run(tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text('[[run]]\nname = "ok"\nmonitor = { algorithm = "iqr" }\n'
                    '[[run]]\nname = "bad"\nmonitor = { algorithm = "iqr", sensitivity = -1 }\n')  # fmt: skip
    with pytest.raises(SweepGridError, match=r"run 'bad': invalid monitor: .*sensitivity"):
        load_grid(grid)
    grid.write_text('[[run]]\nname = "x"\nmonitor = { algorithm = "iqr", sensitivty = 2 }\n')
    with pytest.raises(SweepGridError, match=r"run 'x': invalid monitor: .*unknown key"):
        load_grid(grid)
    grid.write_text('[[run]]\nname = "a/b"\nmonitor = { algorithm = "iqr" }\n')
    with pytest.raises(SweepGridError, match="needs a name"):
        load_grid(grid)
    grid.write_text("[[run]]\nname = 'a'\n")
    with pytest.raises(SweepGridError, match="monitor table"):
        load_grid(grid)
    with pytest.raises(SweepGridError, match="not found"):
        load_grid(tmp_path / "missing.toml")
    runs = load_grid(_write_text(tmp_path / "g.toml", GRID_TOML))
    assert [r.name for r in runs] == ["iqr-1.5", "iqr-2.5"] and runs[0].monitor.sensitivity == 1.5


def _write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_rank_breaks_ties_by_median_lag() -> None:
    def score(name: str, f1: float | None, lag: float | None, error: str | None = None) -> RunScore:
        return RunScore(name, {}, {}, "", f1=f1, median_lag_days=lag, error=error)

    ranked = rank(
        [score("slow", 0.9, 10), score("failed", None, None, "boom"), score("fast", 0.9, 4), score("best", 0.95, 30)]
    )
    assert [s.name for s in ranked] == ["best", "fast", "slow", "failed"]
    assert [s.rank for s in ranked] == [1, 2, 3, None]


# -- other people's references: the disturbance flag, warnings, totals -------------------------------------


def test_is_disturbance_and_a_named_flag_property(tmp_path: Path) -> None:
    features = [
        _feature("Polygon", _lonlat_box(1, 1, 3, 3), date="2023-05-01", is_disturbance=True),
        # A dated drought polygon: undisturbed because its flag says so, not because it lacks a date.
        _feature("Polygon", _lonlat_box(3, 5, 5, 7), date="2023-07-01", is_disturbance=False),
    ]
    ref = load_reference(_write(tmp_path / "is.geojson", features), GRID)
    assert ref.describe()["disturbed_pixels"] == 4 and ref.known_undisturbed.sum() == 4
    assert ref.summary["disturbance_property"] == "is_disturbance" and ref.summary["warnings"] == []
    # Someone else's names and values: --disturbance-property label with yes/no, 1/0.
    features = [
        _feature("Polygon", _lonlat_box(1, 1, 3, 3), date="2023-05-01", label="yes"),
        _feature("Polygon", _lonlat_box(3, 5, 5, 7), date="2023-07-01", label="No"),
        _feature("Polygon", _lonlat_box(0, 0, 1, 1), date="2023-07-01", label=0),
    ]
    ref = load_reference(_write(tmp_path / "label.geojson", features), GRID, disturbance_property="label")
    assert ref.describe()["disturbed_pixels"] == 4 and ref.known_undisturbed.sum() == 5
    assert ref.day[1, 1] == DAY and ref.day[3, 5] == 0
    with pytest.raises(ReferenceDataError, match=r"feature 0: 'label' must be true or false .* not 'maybe'"):
        bad = [_feature("Polygon", _lonlat_box(1, 1, 3, 3), date="2023-05-01", label="maybe")]
        load_reference(_write(tmp_path / "bad.geojson", bad), GRID, disturbance_property="label")


def test_unknown_and_missing_properties_are_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    features = [
        _feature("Polygon", _lonlat_box(1, 1, 3, 3), date="2023-05-01", disturbance=True, cls="clear-cut"),
        _feature("Polygon", _lonlat_box(3, 5, 5, 7), date="2023-07-01", cls="drought", confidence=0.7),
    ]
    with caplog.at_level("WARNING", logger="scheduler.evaluation.reference"):
        ref = load_reference(_write(tmp_path / "w.geojson", features), GRID)
    warnings = ref.summary["warnings"]
    assert len(warnings) == 2
    assert "1 of 2 features have no 'disturbance' property" in warnings[0]
    assert "properties not read: cls, confidence" in warnings[1] and "--disturbance-property" in warnings[1]
    assert [r.getMessage() for r in caplog.records] == warnings
    # The flag named on the command line is in no feature: said so, and every dated feature is a disturbance.
    ref = load_reference(_write(tmp_path / "w.geojson", features), GRID, disturbance_property="is_disturbed")
    assert any("no feature has the property 'is_disturbed'" in w for w in ref.summary["warnings"])
    assert ref.describe()["disturbed_pixels"] == 8
    # The demo's own ground truth carries descriptive properties only: no warning.
    demo_like = [_feature("Polygon", _lonlat_box(1, 1, 3, 3))]
    demo_like[0]["properties"] = {"id": "clearcut-001", "kind": "clear-cut", "date": "2023-05-01", "end": None,
                                  "disturbance": True, "area_ha": 0.16, "n_pixels": 4, "crs": "EPSG:32633"}  # fmt: skip
    assert load_reference(_write(tmp_path / "demo.geojson", demo_like), GRID).summary["warnings"] == []


def _header_numbers(markdown: str) -> dict[str, int]:
    """The totals the report's first paragraphs state."""
    patterns = {
        "reference_disturbed": r": (\d+) disturbed pixels dated",
        "evaluated_disturbed": r"of which (\d+) are evaluated as disturbed",
        "not_monitored": r"; (\d+) are not monitored",
        "before": r", (\d+) were disturbed before",
        "after": r"and (\d+) after the data time",
        "evaluated": r"Evaluated: (\d+) pixels",
        "undisturbed": r", (\d+) disturbed and (\d+) undisturbed",
    }
    found = {}
    for name, pattern in patterns.items():
        match = re.search(pattern, markdown)
        assert match, name
        found[name] = int(match.groups()[-1])
    return found


@pytest.mark.slow
def test_report_totals_agree_with_its_tables(static_run: DemoRun, tmp_path: Path) -> None:
    archive = static_run.cfg.source.catalog.parent
    collection = json.loads((archive / "ground_truth.geojson").read_text())
    # Someone else's file: the flag is called is_disturbance, plus a property evaluate does not read.
    for feature in collection["features"]:
        props = feature["properties"]
        props["is_disturbance"] = props.pop("disturbance")
        props["source"] = "field survey"
    path = _write(tmp_path / "truth.geojson", collection["features"])
    first = read_index(CatalogLayout(static_run.cfg.output.stac_dir)).publications[1]
    for version, out in ((None, tmp_path / "latest"), (first.id, tmp_path / "first")):
        argv = ["evaluate", "-c", _config(static_run), "--reference", str(path), "--out", str(out)]
        assert main(argv + (["--version", version] if version else [])) == 0
        report = json.loads((out / "evaluation.json").read_text())
        markdown = (out / "evaluation.md").read_text()
        header = _header_numbers(markdown)
        counts = report["counts"]
        table = re.search(r"\| evaluated \| disturbed \|.*\n\|.*\n\| (\d+) \| (\d+) \| (\d+) \|", markdown)
        assert (header["evaluated"], header["evaluated_disturbed"], header["undisturbed"]) == tuple(
            int(v) for v in table.groups()
        )
        assert header["evaluated_disturbed"] == counts["disturbed"] > 0
        assert header["reference_disturbed"] == report["reference"]["disturbed_pixels"]
        # Every disturbed pixel of the reference is in the table or left out for a stated reason.
        assert header["reference_disturbed"] == (
            header["evaluated_disturbed"] + header["not_monitored"] + header["before"] + header["after"]
        )
        assert report["reference"]["disturbance_property"] == "is_disturbance"
        assert "Warning: " in markdown and "properties not read: source" in markdown
    # The first publication predates most events: they are the stated "after the data time" pixels.
    assert header["after"] > 0
    # Drought and haze polygons are flagged is_disturbance: false, so they are not counted as disturbed.
    with rasterio.open(archive / "ground_truth.tif") as src:
        assert report["reference"]["disturbed_pixels"] == int((src.read(1) > 0).sum())
