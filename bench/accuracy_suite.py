"""Run every monitor with the project's defaults on the hard suite's test seeds; write JSON and a Markdown table.

    python bench/accuracy_suite.py --size 256 --seeds 101 102 --doc docs/accuracy.md   # docs/accuracy.md's lead
    python bench/accuracy_suite.py --tuning --size 128              # the tuning seeds (tune on these only)
    python bench/accuracy_suite.py --render --doc docs/accuracy.md  # re-render the saved results only
    python bench/accuracy_suite.py --ablate 1 --size 128 --monitors iqr ccdc   # which nuisance raises the alerts

Archives and runs are cached under --work; results go to --results/accuracy_suite.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from catalog import atomic  # noqa: E402
from scheduler.evaluation.suite import (  # noqa: E402
    ABLATIONS,
    MONITORS,
    TEST_SEEDS,
    TUNING_SEEDS,
    SuiteScore,
    render_section,
    render_table,
    run_ablation,
    run_suite,
    scores_json,
    splice_suite,
    summarise,
)

MAX_SIZE = 1024
MAX_SEEDS = 10


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the suite, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help=f"Archive edge in pixels, 64-{MAX_SIZE} (default 256)")
    parser.add_argument("--seeds", type=int, nargs="+", help="Seeds to run (default: every test seed)")
    parser.add_argument("--tuning", action="store_true", help="Run the tuning seeds instead of the test seeds")
    parser.add_argument("--monitors", nargs="+", default=list(MONITORS), choices=MONITORS)
    parser.add_argument("--workers", type=int, default=2, help="Runs in parallel (default 2)")
    parser.add_argument("--work", default="/tmp/nrt-suite", help="Archive and run cache")
    parser.add_argument("--results", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--doc", help="Also put the table first in this Markdown file (test seeds only)")
    parser.add_argument("--render", action="store_true", help="Only re-render the saved results (--results)")
    parser.add_argument(
        "--ablate", type=int, metavar="SEED", help="Instead: one nuisance off at a time on this tuning seed"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    split = TUNING_SEEDS if args.tuning else TEST_SEEDS
    seeds = tuple(args.seeds or split)
    if not 64 <= args.size <= MAX_SIZE or len(seeds) > MAX_SEEDS or not 1 <= args.workers <= 8:
        parser.error(f"--size must be 64-{MAX_SIZE}, at most {MAX_SEEDS} seeds, 1-8 workers")
    if stray := set(seeds) - set(split):
        parser.error(f"seeds {sorted(stray)} are not {'tuning' if args.tuning else 'test'} seeds {split}")
    if args.doc and args.tuning:
        parser.error("--doc reports test seeds only: tuning-seed numbers flatter the tuned monitors")
    out = Path(args.results)
    if args.ablate is not None:
        return ablate(args.ablate, args.size, tuple(args.monitors), Path(args.work), out, args.workers, parser)
    if args.render:
        # Re-render a finished run (e.g. with --doc) without running anything again.
        saved = json.loads((out / "accuracy_suite.json").read_text(encoding="utf-8"))
        scores = [SuiteScore(**run) for run in saved["runs"]]
        context = {key: saved[key] for key in ("generated", "split", "seeds", "size_px", "machine", "seconds")}
        monitors = [s["monitor"] for s in saved["summaries"]]
        if args.doc and context["split"] != "test":
            parser.error("--doc reports test seeds only, and the saved run is on tuning seeds")
    else:
        started = time.perf_counter()
        scores = run_suite(Path(args.work), seeds, args.size, tuple(args.monitors), args.workers)
        monitors = args.monitors
        context = {
            "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "split": "tuning" if args.tuning else "test",
            "seeds": list(seeds),
            "size_px": args.size,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()},
            "seconds": round(time.perf_counter() - started, 1),
        }
    summaries = [summarise(scores, m) for m in monitors]
    table = render_table(summaries)
    atomic.write_json(out / "accuracy_suite.json", scores_json(scores, summaries, **context))
    seeds_text = ", ".join(map(str, context["seeds"]))
    header = (
        f"Hard suite, {context['split']} seeds {seeds_text}, {context['size_px']} x {context['size_px']} px, "
        f"generated {context['generated']} in {context['seconds']} s.\n\n"
    )
    atomic.write_bytes(out / "accuracy_suite.md", (header + table + "\n").encode("utf-8"))
    print(header + table)
    if args.doc:
        load = ", ".join(f"{v:.1f}" for v in context["machine"]["load_avg"])
        note = (
            f"{context['seconds'] / 60:.0f} min on {context['machine']['cpus']} cores, load average {load} at the end"
        )
        section = render_section(
            summaries,
            seeds=tuple(context["seeds"]),
            size=context["size_px"],
            generated=context["generated"][:10],
            note=note,
        )
        doc = Path(args.doc)
        atomic.write_bytes(doc, splice_suite(doc.read_text(encoding="utf-8"), section).encode("utf-8"))
    return 0


def ablate(
    seed: int,
    size: int,
    monitors: tuple[str, ...],
    work: Path,
    out: Path,
    workers: int,
    parser: argparse.ArgumentParser,
) -> int:
    """Run the ablation on a tuning seed and write accuracy_suite_ablation.{json,md}."""
    if seed not in TUNING_SEEDS:
        parser.error(f"--ablate takes a tuning seed {TUNING_SEEDS}: test seeds are for reporting only")
    started = time.perf_counter()
    scores = run_ablation(work, seed, size, monitors, workers)
    rows = [f"{m} / {v}" for v in ABLATIONS for m in monitors]
    summaries = [summarise(scores, row) for row in rows]
    context = {
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "split": "tuning",
        "seeds": [seed],
        "size_px": size,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()},
        "seconds": round(time.perf_counter() - started, 1),
    }
    atomic.write_json(out / "accuracy_suite_ablation.json", scores_json(scores, summaries, **context))
    text = (
        f"Hard suite with one nuisance off at a time: tuning seed {seed}, {size} x {size} px, generated "
        f"{context['generated']} in {context['seconds']} s (`python bench/accuracy_suite.py --ablate {seed} --size "
        f"{size} --monitors {' '.join(monitors)}`). Smoke and the drought stay on in every row.\n\n"
        f"{render_table(summaries)}\n"
    )
    atomic.write_bytes(out / "accuracy_suite_ablation.md", text.encode("utf-8"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
