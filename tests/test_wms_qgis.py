"""QGIS 3.22 (python3-qgis, headless) against the WMS: Identify -> Feature, and the temporal controller's frames.

QGIS runs under Debian's /usr/bin/python3 in a subprocess (tests/qgis_wms_probe.py); the pictures it renders are
compared pixel for pixel with what the server draws for the publication each frame should show.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pyproj
import pytest
import rasterio
from PIL import Image

from catalog.encoding import CONFIRMED_CODES, date_from_days
from catalog.store import CatalogLayout, Publication, PublicationIndex, read_index

from conftest import DemoRun

QGIS_PYTHON = "/usr/bin/python3"
PROBE = Path(__file__).with_name("qgis_wms_probe.py")
WIDTH, HEIGHT = 256, 128


def qgis_missing() -> bool:
    if not Path(QGIS_PYTHON).exists():
        return True
    return subprocess.run([QGIS_PYTHON, "-c", "import qgis.core"], capture_output=True, check=False).returncode != 0


pytestmark = [
    pytest.mark.qgis,
    pytest.mark.slow,
    pytest.mark.skipif(
        sys.platform != "linux" or qgis_missing(), reason="/usr/bin/python3 cannot import qgis (python3-qgis)"
    ),
]


def probe(request: dict) -> dict:
    """Run one QGIS request in a subprocess and return its JSON answer."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": "/tmp"}
    env.pop("PYTHONPATH", None)  # Debian's python must not see the project's virtualenv packages
    done = subprocess.run(
        [QGIS_PYTHON, str(PROBE), json.dumps(request)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert "error" not in answer, answer
    return answer


@pytest.fixture(scope="module")
def index(static_run: DemoRun) -> PublicationIndex:
    return read_index(CatalogLayout(static_run.cfg.output.stac_dir))


def alpha(png: bytes | Path) -> np.ndarray:
    source = io.BytesIO(png) if isinstance(png, bytes) else png
    return np.asarray(Image.open(source).convert("RGBA"))[..., 3] > 0


def server_map(server: str, extent: list[float], time: str) -> np.ndarray:
    """What the server draws for the box QGIS drew, at QGIS's size, for a TIME."""
    params = {
        "SERVICE": "WMS",
        "VERSION": "1.3.0",
        "REQUEST": "GetMap",
        "LAYERS": "alerts",
        "STYLES": "alerts-all",
        "CRS": "EPSG:3857",
        "BBOX": ",".join(repr(v) for v in extent),
        "WIDTH": str(WIDTH),
        "HEIGHT": str(HEIGHT),
        "FORMAT": "image/png",
        "TRANSPARENT": "TRUE",
        "TIME": time,
    }
    response = httpx.get(f"{server}/wms", params=params, timeout=60)
    assert response.status_code == 200, response.text
    return alpha(response.content)


def animate(server: str, folder: Path, handling: str, start: str, end: str, frame_days: int) -> dict:
    """QGIS's temporal controller from start to end (midnight UTC) in frames of some days, one PNG per frame."""
    request = {"url": f"{server}/wms", "action": "frames", "interval_handling": handling, "frame_days": frame_days}
    request.update(start=f"{start}T00:00:00Z", end=f"{end}T00:00:00Z", width=WIDTH, height=HEIGHT, folder=str(folder))
    return probe(request)


def parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def nearest(index: PublicationIndex, instant: dt.datetime) -> Publication:
    return min(index.publications, key=lambda p: abs(p.datetime - instant))


def test_qgis_identify_feature_reads_the_gml_answer(
    static_server: str, static_run: DemoRun, index: PublicationIndex
) -> None:
    layout = CatalogLayout(static_run.cfg.output.stac_dir)
    with rasterio.open(layout.collection_dir / index.latest.mosaics["status"]) as src:
        status, transform, crs = src.read(1), src.transform, src.crs
    with rasterio.open(layout.collection_dir / index.latest.mosaics["date"]) as src:
        days = src.read(1)
    rows, cols = np.nonzero(np.isin(status, CONFIRMED_CODES))
    row, col = int(rows[len(rows) // 2]), int(cols[len(cols) // 2])
    x, y = pyproj.Transformer.from_crs(crs.to_wkt(), "EPSG:3857", always_xy=True).transform(
        *(transform * (col + 0.5, row + 0.5))
    )
    answer = probe(
        {"url": f"{static_server}/wms", "action": "identify", "point": [x, y], "width": WIDTH, "height": HEIGHT}
    )
    assert answer["valid"], answer
    (feature,) = answer["features"]
    attributes = feature["attributes"]
    assert attributes["status_name"].startswith("confirmed") and int(attributes["status"]) == int(status[row, col])
    assert attributes["detection_date"] == date_from_days(int(days[row, col])).isoformat()
    assert attributes["version"] == index.latest.id and float(attributes["magnitude"]) < 0
    assert feature["wkt"].startswith("Point")


def test_qgis_temporal_controller_steps_through_the_publications(
    static_server: str, index: PublicationIndex, tmp_path: Path
) -> None:
    # QGIS 3.22 sends each frame's start (MatchExactUsingStartOfRange): the frame shows the nearest publication.
    answer = animate(static_server, tmp_path, "MatchExactUsingStartOfRange", "2023-12-07", "2024-07-20", 20)
    assert answer["temporal"]
    shown = []
    for frame in answer["frames"]:
        publication = nearest(index, parse(frame["begin"]))
        expected = server_map(static_server, answer["extent"], publication.id)
        assert (alpha(Path(frame["png"])) == expected).all(), frame
        shown.append(publication.id)
    # Every updated publication appears, in order: the frame of 2023-12-27 shows that day's publication.
    assert list(dict.fromkeys(shown)) == [p.id for p in index.publications[1:]]
    counts = [int(alpha(Path(frame["png"])).sum()) for frame in answer["frames"]]
    assert counts[0] > 0 and counts == sorted(counts)


def test_qgis_whole_range_frames_show_the_alerts_detected_in_each(
    static_server: str, index: PublicationIndex, tmp_path: Path
) -> None:
    answer = animate(static_server, tmp_path, "MatchUsingWholeRange", "2024-01-01", "2024-07-01", 30)
    pictures = []
    for frame in answer["frames"]:
        picture = alpha(Path(frame["png"]))
        assert (picture == server_map(static_server, answer["extent"], f"{frame['begin']}/{frame['end']}")).all()
        pictures.append(picture)
    # Frames share their ends, yet no detection day shows in two of them.
    assert np.sum(pictures, axis=0).max() == 1 and sum(int(p.sum()) for p in pictures) > 0
