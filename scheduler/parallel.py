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

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

    from scheduler.grid import Tile
    from scheduler.pipeline import Pipeline, RunResult, TileOutcome

log = logging.getLogger(__name__)

_lock = threading.Lock()
_client: Client | None = None
_cluster: LocalCluster | None = None
_client_key: str | None = None
_atexit_registered = False

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


def get_client(compute: ComputeConfig) -> Client:
    """The process's client: connected to scheduler_address, or to a LocalCluster started on first use."""
    global _client, _cluster, _client_key, _atexit_registered
    from distributed import Client, LocalCluster

    key = _cluster_key(compute)
    with _lock:
        if _client is not None and _client_key == key:
            return _client
        _close_locked()
        try:
            if compute.scheduler_address:
                client = Client(compute.scheduler_address, timeout=20, set_as_default=False)
                log.info("dask: connected to the cluster at %s", compute.scheduler_address)
            else:
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
                _cluster = LocalCluster(
                    n_workers=compute.n_workers,
                    threads_per_worker=threads,
                    memory_limit=compute.memory_limit,
                    processes=compute.processes,
                    dashboard_address=None,
                    **network,
                )
                client = Client(_cluster, set_as_default=False)
                log.info(
                    "dask: started a LocalCluster of %d %s x %d thread(s) at %s",
                    compute.n_workers,
                    "processes" if compute.processes else "threads",
                    threads,
                    _cluster.scheduler_address,
                )
        except (OSError, TimeoutError, ValueError) as exc:
            _close_locked()
            where = compute.scheduler_address or "a LocalCluster"
            raise ConfigError(f"compute: cannot start or reach the dask cluster ({where}): {exc}") from exc
        if compute.scheduler_address or compute.processes:
            # Tasks log in other processes: forward their records to this process's handlers.
            for name in ("scheduler", "catalog"):
                level = logging.getLogger(name).getEffectiveLevel()
                client.forward_logging(name, level=level)
                client.run(_set_level, name, level)  # a worker's own root logger would drop INFO records
        _client, _client_key = client, key
        if not _atexit_registered:
            atexit.register(close)
            _atexit_registered = True
        return client


def _set_level(name: str, level: int) -> None:
    """Worker side: let a logger's records through to the forwarding handler."""
    logging.getLogger(name).setLevel(level)


def _close_locked() -> None:
    """Close the client and the LocalCluster this process started (never a cluster it only connected to)."""
    global _client, _cluster, _client_key
    client, cluster = _client, _cluster
    _client, _cluster, _client_key = None, None, None
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.close()


def close() -> None:
    """Close this process's dask client and LocalCluster, if any (CLI commands on exit; serve at shutdown)."""
    with _lock:
        _close_locked()


def _worker_pipeline(cfg: Config) -> Pipeline:
    """The pipeline a worker uses for this config, built on first use."""
    from scheduler.pipeline import Pipeline

    if not cfg.compute.threads:  # a worker's tiles share its threads, not the whole machine's CPUs
        compute = cfg.compute.model_copy(update={"threads": cfg.compute.threads_per_worker})
        cfg = cfg.model_copy(update={"compute": compute})
    key = cfg.model_dump_json()
    with _worker_lock:
        if key not in _worker_pipelines:
            _worker_pipelines.clear()  # a new config replaces the old one: keep one static catalog in memory
            _worker_pipelines[key] = Pipeline(cfg)
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


def fit_task(cfg: Config, tile_id: str) -> TileOutcome:
    """Task: fit one tile and save its state (publishing is the client's)."""
    from scheduler.pipeline import TileOutcome

    pipeline = _worker_pipeline(cfg)
    outcome = TileOutcome(tile_id)
    try:
        with _local_locks():
            pipeline.fit_tile(_tile(pipeline, tile_id))
    except NrtAlertsError as exc:
        outcome.error = str(exc)
    return outcome


def fit_forward_task(cfg: Config, tile_id: str, until: dt.datetime) -> TileOutcome:
    """Task: fit one tile, then bring it up to `until` (publishing is the client's)."""
    outcome = fit_task(cfg, tile_id)
    return outcome if outcome.error else update_task(cfg, tile_id, until)


def update_task(cfg: Config, tile_id: str, until: dt.datetime) -> TileOutcome:
    """Task: bring one tile up to `until` and save its state (publishing is the client's)."""
    from scheduler.pipeline import TileOutcome

    pipeline = _worker_pipeline(cfg)
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
    """Run task(cfg, tile.id, *args) per tile on the cluster; publish each tile as soon as its task is done."""
    from distributed import as_completed

    from scheduler.pipeline import RunResult, TileOutcome

    client = get_client(pipeline.cfg.compute)
    kind = task.__name__.removesuffix("_task")
    futures = {client.submit(task, pipeline.cfg, tile.id, *args, pure=False): tile for tile in tiles}
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
