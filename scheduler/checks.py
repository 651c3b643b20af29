"""`nrt-alerts check-source`: search the source, read one acquisition, say what was found or why it cannot be."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pystac

from scheduler.config import INDEX_BANDS, Config
from scheduler.errors import SourceError
from scheduler.grid import Tile
from scheduler.loading import group_acquisitions, load_index
from scheduler.sources import ImagerySource, area_bbox_4326, nothing_found, unreadable_in


@dataclass(frozen=True)
class SourceReport:
    """What check-source found: the lines it prints."""

    lines: list[str]


def check_source(
    cfg: Config, source: ImagerySource, tiles: list[Tile], start: dt.datetime, end: dt.datetime
) -> SourceReport:
    """Search over `tiles` from start to end, check the newest item's assets, read its acquisition on the first tile.

    Raises SourceError (exit 3) with the exact reason when the search finds nothing, an asset key is missing, or the
    acquisition cannot be read.
    """
    bbox = area_bbox_4326([tile.bounds_4326 for tile in tiles])
    items = source.search(bbox, start, end)
    unreadable = unreadable_in(items)
    if not items:
        raise nothing_found(cfg.source, f"{len(tiles)} tile(s)", bbox, start, end)
    tile = tiles[0]
    acquisitions = group_acquisitions(items, tile)
    lines = [
        f"search: {len(items)} item(s), {len(acquisitions)} acquisition(s) in collection {cfg.source.collection!r} "
        f"from {acquisitions[0].key} to {acquisitions[-1].key}"
        + (f"; {len(unreadable)} unreadable item(s), first: {unreadable[0]}" if unreadable else "")
    ]
    newest = acquisitions[-1]
    lines += [f"assets of item {newest.items[0].id}:", *_assets(cfg, newest.items[0])]
    index = load_index(newest.items, tile, cfg)
    values = index.values
    valid = float(np.isfinite(values).mean()) if values.size else 0.0
    resolution = abs(tile.transform.a)
    lines.append(f"grid: tile {tile.id}, {tile.crs}, {resolution:g} m, {tile.width} x {tile.height} px")
    lines.append(
        f"read: acquisition {newest.key} ({newest.ids}): {cfg.index.name} valid on {valid:.1%} of the tile's pixels"
    )
    return SourceReport(lines)


def _assets(cfg: Config, item: pystac.Item) -> list[str]:
    """One line per configured asset (role = key, data type, resolution); SourceError naming a missing key."""
    src = cfg.source
    roles = {role: src.bands[role] for role in INDEX_BANDS[cfg.index.name]}
    if src.mask_band:
        roles["mask"] = src.mask_band
    lines = []
    for role, key in roles.items():
        asset = item.assets.get(key)
        if asset is None:
            raise SourceError(
                f"item {item.id} has no asset {key!r} (source {'mask_band' if role == 'mask' else f'bands.{role}'}); "
                f"its assets: {', '.join(sorted(item.assets))}"
            )
        described = asset.extra_fields.get("raster:bands") or [{}]
        dtype = described[0].get("data_type") or asset.extra_fields.get("data_type") or "?"
        size = _pixel_size(item, asset)
        lines.append(f"  {role} = {key} ({dtype}{f', {size:g} m' if size else ''})")
    return lines


def _pixel_size(item: pystac.Item, asset: pystac.Asset) -> float | None:
    """The asset's pixel size: its gsd, else its own proj:transform, else the item's (B8A of a 10 m item is 20 m)."""
    for fields in (asset.extra_fields, item.properties):
        if fields.get("gsd"):
            return float(fields["gsd"])
        transform = fields.get("proj:transform")
        if isinstance(transform, list) and transform:
            return abs(float(transform[0]))
    return None
