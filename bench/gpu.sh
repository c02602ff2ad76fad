#!/usr/bin/env bash
# GPU numbers for docs/speed.md (issue 22, item 8), at most about 8 minutes on one H100-class GPU:
#   1. a full-preset probe of OLD and of NEW (20 steps each) on the device
#   2. grad-check of NEW in bfloat16 (CPU autocast: grad-check has no --device in this version)
#   3. the seed batch against separate runs (CPU only in this version: it says so on cuda)
#   4. probe step against a bare training step (the instrumentation overhead), full preset
# Usage: bash bench/gpu.sh [--device cuda|cpu] [--steps N]. Output: one log per part under $OUT (or
# bench/results/gpu-DEVICE/). `--device cpu --steps 2` checks the script on a machine without a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda
STEPS=20
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --steps) STEPS="$2"; shift 2 ;;
    *) echo "bench/gpu.sh: unknown argument $1 (--device cuda|cpu, --steps N)" >&2; exit 2 ;;
  esac
done
PY=${PY:-python}
[ -x .venv/bin/python ] && PY=.venv/bin/python
DEST=${OUT:-bench/results/gpu-$DEVICE}
mkdir -p "$DEST"
CACHE=$(mktemp -d)
PRESET=full
[ "$DEVICE" = cpu ] && PRESET=tiny  # the full preset's width does not fit a CPU check in minutes
run() {  # name, command...
  local name=$1; shift
  local start=$(date +%s)
  echo "== $name: $*" | tee "$DEST/$name.log"
  timeout 300 "$@" >> "$DEST/$name.log" 2>&1
  local code=$?
  echo "== $name: exit $code, $(( $(date +%s) - start )) s" | tee -a "$DEST/$name.log"
}
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee "$DEST/device.log"
for name in old new; do
  config=fixtures/seed_old_2a50f2d.yaml
  [ $name = new ] && config=fixtures/seed_new_main.yaml
  run "probe-$name" "$PY" -m collapse_doctor probe "$config" --preset "$PRESET" --device "$DEVICE" \
    --steps "$STEPS" --set probe.early_stop_after=null --json "$DEST/probe-$name.json" --out "$CACHE"
done
run gradcheck-bf16 "$PY" -m collapse_doctor grad-check fixtures/seed_new_main.yaml --dtype bfloat16 --json "$DEST/gradcheck.json"
if [ "$DEVICE" = cpu ]; then
  run seed-batch "$PY" bench/seed_batch.py --seeds 2 --steps "$STEPS"
else
  echo "== seed-batch: CPU only in this version (experiments/seed_batch.py refuses cuda); not run" | tee "$DEST/seed-batch.log"
fi
run overhead "$PY" bench/probe_speed.py --presets "$PRESET" --steps "$STEPS" --device "$DEVICE" --denormal-steps 0
rm -rf "$CACHE"
echo "logs in $DEST"
