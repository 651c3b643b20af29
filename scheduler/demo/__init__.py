"""Embedded, offline, deterministic Sentinel-2 L2A-like demo archive with planted disturbances and look-alikes."""

from scheduler.demo.events import KIND_CODES
from scheduler.demo.generate import generate_demo, load_demo
from scheduler.demo.spec import SCENARIOS, SUITES, DemoArchive, DemoSpec

__all__ = ["KIND_CODES", "SCENARIOS", "SUITES", "DemoArchive", "DemoSpec", "generate_demo", "load_demo"]
