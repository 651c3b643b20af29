"""Tiles as tasks on dask.distributed: a LocalCluster per process, or an existing cluster's scheduler address.

Each tile's fit or update is one task: a module-level function taking the Config and the tile id, which builds
its own source and pipeline in the worker. The client process publishes each tile as soon as its task is done,
so the scheduler -> catalog flow and the publisher lock stay where they are.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from scheduler.config import ComputeConfig, Config
from scheduler.errors import ConfigError, NrtAlertsError
from scheduler.outcomes import RunResult, TileOutcome

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

    from scheduler.grid import Tile
    from scheduler.pipeline import Pipeline

log = logging.getLogger(__name__)

# Worker side: one pipeline per configuration, so a static catalog is parsed once per worker, not per task.
_worker_pipelines: dict[str, Pipeline] = {}
_worker_lock = threading.Lock()


def use_dask(cfg: Config) -> bool:
    """Whether runs go to dask: see ComputeConfig.executor."""
    compute = cfg.compute
    if compute.executor != "auto":
        return compute.executor == "dask"
    # On one machine, tiles in this process on every CPU (compute.threads) beat a LocalCluster of processes: no
    # start-up and imports per worker, half the memory, and faster measured (bench/README.md). A cluster is the
    # way to more machines.
    return bool(compute.scheduler_address)


def _cluster_key(compute: ComputeConfig) -> str:
    """What identifies the cluster a config asks for (a different one closes the current one)."""
    return compute.model_dump_json(
        include={"scheduler_address", "n_workers", "threads_per_worker", "memory_limit", "processes"}
    )


def _set_level(name: str, level: int) -> None:
    """Worker side: let a logger's records through to the forwarding handler."""
    logging.getLogger(name).setLevel(level)


class DaskExecutor:
    """Runs a pipeline's tiles as tasks on the dask cluster compute asks for; its client, started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: Client | None = None
        self._cluster: LocalCluster | None = None
        self._key: str | None = None

    def wanted(self, cfg: Config) -> bool:
        """Whether runs of this config go to dask (use_dask)."""
        return use_dask(cfg)

    def client(self, compute: ComputeConfig) -> Client:
        """The client: connected to scheduler_address, or to a LocalCluster started on first use."""
        from distributed import Client

        key = _cluster_key(compute)
        with self._lock:
            if self._client is not None and self._key == key:
                return self._client
            self._close_locked()
            try:
                if compute.scheduler_address:
                    client = Client(compute.scheduler_address, timeout=20, set_as_default=False)
                    log.info("dask: connected to the cluster at %s", compute.scheduler_address)
                else:
                    self._cluster = _local_cluster(compute)
                    client = Client(self._cluster, set_as_default=False)
                    log.info(
                        "dask: started a LocalCluster of %d %s x %d thread(s) at %s",
                        compute.n_workers,
                        "processes" if compute.processes else "threads",
                        compute.threads_per_worker,
                        self._cluster.scheduler_address,
                    )
            except (OSError, TimeoutError, ValueError) as exc:
                self._close_locked()
                where = compute.scheduler_address or "a LocalCluster"
                raise ConfigError(f"compute: cannot start or reach the dask cluster ({where}): {exc}") from exc
            if compute.scheduler_address or compute.processes:
                # Tasks log in other processes: forward their records to this process's handlers.
                for name in ("scheduler", "catalog"):
                    level = logging.getLogger(name).getEffectiveLevel()
                    client.forward_logging(name, level=level)
                    client.run(_set_level, name, level)  # a worker's own root logger would drop INFO records
            self._client, self._key = client, key
            return client

    def close(self) -> None:
        """Close the client and the LocalCluster this executor started (never a cluster it only connected to)."""
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        client, cluster = self._client, self._cluster
        self._client, self._cluster, self._key = None, None, None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    def run_tiles(
        self,
        pipeline: Pipeline,
        tiles: list[Tile],
        task: Callable[..., TileOutcome],
        *args: object,
        progress: Callable[[TileOutcome], None] | None = None,
    ) -> RunResult:
        """Run task(make, cfg, tile.id, *args) per tile on the cluster; publish each tile as soon as it is done."""
        from distributed import as_completed

        client = self.client(pipeline.cfg.compute)
        kind = task.__name__.removesuffix("_task")
        # Workers build a pipeline of the same class, pickled by reference: this module never imports it.
        make = type(pipeline)
        futures = {client.submit(task, make, pipeline.cfg, tile.id, *args, pure=False): tile for tile in tiles}
        outcomes: dict[str, TileOutcome] = {}
        publications = []
        for future in as_completed(futures, loop=client.loop):
            tile = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # a worker died or a bug: this tile failed, the others go on
                outcome = TileOutcome(tile.id, error=f"{type(exc).__name__}: {exc}")
            if outcome.error:
                log.error("tile %s: %s failed: %s", tile.id, kind, outcome.error)
            outcomes[tile.id] = outcome
            # Publish this tile now; publish() decides from its state, so a failed tile's older state is caught too.
            publication = pipeline.publish([tile])
            if publication is not None:
                publications.append(publication)
            if progress:
                progress(outcome)
        return RunResult([outcomes[t.id] for t in tiles], publications[-1] if publications else None, publications)


def _local_cluster(compute: ComputeConfig) -> LocalCluster:
    """A LocalCluster as compute describes it."""
    from distributed import LocalCluster

    threads = compute.threads_per_worker
    # Worker processes talk TCP on loopback (a random port); thread workers in-process, no sockets.
    network = (
        {
            "host": "127.0.0.1",
            "scheduler_port": 0,
            # numba's pool defaults to every core in every worker: one numba thread per dask thread.
            "env": {"NUMBA_NUM_THREADS": str(threads)},
        }
        if compute.processes
        else {}
    )
    return LocalCluster(
        n_workers=compute.n_workers,
        threads_per_worker=threads,
        memory_limit=compute.memory_limit,
        processes=compute.processes,
        dashboard_address=None,
        **network,
    )


# The executor of pipelines given none: one per process, closed at exit (and by close()).
_default: DaskExecutor | None = None
_default_lock = threading.Lock()


def default_executor() -> DaskExecutor:
    """The process's executor, made on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = DaskExecutor()
            atexit.register(_default.close)
        return _default


def get_client(compute: ComputeConfig) -> Client:
    """The process's executor's client (see DaskExecutor.client)."""
    return default_executor().client(compute)


def close() -> None:
    """Close the process's dask client and LocalCluster, if any (CLI commands on exit; serve at shutdown)."""
    if _default is not None:
        _default.close()


def _worker_pipeline(make: Callable[[Config], Pipeline], cfg: Config) -> Pipeline:
    """The pipeline a worker uses for this config, built on first use."""
    if not cfg.compute.threads:  # a worker's tiles share its threads, not the whole machine's CPUs
        compute = cfg.compute.model_copy(update={"threads": cfg.compute.threads_per_worker})
        cfg = cfg.model_copy(update={"compute": compute})
    key = cfg.model_dump_json()
    with _worker_lock:
        if key not in _worker_pipelines:
            _worker_pipelines.clear()  # a new config replaces the old one: keep one static catalog in memory
            _worker_pipelines[key] = make(cfg)
        return _worker_pipelines[key]


def _local_locks() -> AbstractContextManager:
    """No dask inside a task: xarray then guards NetCDF writes with this process's HDF5 lock.

    In a worker xarray would otherwise take a distributed.Lock from the scheduler for every state write, while
    state reads in the same process take the local lock: the two do not exclude each other.
    """
    import dask

    return dask.config.set(scheduler="synchronous")


def _tile(pipeline: Pipeline, tile_id: str) -> Tile:
    return next(t for t in pipeline.tiles if t.id == tile_id)


def fit_task(make: Callable[[Config], Pipeline], cfg: Config, tile_id: str) -> TileOutcome:
    """Task: fit one tile and save its state (publishing is the client's)."""
    pipeline = _worker_pipeline(make, cfg)
    outcome = TileOutcome(tile_id)
    try:
        with _local_locks():
            pipeline.fit_tile(_tile(pipeline, tile_id))
    except NrtAlertsError as exc:
        outcome.error = str(exc)
    return outcome


def fit_forward_task(make: Callable[[Config], Pipeline], cfg: Config, tile_id: str, until: dt.datetime) -> TileOutcome:
    """Task: fit one tile, then bring it up to `until` (publishing is the client's)."""
    outcome = fit_task(make, cfg, tile_id)
    return outcome if outcome.error else update_task(make, cfg, tile_id, until)


def update_task(make: Callable[[Config], Pipeline], cfg: Config, tile_id: str, until: dt.datetime) -> TileOutcome:
    """Task: bring one tile up to `until` and save its state (publishing is the client's)."""
    pipeline = _worker_pipeline(make, cfg)
    try:
        with _local_locks():
            outcome = pipeline.update_tile(_tile(pipeline, tile_id), until)
    except NrtAlertsError as exc:
        return TileOutcome(tile_id, error=str(exc))
    outcome.state = None  # the client publishes from the saved file: the state stays in the worker
    return outcome


def run_tiles(
    pipeline: Pipeline,
    tiles: list[Tile],
    task: Callable[..., TileOutcome],
    *args: object,
    progress: Callable[[TileOutcome], None] | None = None,
) -> RunResult:
    """Run the tiles on the pipeline's executor (see DaskExecutor.run_tiles)."""
    return pipeline.executor.run_tiles(pipeline, tiles, task, *args, progress=progress)
