"""The map part shared by GetMap and GetFeatureInfo, parsed and resolved to a published file."""

from __future__ import annotations

from dataclasses import dataclass

from rio_tiler.io import Reader

from catalog.store import Publication
from server.filters import AlertFilter
from server.registry import LayerRegistry
from server.wms.crs import Box, MapCRS, parse_crs
from server.wms.dataset import extent
from server.wms.detection import with_windows
from server.wms.params import WMSParams, parse_alert_filter, parse_bbox, parse_layer, parse_size, parse_style
from server.wms.styles import Style, layer_styles
from server.wms.timedim import TimeSelection, resolve_time


@dataclass(frozen=True)
class MapRequest:
    """What to draw: a layer in a style at a publication (its alerts filtered), over a box of a CRS at a size."""

    version: str
    layer: str
    style: Style
    time: TimeSelection
    alert_filter: AlertFilter | None  # the vendor filter, narrowed to the TIME range
    path: str
    is_latest: bool
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
        return self.time.explicit and not self.is_latest

    @property
    def publication(self) -> Publication:
        """The publication drawn."""
        return self.time.publication

    def key(self) -> tuple:
        """The request in normal form (with its publication version and filter), for ETags."""
        filter_key = self.alert_filter.key() if self.alert_filter else None
        return (
            self.publication.id,
            self.layer,
            self.style.name,
            self.crs.code,
            self.bbox,
            self.width,
            self.height,
            filter_key,
        )


def parse_map_request(params: WMSParams, version: str, registry: LayerRegistry, reader: type[Reader]) -> MapRequest:
    """Parse LAYERS, STYLES, TIME, the alert filter, CRS/SRS, BBOX, WIDTH and HEIGHT (names via the registry only)."""
    layer = parse_layer(params.require("LAYERS"), [spec.name for spec in registry.layers])
    styles = layer_styles(layer)
    style = styles[parse_style(params.get("STYLES"), list(styles))]
    time = resolve_time(registry.index(), params.get("TIME"))
    alert_filter = with_windows(parse_alert_filter(params), time.windows)
    resolved = registry.resolve(layer, time.publication.id)
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
        time=time,
        alert_filter=alert_filter,
        path=path,
        is_latest=resolved.is_latest,
        crs=map_crs,
        bbox=bbox,
        width=width,
        height=height,
    )
