#!/usr/bin/env bash
# Run every benchmark in sequence, then print the summary table.
#   bash bench/run_all.sh            # full: 1000 x 1000 and 2000 x 1000 (see bench/README.md for run times)
#   bash bench/run_all.sh --quick    # 1000 x 1000 only, one repeat, shorter load runs
#   bash bench/run_all.sh --smoke    # tiny area: checks the harness in a few minutes
# Options after the mode go to every script, e.g. --work /tmp/nrt-bench --results bench/results.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
started=$(date +%s)
for script in pipeline_vs_baseline limit serving freshness; do
    echo "== bench/$script.py $* (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
    python "bench/$script.py" "$@"
done
results=bench/results
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    [[ "${args[$i]}" == "--results" ]] && results="${args[$((i + 1))]}"
done
echo "== summary ($(( $(date +%s) - started )) s)"
python bench/summary.py --results "$results"
