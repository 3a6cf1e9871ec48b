#!/usr/bin/env bash
# Prepares .device/ (ignored by git) for scripts/device/gpu-run.sh: the JSRT data as one tensor
# pack, and the header-only dependencies the GPU machine lacks, as Debian packages to unpack there.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .device/debs
build/bin/seg-convert "${SEG_DATA_DIR:-../shared/data/jsrt}" -o .device/jsrt.pth --overwrite
(cd .device/debs && apt-get download libcli11-dev nlohmann-json3-dev libgtest-dev >/dev/null)
du -sh .device
