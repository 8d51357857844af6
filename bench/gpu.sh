#!/usr/bin/env bash
# The detector suite on a GPU: throughput (video-seconds per wall-second), peak GPU memory, and the largest score
# difference between CUDA and CPU results on the same generated clips (bench/cuda_parity.py).
# Needs no Kafka or Elasticsearch: it measures the bare Suite path (decode + faces on CPU threads, detectors
# batched across videos on the device), the same code the worker runs between consume and produce.
#
#   bench/gpu.sh                       on a bare CUDA machine: make a venv, install, measure on cuda
#   bench/gpu.sh --cpu                 the same on the CPU (to try the script where there is no GPU)
#   bench/gpu.sh --skip-install ...    use the Python in $VIGIL_BENCH_PYTHON (or the worker venv) as it is
#   bench/gpu.sh -- --clips 128 --batch 32    anything after -- goes to bench/suite_throughput.py
#
# Environment: VIGIL_BENCH_VENV (default bench/out/venv-gpu), VIGIL_DEVICE (default cuda, or cpu with --cpu),
# VIGIL_DETECTORS and the checkpoint settings of the model detectors (VIGIL_FACE_FORGERY_CHECKPOINT, …) as for a
# worker; without checkpoints the default suite runs the detectors that need none (lipsync, spectral).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
device=${VIGIL_DEVICE:-cuda}
install=1
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) device=cpu ;;
    --skip-install) install=0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "unknown argument: $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done

say() { printf '[gpu-bench] %s\n' "$*" >&2; }

if [ "$install" = 1 ]; then
  venv=${VIGIL_BENCH_VENV:-$ROOT/bench/out/venv-gpu}
  python=""
  for candidate in python3.12 python3.11 python3; do  # mediapipe 0.10.21: CPython 3.9-3.12
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] <= (3, 12)))'; then
      python=$candidate; break
    fi
  done
  [ -n "$python" ] || { say "need CPython 3.11 or 3.12"; exit 1; }
  if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv with $python"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
  fi
  say "installing vigil[worker] (torch from PyPI ships CUDA on Linux x86_64) and mediapipe (--no-deps)"
  "$venv/bin/pip" install -q -e "$ROOT[worker]"
  "$venv/bin/pip" install -q --no-deps "mediapipe==0.10.21"
  PY="$venv/bin/python"
else
  PY=${VIGIL_BENCH_PYTHON:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil/venvs/worker/bin/python}
fi

if [ "$device" != cpu ]; then
  "$PY" - <<'PY' || { say "torch sees no CUDA device: run with --cpu, or check the driver"; exit 1; }
import sys, torch
ok = torch.cuda.is_available()
print(f"[gpu-bench] torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"{torch.cuda.device_count()} device(s): {torch.cuda.get_device_name() if ok else '-'}", file=sys.stderr)
sys.exit(0 if ok else 1)
PY
fi

if [ ${#extra[@]} -eq 0 ]; then
  if [ "$device" = cpu ]; then extra=(--clips 16 --batch 8); else extra=(--clips 128 --batch 32 --threads 8); fi
fi
say "measuring the suite on $device: ${extra[*]}"
"$PY" bench/suite_throughput.py --device "$device" "${extra[@]}"
if [ "$device" != cpu ]; then
  say "the same clips on the CPU and on $device: largest score difference"
  "$PY" bench/cuda_parity.py --device "$device" --clips 16
fi
