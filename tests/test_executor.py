"""The pipeline runs its dask tiles on the executor object it is given; scheduler.parallel does not import the
pipeline (the pipeline <-> parallel import cycle is gone)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from scheduler import parallel
from scheduler.demo import DemoArchive
from scheduler.pipeline import Pipeline

from conftest import make_workspace

REPO = Path(__file__).resolve().parent.parent


def test_the_parallel_module_never_imports_the_pipeline() -> None:
    """Not even inside a function (as it did, both ways): only type hints name it."""
    tree = ast.parse((REPO / "scheduler" / "parallel.py").read_text(encoding="utf-8"))
    hints = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for node in ast.walk(block)
    }
    imports = [
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and id(node) not in hints and node.module
    ]
    assert "scheduler.outcomes" in imports  # the scan sees the module's imports
    assert "scheduler.pipeline" not in imports


@pytest.mark.slow
def test_a_pipeline_runs_its_tiles_on_the_executor_it_is_given(tmp_path: Path, demo_archive: DemoArchive) -> None:
    cfg = make_workspace(tmp_path, demo_archive)
    compute = cfg.compute.model_copy(update={"executor": "dask", "n_workers": 1, "processes": False})
    cfg = cfg.model_copy(update={"compute": compute})
    default = parallel.default_executor()
    default.close()
    executor = parallel.DaskExecutor()
    try:
        done: list[int] = []
        result = Pipeline(cfg, executor=executor).run_fit(progress=done.append)
        assert not result.failed and done == [1, 1]
        assert [len(p.items) for p in result.publications] == [1, 2]  # each tile published as its task ended
        assert executor._client is not None and default._client is None  # noqa: SLF001 (the cluster's owner)
    finally:
        executor.close()
    assert executor._client is None  # noqa: SLF001
