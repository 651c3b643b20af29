"""The monitoring pipeline: fit a tile on its history, absorb new acquisitions, publish reports."""

from __future__ import annotations

import copy
import datetime as dt
import functools
import hashlib
import json
import logging
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.warp import reproject
from threadpoolctl import threadpool_limits

from catalog.diskspace import disk_full, require_free
from catalog.errors import PublishError
from catalog.locking import file_lock
from catalog.mosaic import AreaGrid
from catalog.publish import Publisher, StagedItem, TileReport, item_data_time
from catalog.retention import PruneReport, RetentionPolicy, prune_locked
from catalog.store import CatalogLayout, Publication, read_index
from scheduler import aligned, backups, parallel
from scheduler.blocks import absorb_all, block_rows, join_blocks, load_rows, row_blocks, tile_rows
from scheduler.clock import utc
from scheduler.config import REPORT_ONLY, SCREENING_BANDS, Config
from scheduler.errors import ConfigError, HistoryTooShortError, NrtAlertsError, StateError
from scheduler.grid import Tile, area_tiles
from scheduler.keys import acquisition_key
from scheduler.loading import (
    AcquisitionError,
    batches,
    before_unreadable,
    group_acquisitions,
    load_index_and_bands,
    load_new_index,
    pending_items,
    warming_up,
)
from scheduler.monitors import fit_monitor, report_layers
from scheduler.outcomes import RunResult, TileOutcome
from scheduler.series_chunks import note_series, record_series, series_writer
from scheduler.sources import ImagerySource, nothing_found, source_from_config, unreadable_in
from scheduler.state import (
    TileState,
    current_state,
    is_current,
    lock_path,
    meta_last_key,
    read_state_meta,
    save_state,
    state_path,
)

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


def fingerprint(cfg: Config) -> dict:
    """The settings a state depends on; a state fitted with others must be refitted, not silently reused."""
    return {
        "monitor": cfg.monitor.model_dump(mode="json", exclude=set(REPORT_ONLY)),
        "index": cfg.index.name,
        "history": cfg.history.model_dump(mode="json"),
        "area": cfg.area.model_dump(mode="json"),
    }


def report_settings(cfg: Config) -> str:
    """What a tile's report depends on besides its state's data: the fingerprint's settings and the report-only ones.

    Published as the item property `nrt:settings`: a state refitted with other settings (or a changed
    `high_confidence`) is published again even when its data time is the one already published.
    """
    settings = {**fingerprint(cfg), "monitor": cfg.monitor.model_dump(mode="json")}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def area_grid(cfg: Config) -> AreaGrid:
    """The whole area as one grid, for mosaics."""
    tiles = area_tiles(cfg.area)
    width = max(t.col * cfg.area.tile_size + t.width for t in tiles)
    height = max(t.row * cfg.area.tile_size + t.height for t in tiles)
    return AreaGrid(crs=tiles[0].crs, transform=tiles[0].transform, width=width, height=height)


def read_forest_mask(cfg: Config, tile: Tile) -> np.ndarray:
    """1 where the tile should be monitored: the forest mask warped onto the tile grid, or all ones."""
    if cfg.forest_mask.path is None:
        return np.ones((tile.height, tile.width), dtype=np.uint8)
    out = np.zeros((tile.height, tile.width), dtype=np.int32)
    try:
        with rasterio.open(cfg.forest_mask.path) as src, warnings.catch_warnings():
            # rasterio may warn while it sets up the warp's in-memory destination, before it gives it our
            # transform: noise in logs. Silenced for this call only, not for the process.
            warnings.filterwarnings("ignore", "Dataset has no geotransform", NotGeoreferencedWarning, "rasterio")
            reproject(
                rasterio.band(src, 1),
                out,
                dst_transform=tile.transform,
                dst_crs=tile.crs,
                dst_nodata=-1,
                resampling=Resampling.nearest,
            )
    except rasterio.errors.RasterioIOError as exc:
        raise ConfigError(f"forest_mask.path {cfg.forest_mask.path} cannot be read: {exc}") from exc
    return np.isin(out, cfg.forest_mask.forest_values).astype(np.uint8)


def one_blas_thread() -> threadpool_limits:
    """BLAS on one thread while a tile runs: our threads (numba, reads, row blocks) use the cores already.

    OpenBLAS's own pool otherwise wakes for nrt's small matrix products and its idle threads spin, taking the core
    the reads need (a 1000 px fit took 27 s instead of 17 s). nrt's docs give the same advice for its fits.
    """
    return threadpool_limits(limits=1, user_api="blas")


def _history_end(cfg: Config) -> dt.datetime:
    """The end of the history period: the whole last day is included."""
    return dt.datetime.combine(cfg.history.end, dt.time.max, tzinfo=dt.UTC)


def _fields(tile: Tile, exc: Exception) -> dict[str, str | None]:
    """Log fields of a tile's failure: the tile, the acquisition where known, the cause."""
    return {
        "tile": tile.id,
        "acquisition": getattr(exc, "acquisition", None),
        "cause": getattr(exc, "cause", None) or str(exc),
    }


class Pipeline:
    """Runs fit and updates for the configured area; one instance per process."""

    def __init__(
        self, cfg: Config, source: ImagerySource | None = None, executor: parallel.DaskExecutor | None = None
    ) -> None:
        self.cfg = cfg
        # Where runs go when compute asks for dask (compute.executor); the process's own one unless given.
        self.executor = executor or parallel.default_executor()
        # dask workers build their own source from the config: a source given here stays in this process.
        self.own_source = source is None
        self.source = source or source_from_config(cfg.source)
        self.tiles = area_tiles(cfg.area)
        self.publisher = Publisher(cfg.output.stac_dir, area_grid(cfg), title=cfg.output.collection_title)
        self._settings_of_items: dict[str, str | None] = {}  # published item id -> its nrt:settings

    def tile_state_path(self, tile: Tile) -> Path:
        """The state file of a tile."""
        return state_path(self.cfg.output.state_dir, tile.id)

    def _lock(self, tile: Tile) -> Path:
        return lock_path(self.cfg.output.state_dir, tile.id)

    # -- fit -------------------------------------------------------------------------------------------

    def fit_tile(self, tile: Tile) -> TileState:
        """Fit a tile's monitor on the history period and save its state (replacing any previous one)."""
        with one_blas_thread():
            return self._fit_tile(tile)

    def _fit_tile(self, tile: Tile) -> TileState:
        start = dt.datetime.combine(self.cfg.history.start, dt.time.min, tzinfo=dt.UTC)
        items = self.source.search(tile.bounds_4326, start, _history_end(self.cfg))
        if not items:
            raise nothing_found(self.cfg.source, f"tile {tile.id}", tile.bounds_4326, start, _history_end(self.cfg))
        self.cfg.output.state_dir.mkdir(parents=True, exist_ok=True)
        # The tile's lock for the whole fit: its series chunk and state are this tile's alone meanwhile.
        with file_lock(self._lock(tile)):
            screening = getattr(self.cfg.monitor, "screen_outliers", "none") == "CCDC_RIRLS"
            forest = read_forest_mask(self.cfg, tile)
            monitoring_start = self.cfg.history.end + dt.timedelta(days=1)
            # Row blocks bound memory by the block, not by the tile x the history's length: nrt fits per pixel.
            # A load reads several fit blocks' rows at once: each load opens every asset again.
            blocks, series = [], None
            dates = len(group_acquisitions(items, tile))
            clear = np.zeros(dates, dtype=bool)  # the dates with a clear pixel somewhere in the tile
            fit_rows = block_rows(self.cfg.compute, tile, dates)
            for top, bottom in row_blocks(tile.height, load_rows(self.cfg.compute, tile, dates)):
                part = tile_rows(tile, top, bottom)
                history, bands = load_index_and_bands(items, part, self.cfg, SCREENING_BANDS if screening else ())
                clear[: history.sizes["time"]] |= np.isfinite(history.values).any(axis=(1, 2))
                for start, stop in row_blocks(bottom - top, fit_rows):
                    rows = {"y": slice(start, stop)}
                    fitted = fit_monitor(
                        self.cfg.monitor,
                        history.isel(rows),
                        forest[top + start : top + stop],
                        monitoring_start,
                        {role: band.isel(rows) for role, band in bands.items()},
                        threads=self.cfg.compute.tile_threads(),
                    )
                    blocks.append(fitted)
                keys = [acquisition_key(t) for t in history.time.values]  # the same dates in every block
                # The plot's observations go to disk block by block too.
                series = series or series_writer(tile, keys, self.cfg)
                series.write(top, history.values)
                del history, bands  # before the next block's load, so two blocks never live at once
            monitor = join_blocks(blocks)
            chunk = series.close()  # closed even when nothing could be fitted: no temp file is left behind
            if forest.any() and (monitor.empty or not (monitor.monitor.mask == 1).any()):
                raise HistoryTooShortError(
                    f"tile {tile.id}: history {self.cfg.history.start}..{self.cfg.history.end} too short to fit any "
                    f"pixel: {int(clear.sum())} clear acquisition(s) found of {len(keys)}; lengthen the history period"
                )
            note_series(monitor, chunk, self.cfg)  # published before the state commits
            state = TileState(
                tile_id=tile.id,
                crs=tile.crs,
                transform=tile.transform,
                monitor=monitor,
                fingerprint=fingerprint(self.cfg),
                history_acquisitions=len(keys),
                last_history=keys[-1] if keys else None,
            )
            save_state(state, self.tile_state_path(tile), generations=self.cfg.output.state_generations)
        monitored = int((monitor.monitor.mask == 1).sum())
        log.info(
            "tile %s: fitted %s on %d acquisitions, %d of %d pixels monitored",
            tile.id,
            type(monitor.monitor).__name__,
            len(keys),
            monitored,
            tile.width * tile.height,
        )
        return state

    # -- updates ---------------------------------------------------------------------------------------

    def update_tile(
        self, tile: Tile, until: dt.datetime, progress: Progress | None = None, known: TileState | None = None
    ) -> TileOutcome:
        """Absorb every acquisition after the state's last one up to `until`, each exactly once.

        `known` is the state this process has just saved for the tile (its fit's): not read again if the file is
        still the one saved (see current_state).
        """
        with one_blas_thread():
            return self._update_tile(tile, until, progress, known)

    def _update_tile(
        self, tile: Tile, until: dt.datetime, progress: Progress | None, known: TileState | None
    ) -> TileOutcome:
        outcome = TileOutcome(tile.id)
        with file_lock(self._lock(tile)):
            generations = self.cfg.output.state_generations
            if generations > 0:
                # A run killed between a save and its pruning left one generation too many: a tile with nothing
                # new to absorb would keep it for ever (and a lowered setting would never take effect).
                backups.prune(self.tile_state_path(tile), generations)
            state = current_state(self.tile_state_path(tile), known)
            if state.fingerprint != fingerprint(self.cfg):
                raise StateError(
                    f"tile {tile.id}: state was fitted with other settings (monitor, index, history or area); "
                    "run `nrt-alerts fit` again"
                )
            items = self.source.search(tile.bounds_4326, _history_end(self.cfg), utc(until))
            outcome.state = state if state is known else None  # a state loaded here is of no use to the caller
            outcome.unreadable = [str(bad) for bad in unreadable_in(items)]
            if not items and not outcome.unreadable:
                return outcome
            seen = set(state.absorbed)
            last = state.last_key or ""
            # Absorbed acquisitions are not read again; late ones are set apart unread (docs/faults.md).
            pending = pending_items(items, tile, seen, last)
            outcome.skipped_late.extend(acq.key for acq in pending.late)
            held = before_unreadable(pending, unreadable_in(items), tile, last)  # an unreadable item stops it there
            failure = None
            # The rest streams through in batches of dates: memory follows the tile, not the acquisitions.
            for batch in batches(pending.todo, self.cfg.compute.batch_acquisitions):
                try:
                    data = load_new_index(batch, tile, self.cfg)
                except AcquisitionError as exc:
                    # Absorb what precedes the unreadable acquisition; the next run starts again from it.
                    data, failure = exc.loaded, exc
                absorbed, arrays = [], []
                for i, time in enumerate(data.time.values if data is not None else []):
                    key = acquisition_key(time)
                    if key in seen:
                        continue
                    if key <= last:
                        # Applying an older date after a newer one would corrupt the monitor's process: skip it.
                        outcome.skipped_late.append(key)
                        continue
                    arrays.append((data.isel(time=i).values, dt.datetime.fromisoformat(key)))
                    absorbed.append(key)
                    last = key
                # Row blocks of the tile absorb the batch side by side, one per thread.
                state.monitor = absorb_all(state.monitor, arrays, self.cfg.compute.tile_threads())
                del arrays
                if progress and absorbed:
                    progress(len(absorbed))
                if absorbed:  # the plot's observations of this batch, published before the state commits
                    record_series(state.monitor, tile, data, absorbed, self.cfg)
                    state.absorbed.extend(absorbed)
                    outcome.absorbed.extend(absorbed)
                del data
                if failure is not None:
                    break
            failure = failure or held
            for late in pending.late:
                log.warning(
                    "tile %s: acquisition %s (item %s) not absorbed: it arrived after the newer %s was absorbed",
                    tile.id,
                    late.key,
                    late.ids,
                    state.last_key,
                    extra={"tile": tile.id, "acquisition": late.key, "cause": "late item"},
                )
            if outcome.absorbed:
                save_state(state, self.tile_state_path(tile), generations=self.cfg.output.state_generations)
                outcome.state = state
                log.info(
                    "tile %s: absorbed %d acquisition(s) %s .. %s",
                    tile.id,
                    len(outcome.absorbed),
                    outcome.absorbed[0],
                    outcome.absorbed[-1],
                )
            if failure is not None:
                outcome.error = str(failure)
                log.error(
                    "%s; %d acquisition(s) before it absorbed, the next run retries it",
                    failure,
                    len(outcome.absorbed),
                    extra={"tile": tile.id, "acquisition": failure.acquisition, "cause": failure.cause},
                )
        return outcome

    def report(self, state: TileState) -> TileReport:
        """The tile's current alert layers as a publishable report."""
        return TileReport(
            tile_id=state.tile_id,
            datetime=state.last_time or dt.datetime.now(dt.UTC),
            crs=state.crs,
            transform=state.transform,
            layers=report_layers(state.monitor, self.cfg.monitor),
            properties={
                "nrt:algorithm": type(state.monitor.monitor).__name__,
                "nrt:index": self.cfg.index.name,
                "nrt:history_acquisitions": state.history_acquisitions,
                "nrt:monitored_acquisitions": len(state.absorbed),
                "nrt:settings": report_settings(self.cfg),
                "start_datetime": f"{self.cfg.history.start.isoformat()}T00:00:00Z",
                "end_datetime": (state.last_time or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        )

    def unpublished(self, tiles: list[Tile]) -> list[Tile]:
        """Tiles whose state is newer than their latest published report (also catches a crash before publishing)."""
        return list(self._unpublished_times(tiles))

    def _unpublished_times(self, tiles: list[Tile], known: TileState | None = None) -> dict[Tile, dt.datetime]:
        """The tiles whose latest published item does not show their state, each with its state's data time.

        A state differs from its item when it is newer (an update), older (refitted up to an earlier date) or made
        with other settings at the same data time (a refit). Decided from the states' metadata alone (or the
        `known` state of its tile, if still current) and the items' settings: arrays are read only for a report.
        """
        layout = CatalogLayout(self.cfg.output.stac_dir)
        latest = read_index(layout).latest
        items = dict(latest.items) if latest else {}
        settings_now = report_settings(self.cfg)
        stale = {}
        for tile in tiles:
            path = self.tile_state_path(tile)
            if known is not None and known.tile_id == tile.id and is_current(path, known):
                settings, key = known.fingerprint, known.last_key
            else:
                try:
                    meta = read_state_meta(path)
                except StateError:
                    continue
                settings, key = meta["fingerprint"], meta_last_key(meta)
            if settings != fingerprint(self.cfg):
                continue  # fitted with other settings: its report is not this configuration's to publish
            when = dt.datetime.fromisoformat(key).replace(tzinfo=dt.UTC) if key else None
            if when is None:
                continue
            item_id = items.get(tile.id)
            if (
                item_id is None
                or item_data_time(tile.id, item_id) != when
                or self._item_settings(layout, item_id) not in (None, settings_now)
            ):
                stale[tile] = when
        return stale

    def _item_settings(self, layout: CatalogLayout, item_id: str) -> str | None:
        """A published item's `nrt:settings` (None for items published before it existed); items never change."""
        if item_id not in self._settings_of_items:
            try:
                item = json.loads(layout.item_path(item_id).read_text(encoding="utf-8"))
                self._settings_of_items[item_id] = item["properties"].get("nrt:settings")
            except (OSError, ValueError, KeyError):
                return None  # unreadable: judged by its data time alone
        return self._settings_of_items[item_id]

    def stage(self, tile: Tile, known: TileState | None = None) -> StagedItem | None:
        """Write the tile's item now if its state is unpublished, so that the run's publication only names it.

        Called in the tile's thread as soon as its work is done: finished tiles' items are written while the
        others still compute, instead of all at the end. A failure here only leaves the item to publish().
        Holds the tile's lock: another process staging the same tile's item would clear this one's temp files
        as leftovers of a killed writer (the publication lock is shared between stagers).
        """
        try:
            with file_lock(self._lock(tile)):
                if not self._unpublished_times([tile], known):
                    return None
                report = self._stored_report(tile, known)
                if report is None:
                    return None
                with self.publisher.lock(shared=True):  # each tile its own item: staged side by side
                    return self.publisher.stage_locked(report)
        except (NrtAlertsError, PublishError, OSError) as exc:
            log.warning("tile %s: item not written ahead, the publication writes it: %s", tile.id, exc)
            return None

    def publish(self, tiles: list[Tile], staged: dict[str, StagedItem] | None = None) -> Publication | None:
        """Publish a report for every tile whose state is newer than its published one.

        A tile's `staged` item is published as written if it still shows the tile's current state; else its
        report is made again from the state.
        """
        staged = staged or {}
        try:
            return self._publish(tiles, staged)
        except Exception as exc:
            full = disk_full(exc, self.cfg.output.stac_dir)
            if full is None:
                raise
            raise full from exc  # already published versions stay as they were: the pointer moves last

    def _publish(self, tiles: list[Tile], staged: dict[str, StagedItem]) -> Publication | None:
        """publish() under the publication lock."""
        # Decide under the lock, so two runs finishing together do not publish the same states twice.
        with self.publisher.lock():
            stale = self._unpublished_times(tiles)
            if not stale:
                return None
            latest = read_index(CatalogLayout(self.cfg.output.stac_dir)).latest
            for tile, when in stale.items():
                item_id = latest.items.get(tile.id) if latest else None
                if item_id is not None and item_data_time(tile.id, item_id) > when:
                    log.warning(
                        "tile %s: its state (data as of %s) is older than its published item %s: publishing the "
                        "state's alerts (a refit to an earlier date); the next updates catch up",
                        tile.id,
                        when.isoformat(),
                        item_id,
                    )
            # One state in memory per publishing thread: the reports are made as their items are written.
            reports: list[StagedItem | Callable[[], TileReport | None]] = []
            for tile, when in stale.items():
                item = staged.get(tile.id)
                if item is not None and item.datetime == when and self.publisher.staged_intact(item):
                    reports.append(item)
                else:
                    reports.append(functools.partial(self._stored_report, tile))
            threads = self.cfg.compute.tile_plan(len(stale))[0]
            return self.publisher.publish_locked(reports, threads=threads)

    def _stored_report(self, tile: Tile, known: TileState | None = None) -> TileReport | None:
        """The report of the tile's saved state; None (logged) if its arrays are damaged: the others still publish."""
        try:
            return self.report(current_state(self.tile_state_path(tile), known))
        except StateError as exc:  # readable metadata, damaged arrays
            log.error("tile %s: not published: %s", tile.id, exc)
            return None

    def _on_dask(self) -> bool:
        """Whether this run goes to the dask cluster (compute.executor; never with a source given in code)."""
        if not self.executor.wanted(self.cfg):
            return False
        if not self.own_source:
            log.warning("compute: a source given in code cannot be sent to dask workers; running tiles serially")
            return False
        return True

    def run_fit(
        self, tiles: list[Tile] | None = None, progress: Progress | None = None, until: dt.datetime | None = None
    ) -> RunResult:
        """Fit every tile (a failing tile is reported, the others go on), then publish.

        With `until`, each tile is fast-forwarded to it right after its fit, and published once at the end.
        """
        tiles = tiles or self.tiles
        require_free(self.cfg.output.dir, self.cfg.output.min_free_mb)
        if self._on_dask():
            task, args = (parallel.fit_task, ()) if until is None else (parallel.fit_forward_task, (until,))
            return self.executor.run_tiles(self, tiles, task, *args, progress=lambda _: progress and progress(1))

        def fit(pipeline: Pipeline, tile: Tile) -> TileOutcome:
            try:
                fitted = pipeline.fit_tile(tile)
            except Exception as exc:
                failure = pipeline.explained(exc)
                if failure is None:
                    raise
                log.error("tile %s: fit failed: %s", tile.id, failure, extra=_fields(tile, failure))
                return TileOutcome(tile.id, error=str(failure))
            if until is None:
                return TileOutcome(tile.id, state=fitted)
            return pipeline.guarded_update(tile, until, known=fitted)

        outcomes, staged = self._run_here(tiles, fit, lambda _: progress and progress(1))
        return RunResult(outcomes, self.publish(tiles, staged))

    def run_update(
        self, until: dt.datetime, tiles: list[Tile] | None = None, progress: Progress | None = None
    ) -> RunResult:
        """Bring every tile up to `until` (a failing tile is reported, the others go on), then publish."""
        tiles = tiles or self.tiles
        require_free(self.cfg.output.dir, self.cfg.output.min_free_mb)
        if self._on_dask():
            # Progress comes per tile from a cluster: the bar advances by the tile's acquisitions.
            return self.executor.run_tiles(
                self,
                tiles,
                parallel.update_task,
                until,
                progress=lambda outcome: progress and progress(len(outcome.absorbed)),
            )
        outcomes, staged = self._run_here(tiles, lambda pipeline, tile: pipeline.guarded_update(tile, until, progress))
        return RunResult(outcomes, self.publish(tiles, staged))

    def guarded_update(
        self, tile: Tile, until: dt.datetime, progress: Progress | None = None, known: TileState | None = None
    ) -> TileOutcome:
        """update_tile, with a failure reported as the tile's outcome (and logged) instead of raised."""
        try:
            return self.update_tile(tile, until, progress, known)
        except Exception as exc:
            failure = self.explained(exc)
            if failure is not None:
                log.error("tile %s: update failed: %s", tile.id, failure, extra=_fields(tile, failure))
                return TileOutcome(tile.id, error=str(failure))
            # A bug or an unforeseen library error in one tile must not stop the others.
            log.exception("tile %s: update failed unexpectedly: %r", tile.id, exc, extra={"tile": tile.id})
            return TileOutcome(tile.id, error=f"unexpected {type(exc).__name__}: {exc}")

    def prune(self, *, dry_run: bool = False) -> PruneReport:
        """Apply the output's retention policy to the published catalog (see catalog.retention)."""
        out = self.cfg.output
        policy = RetentionPolicy(out.keep_all_days, out.keep_weekly_days, out.keep_monthly)
        with self.publisher.lock():
            report = prune_locked(self.publisher.layout, policy, dry_run=dry_run)
        if report.removed and not dry_run:
            log.info(
                "pruned %d publication(s) (%d kept): %d file(s), %.1f MB",
                len(report.removed),
                len(report.kept),
                report.files,
                report.bytes / 1e6,
            )
        return report

    def explained(self, exc: Exception) -> Exception | None:
        """The failure as a user should read it: a full disk as such, our own errors as they are; else None."""
        full = disk_full(exc, self.cfg.output.dir)
        if full is not None:
            return full
        return exc if isinstance(exc, NrtAlertsError) else None

    def _run_here(
        self,
        tiles: list[Tile],
        work: Callable[[Pipeline, Tile], TileOutcome],
        done: Callable[[TileOutcome], None] | None = None,
    ) -> tuple[list[TileOutcome], dict[str, StagedItem]]:
        """Run work(pipeline, tile) for every tile in this process; return the outcomes and the items staged.

        compute.tile_plan's tiles run side by side; each tile's item is written as soon as its work is done.
        """
        side_by_side, threads = self.cfg.compute.tile_plan(len(tiles))
        pipeline = self._on_threads(threads)
        staged: dict[str, StagedItem] = {}

        def work_and_stage(tile: Tile) -> TileOutcome:
            outcome = work(pipeline, tile)
            item = pipeline.stage(tile, outcome.state)
            outcome.state = None  # one state per running tile in memory, not one per tile of the run
            if item is not None:
                staged[tile.id] = item
            return outcome

        with warming_up(self.cfg):
            if side_by_side == 1:
                outcomes = []
                for tile in tiles:
                    outcomes.append(work_and_stage(tile))
                    if done:
                        done(outcomes[-1])
                return outcomes, staged
            with aligned.shared_datasets(), ThreadPoolExecutor(side_by_side, thread_name_prefix="nrt-tile") as pool:
                futures = {pool.submit(work_and_stage, tile): tile for tile in tiles}
                for future in as_completed(futures):
                    if done:
                        done(future.result())
                return [future.result() for future in futures], staged

    def _on_threads(self, threads: int) -> Pipeline:
        """A copy running each tile on `threads` threads, sharing the source and the publisher."""
        if self.cfg.compute.tile_threads() == threads:
            return self
        pipeline = copy.copy(self)
        pipeline.cfg = self.cfg.model_copy(update={"compute": self.cfg.compute.model_copy(update={"threads": threads})})
        return pipeline
