#!/usr/bin/env bash
# The dense-benchmark models compared on the generated NYUD-v2 multi-task copy (docs/DENSE.md): single-task
# baselines of semseg, depth, normals and edges against the joint model (deeplabv3p), PAD-Net and MTI-Net with all
# four tasks, 2 seeds each; then the table with Δ_MTL as MTL-PyTorch computes it (one metric per task).
#
#   scripts/dense.sh                                   # the CPU setting (14 runs)
#   DENSE_DIR=/tmp/d DENSE_TRAIN=16 DENSE_EPOCHS=1 DENSE_SEEDS=0 scripts/dense.sh   # a smoke run
#
# Finished runs are skipped and interrupted ones resumed, so the script can be run again after a stop.
set -euo pipefail

TRAIN="${DENSE_TRAIN:-96}" VAL="${DENSE_VAL:-16}" WIDTH=160 HEIGHT=120 CROP=96 BATCH=8
EPOCHS="${DENSE_EPOCHS:-3}"
SEEDS="${DENSE_SEEDS:-0 1}"
DIR="${DENSE_DIR:-$HOME/mtl_dense/cpu}"
MODELS="${DENSE_MODELS:-deeplabv3p padnet mtinet}"
TASKS=semseg,depth,normals,edges

DATA="$DIR/data"
RUNS="$DIR/runs"
if [ ! -f "$DATA/gt_sets/val.txt" ] || [ "$(wc -l < "$DATA/gt_sets/val.txt")" -lt "$VAL" ]; then
  rm -rf "$DATA"
  mtl data synth --layout nyud_mt --out "$DATA" --num-train "$TRAIN" --num-val "$VAL" --num-test 0 \
    --width "$WIDTH" --height "$HEIGHT" --seed 1
fi

# MTL-PyTorch's NYUD loss weights (configs/nyud/*: semseg 1, depth 1, normals 10, edge 50); MTI-Net at HRNet-18's
# widths (--decoder_channels 72, docs/DENSE.md).
COMMON=(--dataset nyud_mt --dataset_root "$DATA" --model_encoder_name resnet18 --optimizer adam --optimizer_lr 0.001
        --optimizer_weight_decay 0 --batch_size "$BATCH" --batch_size_validation 4 --aug_input_crop_size "$CROP"
        --aug_geom_scale_min 0.8 --aug_geom_scale_max 1.2 --aug_geom_reflect true --decoder_channels 72
        --loss_weight_semseg 1 --loss_weight_depth 1 --loss_weight_normals 10 --loss_weight_edges 50
        --num_epochs "$EPOCHS" --workers 2 --workers_validation 1 --prepare_submission false --progress_bar false
        --observe_valid_ids 0 --num_steps_visualization_first 0 --checkpoint_every_n_steps 0)

train() {  # train NAME FLAGS…: a new run, a resumed one, or nothing when it has finished
  local run="$RUNS/$1"; shift
  if [ -f "$run/checkpoints/last.ckpt" ]; then
    mtl train --resume "$run" --allow_changed_code | tail -1
  else
    mtl train --log_dir "$run" "$@" | tail -1
  fi
}

for seed in $SEEDS; do
  for task in ${TASKS//,/ }; do
    train "single_${task}_seed$seed" "${COMMON[@]}" --model_name deeplabv3p --tasks "$task" --seed "$seed"
  done
  for model in $MODELS; do
    train "${model}_seed$seed" "${COMMON[@]}" --model_name "$model" --tasks "$TASKS" --seed "$seed"
  done
done
mtl results "$RUNS" --sort name
