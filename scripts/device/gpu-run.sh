#!/usr/bin/env bash
# Runs on the lent GPU machine (see /work/.library/device/README.md and PLATFORM-NOTES) as one
# call: makes the tensor packs from the carried PNGs, builds the LibTorch-only part against the
# machine's CUDA PyTorch, then runs the stages named (default: tests graph profile notebook):
#   tests   the whole test_libseg there (the CUDA agreement tests among them)
#   bench   training images/s of each network, ours against the Python reference, light-unet's
#           50 epochs, ours and the reference, and inference latency (bench/results.md)
#   variants  light-unet's images/s in bfloat16 and channels-last (measured 2026-12-04: no gain)
#   graphs  the reference's step eager and as a CUDA graph (bench/cuda_graphs_probe.py)
#   graph   seg-train --cuda-graph against the eager step (fcn, fast, light-unet), and the fast
#           preset's whole run both ways
#   profile a training step's phases on the GPU, and whether it is launch-bound
#           (bench/train_step_profile.cpp with DEVICE=cuda)
#   notebook  the notebook's own loop (reference_notebook.py --notebook-loader), light-unet 50
#           epochs, against ours: the fast preset and light-unet's 50 epochs
#   gloo    two seg-train processes on the one GPU, built against Debian's Gloo headers (the
#           wheel ships none)
#   res     res-unet preset + --augment-processing 1 at 256, as many epochs as time allows
#   res512  the shipped res-unet fine-tuned at 512 x 512, as many epochs as time allows
# Every stage is bounded, so a failure or a slow stage costs that stage only. Prepare on the dev
# machine first:  scripts/device/prepare.sh   (PNGs + header-only deps into .device/, ignored)
# then run:  bash scripts/device/gpu-run.sh [STAGE...]   with carry [".device"].
# Results in $OUT: run.log (everything), and the training runs' log.csv and model.pth files.
set -uo pipefail
out=${OUT:-/tmp/gpu-out}
budget=${SEG_GPU_BUDGET_S:-560}  # seconds this script may take in all
mkdir -p "$out"
exec > >(tee -a "$out/run.log") 2>&1
left() { echo $((budget - SECONDS)); }
stage() { echo; echo "=== [$SECONDS s] $*"; }
pin() { if command -v taskset >/dev/null; then taskset -c "$@"; else shift; "$@"; fi; }  # CORES COMMAND...
timed() {  # LABEL COMMAND...: the command's wall time (no /usr/bin/time there, maybe)
  local label=$1 t0; shift; t0=$(date +%s.%N)
  "$@"; local rc=$?
  echo "$label: $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s wall (exit $rc)"
}
pack=.device/jsrt.pth
bin=build-gpu/bin
stages=" ${*:-tests graph profile notebook} "
want() { [[ "$stages" == *" $1 "* ]]; }

stage "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
nproc
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())'
prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
ls -d "$prefix/../../include/gloo" 2>/dev/null || echo "no gloo headers in the wheel"

stage "tensor packs from the PNGs"
[ -f $pack ] || python3 scripts/device/pack_pngs.py .device/jsrt/dataset.json $pack || exit 1
if want res512; then python3 scripts/device/pack_pngs.py .device/jsrt/dataset512.json .device/jsrt512.pth; fi

if want notebook; then  # before the build, so that nothing else runs beside it
  stage "the notebook's own loop (DataLoader, 2 workers), light-unet 50 epochs"
  timed "notebook loop" pin 0-7 timeout 200 python3 bench/reference_notebook.py --data $pack --model light-unet \
    --device cuda --threads 4 --epochs 50 --notebook-loader 2>&1 | grep -E "^epoch (5|25|50):|impl|rror|s wall"
fi

stage "build"
mkdir -p .device/deps .device/gloo
for deb in .device/debs/*.deb; do  # Gloo's headers apart: only the gloo stage's build uses them
  case $deb in *libgloo-dev*) dpkg -x "$deb" .device/gloo ;; *) dpkg -x "$deb" .device/deps ;; esac
done
gloo_hint=()  # the wheel's own Gloo headers, when it ships them (else one process only)
[ -d "$prefix/../../include/gloo" ] && gloo_hint=(-DSEG_GLOO_INCLUDE_DIR="$(realpath "$prefix/../../include")")
build_main=0  # build-gpu: every stage but graphs, and gloo unless it has a build of its own
for s in tests bench variants res res512 notebook profile graph; do want $s && build_main=1; done
want gloo && [ ${#gloo_hint[@]} -gt 0 ] && build_main=1
[ $build_main = 1 ] && { timeout 60 cmake -S . -B build-gpu -G Ninja -DSEG_WITH_IMAGE_IO=OFF -DCMAKE_BUILD_TYPE=Release -DSEG_WERROR=OFF \
  -DCMAKE_PREFIX_PATH="$prefix;$PWD/.device/deps/usr" -DCMAKE_CUDA_ARCHITECTURES=90 \
  "${gloo_hint[@]}" >"$out/cmake.log" 2>&1 || { tail -30 "$out/cmake.log"; exit 1; }
grep segsuite "$out/cmake.log"
rm -f "$out/cmake.log"
timeout 300 ninja -C build-gpu seg-train seg-weights >/tmp/build.log 2>&1 ||
  { grep -m5 -B2 -A12 "error" /tmp/build.log || tail -40 /tmp/build.log; exit 1; }
echo "tools built at $SECONDS s"
if want tests || want bench || want profile; then
  timeout 200 ninja -C build-gpu test_libseg bench_predict_latency bench_train_step_profile >/tmp/build-tests.log 2>&1 ||
    { grep -m5 -B2 -A12 "error" /tmp/build-tests.log || tail -20 /tmp/build-tests.log; }
  echo "tests built at $SECONDS s"
fi; }

if want tests; then
  stage "CUDA unit tests, then the rest of test_libseg beside the GPU work (on other cores, off the GPU)"
  timeout 120 $bin/test_libseg --gtest_brief=1 --gtest_filter='*Cuda*' 2>&1 | tail -15
  (SEG_DATA_DIR=$PWD/.device/jsrt OMP_NUM_THREADS=1 pin 8-15 timeout 400 $bin/test_libseg --gtest_brief=1 '--gtest_filter=-*Cuda*' >/tmp/test_all.log 2>&1; echo "exit $?" >>/tmp/test_all.log) &
  tests_pid=$!
  # --deterministic on CUDA: two runs, their losses (LibTorch warns about bilinear's backward)
  for r in 1 2; do
    pin 0-7 timeout 60 $bin/seg-train --data $pack --model fcn --epochs 2 --val-every 0 --device cuda --deterministic \
      --out /tmp/det$r >/tmp/det$r.txt 2>&1 || tail -3 /tmp/det$r.txt
  done
  grep -m1 -i "warn" /tmp/det1.txt
  paste -d' ' <(cut -d, -f2 /tmp/det1/log.csv) <(cut -d, -f2 /tmp/det2/log.csv) | sed 's/^/deterministic losses, run 1 and 2: /'
fi

# seconds per epoch of a run: the fastest epoch after the first (cuDNN's benchmark search)
epoch_s() { awk -F, 'NR>2 {if (min=="" || $3<min) min=$3} END {print min}' "$1/log.csv"; }
train_cases=$(python3 -c "import torch; p=torch.load('$pack', weights_only=False); print(len(p['split_train']))")

# images/s of our seg-train (3 epochs, no validation) and of the reference (300 steps)
throughput() {  # MODEL PRECISION [--channels-last]
  local model=$1; shift
  local run=/tmp/tp-$model-$1${2:-}
  pin 0-7 timeout 90 $bin/seg-train --data $pack --model $model --epochs 3 --val-every 0 --device cuda \
    --threads 4 --precision "$@" --out $run >/dev/null 2>$run.err || { echo "$model $*: failed"; tail -3 $run.err; return; }
  local s; s=$(epoch_s $run)
  echo "ours $model $*: $s s/epoch, $(python3 -c "print(round(3*($train_cases//3)/$s, 1))") images/s"
}
reference_throughput() {
  pin 0-7 timeout 90 python3 bench/reference_notebook.py --data $pack --model $1 \
    --device cuda --threads 4 --steps 300 2>/dev/null | sed "s/^/reference $1, 300 steps: /"
}

if want gloo && [ "$(left)" -gt 150 ]; then
  stage "Gloo: a second build against Debian's Gloo headers, two processes on the one GPU, light-unet 3 epochs"
  if [ ${#gloo_hint[@]} -eq 0 ]; then
    timeout 60 cmake -S . -B build-gpu-gloo -G Ninja -DSEG_WITH_IMAGE_IO=OFF -DCMAKE_BUILD_TYPE=Release -DSEG_WERROR=OFF \
      -DCMAKE_PREFIX_PATH="$prefix;$PWD/.device/deps/usr" -DSEG_GLOO_INCLUDE_DIR="$PWD/.device/gloo/usr/include" \
      >/tmp/cmake-gloo.log 2>&1 && grep "segsuite: c10d" /tmp/cmake-gloo.log
    timeout 150 ninja -C build-gpu-gloo seg-train >/tmp/build-gloo.log 2>&1 ||
      { grep -m3 -A8 "error" /tmp/build-gloo.log || tail -20 /tmp/build-gloo.log; }
    gloo_bin=build-gpu-gloo/bin
  else
    gloo_bin=$bin
  fi
  if [ -x $gloo_bin/seg-train ]; then
    pin 0-7 timeout 90 $gloo_bin/seg-train --data $pack --model light-unet --epochs 3 --val-every 3 --device cuda \
      --batch 6 --threads 4 --out /tmp/one >/dev/null 2>&1
    pin 0-7 timeout 90 scripts/launch -n 2 --master 127.0.0.1:29611 -- $gloo_bin/seg-train --data $pack --model light-unet \
      --epochs 3 --val-every 3 --device cuda --threads 2 --out /tmp/dist2 2>&1 | grep -E "epoch|rror|process" | tail -4
    [ -f /tmp/dist2/log.csv ] && echo "light-unet, global batch 6: 2 processes $(epoch_s /tmp/dist2) s/epoch, 1 process $(epoch_s /tmp/one) s/epoch"
    # the same global batches, so the same losses to float rounding (the CPU test's claim, on CUDA)
    paste -d' ' <(cut -d, -f2 /tmp/one/log.csv) <(cut -d, -f2 /tmp/dist2/log.csv) | sed 's/^/loss, 1 process and 2: /'
  fi
fi

if want variants; then
  stage "light-unet throughput: precision and memory order"
  for variant in "bfloat16" "float32 --channels-last" "bfloat16 --channels-last"; do
    throughput light-unet $variant
  done
fi

if want bench; then
stage "light-unet throughput"
throughput light-unet float32
reference_throughput light-unet

stage "light-unet 50 epochs, the notebook's recipe: ours, the Python reference (bfloat16 + channels-last: bench/results.md)"
if [ "$(left)" -gt 150 ]; then
  timed "ours float32" pin 0-7 timeout 150 $bin/seg-train --data $pack \
    --model light-unet --epochs 50 --device cuda --threads 4 --out /tmp/lu32 >/tmp/lu32.txt 2>&1
  grep -E "epoch 50|rror|s wall" /tmp/lu32.txt
  cp /tmp/lu32/log.csv "$out/light-unet-float32.csv" 2>/dev/null
fi
if [ "$(left)" -gt 150 ]; then
  timed "reference" pin 0-7 timeout 200 python3 bench/reference_notebook.py \
    --data $pack --model light-unet --device cuda --threads 4 --epochs 50 2>/dev/null
fi
stage "inference: light-unet on the 87 test images, one at a time and in batches (ours), one at a time (reference)"
if [ -f /tmp/lu32/model.pth ]; then
  pin 0-7 timeout 60 $bin/bench_predict_latency /tmp/lu32/model.pth $pack cuda test 4
  pin 0-7 timeout 60 python3 bench/reference_notebook.py --data $pack --model light-unet --device cuda --threads 4 --infer 87 2>/dev/null
fi

stage "throughput of the other networks"
for model in fcn fcn-wide res-unet; do
  [ "$(left)" -gt 100 ] || { echo "skipped (time)"; break; }
  throughput $model float32
  [ $model = res-unet ] || reference_throughput $model
done

fi

if want notebook; then
  stage "ours against the notebook's loop: the fast preset, then light-unet's 50 epochs"
  timed "ours fast" pin 0-7 timeout 60 $bin/seg-train --data $pack --model fast --device cuda --threads 4 \
    --out /tmp/fast >/tmp/fast.txt 2>&1
  grep -E "^epoch 14|rror|s wall" /tmp/fast.txt
  if [ "$(left)" -gt 45 ]; then
    timed "ours light-unet" pin 0-7 timeout 60 $bin/seg-train --data $pack --model light-unet --epochs 50 \
      --device cuda --threads 4 --out /tmp/lu >/tmp/lu.txt 2>&1
    grep -E "^epoch 50|rror|s wall" /tmp/lu.txt
  fi
fi

if want graph && [ "$(left)" -gt 60 ]; then
  stage "seg-train --cuda-graph against the eager step: images/s, and the fast preset's wall time and Dice"
  for model in fcn fast light-unet; do
    throughput $model float32
    throughput $model float32 --cuda-graph
  done
  for flag in "" --cuda-graph; do
    timed "fast ${flag:-eager}" pin 0-7 timeout 60 $bin/seg-train --data $pack --model fast --device cuda --threads 4 \
      $flag --out /tmp/fast-graph$flag >/tmp/fast-graph$flag.txt 2>&1
    grep -E "^epoch 14|rror|s wall" /tmp/fast-graph$flag.txt
  done
fi

if want profile && [ "$(left)" -gt 60 ]; then
  stage "a step's phases on the GPU, and whether the host's launches or the GPU set its pace"
  for net in "fast 3 30 4 ce+dice" "fcn 3 30 4 ce" "light-unet 3 30 4 ce" "res-unet 3 30 4 ce+dice"; do
    DEVICE=cuda PACK=$pack pin 0-7 timeout 60 build-gpu/bin/bench_train_step_profile $net
  done
fi

if want graphs && [ "$(left)" -gt 60 ]; then
  stage "CUDA graphs: the reference's step eager and graphed, same process"
  pin 0-7 timeout 90 python3 bench/cuda_graphs_probe.py --data $pack
fi

if want tests; then
  stage "test_libseg (ran beside)"
  wait $tests_pid 2>/dev/null
  tail -8 /tmp/test_all.log
fi

# Trains for the time given: NAME SECONDS SECONDS_PER_EPOCH SEG_TRAIN_ARGS... (epochs in 25s,
# validation every 25; log.csv and model.pth come back as NAME.csv and NAME-model.pth).
train_for() {
  local name=$1 seconds=$2 per_epoch=$3; shift 3
  local epochs; epochs=$(python3 -c "print(max(25, min(400, int(($seconds - 25) / ($per_epoch * 1.1)) // 25 * 25)))")
  echo "$name: $epochs epochs at about $per_epoch s/epoch"
  pin 0-7 timeout $((seconds - 5)) $bin/seg-train --epochs $epochs --val-every 25 --device cuda --threads 4 \
    --out /tmp/$name "$@" 2>&1 | grep -E "^epoch .*Dice|rror"
  cp /tmp/$name/log.csv "$out/$name.csv" 2>/dev/null
  cp /tmp/$name/model.pth "$out/$name-model.pth" 2>/dev/null
}
# seconds an epoch measured on the H200 (2026-12-04): res-unet 1.41 at 256; 512 is 4x the pixels
res256_s=$(epoch_s /tmp/tp-res-unet-float32 2>/dev/null); res256_s=${res256_s:-1.45}
if want res && [ "$(left)" -gt 90 ]; then
  stage "res-unet preset + --augment-processing 1 at 256 (issue 7)"
  share=$(left); want res512 && share=$((share / 2))
  train_for res-unet $((share - 15)) $res256_s --data $pack --model res-unet --augment-processing 1
fi
if want res512 && [ "$(left)" -gt 120 ]; then
  stage "the shipped res-unet fine-tuned at 512 x 512 (issue 7)"
  train_for res-unet-512 $(($(left) - 15)) $(python3 -c "print(4.2 * $res256_s)") --data .device/jsrt512.pth \
    --init share/models/jsrt-res-unet.pth --lr 5e-4 --augment-processing 1
fi
stage "done"
