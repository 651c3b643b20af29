"""XYZ tiles, TileJSON, info and point values of named layers, built on TiTiler's TilerFactory."""

from __future__ import annotations

from pathlib import Path

from rio_tiler.colormap import cmap as default_cmap
from titiler.core.dependencies import create_colormap_dependency
from titiler.core.factory import TilerFactory

from catalog.encoding import context_colormap, status_colormap, visible_colours
from server.deps import layer_path
from server.filters import FilterParams
from server.reader import guarded_reader

LAYER_PREFIX = "/layers/{layer}"

# Named styles of the status layer on top of rio-tiler's colour maps: ?colormap_name=alerts, alerts-all, context
# (transparent codes left out: rio-tiler draws unlisted codes transparent, and each listed one costs a pass).
COLORMAPS = default_cmap.register(
    {
        "alerts": visible_colours(status_colormap()),
        "alerts-all": visible_colours(status_colormap(first_detections=True)),
        "context": visible_colours(context_colormap()),
    }
)


def layer_tiler(stac_dir: Path, max_part_size: int) -> TilerFactory:
    """A TilerFactory whose dataset is the named layer's mosaic, never a client-supplied `url`.

    Every layer accepts the alert filters (detected_after, detected_before, min_confidence, stage): they read the
    status, date and confidence layers of the same publication, so e.g. magnitudes of confirmed alerts only work too.
    A feature's statistics read at most `max_part_size` pixels a side unless the request names a size.
    """
    return TilerFactory(
        reader=guarded_reader(stac_dir, max_part_size),
        # Reader options: the filters reach the Reader, which masks tiles, parts, statistics and points alike.
        reader_dependency=FilterParams,
        path_dependency=layer_path,
        router_prefix=LAYER_PREFIX,
        add_preview=False,
        add_part=False,
        add_viewer=False,
        colormap_dependency=create_colormap_dependency(COLORMAPS),
        name="layer",
    )
