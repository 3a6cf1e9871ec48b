#!/usr/bin/env bash
# Runs on the lent GPU machine (see /work/.library/device/README.md and PLATFORM-NOTES):
# builds the LibTorch-only part against its CUDA PyTorch, runs the CUDA unit tests, trains
# light-unet 50 epochs with the notebook's recipe on the GPU, and times the Python reference
# on the same GPU. Results land in $OUT. Prepare on the dev machine first:
#   scripts/device/prepare.sh        (tensor pack + header-only deps into .device/, ignored by git)
# then run:  bash scripts/device/gpu-run.sh   with carry [".device"].
set -euo pipefail
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out" .device/deps
for deb in .device/debs/*.deb; do dpkg -x "$deb" .device/deps; done
prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
nvidia-smi -L | tee "$out/gpu.txt"
cmake -S . -B build-gpu -G Ninja -DSEG_WITH_IMAGE_IO=OFF -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix;$PWD/.device/deps/usr" -DCMAKE_CUDA_ARCHITECTURES=90 >"$out/cmake.log" 2>&1
ninja -C build-gpu seg-train seg-weights test_libseg >"$out/build.log" 2>&1
./build-gpu/bin/test_libseg --gtest_brief=1 2>&1 | tail -20 | tee "$out/test_libseg.txt"
epochs=${SEG_GPU_EPOCHS:-50}
/usr/bin/time -f '%e s wall' ./build-gpu/bin/seg-train --data .device/jsrt.pth --model light-unet --epochs "$epochs" \
  --device cuda --out "$out/light-unet" 2>&1 | tail -15 | tee "$out/light-unet.txt"
python3 bench/reference_notebook.py --data .device/jsrt.pth --model light-unet --device cuda \
  --epochs "$epochs" 2>/dev/null | tee "$out/reference-light-unet.json"
