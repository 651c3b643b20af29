"""nrt without scipy.stats, scipy.optimize and nrt.data at import: they load on first use, by CuSum, MoSum or ROC.

`nrt.utils_efp` binds `scipy.optimize`, `scipy.stats.norm` and `nrt.data` when it is imported, and every nrt monitor
imports it. scipy 1.17 rewrites the docstrings of scipy.stats at import, and nrt.data imports fiona and pooch:
~0.5 s of every CLI command and server start-up, although only the critical values of CuSum, MoSum and ROC ever
use them. While `nrt.utils_efp` executes, those names resolve to stand-ins that import the real module when first
used; nothing else changes.

Kept because a user waits for it: `python bench/nrt_import.py` measures the import of `server.cli` (every
`nrt-alerts` command) with and without it, alternating: 0.84 s of CPU saved per start (paired median of 10,
bench/results/nrt_import.json; 1.93 -> 1.33 s wall on a quiet machine). Installed only by scheduler/nrt_boundary.py,
the one module that imports nrt, before it does; NRT_ALERTS_DEFER_SCIPY=0 turns it off.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import os
import sys
import threading
import types
from collections.abc import Iterator, Sequence
from typing import Any

DEFERRED_MODULE = "nrt.utils_efp"
SWITCH_ENV = "NRT_ALERTS_DEFER_SCIPY"
_STAND_INS = ("scipy.optimize", "scipy.stats", "nrt.data")


class OnFirstUse:
    """Stands for `module`.`attribute` until an attribute of it is used; from then on forwards to the real one."""

    def __init__(self, module: str, attribute: str) -> None:
        self._module = module
        self._attribute = attribute

    def __getattr__(self, name: str) -> Any:
        return getattr(getattr(importlib.import_module(self._module), self._attribute), name)

    def __repr__(self) -> str:
        return f"<{self._module}.{self._attribute}, imported on first use>"


def _stand_in(name: str) -> types.ModuleType:
    """A module object whose every attribute is imported from the real `name` when first looked up."""
    module = types.ModuleType(name, f"Stand-in for {name}, imported on first use (scheduler/nrt_import.py).")

    def __getattr__(attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return getattr(importlib.import_module(name), attribute)

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    if name == "scipy.stats":  # `from scipy.stats import norm` reads it at import time: it must not load scipy
        module.norm = OnFirstUse(name, "norm")  # type: ignore[attr-defined]
    return module


@contextlib.contextmanager
def _stand_ins_installed() -> Iterator[None]:
    """The deferred modules not imported yet stand in sys.modules while the block runs; gone afterwards."""
    placed = {name: _stand_in(name) for name in _STAND_INS if name not in sys.modules}
    sys.modules.update(placed)
    try:
        yield
    finally:
        for name, module in placed.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
            package, _, short = name.rpartition(".")
            parent = sys.modules.get(package)
            if parent is not None and parent.__dict__.get(short) is module:
                delattr(parent, short)  # the next `scipy.stats` lookup imports the real one


class _Loader(importlib.abc.Loader):
    """Executes the real module's code with the stand-ins in place."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        with _stand_ins_installed():
            self.loader.exec_module(module)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds nrt.utils_efp as the path finder does, with the deferring loader around its own."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != DEFERRED_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _Loader(spec.loader)
        return spec


_installed = threading.Lock()


def defer_scipy_for_nrt() -> None:
    """Install the finder once per process (a no-op if nrt.utils_efp is imported already, or switched off)."""
    if os.environ.get(SWITCH_ENV, "1").strip() == "0":
        return
    with _installed:
        if DEFERRED_MODULE in sys.modules or any(isinstance(f, _Finder) for f in sys.meta_path):
            return
        sys.meta_path.insert(0, _Finder())
