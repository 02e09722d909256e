#!/usr/bin/env bash
# The main job, end to end on the CPU: encode the bundled SingleNN-MemODE spec into a model file,
# show what it costs on a microcontroller, simulate it on the bundled 1 V / 10 Hz sine drive; then
# train a neural ODE on generated data, export it (f32 and int8, each checked in the runtime
# against the trained model) and simulate the exported file.
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

step "generate a damped, driven oscillator data set -> out/oscillator"
rm -rf out/oscillator out/run-oscillator
odeflash data synth-oscillator --out out/oscillator --train 16 --validation 2

step "train a neural ODE on it (120 epochs) -> out/run-oscillator"
odeflash train ode --data out/oscillator --out out/run-oscillator --epochs 120 --lr 5e-3 \
    --window 50 --batch-size 8 --quiet

step "export f32 and int8, each checked against the trained model in the runtime"
odeflash export out/run-oscillator --out out/oscillator.ofm
odeflash export out/run-oscillator --quant int8 --out out/oscillator-int8.ofm
odeflash inspect out/oscillator-int8.ofm | head -n 12

step "trained outputs"
echo "learning curve: out/run-oscillator/learning_curve.png (metrics.csv beside it)"
echo "model files:    out/oscillator.ofm, out/oscillator-int8.ofm"
