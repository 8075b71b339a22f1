#!/usr/bin/env bash
# Weighting methods compared on the generated world: the joint model with three tasks (semseg, depth, normals),
# each method with 2 seeds, against single-task baselines; then the table with Δm (docs/METHODS.md).
#
#   scripts/methods.sh                      # the CPU setting (28 runs, about 40 minutes on 2 idle cores)
#   METHODS_SCALE=gpu scripts/methods.sh    # a larger setting for a GPU
#   METHODS_ON=parameters scripts/methods.sh   # gradient methods on the shared parameters (≈ 4× a step)
#   METHODS_DIR=/tmp/m METHODS_TRAIN=16 METHODS_EPOCHS=1 METHODS_SEEDS=0 scripts/methods.sh   # a smoke run
#
# Finished runs are skipped and interrupted ones resumed, so the script can be run again after a stop.
set -euo pipefail

SCALE="${METHODS_SCALE:-cpu}"
case "$SCALE" in
  cpu) TRAIN=160 VAL=40 WIDTH=256 HEIGHT=128 CROP=128 BATCH=8 EPOCHS=4 ENCODER=resnet18 ON=representation EXTRA=() ;;
  gpu) TRAIN=2000 VAL=250 WIDTH=512 HEIGHT=256 CROP=256 BATCH=16 EPOCHS=20 ENCODER=resnet34 ON=auto
       EXTRA=(--accelerator gpu --precision bf16-mixed --channels_last true) ;;
  *) echo "METHODS_SCALE must be cpu or gpu, got $SCALE" >&2; exit 2 ;;
esac
TRAIN="${METHODS_TRAIN:-$TRAIN}"
EPOCHS="${METHODS_EPOCHS:-$EPOCHS}"
# Where gradient methods take the task gradients (docs/METHODS.md#parameters-or-representation): on the CPU the
# shared representation, which costs about what fixed weighting costs; on the parameters a step with three
# tasks costs about 4×. auto = each method's own default. Loss weightings ignore it.
ON="${METHODS_ON:-$ON}"
SEEDS="${METHODS_SEEDS:-0 1}"
DIR="${METHODS_DIR:-$HOME/mtl_methods/$SCALE}"
METHODS="${METHODS_LIST:-fixed uncertainty dwa rlw famo mgda graddrop pcgrad cagrad nash_mtl imtl}"
TASKS=semseg,depth,normals

DATA="$DIR/data"
RUNS="$DIR/runs"
if [ ! -f "$DATA/val/normals/$((VAL - 1)).png" ]; then
  mtl data synth --out "$DATA" --num-train "$TRAIN" --num-val "$VAL" --num-test 0 --width "$WIDTH" --height "$HEIGHT" --seed 1
fi

COMMON=(--dataset_root "$DATA" --model_name deeplabv3p --model_encoder_name "$ENCODER" --optimizer adam
        --optimizer_lr 0.001 --optimizer_weight_decay 0 --batch_size "$BATCH" --aug_input_crop_size "$CROP"
        --aug_geom_scale_min 0.8 --aug_geom_scale_max 1.2 --aug_geom_reflect true --depth_unit log --loss_depth l1
        --num_epochs "$EPOCHS" --workers 2 --workers_validation 1 --prepare_submission false --progress_bar false
        --observe_valid_ids 0 --num_steps_visualization_first 0 --checkpoint_every_n_steps 0 "${EXTRA[@]}")

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
    train "single_${task}_seed$seed" "${COMMON[@]}" --tasks "$task" --seed "$seed"
  done
  for method in $METHODS; do
    train "${method}_seed$seed" "${COMMON[@]}" --tasks "$TASKS" --loss_weighting "$method" --weighting_on "$ON" --seed "$seed"
  done
done
mtl results "$RUNS" --sort name
# the table of docs/METHODS.md, with the Python that runs mtl
"$(dirname "$(command -v mtl)")/python" "$(dirname "$0")/methods_table.py" "$RUNS" --out "$DIR/methods.md"
