"""Score [monitor] variants on the hard suite's TUNING seeds (never the test seeds): how the defaults were chosen.

    python bench/tune_suite.py --size 256 --variant base='{"algorithm": "ccdc-nrt"}' \
        --variant armed='{"algorithm": "ccdc-nrt", "calibration_days": 0}'

Each variant runs on every tuning seed; results (one table row per variant) go to --out (Markdown and JSON).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from catalog import atomic  # noqa: E402
from scheduler.evaluation.suite import (  # noqa: E402
    TUNING_SEEDS,
    render_table,
    run_monitor,
    scores_json,
    suite_archive,
    summarise,
)

MAX_VARIANTS = 16


def _variant(text: str) -> tuple[str, dict]:
    name, _, table = text.partition("=")
    return name, json.loads(table)


def main(argv: list[str] | None = None) -> int:
    """Run every variant on the tuning seeds and write one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", required=True, help="NAME=JSON [monitor] table")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(TUNING_SEEDS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", default="/tmp/nrt-suite")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "tuning"))
    args = parser.parse_args(argv)
    if stray := set(args.seeds) - set(TUNING_SEEDS):
        parser.error(f"seeds {sorted(stray)} are not tuning seeds {TUNING_SEEDS}: tune on tuning seeds only")
    variants = dict(_variant(v) for v in args.variant)
    if len(variants) > MAX_VARIANTS or not 64 <= args.size <= 1024:
        parser.error(f"at most {MAX_VARIANTS} variants, --size 64-1024")
    logging.basicConfig(level=logging.WARNING)
    work = Path(args.work)
    started = time.perf_counter()
    archives = {seed: suite_archive(work, seed, args.size) for seed in args.seeds}
    jobs = [(name, seed) for name in variants for seed in args.seeds]
    roots = [work / "runs" / archives[seed].root.name / f"tune-{name}" for name, seed in jobs]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        scores = list(pool.map(run_monitor, roots, [archives[s] for _, s in jobs], [variants[n] for n, _ in jobs]))
    for score, (name, _) in zip(scores, jobs, strict=True):
        score.monitor = name
    summaries = [summarise(scores, name) for name in variants]
    header = (
        f"Tuning seeds {', '.join(map(str, args.seeds))}, {args.size} x {args.size} px, "
        f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}, {time.perf_counter() - started:.0f} s. Variants: "
        + "; ".join(f"`{n}` = `{json.dumps(t)}`" for n, t in variants.items())
        + "\n\n"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(out.with_suffix(".md"), (header + render_table(summaries) + "\n").encode("utf-8"))
    atomic.write_json(out.with_suffix(".json"), scores_json(scores, summaries, variants=variants))
    print(header + render_table(summaries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
