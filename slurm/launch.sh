# shellcheck shell=bash
# slurm/launch.sh -- sourced by slurm/<stage>.sbatch: runs one anaus-pl stage on every task of the job.
#
# The template sets ANAUS_STAGE (adapt|annotate|pretrain|evaluate) and ANAUS_STAGE_VERB (the anaus-pl
# subcommand). Everything else is an environment variable with a default (export it before sbatch;
# sbatch passes the submitting shell's environment to the job):
#   ANAUS_HOME                 repository root, the fixed working directory (default: submit dir)
#   ANAUS_SITE                 file sourced first: modules, conda/venv (default slurm/site.sh if present,
#                              else .venv/bin/activate if present)
#   ANAUS_PL                   the command (default anaus-pl; e.g. "python -m anaus_pl.cli")
#   ANAUS_TRAINER              device preset configs/trainer/<name>.yaml (default: ddp with GPUs, else cpu)
#   ANAUS_PRECISION            Trainer precision (e.g. bf16-mixed). Unset: the stage config's own precision
#                              when it sets one (the paper pretrain's fp32 stays fp32), else the preset's;
#                              the job log says which and why
#   ANAUS_RUN                  run name passed as --run: outputs under runs/<stage>/<run>/ (default: the
#                              config's own, `default` for stages/*.yaml, `paper` for configs/paper/*.yaml)
#   ANAUS_PYTHON               Python with PyYAML, to read the stage config's precision (default python)
#   ANAUS_<STAGE>_COMMAND      subcommand (default ANAUS_STAGE_VERB)
#   ANAUS_<STAGE>_CONFIG       stage YAML (default stages/<stage>.yaml)
#   ANAUS_<STAGE>_STRATEGY     Lightning strategy, after the presets (default ddp; the adapt template sets
#                              ddp_find_unused_parameters_true: each phase leaves a part of LP-SAM idle)
#   ANAUS_<STAGE>_ROOT_DIR     the stage's fixed run directory: Lightning's default_root_dir, where the
#                              requeue checkpoint hpc_ckpt_<n>.ckpt lives (default runs/<stage>/<ANAUS_RUN or default>)
#   ANAUS_ARGS, ANAUS_<STAGE>_ARGS   extra CLI overrides, split on whitespace (all stages, then this one)
#   ANAUS_<STAGE>_ARRAY_ARGS   for a job array: overrides with {} replaced by the array value
#   ANAUS_<STAGE>_ARRAY_VALUES values indexed by SLURM_ARRAY_TASK_ID (default: the index itself)
#   ANAUS_KEEP_HPC_CKPT=1      let a fresh (not requeued) job resume an earlier job's hpc checkpoint
#   ANAUS_LIGHTNING_COMMANDS   subcommands that take --trainer.* (default "fit validate annotate")
# The batch script exits with srun's status, so a failed stage fails its job and the chain stops.

set -uo pipefail

stage=${ANAUS_STAGE:?set by the sbatch template}
STAGE=${stage^^}
ANAUS_HOME=${ANAUS_HOME:-${SLURM_SUBMIT_DIR:-$PWD}}
cd "$ANAUS_HOME" || { echo "anaus: cannot cd to ANAUS_HOME=$ANAUS_HOME" >&2; exit 2; }

# Site set-up: modules, conda or a virtual environment.
if [[ -n "${ANAUS_SITE:-}" ]]; then
  # shellcheck source=/dev/null
  source "$ANAUS_SITE" || { echo "anaus: sourcing ANAUS_SITE=$ANAUS_SITE failed" >&2; exit 2; }
elif [[ -f slurm/site.sh ]]; then
  # shellcheck source=/dev/null
  source slurm/site.sh
elif [[ -f .venv/bin/activate ]]; then
  # shellcheck source=/dev/null
  source .venv/bin/activate
fi

export PYTHONUNBUFFERED=1 PYTHONFAULTHANDLER=1 NO_ALBUMENTATIONS_UPDATE=1 JSONARGPARSE_DEPRECATION_WARNINGS=off
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}
# Since Slurm 22.05 srun no longer inherits --cpus-per-task from sbatch.
[[ -n "${SLURM_CPUS_PER_TASK:-}" ]] && export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK

var() { local name="ANAUS_${STAGE}_$1"; printf '%s' "${!name:-$2}"; }
# yaml_precision FILE: the trainer.precision FILE sets (empty when it sets none or cannot be read)
yaml_precision() {
  "${ANAUS_PYTHON:-python}" -c 'import sys, yaml
print(((yaml.safe_load(open(sys.argv[1])) or {}).get("trainer") or {}).get("precision") or "")' "$1" 2>/dev/null
}

verb=$(var COMMAND "${ANAUS_STAGE_VERB:?set by the sbatch template}")
config=$(var CONFIG "stages/$stage.yaml")
read -ra launcher <<<"${ANAUS_PL:-anaus-pl}"
command=("${launcher[@]}" "$verb" --config "$config")
[[ -n ${ANAUS_RUN:-} ]] && command+=(--run "$ANAUS_RUN")

if [[ " ${ANAUS_LIGHTNING_COMMANDS:-fit validate annotate} " == *" $verb "* ]]; then
  trainer=${ANAUS_TRAINER:-$([[ ${SLURM_GPUS_ON_NODE:-0} -gt 0 ]] && echo ddp || echo cpu)}
  root_dir=$(var ROOT_DIR "runs/$stage/${ANAUS_RUN:-default}")
  [[ -n "${SLURM_ARRAY_TASK_ID:-}" ]] && root_dir+="/task$SLURM_ARRAY_TASK_ID"
  mkdir -p "$root_dir"
  # Lightning resumes from the newest hpc_ckpt_<n>.ckpt in default_root_dir whenever it runs under
  # SLURM. That is right after a requeue, wrong for a new job: set an older job's checkpoints aside.
  if [[ ${SLURM_RESTART_COUNT:-0} == 0 && ${ANAUS_KEEP_HPC_CKPT:-0} != 1 ]] \
     && compgen -G "$root_dir/hpc_ckpt_*.ckpt" >/dev/null; then
    aside="$root_dir/stale_hpc/job${SLURM_JOB_ID:-unknown}"
    mkdir -p "$aside" && mv "$root_dir"/hpc_ckpt_*.ckpt "$aside"/
    echo "anaus: fresh job: moved older requeue checkpoints to $aside (ANAUS_KEEP_HPC_CKPT=1 resumes them)"
  fi
  command+=(--config "configs/trainer/$trainer.yaml" --config configs/trainer/slurm.yaml
            --trainer.strategy "$(var STRATEGY ddp)"
            --trainer.num_nodes "${SLURM_JOB_NUM_NODES:-1}" --trainer.devices "${SLURM_NTASKS_PER_NODE:-1}"
            --trainer.default_root_dir "$root_dir")
  # The device preset comes after the stage config: it must not change the stage's precision unasked.
  preset_precision=$(yaml_precision "configs/trainer/$trainer.yaml")
  stage_precision=$(yaml_precision "$config")
  if [[ -n ${ANAUS_PRECISION:-} ]]; then
    command+=(--trainer.precision "$ANAUS_PRECISION")
    echo "anaus: precision $ANAUS_PRECISION (ANAUS_PRECISION)"
  elif [[ -n $stage_precision && $stage_precision == "$preset_precision" ]]; then
    echo "anaus: precision $stage_precision ($config and the $trainer preset agree)"
  elif [[ -n $stage_precision ]]; then
    command+=(--trainer.precision "$stage_precision")
    echo "anaus: precision $stage_precision as $config sets it" \
         "(the $trainer preset says ${preset_precision:-nothing}; ANAUS_PRECISION=... chooses another)"
  else
    echo "anaus: precision ${preset_precision:-(the Lightning default)} from configs/trainer/$trainer.yaml"
  fi
fi

read -ra extra <<<"${ANAUS_ARGS:-} $(var ARGS "")"
command+=("${extra[@]}")

if [[ -n "${SLURM_ARRAY_TASK_ID:-}" ]]; then
  read -ra values <<<"$(var ARRAY_VALUES "")"
  value=$SLURM_ARRAY_TASK_ID
  if ((${#values[@]})); then
    value=${values[$SLURM_ARRAY_TASK_ID]:-}
    [[ -n "$value" ]] || { echo "anaus: array index $SLURM_ARRAY_TASK_ID has no entry in ANAUS_${STAGE}_ARRAY_VALUES" >&2; exit 2; }
  fi
  template=$(var ARRAY_ARGS "")
  [[ -n "$template" ]] || { echo "anaus: $stage runs as a job array but ANAUS_${STAGE}_ARRAY_ARGS is empty" >&2; exit 2; }
  read -ra array_args <<<"${template//\{\}/$value}"
  command+=("${array_args[@]}")
fi

echo "anaus: $(date -Is) stage=$stage job=${SLURM_JOB_ID:-none}${SLURM_ARRAY_TASK_ID:+ array_task=$SLURM_ARRAY_TASK_ID}" \
     "restart=${SLURM_RESTART_COUNT:-0} nodes=${SLURM_JOB_NODELIST:-?} tasks_per_node=${SLURM_NTASKS_PER_NODE:-?} dir=$PWD"
echo "anaus: srun ${command[*]}"
srun --kill-on-bad-exit=1 "${command[@]}"
status=$?
echo "anaus: $(date -Is) stage=$stage srun exit status $status"
exit "$status"
