#!/usr/bin/env bash
# Tune runs on a lent GPU (the device tool), from the repository root, with the data carried as a
# pack in .gpu/pack (here, once: `python -m training pack --out .gpu/pack --max-mb 36`; .gpu/ is
# git-ignored; carry it):
#
#     bash tools/gpu-tune.sh NAME CONFIG [NAME CONFIG ...]
#
# rebuilds the prepared cache from the pack, runs each `tune` at once on the one GPU (from the
# bundled default model, or $SMILE_TUNE_MODEL), and leaves in $OUT each run's log and its snapshots
# as block means (`python -m training bundle`; here, `python -m training restore` writes them back).
set -u -o pipefail
export PYTHONUNBUFFERED=1 SMILE_TRAINING_CACHE=${SMILE_TRAINING_CACHE:-/tmp/smile-cache}
OUT=${OUT:-/tmp/smile-out}
mkdir -p "$OUT" "$SMILE_TRAINING_CACHE"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -m training unpack .gpu/pack | tee "$OUT/unpack.json" || exit 1
model=${SMILE_TUNE_MODEL:-$(python3 -c 'from smilecore.registry import resolve_model; print(resolve_model(None))')}
pids=()
while [ $# -ge 2 ]; do
    python3 -m training tune --config "$2" --model "$model" --name "$1" --device cuda > "$OUT/$1.log" 2>&1 &
    pids+=($!); names+=("$1"); shift 2
done
for p in "${pids[@]}"; do wait "$p" || echo "a run failed (exit $?)"; done
for n in "${names[@]}"; do
    tail -3 "$OUT/$n.log"
    python3 -m training bundle "$SMILE_TRAINING_CACHE/tune/$n" "$OUT/$n" --blocks 8 --max-mb 15
done
ls -la "$OUT"
