"""OGC WMS 1.3.0 and 1.1.1 over the named layers: capabilities, maps, legends and feature info."""

from server.wms.router import router

__all__ = ["router"]
