#!/usr/bin/env bash
# The course's ablation ladder (ANCHORS.md) on a generated street-scene dataset: every step that can run
# offline, each with the same number of optimiser steps, two seeds per step, all runs under one folder
# that `mtl results` tabulates; then the markdown table of docs/LADDER.md (scripts/ladder_table.py).
#
#   LADDER_SCALE=cpu scripts/ladder.sh            # sizes: tiny | small | cpu | gpu (default cpu)
#   LADDER_SCALE=gpu LADDER_DIR=/scratch/ladder scripts/ladder.sh
#   LADDER_DRY=1 LADDER_SCALE=gpu scripts/ladder.sh   # print the commands only
#
# Steps (folder names under $LADDER_DIR/runs):
#   1_template      configs/course_template.yaml: SGD 0.01, batch 4, E epochs, random init, no dilation,
#                   ASPP and decoder short-circuited (the course's starting point)
#   2_adam          the same with Adam 1e-4
#   3_batch16       configs/course_tuned_optimizer.yaml: Adam 1e-4, batch 16, 4·E epochs (steps held constant)
#   (ImageNet-pretrained encoder: not run; needs resnet34-b627a593.pth, which cannot be downloaded here)
#   4_dilation      configs/course_pretrained_dilation.yaml without the ImageNet weights: + dilation (F,F,T)
#   5_aspp_decoder  configs/course_aspp_decoder.yaml, random init: + ASPP and the DeepLabV3+ decoder
#   6_branched      configs/course_branched.yaml, random init
#   7_distillation  configs/course_distillation.yaml, random init
# Every run has the same schedule: E·⌈N/4⌉ optimiser steps (batch 4 for E epochs, batch 16 for 4·E epochs;
# N, the number of training images, is a multiple of 16 in every preset). Everything else keeps the
# course's defaults (L2 loss on normalised depth, loss weights 0.5/0.5, poly schedule, no augmentation
# beyond the crop), so that the steps are the course's.
#
# Size knobs (environment; the preset of LADDER_SCALE fills the ones not given):
#   LADDER_TRAIN, LADDER_VAL     training and validation images generated
#   LADDER_WIDTH, LADDER_HEIGHT  image size (2:1), LADDER_CROP training crop side
#   LADDER_EPOCHS                E, the template's epochs (batch-16 steps train 4·E)
#   LADDER_SEEDS                 e.g. "0 1"
#   LADDER_ENCODER               resnet34 (the course's) or resnet18, resnet50 …
#   LADDER_STEPS                 subset of "1 2 3 4 5 6 7"
#   LADDER_DIR                   where data/ and runs/ go (default ~/mtl_ladder/<scale>; must be outside the
#                                code folder); LADDER_DATA, LADDER_RUNS override each
#   LADDER_WORKERS               data-loader processes; LADDER_TRAIN_ARGS extra `mtl train` flags
#   LADDER_DRY=1                 print the commands instead of running them
#
# Presets (docs/LADDER.md has the time estimates and how they were made):
#   tiny   16 train / 4 val, 128×64, crop 64, E = 1, seed 0, ResNet-18   a smoke test: 4¼ min measured on 2 cores
#   small  64 / 32, 256×128, crop 128, E = 2, seeds 0 1, ResNet-18       ≈ 20 min on 2 cores (estimated)
#   cpu    160 / 48, 256×128, crop 128, E = 3, seeds 0 1, ResNet-18      ≈ 65–70 min on 2 cores (estimated; ≤ 90)
#   gpu    2000 / 250, 512×256, crop 256, E = 16, seeds 0 1, ResNet-34, bf16 on one GPU (not measured yet)
#
# A run that finished is skipped when the script runs again; one that was interrupted is resumed
# (`mtl train --resume`, exact). Results: $LADDER_DIR/ladder.md and `mtl results $LADDER_DIR/runs`.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCALE="${LADDER_SCALE:-cpu}"
extra_default=""
case "$SCALE" in
  tiny)  p_train=16;   p_val=4;   p_w=128; p_h=64;  p_crop=64;  p_epochs=1;  p_seeds="0";   p_enc=resnet18; p_workers=1 ;;
  small) p_train=64;   p_val=32;  p_w=256; p_h=128; p_crop=128; p_epochs=2;  p_seeds="0 1"; p_enc=resnet18; p_workers=2 ;;
  cpu)   p_train=160;  p_val=48;  p_w=256; p_h=128; p_crop=128; p_epochs=3;  p_seeds="0 1"; p_enc=resnet18; p_workers=2 ;;
  gpu)   p_train=2000; p_val=250; p_w=512; p_h=256; p_crop=256; p_epochs=16; p_seeds="0 1"; p_enc=resnet34; p_workers=8
         extra_default="--accelerator gpu --devices 1 --precision bf16-mixed --channels_last true" ;;
  *) echo "ladder.sh: LADDER_SCALE must be tiny, small, cpu or gpu (got '$SCALE')" >&2; exit 2 ;;
esac

N_TRAIN="${LADDER_TRAIN:-$p_train}"
N_VAL="${LADDER_VAL:-$p_val}"
WIDTH="${LADDER_WIDTH:-$p_w}"
HEIGHT="${LADDER_HEIGHT:-$p_h}"
CROP="${LADDER_CROP:-$p_crop}"
EPOCHS="${LADDER_EPOCHS:-$p_epochs}"
SEEDS="${LADDER_SEEDS:-$p_seeds}"
ENCODER="${LADDER_ENCODER:-$p_enc}"
STEPS="${LADDER_STEPS:-1 2 3 4 5 6 7}"
WORKERS="${LADDER_WORKERS:-$p_workers}"
TRAIN_ARGS="${LADDER_TRAIN_ARGS:-$extra_default}"
DIR="${LADDER_DIR:-$HOME/mtl_ladder/$SCALE}"
DATA="${LADDER_DATA:-$DIR/data}"
RUNS="${LADDER_RUNS:-$DIR/runs}"
DRY="${LADDER_DRY:-0}"

MTL="${MTL:-$REPO/.venv/bin/mtl}"
[ -x "$MTL" ] || MTL=mtl
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3

if (( N_TRAIN % 16 != 0 )); then
  echo "ladder.sh: LADDER_TRAIN=$N_TRAIN is not a multiple of 16: batch 4 and batch 16 would not take the same number of steps" >&2
  exit 2
fi

run() {  # print a command; run it unless LADDER_DRY=1
  printf '+'; printf ' %q' "$@"; printf '\n'
  if [ "$DRY" != 1 ]; then "$@"; fi
}

# One step's config and overrides (on top of the common flags below).
step_args() {
  local e4=$((4 * EPOCHS))
  case "$1" in
    1) echo "1_template --config $REPO/configs/course_template.yaml --num_epochs $EPOCHS" ;;
    2) echo "2_adam --config $REPO/configs/course_template.yaml --optimizer adam --optimizer_lr 0.0001 --num_epochs $EPOCHS" ;;
    3) echo "3_batch16 --config $REPO/configs/course_tuned_optimizer.yaml --pretrained false --num_epochs $e4" ;;
    4) echo "4_dilation --config $REPO/configs/course_pretrained_dilation.yaml --pretrained false --num_epochs $e4" ;;
    5) echo "5_aspp_decoder --config $REPO/configs/course_aspp_decoder.yaml --pretrained false --num_epochs $e4" ;;
    6) echo "6_branched --config $REPO/configs/course_branched.yaml --pretrained false --num_epochs $e4" ;;
    7) echo "7_distillation --config $REPO/configs/course_distillation.yaml --pretrained false --num_epochs $e4" ;;
    *) echo "ladder.sh: unknown step '$1' in LADDER_STEPS (use 1..7)" >&2; return 1 ;;
  esac
}

echo "ladder: scale $SCALE — $N_TRAIN train / $N_VAL val images at ${WIDTH}x${HEIGHT}, crop $CROP, E = $EPOCHS" \
     "(batch-16 steps: $((4 * EPOCHS)) epochs), seeds [$SEEDS], $ENCODER, steps [$STEPS]"
echo "ladder: data $DATA, runs $RUNS"

# 1. The dataset (generated once; reused if it is there with the same size).
SIGNATURE="train=$N_TRAIN val=$N_VAL size=${WIDTH}x${HEIGHT} seed=0"
if [ -f "$DATA/.ladder_data" ]; then
  if [ "$(cat "$DATA/.ladder_data")" != "$SIGNATURE" ]; then
    echo "ladder.sh: $DATA holds another dataset ($(cat "$DATA/.ladder_data")); set LADDER_DATA or LADDER_DIR" >&2
    exit 2
  fi
else
  run "$MTL" data synth --out "$DATA" --num-train "$N_TRAIN" --num-val "$N_VAL" --num-test 0 \
      --width "$WIDTH" --height "$HEIGHT" --seed 0 --workers "${LADDER_SYNTH_WORKERS:-$(nproc 2>/dev/null || echo 2)}"
  [ "$DRY" = 1 ] || echo "$SIGNATURE" > "$DATA/.ladder_data"
fi

# 2. The runs.
[ "$DRY" = 1 ] || mkdir -p "$RUNS/.done"
for step in $STEPS; do
  read -r -a args <<< "$(step_args "$step")"
  name="${args[0]}"
  for seed in $SEEDS; do
    log_dir="$RUNS/$name/seed$seed"
    done_mark="$RUNS/.done/$name.seed$seed"
    if [ -f "$done_mark" ]; then
      echo "ladder: $name seed $seed finished earlier, skipped"
      continue
    fi
    if [ -f "$log_dir/checkpoints/last.ckpt" ]; then
      run "$MTL" train --resume "$log_dir"
    else
      # shellcheck disable=SC2086  # TRAIN_ARGS is a list of flags
      run "$MTL" train "${args[@]:1}" --dataset_root "$DATA" --log_dir "$log_dir" --seed "$seed" \
          --model_encoder_name "$ENCODER" --aug_input_crop_size "$CROP" \
          --workers "$WORKERS" --workers_validation "$WORKERS" \
          --prepare_submission false --progress_bar false $TRAIN_ARGS
    fi
    [ "$DRY" = 1 ] || touch "$done_mark"
  done
done

# 3. The table.
if [ "$DRY" = 1 ]; then
  run "$PYTHON" "$REPO/scripts/ladder_table.py" "$RUNS" --out "$DIR/ladder.md"
else
  "$PYTHON" "$REPO/scripts/ladder_table.py" "$RUNS" --out "$DIR/ladder.md"
  echo "ladder: table in $DIR/ladder.md; all runs: $MTL results $RUNS --format markdown"
fi
