"""Source settings of well-known providers: `[source] preset = "<provider>/<collection>"` and the keys to change."""

from __future__ import annotations

from typing import Any

_S2_SCL_CLEAR = [4, 5, 6, 7]  # SCL: vegetation, not vegetated, water, unclassified
_LANDSAT_REJECT = ["fill", "dilated_cloud", "cirrus", "cloud", "shadow", "snow"]

# Each preset's asset keys are those of its provider's items (tests/test_presets.py checks them against real items
# where one is stored). Reflectance = DN * scale + offset; Sentinel-2 from processing baseline 04.00 (January 2022)
# on carries a -0.1 offset (DN 1000 added at the L2A step).
# Earth Search's two Sentinel-2 L2A collections share asset keys and the BOA offset of baseline 04.00 on; in
# sentinel-2-l2a items before that baseline have none (a history crossing January 2022 is biased by 0.1 there), the
# reprocessed sentinel-2-c1-l2a carries it on every date.
_EARTH_SEARCH_S2 = {
    "kind": "stac-api",
    "url": "https://earth-search.aws.element84.com/v1",
    "bands": {"blue": "blue", "green": "green", "red": "red", "nir": "nir08", "swir16": "swir16", "swir22": "swir22"},
    "mask_band": "scl",
    "mask_valid": _S2_SCL_CLEAR,
    "scale": 0.0001,
    "offset": -0.1,
    "nodata": 0,
}

PRESETS: dict[str, dict[str, Any]] = {
    "earth-search/sentinel-2-c1-l2a": {**_EARTH_SEARCH_S2, "collection": "sentinel-2-c1-l2a"},
    "earth-search/sentinel-2-l2a": {**_EARTH_SEARCH_S2, "collection": "sentinel-2-l2a"},
    "planetary-computer/sentinel-2-l2a": {
        "kind": "stac-api",
        "url": "https://planetarycomputer.microsoft.com/api/stac/v1",
        "collection": "sentinel-2-l2a",
        # B8A (20 m narrow NIR), as nir08 elsewhere; B08 is the 10 m broad NIR.
        "bands": {"blue": "B02", "green": "B03", "red": "B04", "nir": "B8A", "swir16": "B11", "swir22": "B12"},
        "mask_band": "SCL",
        "mask_valid": _S2_SCL_CLEAR,
        # Planetary Computer keeps the DNs as ESA ships them, without offset metadata: each item's
        # s2:processing_baseline decides (no offset before 04.00, -0.1 from it on); this is the fallback.
        "scale": 0.0001,
        "offset": -0.1,
        "nodata": 0,
        "auth": "planetary-computer",  # asset URLs are signed with a SAS token before each read
    },
    "cdse/sentinel-2-l2a": {
        "kind": "stac-api",
        "url": "https://stac.dataspace.copernicus.eu/v1",
        "collection": "sentinel-2-l2a",
        "bands": {
            "blue": "B02_20m",
            "green": "B03_20m",
            "red": "B04_20m",
            "nir": "B8A_20m",
            "swir16": "B11_20m",
            "swir22": "B12_20m",
        },
        "mask_band": "SCL_20m",
        "mask_valid": _S2_SCL_CLEAR,
        "scale": 0.0001,
        "offset": -0.1,
        "nodata": 0,
        # s3://eodata/... with the S3 keys of a CDSE account (asset_href = "https": the OIDC-protected copies).
        "auth": "s3",
        "s3_endpoint": "eodata.dataspace.copernicus.eu",
    },
    "usgs/landsat-c2l2-sr": {
        "kind": "stac-api",
        "url": "https://landsatlook.usgs.gov/stac-server",
        "collection": "landsat-c2l2-sr",
        "bands": {
            "blue": "blue",
            "green": "green",
            "red": "red",
            "nir": "nir08",
            "swir16": "swir16",
            "swir22": "swir22",
        },
        "mask_band": "qa_pixel",
        "mask_bits_invalid": _LANDSAT_REJECT,
        "mask_bit_layout": "landsat-qa-pixel",
        "scale": 0.0000275,
        "offset": -0.2,
        "nodata": 0,
    },
}


def with_preset(source: dict[str, Any]) -> dict[str, Any]:
    """A [source] table with its preset's settings under the keys it sets itself; ValueError for an unknown one."""
    name = source.get("preset")
    if name is None:
        return source
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    return {**PRESETS[name], **source}
