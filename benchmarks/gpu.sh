#!/usr/bin/env bash
# The one-shot GPU check (issue #23): runs on a bare GPU machine with its own python3 (a CUDA PyTorch
# >= 2.3 with numpy, SciPy, scikit-learn, Pillow, matplotlib, h5py, TensorBoard, safetensors, tqdm,
# PyYAML) and no internet, in at most 8 minutes, and writes OUTDIR/gpu.json and OUTDIR/gpu.log.
#
#   tools/gpu-wheels                      # once, where pip works: PyAV, webdataset, braceexpand -> .whl/
#   (copy the repository, .whl/ included, to the GPU machine)
#   benchmarks/gpu.sh OUTDIR              # on the GPU machine
#   benchmarks/gpu.sh OUTDIR --device cpu --smoke    # toy sizes on a CPU: checks it runs end to end
#
# The wheels go into a temporary site folder (pip install --no-index --target), l3net runs from src/
# (nothing is installed for good). Stages, each in its own process under its own time limit, in order:
# data, train, loader, numerics, embed (benchmarks/gpu_stages.py says what each measures); a stage
# that fails or runs out of time is reported as such and the next one runs. Then the report.
# Options: --device DEV (default cuda), --smoke, --workers N, --wheels DIR (default .whl),
# --keep DIR (work in DIR and keep it: shards, runs, each stage's JSON; default a temporary folder).
# PYTHON picks the interpreter (default python3).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
[ $# -ge 1 ] && [ "${1#-}" = "$1" ] || { usage >&2; exit 2; }
out=$1; shift
python=${PYTHON:-python3}
wheels=.whl; device=cuda; smoke=; workers=; keep=
while [ $# -gt 0 ]; do
  case $1 in
    --device) device=$2; shift 2 ;;
    --smoke) smoke=--smoke; shift ;;
    --workers) workers="--workers $2"; shift 2 ;;
    --wheels) wheels=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
mkdir -p "$out" || exit 1
out=$(cd "$out" && pwd); log=$out/gpu.log
if [ -n "$keep" ]; then
  mkdir -p "$keep" && work=$(cd "$keep" && pwd) || exit 1
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/l3net-gpu-check.XXXXXX") || exit 1
  trap 'rm -rf "$work"' EXIT
fi
: >"$log"; : >"$work/status"
say() { echo "$*" | tee -a "$log"; }
started=$(date +%s)

say "l3net one-shot GPU check: $(date -u '+%Y-%m-%d %H:%M UTC'), python $("$python" -c 'import sys; print(sys.version.split()[0])')"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv,noheader 2>&1 | tee -a "$log"
fi
site=$work/site
if ls "$wheels"/*.whl >/dev/null 2>&1; then
  say "installing $(ls "$wheels"/*.whl | wc -l) wheels from $wheels into $site (temporary)"
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$wheels"/*.whl \
    2>&1 | tee -a "$log" || { say "gpu.sh: the wheels in $wheels did not install"; exit 1; }
fi
export PYTHONPATH="$PWD/src:$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# The embedding API compiles where l3net does by default (GPUs); --smoke runs eagerly (minutes per graph on a CPU).
if [ -n "$smoke" ]; then export L3NET_COMPILE=0; else export L3NET_COMPILE=auto; fi
if ! "$python" -c "import torch, av, webdataset, braceexpand, l3net.train" 2>>"$log"; then
  say "gpu.sh: l3net cannot be imported with $python (see $log): run tools/gpu-wheels where pip works and copy .whl/ here"
  exit 1
fi
"$python" -c "import torch; print(f'torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}')" 2>&1 | tee -a "$log"
if [ "$device" = cuda ] && ! "$python" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  say "gpu.sh: no CUDA device visible to torch (use --device cpu --smoke to check the script on a CPU)"; exit 1
fi

# Time limits (seconds) per stage; together with the set-up they keep the check under 8 minutes.
check_limits="data:50 train:170 loader:45 numerics:125 embed:70"
smoke_limits="data:600 train:900 loader:600 numerics:600 embed:600"
if [ -n "$smoke" ]; then limits=$smoke_limits; else limits=$check_limits; fi
for entry in $limits; do
  stage=${entry%%:*}; limit=${entry#*:}
  begin=$(date +%s.%N)
  # shellcheck disable=SC2086  # $smoke and $workers are empty or whole options
  timeout --kill-after=10 "$limit" "$python" benchmarks/gpu.py "$stage" --work "$work" --device "$device" \
    $smoke $workers 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  seconds=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $begin }")
  echo "$stage $rc $seconds $limit" >>"$work/status"
  [ "$rc" = 0 ] || say "gpu.sh: stage $stage $([ "$rc" = 124 ] || [ "$rc" = 137 ] && echo "ran out of its $limit s" || echo "failed (exit $rc)")"
done
"$python" benchmarks/gpu.py report --work "$work" --out "$out" $smoke 2>&1 | tee -a "$log"
say "total $(( $(date +%s) - started )) s"
awk '$2 != 0 { bad = 1 } END { exit bad }' "$work/status"  # exit 1 when a stage failed or ran out of time
