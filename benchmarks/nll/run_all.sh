#!/usr/bin/env bash
# Run every published-NLL row at one budget, two processes at a time (one thread each), then
# build the table. Logs: benchmarks/results/nll/<row>.log. Usage: benchmarks/nll/run_all.sh
# (EPOCHS, BATCH, TEST_EXAMPLES override the budget; EVALUATE_ONLY=1 re-scores the saved models
# with the current evaluation settings, logging to <row>.eval.log; EXTEND=1 continues the saved
# runs up to EPOCHS; RESULTS_DIR writes the results, logs and table input elsewhere.)
set -u
cd "$(dirname "$0")/../.."
export AEVAE_DATA_DIR="${AEVAE_DATA_DIR:-/work/shared/datasets}"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
BUDGET=(--epochs "${EPOCHS:-10}" --batch-size "${BATCH:-100}" --learning-rate 1e-3
        --test-examples "${TEST_EXAMPLES:-1000}" --k 5000 --threads 1)
LOGS="${RESULTS_DIR:-benchmarks/results/nll}"
BUDGET+=(--results-dir "$LOGS")
SUFFIX=log
if [ "${EXTEND:-0}" = 1 ]; then
    BUDGET+=(--extend)  # continue the saved runs up to EPOCHS
    SUFFIX=extend.log
fi
if [ "${EVALUATE_ONLY:-0}" = 1 ]; then
    BUDGET+=(--evaluate-only)
    SUFFIX=eval.log
fi
mkdir -p "$LOGS"
chain() {
    for row in "$@"; do
        python benchmarks/nll/"$row".py "${BUDGET[@]}" > "$LOGS/$row.$SUFFIX" 2>&1 \
            || echo "$row failed (see $LOGS/$row.$SUFFIX)"
    done
}
started=$(date +%s)
# The two k=50 rows dominate; each leads one of the two lanes.
chain hierarchical_iwae_k50 hierarchical_vae standard_prior_static &
chain iwae_k50 vae iwae_k5 vamp_prior &
wait
echo "all rows done in $(( $(date +%s) - started ))s"
if [ -z "${RESULTS_DIR:-}" ]; then
    python benchmarks/nll/table.py
fi
