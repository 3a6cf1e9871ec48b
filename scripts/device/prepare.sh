#!/usr/bin/env bash
# Prepares .device/ (ignored by git) for scripts/device/gpu-run.sh: the JSRT PNGs at 256 and 512
# (27 MB; gpu-run.sh packs them there with pack_pngs.py: the 512 pack alone, 128 MB, is over
# what a call may carry), and the header-only dependencies the GPU machine lacks, as Debian
# packages to unpack there (Gloo's headers for a build with data-parallel training).
set -euo pipefail
cd "$(dirname "$0")/../.."
data=${SEG_DATA_DIR:-../shared/data/jsrt}
rm -rf .device/jsrt .device/jsrt.pth .device/jsrt512.pth
mkdir -p .device/debs .device/jsrt
cp -r "$data"/dataset.json "$data"/dataset512.json "$data"/images "$data"/labels "$data"/images512 "$data"/labels512 .device/jsrt/
(cd .device/debs && apt-get download libcli11-dev nlohmann-json3-dev libgtest-dev libgloo-dev >/dev/null 2>&1) ||
  { echo "prepare.sh: error: apt-get download of the header packages failed; run 'apt-get update' and retry" >&2; exit 1; }
du -sh .device
