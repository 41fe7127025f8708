#!/usr/bin/env bash
# The book's one GPU check: the paper's PTB configuration on a GPU, for a session that is lent one.
#
# Here (data/ is gitignored; the device machine sees only the repository and what is carried):
#   mkdir -p data && cp -r ../shared/data/ptb data/
# Then one call of the device tool:
#   run(command="bash tools/device_check.sh", carry=["data"], timeout_s=540)
#
# On the device it trains `--profile paper-ptb` for TRAIN_S seconds, as many epochs as fit (the run is then
# interrupted: its whole epochs are kept, with the GPU named in its summary), and runs `awd bench --device
# cuda` (AWD-LSTM against a plain LSTM, tokens/s and memory). What comes back under $OUT: run/config.json,
# run/history.csv, run/summary.json (status "interrupted"), bench.txt, gpu.txt and train.log. Copy the run/
# files to results/device/<run id>/ and bench.txt beside them, and commit: the appendix reads that folder.
set -uo pipefail
OUT=${OUT:-/tmp/awd-device-out}
TRAIN_S=${TRAIN_S:-300}
PY=${PY:-python3}  # the device's python3 holds a CUDA build of torch; awd runs from the checkout
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu TRAIN_S=30 PY=.venv/bin/python: a dry run of the script here
export AWD_DATA_DIR=${AWD_DATA_DIR:-$PWD/data} PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
RESULTS=$(mktemp -d /tmp/awd-device-results.XXXXXX)
mkdir -p "$OUT/run"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/gpu.txt" 2>&1 || true
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" >>"$OUT/gpu.txt" 2>&1

# SIGINT: the trainer records the run as interrupted after its last whole epoch (awd/train.py)
timeout -s INT "$TRAIN_S" $PY -m awd train --profile paper-ptb --device "$DEVICE" --quiet \
    --results-dir "$RESULTS" >"$OUT/train.log" 2>&1
echo "train: exit $? after at most $TRAIN_S s" >>"$OUT/train.log"
for f in config.json history.csv summary.json; do
    cp "$RESULTS"/*/"$f" "$OUT/run/" 2>>"$OUT/train.log"
done

$PY -m awd bench --device "$DEVICE" >"$OUT/bench.txt" 2>&1
echo "bench: exit $?" >>"$OUT/bench.txt"
cat "$OUT/gpu.txt" "$OUT/run/summary.json" "$OUT/bench.txt" 2>/dev/null
