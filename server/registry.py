"""Resolve named layers to the files the catalog published; clients never name a path."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from catalog.atomic import file_version
from catalog.errors import LayerNotFound
from catalog.layers import LAYERS_BY_NAME, PUBLISHED_LAYERS, LayerSpec
from catalog.store import CatalogLayout, Publication, PublicationIndex, read_index


@dataclass(frozen=True)
class ResolvedLayer:
    """A layer name and version resolved to the file that serves it: the mosaic VRT, or the COG of a lone tile."""

    spec: LayerSpec
    publication: Publication
    path: Path
    is_latest: bool


class LayerRegistry:
    """Reads the publication index, re-reading it only when its file version (catalog.atomic.file_version) changes."""

    def __init__(self, stac_dir: Path) -> None:
        self.layout = CatalogLayout(stac_dir)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._index = PublicationIndex()

    def index(self) -> PublicationIndex:
        """The current publication index (cheap: one stat per call)."""
        try:
            stamp = file_version(self.layout.index_path)
        except FileNotFoundError:
            return PublicationIndex()
        with self._lock:
            if stamp != self._stamp:
                self._index = read_index(self.layout)
                self._stamp = stamp
            return self._index

    def reload(self) -> PublicationIndex:
        """Re-read the publication index now, whatever its file's stamp says."""
        with self._lock:
            self._stamp = None
        return self.index()

    @property
    def layers(self) -> tuple[LayerSpec, ...]:
        """Every layer name the server knows."""
        return PUBLISHED_LAYERS

    def resolve(self, name: str, version: str | None = None, item: str | None = None) -> ResolvedLayer:
        """Map a layer name and optional version ('latest' by default) to its mosaic file, or to one item's COG."""
        spec = LAYERS_BY_NAME.get(name)
        if spec is None:
            raise LayerNotFound(f"unknown layer {name!r}; layers: {', '.join(LAYERS_BY_NAME)}")
        index = self.index()
        publication = index.get(version)
        mosaic = publication.mosaics.get(spec.asset)
        if mosaic is None:  # published before this layer existed
            raise LayerNotFound(f"publication {publication.id} has no layer {name!r}")
        if item is not None:
            # One tile's report alone (a STAC item's map links): only an item this publication names.
            if item not in publication.items.values():
                raise LayerNotFound(f"publication {publication.id} has no item {item!r}")
            path = self.layout.asset_path(item, spec.asset).resolve()
        elif len(publication.items) == 1:
            # One tile: its COG is the whole layer, and reading it directly skips the VRT's ~1 ms per tile.
            (item,) = publication.items.values()
            path = self.layout.asset_path(item, spec.asset).resolve()
        else:
            path = (self.layout.collection_dir / mosaic).resolve()
        return ResolvedLayer(spec, publication, path, is_latest=publication is index.latest)

    def contains(self, path: Path) -> bool:
        """True when a path lies inside the published catalog folder."""
        root = self.layout.root.resolve()
        return path.resolve().is_relative_to(root)
