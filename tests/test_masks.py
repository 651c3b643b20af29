"""Masks as real data has them (class bands, bit fields), and a history too short to fit: one line, no traceback."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from scheduler.config import Config, load_config
from scheduler.demo import DemoArchive
from scheduler.errors import ConfigError, HistoryTooShortError
from scheduler.loading import compute_index, masked_index
from scheduler.pipeline import Pipeline
from server.cli import main

from conftest import make_workspace

CLEAR_QA = (1 << 6) | (1 << 8) | (1 << 10) | (1 << 12) | (1 << 14)  # 21824: Landsat's usual clear land value
LANDSAT_REJECT = ["fill", "dilated_cloud", "cirrus", "cloud", "shadow", "snow"]


def config(**source: object) -> Config:
    """A minimal deployment whose source reads red/nir and the given mask settings."""
    return Config(
        area={"crs": "EPSG:32633", "resolution": 30, "bounds": [0, 0, 480, 480], "tile_size": 16},
        source={"kind": "static", "catalog": "catalog.json", "collection": "c", **source},
        history={"start": dt.date(2021, 1, 1), "end": dt.date(2021, 12, 31)},
    )


def loaded(mask: np.ndarray, mask_key: str, red_dn: int = 1000, nir_dn: int = 3000) -> xr.Dataset:
    """One acquisition of 1 x N pixels: red red_dn + 100 i, nir nir_dn + 100 i (raw DN), and the mask band."""
    n = mask.size
    dims = ("time", "y", "x")
    red = (red_dn + 100 * np.arange(n, dtype=np.uint16)).reshape(1, 1, n)
    nir = (nir_dn + 100 * np.arange(n, dtype=np.uint16)).reshape(1, 1, n)
    coords = {"time": [np.datetime64("2024-01-01")], "y": [0.0], "x": np.arange(n, dtype=float)}
    return xr.Dataset(
        {"red": (dims, red), "nir08": (dims, nir), mask_key: (dims, mask.reshape(1, 1, n))}, coords=coords
    )


def expected_ndvi(ds: xr.Dataset, scale: float, offset: float) -> np.ndarray:
    bands = {
        role: (ds[key].astype(np.float32) * np.float32(scale) + np.float32(offset))
        for role, key in (("red", "red"), ("nir", "nir08"))
    }
    return compute_index("ndvi", bands).values.reshape(-1)


def test_landsat_qa_pixel_bits_reject_fill_clouds_shadow_and_snow_keep_clear_and_water() -> None:
    qa = np.array(
        [
            CLEAR_QA,
            22280,  # cloud (bit 3), high confidence: a real Landsat value
            1,  # fill
            CLEAR_QA | 1 << 1,  # dilated cloud
            CLEAR_QA | 1 << 2,  # cirrus
            CLEAR_QA | 1 << 4,  # cloud shadow
            CLEAR_QA | 1 << 5,  # snow
            (1 << 6) | (1 << 7) | (1 << 8),  # clear water: not rejected by this list
        ],
        dtype=np.uint16,
    )
    cfg = config(
        bands={"red": "red", "nir": "nir08"},
        mask_band="qa_pixel",
        mask_bits_invalid=LANDSAT_REJECT,
        scale=0.0000275,
        offset=-0.2,
    )
    ds = loaded(qa, "qa_pixel", red_dn=8000, nir_dn=20000)
    index, _ = masked_index(ds, cfg)
    values = index.values.reshape(-1)
    assert np.isfinite(values).tolist() == [True, False, False, False, False, False, False, True]
    reference = expected_ndvi(ds, 0.0000275, -0.2)
    np.testing.assert_array_equal(values[[0, 7]], reference[[0, 7]])
    assert values[0] == pytest.approx((0.35 - 0.02) / (0.35 + 0.02), rel=1e-5)  # DN 20000 and 8000


def test_hls_fmask_bits_by_name_and_number() -> None:
    fmask = np.array([0, 1 << 1, 1 << 3, 1 << 2, 1 << 4, 1 << 5, (1 << 6) | (1 << 7), 1 << 0], dtype=np.uint8)
    cfg = config(
        bands={"red": "red", "nir": "nir08"},
        mask_band="Fmask",
        mask_bit_layout="hls-fmask",
        mask_bits_invalid=["cloud", "adjacent", "shadow", "snow", 0],  # 0: cirrus by number
    )
    index, _ = masked_index(loaded(fmask, "Fmask"), cfg)
    # clear, cloud, shadow, adjacent, snow, water, high aerosol, cirrus
    assert np.isfinite(index.values.reshape(-1)).tolist() == [True, False, False, False, False, True, True, False]


def test_scl_classes_still_select_clear_pixels() -> None:
    scl = np.array([4, 5, 6, 7, 8, 9, 3, 0, 10, 11], dtype=np.uint8)
    index, _ = masked_index(loaded(scl, "scl"), config(bands={"red": "red", "nir": "nir08"}, mask_band="scl"))
    assert np.isfinite(index.values.reshape(-1)).tolist() == [True] * 4 + [False] * 6


def test_a_bit_field_of_a_signed_type_is_read_as_bits() -> None:
    qa = np.array([CLEAR_QA, CLEAR_QA | 1 << 3, 1], dtype=np.int32)
    cfg = config(bands={"red": "red", "nir": "nir08"}, mask_band="qa_pixel", mask_bits_invalid=LANDSAT_REJECT)
    index, _ = masked_index(loaded(qa, "qa_pixel"), cfg)
    assert np.isfinite(index.values.reshape(-1)).tolist() == [True, False, False]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            'mask_bits_invalid = ["cloud", "clouds"]',
            "source: unknown bit 'clouds' of landsat-qa-pixel (known: fill, dilated_cloud, cirrus, cloud, shadow, "
            "snow, clear, water, or a bit number 0-15)",
        ),
        ('mask_bits_invalid = ["cloud"]\nmask_valid = [4]', "source: mask_valid (classes) and mask_bits_invalid"),
        ("mask_bits_invalid = [16]", "source: bit 16 is outside 0-15"),
    ],
)
def test_a_wrong_bit_is_one_config_line(tmp_path: Path, lines: str, message: str) -> None:
    path = tmp_path / "nrt-alerts.toml"
    path.write_text(
        '[area]\ncrs = "EPSG:32633"\nresolution = 30\nbounds = [0, 0, 480, 480]\n'
        f'[source]\nkind = "static"\ncatalog = "c.json"\ncollection = "c"\nmask_band = "qa_pixel"\n{lines}\n'
        "[history]\nstart = 2021-01-01\nend = 2021-12-31\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"invalid config {path}: {message}"), str(info.value)


# -- a history too short to fit any pixel ---------------------------------------------------------------------


@pytest.mark.slow
def test_a_history_too_short_for_any_pixel_is_one_line_naming_tile_period_and_clear_acquisitions(
    tmp_path: Path,
    demo_archive: DemoArchive,
    capsys: pytest.CaptureFixture,
    cli_logging: None,  # noqa: F811
) -> None:
    cfg = make_workspace(tmp_path / "ws", demo_archive)
    config_path = tmp_path / "ws" / "nrt-alerts.toml"
    text = config_path.read_text()
    config_path.write_text(
        re.sub(r"\[history\]\nstart = .*\nend = .*\n", "[history]\nstart = 2021-01-01\nend = 2021-01-20\n", text)
    )
    short = load_config(config_path)
    assert short.history.end == dt.date(2021, 1, 20), "the edit did not take"

    with pytest.raises(HistoryTooShortError) as info:
        Pipeline(short).fit_tile(Pipeline(short).tiles[0])
    assert str(info.value) == (
        "tile r000c000: history 2021-01-01..2021-01-20 too short to fit any pixel: "
        "4 clear acquisition(s) found of 4; lengthen the history period"
    )
    assert info.value.exit_code == 3

    code = main(["fit", "-c", str(config_path), "--tile", "r000c001"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    errors = [line for line in err.splitlines() if " ERROR " in line]
    assert len(errors) == 1, err
    assert "tile r000c001: history 2021-01-01..2021-01-20 too short to fit any pixel: " in errors[0]
    assert not list(cfg.output.state_dir.glob("*.nc"))  # nothing half-fitted was saved
