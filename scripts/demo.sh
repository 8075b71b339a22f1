#!/usr/bin/env bash
# `make demo`: generate a small street-scene dataset, train the demo preset, grade its submission.
set -euo pipefail
DEMO_DIR="${1:-.demo}"
DATA="$DEMO_DIR/data"
RUN="$DEMO_DIR/runs/demo-$(date +%Y%m%d-%H%M%S)"

if [ ! -f "$DATA/test_gt/depth/0.png" ]; then
  echo "== generating the street-scene dataset into $DATA"
  mtl data synth --out "$DATA" --num-train 400 --num-val 40 --num-test 40 --width 256 --height 128 --seed 0
fi
echo "== training (configs/demo.yaml) into $RUN"
mtl train --config configs/demo.yaml --dataset_root "$DATA" --log_dir "$RUN"
echo "== grading $RUN/submission.zip against $DATA/test_gt"
mtl grade "$RUN/submission.zip" --gt "$DATA/test_gt" --json "$RUN/grade.json"
echo
echo "run directory: $RUN   (tensorboard --logdir $RUN)"
echo "scores:        $RUN/grade.json"
