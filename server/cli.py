"""The `nrt-alerts` command: the composition root that wires the scheduler into the server process."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import dask

from catalog.errors import CatalogError
from catalog.runs import RunLog
from scheduler import parallel
from scheduler.backups import generation_paths
from scheduler.clock import clock_from_config, utc
from scheduler.config import Config, load_config
from scheduler.demo.spec import SCENARIOS, SUITES
from scheduler.errors import ConfigError, NotFittedError, NrtAlertsError, StateError
from scheduler.grid import Tile, select_tiles
from scheduler.jobs import record_run
from scheduler.logs import setup_logging
from scheduler.pipeline import Pipeline, RunResult
from scheduler.sources import area_bbox_4326, nothing_found

if TYPE_CHECKING:
    from server.settings import ServerSettings

log = logging.getLogger("nrt_alerts")

DEFAULT_CONFIG = "nrt-alerts.toml"


def _setup_logging(args: argparse.Namespace) -> str:
    """One line per event with an ISO timestamp: --log-format, else the config's [logging] format, else text."""
    fmt = args.log_format or os.environ.get("NRT_ALERTS_LOGGING__FORMAT")
    if fmt is None and getattr(args, "config", None):
        with contextlib.suppress(NrtAlertsError):  # a bad config is reported by the command itself
            fmt = load_config(args.config).logging.format
    fmt = fmt if fmt in ("text", "json") else "text"
    setup_logging(args.log_level, fmt)
    # dask.distributed sets its own loggers' levels when it is imported (lazily, by scheduler/parallel.py).
    dask.config.set({"logging": {"distributed": "warning"}})
    return fmt


def _demo_size(value: str) -> int:
    """--size of the demo: below 64 px its twelve clear-cuts do not fit in the forest."""
    try:
        size = int(value)
    except ValueError:
        raise ConfigError(f"--size {value!r} is not a whole number of pixels") from None
    if not 64 <= size <= 4096:
        raise ConfigError(f"--size {size} is outside 64-4096 px (the demo plants 12 clear-cuts)")
    return size


def _parse_until(value: str | None) -> dt.datetime | None:
    """--until as an aware datetime (a date means the end of that day)."""
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"--until {value!r} is not an ISO date or datetime") from exc
    if len(value) <= 10:
        parsed = dt.datetime.combine(parsed.date(), dt.time.max)
    return utc(parsed)


@contextlib.contextmanager
def _progress(total: int | None, desc: str, unit: str) -> Iterator:
    """A tqdm bar on a terminal; silent otherwise so logs stay readable."""
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit=unit, disable=not sys.stderr.isatty(), leave=False) as bar:
        yield bar.update


def _summarise(kind: str, result: RunResult) -> int:
    """Log the outcome; exit status 1 if any tile failed."""
    version = result.publication.id if result.publication else "nothing new"
    log.info(
        "%s done: %d tile(s), %d acquisition(s) absorbed, %d failed; published: %s",
        kind,
        len(result.tiles),
        result.acquisitions,
        len(result.failed),
        version,
    )
    return 1 if result.failed else 0


def _record(cfg: Config, started: dt.datetime, until: dt.datetime, result: RunResult) -> None:
    """A CLI run that absorbed up to `until` goes into the run history, as the scheduler's runs do."""
    record_run(RunLog(cfg.output.run_log), started, until, "partial" if result.failed else "ok", result)


def _require_history(pipeline: Pipeline, tiles: list[Tile]) -> None:
    """Stop a fit at once (exit 3, one line) when the source has nothing over its tiles in the history period."""
    cfg = pipeline.cfg
    start = dt.datetime.combine(cfg.history.start, dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(cfg.history.end, dt.time.max, tzinfo=dt.UTC)
    bbox = area_bbox_4326([tile.bounds_4326 for tile in tiles])
    if not pipeline.source.search(bbox, start, end):
        raise nothing_found(cfg.source, f"{len(tiles)} tile(s)", bbox, start, end)


def cmd_check_source(args: argparse.Namespace) -> int:
    """Search the source over the area in the history period, read one acquisition, print what was found."""
    from scheduler.checks import check_source

    cfg = load_config(args.config)
    pipeline = Pipeline(cfg)
    tiles = select_tiles(pipeline.tiles, args.tile)
    start = dt.datetime.combine(cfg.history.start, dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(cfg.history.end, dt.time.max, tzinfo=dt.UTC)
    report = check_source(cfg, pipeline.source, tiles, start, end)
    sys.stdout.write("".join(f"{line}\n" for line in report.lines))
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    """Fit monitors on the history period (with --forward, fast-forward each tile right after its fit)."""
    if args.until and not args.forward:
        raise ConfigError("fit: --until goes with --forward (fit, then fast-forward each tile up to it)")
    cfg = load_config(args.config)
    pipeline = Pipeline(cfg)
    tiles = select_tiles(pipeline.tiles, args.tile)
    until = (_parse_until(args.until) or clock_from_config(cfg.clock).now()) if args.forward else None
    _require_history(pipeline, tiles)
    started = dt.datetime.now(dt.UTC)
    with _progress(len(tiles), "fit", "tile") as bar:
        result = pipeline.run_fit(tiles, progress=bar, until=until)
    if until is not None:
        _record(cfg, started, until, result)
    return _summarise("fit", result)


def _run_update(args: argparse.Namespace, kind: str) -> int:
    """Shared body of forward and update: absorb everything up to --until (default: the clock's now)."""
    cfg = load_config(args.config)
    if args.skip_acquisition:  # the operator gives up on an acquisition that stays unreadable (docs/faults.md)
        skip = [*cfg.source.skip_acquisitions, *args.skip_acquisition]
        cfg = cfg.model_copy(update={"source": cfg.source.model_copy(update={"skip_acquisitions": skip})})
    pipeline = Pipeline(cfg)
    tiles = select_tiles(pipeline.tiles, args.tile)
    until = _parse_until(args.until) or clock_from_config(cfg.clock).now()
    if not any(pipeline.tile_state_path(t).exists() or generation_paths(pipeline.tile_state_path(t)) for t in tiles):
        # Nothing fitted at all is an operator mistake, not a per-tile failure: say so once.
        raise NotFittedError(f"no fitted monitor state in {cfg.output.state_dir}: run `nrt-alerts fit` first")
    started = dt.datetime.now(dt.UTC)
    try:
        with _progress(None, kind, "acq") as bar:
            result = pipeline.run_update(until, tiles, progress=bar)
    except (NrtAlertsError, CatalogError) as exc:
        # The run failed as a whole (e.g. a full disk): /status and `nrt-alerts status` must show it.
        record_run(RunLog(cfg.output.run_log), started, until, "failed", error=str(exc))
        raise
    _record(cfg, started, until, result)
    if result.publication is not None and cfg.output.prune:
        pipeline.prune()
    return _summarise(kind, result)


def cmd_prune(args: argparse.Namespace) -> int:
    """Remove the publications the retention policy ([output] keep_*) drops, and the files only they named."""
    cfg = load_config(args.config)
    report = Pipeline(cfg).prune(dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    sys.stdout.write(
        f"{verb} {len(report.removed)} publication(s), {report.files} file(s), {report.bytes / 1e6:.1f} MB; "
        f"{len(report.kept)} kept\n"
    )
    for version in report.removed:
        sys.stdout.write(f"  {version}\n")
    return 0


def cmd_forward(args: argparse.Namespace) -> int:
    """Fast-forward fitted monitors through every acquisition since the history."""
    return _run_update(args, "forward")


def cmd_update(args: argparse.Namespace) -> int:
    """Absorb new acquisitions once (what the scheduler does every interval)."""
    return _run_update(args, "update")


def server_settings(cfg: Config, *, healthz_max_age_seconds: float | None) -> ServerSettings:
    """The server's settings from the deployment config: every [server] key both know, plus the output paths."""
    from server.settings import ServerSettings

    # [server] is the canonical home; a key ServerSettings also has is handed over as is, not copied by name.
    shared = cfg.server.model_dump(include=set(ServerSettings.model_fields))
    shared["healthz_max_age_seconds"] = healthz_max_age_seconds  # [server]'s value, or derived from the schedule
    return ServerSettings(**shared, stac_dir=cfg.output.stac_dir, run_log=cfg.output.run_log)


def serve(cfg: Config, *, host: str, port: int, scheduler: bool) -> int:
    """Serve the published catalog; run the update job in the same process."""
    import uvicorn

    from scheduler.jobs import UpdateJob
    from server.app import create_app
    from server.auth import AdminTokenError
    from server.graceful import GracefulServer
    from server.routers.admin import AdminActions

    runs_scheduler = scheduler and cfg.schedule.enabled
    max_age = cfg.server.healthz_max_age_seconds
    if max_age is None and runs_scheduler:
        max_age = 3 * cfg.schedule.interval_seconds + cfg.schedule.misfire_grace_seconds
    settings = server_settings(cfg, healthz_max_age_seconds=max_age)
    services = []
    actions = None
    if runs_scheduler:
        job = UpdateJob(Pipeline(cfg), clock_from_config(cfg.clock), cfg.schedule)
        services.append(job.running)
        actions = AdminActions(trigger_run=job.trigger_now)
    try:
        app = create_app(settings, services, actions)
    except AdminTokenError as exc:
        raise ConfigError(str(exc)) from exc
    log.info("serving http://%s:%d/ (map), /layers, /stac/catalog.json", host, port)
    # One worker: the scheduler lives in this process (N workers would run every job N times).
    # proxy_headers=False: the app honours X-Forwarded-* itself, from server.trusted_proxies only.
    # log_config=None: uvicorn's lines go through our handlers (text or JSON), its access lines at INFO.
    config = uvicorn.Config(
        app, host=host, port=port, proxy_headers=False, log_config=None, access_log=cfg.server.access_log
    )
    logging.getLogger("uvicorn").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.INFO if cfg.server.access_log else logging.WARNING)
    GracefulServer(config).run()
    log.info("stopped")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve tiles, the STAC catalog and the map, with the scheduler running."""
    cfg = load_config(args.config)
    return serve(
        cfg, host=args.host or cfg.server.host, port=args.port or cfg.server.port, scheduler=not args.no_scheduler
    )


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate the embedded demo, fit, fast-forward, then serve with the scheduler running."""
    from scheduler.demo_setup import prepare_demo

    folder = args.dir or ("demo-data" if args.scenario == "clear-cut" else f"demo-data-{args.scenario}")
    cfg = prepare_demo(Path(folder), size=_demo_size(args.size), scenario=args.scenario)
    pipeline = Pipeline(cfg)
    until = clock_from_config(cfg.clock).now()
    if not all(pipeline.tile_state_path(t).exists() for t in pipeline.tiles):
        log.info(
            "fitting %d tile(s) on the history %s .. %s, each then fast-forwarded to the demo clock's now, %s",
            len(pipeline.tiles),
            cfg.history.start,
            cfg.history.end,
            until.date(),
        )
        with _progress(len(pipeline.tiles), "fit", "tile") as bar:
            if _summarise("fit", pipeline.run_fit(progress=bar, until=until)):
                return 1
    else:
        log.info("fast-forwarding to the demo clock's now, %s", until.date())
        with _progress(None, "forward", "acq") as bar:
            if _summarise("forward", pipeline.run_update(until, progress=bar)):
                return 1
    if args.no_serve:
        return 0
    return serve(cfg, host=args.host, port=args.port, scheduler=True)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate the published alerts against a reference (raster, polygons or points) and write a report."""
    from scheduler.evaluation import evaluate, summary_line, write_report

    cfg = load_config(args.config)
    evaluation = evaluate(
        cfg,
        args.reference,
        version=args.version,
        include_provisional=args.include_provisional,
        tolerance_days=args.tolerance_days,
        disturbance_property=args.disturbance_property,
    )
    out = Path(args.out) if args.out else cfg.output.dir / "evaluation" / evaluation.version
    write_report(evaluation, out)
    log.info("%s; report in %s", summary_line(evaluation), out)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """Fit, update and evaluate once per monitor parameter set of a GRID.toml; rank the sets by F1."""
    from scheduler.evaluation import run_sweep

    cfg = load_config(args.config)
    until = _parse_until(args.until) or clock_from_config(cfg.clock).now()
    out = Path(args.out) if args.out else cfg.output.dir / "sweep"
    ranked = run_sweep(cfg, Path(args.reference), Path(args.grid), out, until)
    best = ranked[0]
    f1 = "n/a" if best.f1 is None else f"{best.f1:.3f}"
    log.info("sweep done: %d run(s), best %s (F1 %s); ranking in %s", len(ranked), best.name, f1, out / "sweep.md")
    return 1 if any(s.error for s in ranked) else 0


def cmd_status(args: argparse.Namespace) -> int:
    """Show the latest update runs; exit 1 when the newest one did not complete for every tile."""
    cfg = load_config(args.config)
    runs = RunLog(cfg.output.run_log).read()[-args.limit :]
    if not runs:
        sys.stdout.write(f"no update run recorded yet in {cfg.output.run_log}\n")
        return 0
    sys.stdout.write(f"{'finished':25} {'outcome':8} {'tiles':>5} {'acq':>4} {'version':18} error\n")
    for r in reversed(runs):
        unreadable = (
            f"{len(r.unreadable_items)} unreadable item(s): {r.unreadable_items[0]}" if r.unreadable_items else ""
        )
        note = "; ".join(part for part in (r.error, unreadable) if part)
        sys.stdout.write(
            f"{r.finished:25} {r.outcome:8} {r.tiles:5d} {r.acquisitions:4d} {r.version or '-':18} {note}\n"
        )
    return 0 if runs[-1].outcome in ("ok", "skipped") else 1


def cmd_restore(args: argparse.Namespace) -> int:
    """List a tile's kept state generations, or make one of them the current state again."""
    from catalog.locking import file_lock
    from scheduler.backups import restore_file
    from scheduler.state import generations, lock_path, state_path

    cfg = load_config(args.config)
    [tile] = select_tiles(Pipeline(cfg).tiles, [args.tile])
    path = state_path(cfg.output.state_dir, tile.id)
    with file_lock(lock_path(cfg.output.state_dir, tile.id)):
        found = generations(path)
        if args.list:
            sys.stdout.write(f"{'gen':>3} {'checksum':8} {'last acquisition':19} {'absorbed':>8} {'saved':25} file\n")
            for g in found:
                status = "ok" if g.ok else "BAD"
                last = g.last_key or "-"
                absorbed = len(g.meta["absorbed"]) if g.meta else 0
                saved = (g.meta or {}).get("updated") or "-"
                detail = "" if g.ok else f" ({g.problem})"
                sys.stdout.write(f"{g.number:3d} {status:8} {last:19} {absorbed:8d} {saved:25} {g.path}{detail}\n")
            return 0
        earlier = found[1:]
        if not earlier:
            raise StateError(f"tile {tile.id}: no earlier state generation is kept in {cfg.output.state_dir}")
        if args.generation is None:
            chosen = next((g for g in earlier if g.ok), None)
            if chosen is None:
                raise StateError(f"tile {tile.id}: no kept generation verifies: run `nrt-alerts fit --tile {tile.id}`")
        else:
            if not 1 <= args.generation <= len(earlier):
                raise StateError(f"tile {tile.id}: --generation must be 1..{len(earlier)} (see --list)")
            chosen = earlier[args.generation - 1]
            if not chosen.ok:
                raise StateError(f"tile {tile.id}: generation {chosen.number} {chosen.problem}; see --list")
        aside = restore_file(path, chosen.path)
    kept = f"; the replaced file is kept as {aside}" if aside else ""
    log.info(
        "tile %s: restored generation %d (last acquisition %s)%s; the next update absorbs what came after it",
        tile.id,
        chosen.number,
        chosen.last_key,
        kept,
    )
    return 0


def cmd_accuracy(args: argparse.Namespace) -> int:
    """Run every monitor on every demo scenario and regenerate the accuracy report (docs/accuracy.md)."""
    from scheduler.evaluation.matrix import write_accuracy_doc

    out = Path(args.out)
    cells = write_accuracy_doc(out, Path(args.work), workers=args.workers)
    failed = [c for c in cells if c.error]
    log.info("accuracy report: %d run(s), %d failed; written to %s", len(cells), len(failed), out)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog="nrt-alerts", description=__doc__)
    parser.add_argument(
        "--log-level",
        default=os.environ.get("NRT_ALERTS_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
    )
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="Log lines as text or JSON (default: [logging] format of the config, $NRT_ALERTS_LOGGING__FORMAT, text)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "-c",
            "--config",
            default=os.environ.get("NRT_ALERTS_CONFIG", DEFAULT_CONFIG),
            help=f"TOML config file (default: $NRT_ALERTS_CONFIG or {DEFAULT_CONFIG})",
        )
        return p

    p = with_config(sub.add_parser("fit", help=cmd_fit.__doc__))
    p.add_argument("--tile", action="append", help="Only this tile id (repeatable)")
    p.add_argument(
        "--forward", action="store_true", help="Fast-forward each tile right after its fit: one process, one publish"
    )
    p.add_argument("--until", help="With --forward: absorb acquisitions up to this ISO date/datetime (default: now)")
    p.set_defaults(func=cmd_fit)
    for name, func in (("forward", cmd_forward), ("update", cmd_update)):
        p = with_config(sub.add_parser(name, help=func.__doc__))
        p.add_argument("--until", help="Absorb acquisitions up to this ISO date/datetime (default: now)")
        p.add_argument("--tile", action="append", help="Only this tile id (repeatable)")
        p.add_argument(
            "--skip-acquisition",
            action="append",
            default=[],
            metavar="ID_OR_DATE",
            help="Never absorb this item id or day (YYYY-MM-DD), e.g. an asset that stays broken (repeatable)",
        )
        p.set_defaults(func=func)
    p = with_config(sub.add_parser("check-source", help=cmd_check_source.__doc__))
    p.add_argument("--tile", action="append", help="Search over this tile and read on it (repeatable; default: all)")
    p.set_defaults(func=cmd_check_source)
    p = with_config(sub.add_parser("serve", help=cmd_serve.__doc__))
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--no-scheduler", action="store_true", help="Serve only; run updates elsewhere")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("demo", help=cmd_demo.__doc__)
    p.add_argument("--dir", help="Where the demo archive and outputs go (default: demo-data[-<scenario>])")
    p.add_argument("--size", default="256", help="Demo area edge in pixels, 64-4096 (default: 256)")
    p.add_argument(
        "--scenario",
        default="clear-cut",
        choices=SCENARIOS + SUITES,
        help="What the demo plants (default: clear-cut; hard: every kind and nuisance, see docs/accuracy.md)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--no-serve", action="store_true", help="Prepare and fast-forward, then exit")
    p.set_defaults(func=cmd_demo)
    p = with_config(sub.add_parser("evaluate", help=cmd_evaluate.__doc__))
    p.add_argument("--reference", required=True, help="Disturbance-day raster, or GeoJSON polygons/points with dates")
    p.add_argument("--version", help="Publication to evaluate (default: latest)")
    p.add_argument("--out", help="Report folder (default: <output.dir>/evaluation/<version>)")
    p.add_argument("--include-provisional", action="store_true", help="Count provisional alerts as alerts")
    p.add_argument("--tolerance-days", type=int, default=0, help="Accept detections this many days early")
    p.add_argument(
        "--disturbance-property",
        help="GeoJSON property flagging disturbances, true/false (default: 'disturbance', else 'is_disturbance')",
    )
    p.set_defaults(func=cmd_evaluate)
    p = with_config(sub.add_parser("sweep", help=cmd_sweep.__doc__))
    p.add_argument("--reference", required=True, help="Reference file, as for evaluate")
    p.add_argument("--grid", required=True, help="TOML listing [[run]] tables of monitor parameters")
    p.add_argument("--out", help="Where each run's outputs and the ranking go (default: <output.dir>/sweep)")
    p.add_argument("--until", help="Absorb acquisitions up to this ISO date/datetime (default: now)")
    p.set_defaults(func=cmd_sweep)
    p = with_config(sub.add_parser("status", help=cmd_status.__doc__))
    p.add_argument("--limit", type=int, default=20, help="How many runs to show (default: 20)")
    p.set_defaults(func=cmd_status)
    p = with_config(sub.add_parser("prune", help=cmd_prune.__doc__))
    p.add_argument("--dry-run", action="store_true", help="Only list what would be removed")
    p.set_defaults(func=cmd_prune)
    p = with_config(sub.add_parser("restore", help=cmd_restore.__doc__))
    p.add_argument("--tile", required=True, help="The tile id, e.g. r000c000")
    p.add_argument("--generation", type=int, help="1 = the newest earlier state (default: the newest that verifies)")
    p.add_argument("--list", action="store_true", help="List the generations and their checksum status")
    p.set_defaults(func=cmd_restore)
    p = sub.add_parser("accuracy", help=cmd_accuracy.__doc__)
    p.add_argument("--out", default="docs/accuracy.md", help="The report (its JSON goes beside it)")
    p.add_argument("--work", default="accuracy-work", help="Where the scenario archives and runs go")
    p.add_argument("--workers", type=int, default=2, help="Runs in parallel (default: 2)")
    p.set_defaults(func=cmd_accuracy)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: user mistakes end with one readable line and a non-zero exit code."""
    args = build_parser().parse_args(argv)
    fmt = _setup_logging(args)

    def fail(exc: Exception, code: int) -> int:
        if fmt == "json":  # every stderr line stays parseable
            log.error("%s", exc, extra={"cause": str(exc)})
        else:
            print(f"nrt-alerts: error: {exc}", file=sys.stderr)
        return code

    try:
        return args.func(args)
    except NrtAlertsError as exc:
        return fail(exc, exc.exit_code)
    except CatalogError as exc:
        return fail(exc, 1)
    except KeyboardInterrupt:
        return 130
    finally:
        parallel.close()  # a LocalCluster lives as long as the command (serve: the scheduler's lifetime)


if __name__ == "__main__":
    sys.exit(main())
