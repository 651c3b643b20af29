"""Embedded, offline, deterministic Sentinel-2 L2A-like demo archive with planted disturbances."""

from scheduler.demo.generate import generate_demo, load_demo
from scheduler.demo.spec import DemoArchive, DemoSpec

__all__ = ["DemoArchive", "DemoSpec", "generate_demo", "load_demo"]
