#!/usr/bin/env bash
# The main job, end to end: encode the bundled SingleNN-MemODE spec into a model file, show what
# it costs on a microcontroller, and simulate it on the bundled 1 V / 10 Hz sine drive.
# Outputs go to out/ (created if needed). Run from anywhere: bash scripts/demo.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

odeflash() {
    cargo run --quiet --release -p odeflash-trainer --bin odeflash -- "$@"
}

step() {
    printf '\n==> %s\n' "$*"
}

mkdir -p out

step "building the odeflash CLI (release)"
cargo build --quiet --release -p odeflash-trainer --bin odeflash

step "import examples/models/single-nn-memode.json -> out/example.ofm"
odeflash import examples/models/single-nn-memode.json --out out/example.ofm

step "inspect out/example.ofm"
odeflash inspect out/example.ofm

step "simulate on examples/stimulus/sine-1V-10Hz.csv (rk4, 1 substep) -> out/sine-1V-10Hz.csv"
odeflash simulate --model out/example.ofm \
    --stimulus examples/stimulus/sine-1V-10Hz.csv \
    --out out/sine-1V-10Hz.csv

step "first and last rows of out/sine-1V-10Hz.csv"
head -n 2 out/sine-1V-10Hz.csv
tail -n 1 out/sine-1V-10Hz.csv

step "outputs"
echo "model file:  out/example.ofm"
echo "trajectory:  out/sine-1V-10Hz.csv (columns t, v_s, v, i, x0)"
