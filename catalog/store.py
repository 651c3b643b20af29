"""Where the published catalog's files live, and the publication index that points at the current version."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from catalog.errors import CatalogError, LayerNotFound

COLLECTION_ID = "alerts"
INDEX_VERSION = 1


@dataclass(frozen=True)
class CatalogLayout:
    """Paths inside the output STAC folder."""

    root: Path

    @property
    def catalog_path(self) -> Path:
        """The root catalog.json."""
        return self.root / "catalog.json"

    @property
    def collection_dir(self) -> Path:
        """Folder of the alerts collection."""
        return self.root / COLLECTION_ID

    @property
    def collection_path(self) -> Path:
        """The alerts collection.json."""
        return self.collection_dir / "collection.json"

    @property
    def index_path(self) -> Path:
        """The publication index: the pointer that moves last."""
        return self.collection_dir / "publications.json"

    @property
    def lock_path(self) -> Path:
        """Lock file serialising publishers."""
        return self.root / ".publish.lock"

    def item_path(self, item_id: str) -> Path:
        """An item's JSON (its COGs sit beside it)."""
        return self.collection_dir / "items" / item_id / f"{item_id}.json"

    def asset_path(self, item_id: str, asset: str) -> Path:
        """An item's COG of one layer."""
        return self.collection_dir / "items" / item_id / f"{item_id}_{asset}.tif"

    @property
    def months_dir(self) -> Path:
        """Folder of the month catalogs that link the items (the collection links only them)."""
        return self.collection_dir / "months"

    def month_path(self, month: str) -> Path:
        """The catalog.json of one month ("2024-03") of item data times."""
        return self.months_dir / month / "catalog.json"

    def mosaic_path(self, version: str, asset: str) -> Path:
        """A version's mosaic VRT for one layer."""
        return self.collection_dir / "mosaics" / version / f"{asset}.vrt"


@dataclass(frozen=True)
class Publication:
    """One published version: the item of each tile and a mosaic VRT per layer."""

    id: str
    datetime: dt.datetime
    published: dt.datetime
    items: dict[str, str]
    mosaics: dict[str, str]

    def to_dict(self) -> dict:
        """JSON form."""
        return {
            "id": self.id,
            "datetime": self.datetime.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            "published": self.published.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            "items": self.items,
            "mosaics": self.mosaics,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Publication:
        """Parse the JSON form."""
        return cls(
            id=data["id"],
            datetime=dt.datetime.fromisoformat(data["datetime"]),
            published=dt.datetime.fromisoformat(data["published"]),
            items=dict(data["items"]),
            mosaics=dict(data["mosaics"]),
        )


@dataclass(frozen=True)
class PublicationIndex:
    """Every publication, oldest first; the last one is 'latest'."""

    publications: tuple[Publication, ...] = field(default_factory=tuple)

    @property
    def latest(self) -> Publication | None:
        """The newest publication, or None before the first."""
        return self.publications[-1] if self.publications else None

    @property
    def ids(self) -> set[str]:
        """All version ids."""
        return {p.id for p in self.publications}

    def get(self, version: str | None) -> Publication:
        """A publication by id ('latest' or None for the newest)."""
        if version in (None, "latest"):
            if self.latest is None:
                raise LayerNotFound("nothing has been published yet")
            return self.latest
        for publication in self.publications:
            if publication.id == version:
                return publication
        raise LayerNotFound(f"no publication {version!r}")

    def with_publication(self, publication: Publication) -> PublicationIndex:
        """A new index with one more publication."""
        return replace(self, publications=(*self.publications, publication))

    def to_dict(self) -> dict:
        """JSON form."""
        latest = self.latest.id if self.latest else None
        return {
            "version": INDEX_VERSION,
            "collection": COLLECTION_ID,
            "latest": latest,
            "publications": [p.to_dict() for p in self.publications],
        }


def read_index(layout: CatalogLayout) -> PublicationIndex:
    """Load the publication index (empty before the first publication)."""
    try:
        data = json.loads(layout.index_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return PublicationIndex()
    except (OSError, ValueError) as exc:
        raise CatalogError(f"cannot read {layout.index_path}: {exc}") from exc
    return PublicationIndex(tuple(Publication.from_dict(p) for p in data["publications"]))
