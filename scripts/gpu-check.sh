#!/usr/bin/env bash
# Issue 19's GPU check as one command (docs/PERFORMANCE.md, "On a GPU"): on the GPU machine, after
# `bash scripts/gpu-pack.sh` here, `bash .gpu/on-device.sh 'bash scripts/gpu-check.sh'`. Stages, each under `timeout`
# so that one hang does not eat the device time, each writing its log to $OUT as it goes (partial results come back):
#   0. doctor, and a clear failure when the addon has no CUDA or sees no device;
#   1. the reference numerics tests with MEDLORA_TEST_DEVICE=<device> (F32 and BF16 fixtures: LoRA, DoRA, Adapter-V2;
#      KV cache, stories260K greedy ids, the 12-step trajectories through medlora train --device);
#   2. bench:recipe --big --device <device> --json: medlora and HF Trainer + PEFT side by side, bf16 on a GPU (the HF
#      half only when this machine's python has torch + transformers + peft; else the medlora half alone, said so);
#   3. bench:train --device <device>: medlora's step at the same shape in-process, per phase (each ended with a
#      synchronize) and the CUDA allocator's peaks (medlora train does not report them), when the budget has room.
# `--device cpu --quick` runs the same stages on the CPU at the smallest sizes (so the script itself is tested there).
# Budget: about 8 minutes after the addon's build on an H200 (stage limits below); the device tool returns at most 8
# files from $OUT, so this writes 7: summary.txt, doctor.txt, numerics.log, numerics-diffs.txt, recipe.json,
# recipe.log, train.json.
set -uo pipefail
cd "$(dirname "$0")/.."

device=cuda
quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    *) echo "gpu-check: unknown argument $1 (usage: gpu-check.sh [--device cuda|cuda:N|cpu] [--quick])"; exit 2 ;;
  esac
done
OUT=${OUT:-/tmp/medlora-gpu-check}
mkdir -p "$OUT"
summary="$OUT/summary.txt"
: > "$summary"
t0=$(date +%s)
note() { echo "[gpu-check +$(($(date +%s) - t0))s] $*" | tee -a "$summary"; }
# limits in seconds: each stage's, and the whole script's (GPU_CHECK_BUDGET: the device tool allows 600 s a command,
# and on-device.sh's addon build comes first); a stage gets the smaller of its limit and what is left of the budget,
# is killed past it (its log so far kept), and the next stage still runs
T_DOCTOR=45 T_PY=30 T_NUMERICS=150 T_RECIPE=240 T_TRAIN=90
budget=${GPU_CHECK_BUDGET:-480}
limit() { local left=$((budget - ($(date +%s) - t0))); [ "$left" -lt "$1" ] && echo $((left > 5 ? left : 5)) || echo "$1"; }
note "device $device, quick $quick, node $(node --version), OUT $OUT, budget ${budget} s"

# --- 0. the engine: doctor, and the device this run is for -----------------------------------------------------------
timeout -k 5 "$(limit $T_DOCTOR)" node bin/medlora.js doctor > "$OUT/doctor.txt" 2>&1
note "doctor exit $? (doctor.txt)"
probe=$(timeout -k 5 "$(limit $T_DOCTOR)" node --input-type=module -e "
  const m = await import('./dist/src/tensor/index.js');
  const i = m.engineInfo();
  const facts = 'libtorch ' + (i.fullVersion ?? i.torchVersion) + ', compiled with CUDA: ' + i.compiledWithCuda + ', CUDA devices: ' + m.cudaDeviceCount();
  try {
    console.log(facts + '; --device ' + process.argv[1] + ' -> ' + m.resolveDevice(process.argv[1], { what: 'gpu-check --device' }).device);
  } catch (e) {
    console.log(facts + '; FAIL: ' + e.message);
    process.exit(1);
  }" "$device" 2>&1)
rc=$?
note "engine: $probe"
if [ $rc -ne 0 ]; then
  note "STOP: the addon cannot run on $device (see the line above; on-device.sh builds it against the machine's python torch)"
  exit 1
fi
if ! node bin/medlora.js train --help 2>&1 | grep -q -- '--device'; then
  note "warning: medlora train has no --device flag in this build (training.device): the trajectory tests and the bench's medlora half cannot pick the device"
fi
py=${MEDLORA_BENCH_PYTHON:-python3}
pyv=$(timeout -k 5 "$(limit $T_PY)" "$py" -c 'import torch, transformers, peft; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(), "| transformers", transformers.__version__, "| peft", peft.__version__)' 2>&1 | tail -1)
note "HF side ($py): $pyv"

# --- 1. reference numerics on the device ------------------------------------------------------------------------------
tests="dist/test/model/reference.test.js dist/test/adapt/reference.test.js dist/test/adapt/methods.test.js
  dist/test/model/invariants.test.js dist/test/generate/stories.test.js dist/test/train/reference.test.js
  dist/test/train/packing.test.js dist/test/adapt/methods-train.test.js"
# shellcheck disable=SC2086
# (NODE_TEST_CONTEXT unset: under a parent test runner node --test would report to it and run nothing here)
MEDLORA_TEST_DEVICE=$device OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} timeout -k 10 "$(limit $T_NUMERICS)" \
  env -u NODE_TEST_CONTEXT node --test --test-concurrency=1 --test-reporter=spec $tests > "$OUT/numerics.log" 2>&1
rc=$?
grep -E 'max \|diff\||test device' "$OUT/numerics.log" > "$OUT/numerics-diffs.txt"
counts=$(grep -E '^ℹ (tests|pass|fail|skipped) ' "$OUT/numerics.log" | sed 's/^ℹ //' | tr '\n' ' ')
# a run that reports no tests did not check anything: a failure, whatever its exit code
ran=$(grep -E '^ℹ tests ' "$OUT/numerics.log" | awk '{print $3}')
[ "${ran:-0}" -gt 0 ] || { [ $rc = 0 ] && rc=1; counts="NO TESTS RAN"; }
note "numerics (MEDLORA_TEST_DEVICE=$device): exit $rc$([ $rc = 124 ] && echo ' (TIMED OUT)'); $counts; $(grep -c 'max |diff|' "$OUT/numerics-diffs.txt") comparisons in numerics-diffs.txt"
grep -E '^✖ ' "$OUT/numerics.log" | head -20 | sed 's/^/  failed: /' | tee -a "$summary"

# --- 2. the recipe benchmark: medlora vs HF + PEFT on the device --------------------------------------------------------
dir=${MEDLORA_RECIPE_DIR:-/tmp/medlora-recipe}
mkdir -p "$dir"
# the DrugBank rows tokenized on the packing machine (the corpus does not travel; scripts/gpu-pack.sh)
[ -d .gpu/recipe-inputs ] && cp -n .gpu/recipe-inputs/*.jsonl "$dir"/ 2>/dev/null
if [ "$quick" = 1 ]; then
  # the smallest run; the 200 rows as on the GPU machine (carried in .gpu/recipe-inputs: no corpus needed)
  bench=(--shape smollm2-135m --updates 1 --batch 1 --accum 1)
else
  bench=(--big --updates 4)
fi
timeout -k 10 "$(limit $T_RECIPE)" node dist/bench/recipe.js "${bench[@]}" --device "$device" --reps 1 --no-install \
  --dir "$dir" --json > "$OUT/recipe.json" 2> "$OUT/recipe.log"
rc=$?
note "bench:recipe ${bench[*]} --device $device: exit $rc$([ $rc = 124 ] && echo ' (TIMED OUT)') (recipe.json, recipe.log)"
grep -E '^reference' "$OUT/recipe.log" | sed 's/^/  /' | tee -a "$summary"
[ -s "$OUT/recipe.json" ] || note "bench:recipe: FAILED, no JSON result (recipe.log)"
node --input-type=module -e "
  import { readFileSync } from 'node:fs';
  const txt = readFileSync(process.argv[1], 'utf8').trim();
  if (!txt) { console.log('  no result (see recipe.log)'); process.exit(0); }
  const r = JSON.parse(txt.split('\n').pop());
  const f = (x, d = 2) => (typeof x === 'number' ? x.toFixed(d) : 'n/a');
  console.log('  ' + r.shape + ' ' + r.dtype + ' on ' + r.device + ', ' + r.updates + ' updates of ' + r.batch + ' x ' + r.accum + ' rows, ' + r.tokens + ' real tokens; matmul ceiling ' + f(r.ceiling_gflops, 0) + ' GFLOP/s');
  for (const t of r.table)
    console.log('  ' + t.engine + ': ' + f(t.wall_s) + ' s, ' + f(t.tokens_per_s, 0) + ' tok/s, ' + f(t.model_gflops, 0) + ' GFLOP/s (' + f(t.pct_ceiling, 1) + '% of ceiling), peak RSS ' + f(t.peak_rss_gb) + ' GB' +
      (r.device !== 'cpu' ? ', GPU in use ' + f(t.gpu_used_peak_gb) + ' GB, allocated ' + f(t.peak_device_allocated_gb) + ' GB' : ''));
  if (!r.table.some((t) => t.engine.startsWith('hf'))) console.log('  HF + PEFT: not run (see the reference line above / recipe.log): medlora half only');
  if (r.best_vs_best) console.log('  medlora speed-up (HF time / medlora time): ' + f(r.best_vs_best.speedup) + 'x');
" "$OUT/recipe.json" 2>&1 | tee -a "$summary"

# --- 3. medlora's step in-process: phases and the allocator's peaks (what bench:recipe's medlora row cannot show) ------
if [ $((budget - ($(date +%s) - t0))) -lt 40 ]; then
  note "bench:train: skipped, under 40 s of the budget left"
else
  if [ "$quick" = 1 ]; then
    train=(--config smollm2-135m --dtype fp32 --batch 1 --seq 32 --steps 1)
  else
    # the recipe's micro-batch at the 1B shape: 2 rows of its mean length (117 tokens)
    train=(--config llama-3.2-1b --dtype bf16 --batch 2 --seq 117 --steps 3)
  fi
  timeout -k 10 "$(limit $T_TRAIN)" node dist/bench/train.js "${train[@]}" --device "$device" --json > "$OUT/train.json" 2>&1
  rc=$?
  note "bench:train ${train[*]} --device $device: exit $rc$([ $rc = 124 ] && echo ' (TIMED OUT)') (train.json)"
  node --input-type=module -e "
    import { readFileSync } from 'node:fs';
    const r = JSON.parse(readFileSync(process.argv[1], 'utf8').trim().split('\n').pop());
    console.log('  step ' + r.step_s + ' s (all ' + r.steps_s.join(', ') + '), ' + r.tok_per_s + ' tok/s; forward+loss ' + r.phases.forward_s + ' s, backward ' + r.phases.backward_s + ' s, optimizer ' + r.phases.optim_s + ' s' +
      (r.peak_device_allocated_gb !== undefined ? '; peak allocated ' + r.peak_device_allocated_gb + ' GB, reserved ' + r.peak_device_reserved_gb + ' GB' : ''));
  " "$OUT/train.json" 2>/dev/null | tee -a "$summary"
fi

note "done"
# the run fails when a stage failed (its logs are in $OUT either way)
grep -qE 'STOP|TIMED OUT|FAILED|exit [1-9]' "$summary" && exit 1
exit 0
