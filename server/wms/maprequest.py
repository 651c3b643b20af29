"""The map part shared by GetMap and GetFeatureInfo, parsed and resolved to a published file."""

from __future__ import annotations

from dataclasses import dataclass

from rio_tiler.io import Reader

from catalog.store import Publication
from server.registry import LayerRegistry
from server.wms.crs import Box, MapCRS, parse_crs
from server.wms.dataset import extent
from server.wms.params import WMSParams, parse_bbox, parse_layer, parse_size, parse_style
from server.wms.styles import Style, layer_styles
from server.wms.timedim import LATEST, resolve_time


@dataclass(frozen=True)
class MapRequest:
    """What to draw: a layer in a style at a publication, over a box of a CRS at a size."""

    version: str
    layer: str
    style: Style
    publication: Publication
    path: str
    is_latest: bool
    explicit_time: bool
    crs: MapCRS
    bbox: Box  # x east, in crs
    width: int
    height: int

    @property
    def immutable(self) -> bool:
        """True when the answer can never change.

        A TIME that selects a publication older than the latest can never select another one (publication
        datetimes only grow); TIME absent, or one that selects the latest, may move to a newer publication.
        """
        return self.explicit_time and not self.is_latest

    def key(self) -> tuple:
        """The request in normal form (with its publication version), for ETags."""
        return (self.publication.id, self.layer, self.style.name, self.crs.code, self.bbox, self.width, self.height)


def parse_map_request(params: WMSParams, version: str, registry: LayerRegistry, reader: type[Reader]) -> MapRequest:
    """Parse LAYERS, STYLES, TIME, CRS/SRS, BBOX, WIDTH and HEIGHT; names resolve through the registry only."""
    layer = parse_layer(params.require("LAYERS"), [spec.name for spec in registry.layers])
    styles = layer_styles(layer)
    style = styles[parse_style(params.get("STYLES"), list(styles))]
    time = params.get("TIME")
    publication = resolve_time(registry.index(), time)
    resolved = registry.resolve(layer, publication.id)
    path = str(resolved.path)
    crs_name = "CRS" if version == "1.3.0" else "SRS"
    # Lenient on the spelling: a 1.3.0 request naming SRS (or the reverse) is still understood.
    crs_value = params.get(crs_name) or params.get("SRS" if crs_name == "CRS" else "CRS") or params.require(crs_name)
    map_crs = parse_crs(crs_value, version, extent(reader, path).native)
    bbox = map_crs.to_xy(parse_bbox(params.require("BBOX")), version)
    width, height = parse_size(params)
    return MapRequest(
        version=version,
        layer=layer,
        style=style,
        publication=publication,
        path=path,
        is_latest=resolved.is_latest,
        explicit_time=(time or "").strip().lower() not in LATEST,
        crs=map_crs,
        bbox=bbox,
        width=width,
        height=height,
    )
