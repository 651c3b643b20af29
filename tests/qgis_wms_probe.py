"""Drive QGIS headless: its WMS provider, and raster files as *Add Raster Layer* opens them (run by Debian's python3
with python3-qgis; see tests/test_wms_qgis.py and tests/test_published_colours.py).

Usage: python3 qgis_wms_probe.py '<json request>'; prints one JSON answer. It imports nothing of the project.
"""

from __future__ import annotations

import json
import re
import sys
import urllib.request

from qgis.core import (
    QgsApplication,
    QgsDateTimeRange,
    QgsInterval,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsPointXY,
    QgsRaster,
    QgsRasterDataProviderTemporalCapabilities,
    QgsRasterLayer,
    QgsTemporalNavigationObject,
    QgsUnitTypes,
)
from qgis.PyQt.QtCore import QDateTime, QSize, Qt
from qgis.PyQt.QtGui import QColor


def layer_uri(url: str, temporal: bool) -> str:
    """The data source QGIS's WMS dialog writes; a time-enabled layer also carries the capabilities' time values."""
    params = {"crs": "EPSG:3857", "format": "image/png", "layers": "alerts", "styles": "alerts-all", "url": url}
    if temporal:
        caps = urllib.request.urlopen(f"{url}?SERVICE=WMS&REQUEST=GetCapabilities", timeout=60).read().decode()
        values = re.search(r'<Dimension [^>]*name="time"[^>]*>([^<]*)<', caps).group(1)
        params.update(type="wmst", timeDimensionExtent=values, allowTemporalUpdates="true", temporalSource="provider")
    return "&".join(f"{k}={v}" for k, v in params.items())


def identify(layer: QgsRasterLayer, request: dict) -> dict:
    """GetFeatureInfo as Identify -> Feature asks it: the features' attributes and geometries."""
    extent = layer.extent()
    result = layer.dataProvider().identify(
        QgsPointXY(*request["point"]), QgsRaster.IdentifyFormatFeature, extent, request["width"], request["height"]
    )
    features = []
    for stores in result.results().values():
        for store in stores:
            for feature in store.features():
                attributes = {field.name(): feature[field.name()] for field in feature.fields()}
                features.append(
                    {
                        "attributes": {
                            k: (None if v is None or str(v) == "NULL" else str(v)) for k, v in attributes.items()
                        },
                        "wkt": feature.geometry().asWkt(),
                    }
                )
    return {"valid": result.isValid(), "features": features}


def frames(layer: QgsRasterLayer, request: dict) -> dict:
    """Step QGIS's temporal controller through frames, rendering each into a transparent PNG."""
    method = getattr(QgsRasterDataProviderTemporalCapabilities, request["interval_handling"])
    layer.temporalProperties().setIntervalHandlingMethod(method)
    navigation = QgsTemporalNavigationObject()
    start = QDateTime.fromString(request["start"], Qt.ISODate)
    end = QDateTime.fromString(request["end"], Qt.ISODate)
    navigation.setTemporalExtents(QgsDateTimeRange(start, end))
    navigation.setFrameDuration(QgsInterval(request["frame_days"], QgsUnitTypes.TemporalDays))
    extent = layer.extent()
    answers = []
    for number in range(navigation.totalFrameCount()):
        frame = navigation.dateTimeRangeForFrameNumber(number)
        settings = QgsMapSettings()
        settings.setLayers([layer])
        settings.setDestinationCrs(layer.crs())
        settings.setExtent(extent)
        settings.setOutputSize(QSize(request["width"], request["height"]))
        settings.setBackgroundColor(QColor(0, 0, 0, 0))
        settings.setIsTemporal(True)
        settings.setTemporalRange(frame)
        job = QgsMapRendererSequentialJob(settings)
        job.start()
        job.waitForFinished()
        path = f"{request['folder']}/frame{number:03d}.png"
        job.renderedImage().save(path, "PNG")
        answers.append(
            {"begin": frame.begin().toString(Qt.ISODate), "end": frame.end().toString(Qt.ISODate), "png": path}
        )
    box = [extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()]
    return {"frames": answers, "extent": box}


def render_file(request: dict) -> dict:
    """Open a raster as Layer -> Add Raster Layer does (its default renderer) and render it at its own size."""
    layer = QgsRasterLayer(request["source"], "file", "gdal")
    if not layer.isValid():
        return {"error": f"QGIS cannot open {request['source']}"}
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(layer.extent())
    settings.setOutputSize(QSize(layer.width(), layer.height()))
    settings.setBackgroundColor(QColor(0, 0, 0, 0))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    job.renderedImage().save(request["png"], "PNG")
    return {"renderer": layer.renderer().type(), "png": request["png"]}


def main() -> None:
    """Answer one request."""
    request = json.loads(sys.argv[1])
    app = QgsApplication([], False)
    app.initQgis()
    if request["action"] == "render":
        print(json.dumps(render_file(request)))
        return
    layer = QgsRasterLayer(layer_uri(request["url"], request["action"] == "frames"), "alerts", "wms")
    if not layer.isValid():
        print(json.dumps({"error": "the WMS layer is not valid"}))
        return
    answer = identify(layer, request) if request["action"] == "identify" else frames(layer, request)
    answer["temporal"] = layer.dataProvider().temporalCapabilities().hasTemporalCapabilities()
    print(json.dumps(answer))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
