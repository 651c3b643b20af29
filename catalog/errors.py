"""Exceptions of the publishing side."""


class CatalogError(Exception):
    """Base class for catalog failures."""


class PublishError(CatalogError):
    """A report or catalog file could not be written or failed validation."""


class LayerNotFound(CatalogError):
    """A layer or publication name that the catalog does not have."""
