"""A rio-tiler Reader that opens only files of the published catalog and knows the alert colours."""

from __future__ import annotations

from pathlib import Path

import attr
from rio_tiler.io import Reader

from catalog.encoding import status_colormap
from catalog.layers import STATUS
from server.errors import ForbiddenPath


def guarded_reader(root: Path) -> type[Reader]:
    """Build a Reader class that refuses any input outside `root` (also what WMS LAYERS would reach)."""
    allowed = root.resolve()

    @attr.s
    class LayerReader(Reader):
        """Reader for published layers only."""

        def __attrs_post_init__(self) -> None:
            if self.dataset is None:
                text = str(self.input)
                # GDAL treats these prefixes as network or virtual file systems: never from a client.
                if "://" in text or text.startswith("/vsi") or ".." in Path(text).parts:
                    raise ForbiddenPath("layers are named; paths and URLs are not accepted")
                if not Path(text).resolve().is_relative_to(allowed):
                    raise ForbiddenPath("layers are named; paths and URLs are not accepted")
            super().__attrs_post_init__()

        def _get_colormap(self) -> None:
            """The status layer renders with the RGBA alert colours (its GeoTIFF palette has no alpha)."""
            if self.dataset.descriptions and self.dataset.descriptions[0] == STATUS.asset:
                self.colormap = status_colormap()
            else:
                super()._get_colormap()

    return LayerReader
