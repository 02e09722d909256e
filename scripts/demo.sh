#!/usr/bin/env bash
# The main job, end to end on the CPU, at a reduced but meaningful size (paper 000's pipeline):
# generate a "measured" memristor rig dataset (the paper's 18-trajectory grid, 2 periods of 1000
# samples each instead of 100), fit the MMS baseline, train SingleNN-MemODE (small preset) from it,
# export the surrogate as f32 and int8 model files (each checked against the trained model in
# the runtime), run the exported files in the runtime over every trajectory, and print paper
# 000's Tables I and II with where the figures are.
# Outputs go to out/ (created if needed). Run from anywhere: bash scripts/demo.sh
# Sizes can be changed: EPOCHS=300 PERIODS=5 bash scripts/demo.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

EPOCHS=${EPOCHS:-40}
PERIODS=${PERIODS:-2}
SAMPLES=${SAMPLES:-1000}

bin=target/release/odeflash
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    bin=$CARGO_TARGET_DIR/release/odeflash
fi

step() {
    printf '\n==> %s\n' "$*"
}

step "building the odeflash CLI (release)"
cargo build --quiet --release -p odeflash-cli --bin odeflash
odeflash() {
    "$bin" "$@"
}

started=$SECONDS
mkdir -p out
rm -rf out/memristor out/run-single out/mms out/report out/single-nn-memode.ofm out/single-nn-memode-int8.ofm

step "generate the synthetic SDC memristor rig dataset -> out/memristor ($PERIODS periods x $SAMPLES samples per trajectory)"
odeflash data synth-memristor --out out/memristor --periods "$PERIODS" --samples-per-period "$SAMPLES"

step "fit the MMS baseline (differential evolution + L-BFGS-B) -> out/mms"
odeflash baseline mms --data out/memristor --out out/mms --generations 60 --population 30

step "train SingleNN-MemODE (small preset, $EPOCHS epochs) -> out/run-single"
# The state net starts as a fit of MMS's rate (R_on, R_off and x0 from the fit too) and is
# trained on whole records from its own initial state (free run), as it will run on the device.
odeflash train memristor --data out/memristor --model single --preset small \
    --init-baseline out/mms/fit.json --window-start free-run --lr 2e-4 --clip-norm 1 \
    --epochs "$EPOCHS" --out out/run-single --quiet

step "export f32 and int8 model files, each checked against the trained model in the runtime"
odeflash export out/run-single --out out/single-nn-memode.ofm
# int8 weights move the near-zero rates where the device holds its state, and a record
# integrates that drift: the check accepts up to 0.25 of a channel's std here, and the table
# below shows what int8 costs in L_b.
odeflash export out/run-single --quant int8 --tolerance 0.25 --out out/single-nn-memode-int8.ofm
odeflash inspect out/single-nn-memode-int8.ofm | head -n 14

step "run the trained model, both model files and MMS on every trajectory; Tables I and II -> out/report"
odeflash eval --data out/memristor out/run-single out/single-nn-memode.ofm \
    out/single-nn-memode-int8.ofm out/mms --out out/report
sed -n '/^## Table II/,/^## Figures/p' out/report/report.md | sed '$d'

step "outputs ($((SECONDS - started)) s after the build)"
echo "report:         out/report/report.md (Table I per trajectory, Table II, timings), report.json"
echo "figures:        out/report/fig6_*.png (learning curve, v-i loops), out/report/fig7.png (v, i, v-i),"
echo "                out/report/fig8.png (L_b per trajectory)"
echo "learning curve: out/run-single/learning_curve.png (metrics.csv beside it)"
echo "model files:    out/single-nn-memode.ofm, out/single-nn-memode-int8.ofm"
echo "baseline:       out/mms/fit.json and its validation plots"
