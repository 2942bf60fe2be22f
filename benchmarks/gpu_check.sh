#!/usr/bin/env bash
# The GPU checks, in one go (about 5-8 minutes on one H100; budget 8):
#   1. the GPU-marked tests (`pytest -m gpu`: one GPU per job via training/devices.py, provenance of
#      the physical device, the memory estimate against torch's CUDA peak in bf16);
#   2. benchmarks/adapters_speed.py --device cuda --dtype bfloat16 (every method's train step and
#      merged inference against PEFT LoRA);
#   3. claim 4 on the real model (MiLoRA forgets less than PiSSA, config/real_forgetting.yaml) on
#      CUDA at reduced steps: one seed, MiLoRA and PiSSA on cpt_domain for 8 steps, evaluations
#      limited to 8 items, in results/real_gpu_check.
# Everything it writes goes under benchmarks/results/gpu_check_<device>/ (the device's name from
# nvidia-smi), with a log per step and summary.json.
#
#   bash benchmarks/gpu_check.sh                 # on a GPU machine
#   bash benchmarks/gpu_check.sh --dry-run       # the plumbing on CPU: each step tiny (step 3 plans only)
#   LORABENCH_GPU_CHECK_DEVICE=cpu bash benchmarks/gpu_check.sh   # the same steps at full check size, on CPU
# LORABENCH_GPU_CHECK_OUT=DIR writes under DIR instead of benchmarks/results.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
DEVICE="${LORABENCH_GPU_CHECK_DEVICE:-$([[ $DRY == 1 ]] && echo cpu || echo cuda)}"
PY="${PYTHON:-$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python)}"
SNAKEMAKE="$PY -m snakemake"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TOKENIZERS_PARALLELISM=false

if [[ "$DEVICE" == cuda ]]; then
    if ! NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1) || [[ -z "$NAME" ]]; then
        echo "gpu_check: no GPU (nvidia-smi lists none); use --dry-run or LORABENCH_GPU_CHECK_DEVICE=cpu" >&2
        exit 2
    fi
else
    NAME="cpu"
fi
SLUG=$(echo "$NAME" | tr '[:upper:]' '[:lower:]' | tr -cs 'a-z0-9' '_' | sed 's/^_*//;s/_*$//')
[[ $DRY == 1 ]] && SLUG="${SLUG}_dry_run"
OUT="${LORABENCH_GPU_CHECK_OUT:-benchmarks/results}/gpu_check_${SLUG}"
mkdir -p "$OUT"
echo "gpu_check: device $DEVICE ($NAME), outputs in $OUT"
declare -A STATUS SECONDS_TAKEN

step() {  # step NAME COMMAND...: run, log to $OUT/NAME.log, record the exit status and time
    local name=$1; shift
    local start=$(date +%s)
    echo "== $name: $*"
    "$@" > "$OUT/$name.log" 2>&1
    STATUS[$name]=$?
    SECONDS_TAKEN[$name]=$(( $(date +%s) - start ))
    echo "   exit ${STATUS[$name]} after ${SECONDS_TAKEN[$name]} s (log: $OUT/$name.log)"
    tail -3 "$OUT/$name.log" | sed 's/^/   | /'
}

# 1. GPU-marked tests (on CPU they are collected and skipped: the marker and selection work).
step gpu_tests env OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
    $PY -m pytest -m gpu -q -rs -n 0 -p no:cacheprovider --junitxml "$OUT/gpu_tests.xml" tests/

# 2. Adapter speed in bf16.
if [[ $DRY == 1 ]]; then SIZE=(--hidden 64 --layers 1 --seq 16 --batch 2 --r 4 --repeats 1 --threads 1); else SIZE=(); fi
step adapters_speed $PY benchmarks/adapters_speed.py --device "$DEVICE" --dtype bfloat16 "${SIZE[@]}" \
    --out "$OUT/adapters_speed_${SLUG}"

# 3. Claim 4 of the real profile, reduced, on the device.
# The profile's numerics (claim 4a is measured in float32): device only, precision fp32.
cat > "$OUT/claim4.yaml" <<YAML
profile: real_gpu_check
seeds: [0]
train: {device: $DEVICE, precision: fp32}
task_train: {cpt_domain: {pack: true, max_steps: 8}}
eval: {limit: 8}
YAML
CLAIM=(--configfile config/real_forgetting.yaml "$OUT/claim4.yaml")
if [[ $DRY == 1 ]]; then
    step claim4 env HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $SNAKEMAKE -n --forceall --nolock --cores 1 "${CLAIM[@]}" --quiet rules
else
    step claim4 env HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $SNAKEMAKE --cores all --nolock "${CLAIM[@]}" \
        results/real_gpu_check/replication.json
    cp results/real_gpu_check/replication.json results/real_gpu_check/replication.md "$OUT/" 2>/dev/null
fi

FAILED=0
for s in gpu_tests adapters_speed claim4; do [[ ${STATUS[$s]} == 0 ]] || FAILED=1; done
$PY - "$OUT" "$DEVICE" "$NAME" "$DRY" "${STATUS[gpu_tests]}" "${STATUS[adapters_speed]}" "${STATUS[claim4]}" \
    "${SECONDS_TAKEN[gpu_tests]}" "${SECONDS_TAKEN[adapters_speed]}" "${SECONDS_TAKEN[claim4]}" <<'PYEOF'
import json, subprocess, sys, time
out, device, name, dry, *rest = sys.argv[1:]
codes, secs = [int(x) for x in rest[:3]], [int(x) for x in rest[3:]]
commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() or None
summary = {"device": device, "device_name": name, "dry_run": dry == "1", "git_commit": commit,
           "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "steps": {s: {"exit": c, "seconds": t} for s, c, t in zip(("gpu_tests", "adapters_speed", "claim4"), codes, secs)}}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
print(json.dumps(summary["steps"]))
PYEOF
echo "gpu_check: $([[ $FAILED == 0 ]] && echo ok || echo FAILED), summary in $OUT/summary.json"
exit $FAILED
