#!/usr/bin/env bash
# Submit the anaus-pl chain adapt -> annotate -> pretrain -> evaluate (job array) -> evaluate report
# as SLURM jobs linked by --dependency=afterok, and print "<stage> <job id>" per job.
#
# usage: slurm/submit_chain.sh [--dry-run] [--from STAGE] [--to STAGE] [--after JOBID] [-- SBATCH_OPTION...]
#   --from/--to   submit a part of the chain (e.g. --from pretrain after changing its config)
#   --after ID    make the first submitted job wait for job ID (afterok)
#   --dry-run     print the sbatch commands instead of running them
#   -- ...        extra sbatch options for every job (e.g. --mail-type=FAIL --mail-user=me@site)
#
# Resources (environment variables; defaults in brackets):
#   ANAUS_PARTITION, ANAUS_ACCOUNT, ANAUS_QOS  [site defaults]
#   ANAUS_NODES                 nodes for adapt, annotate, pretrain [1]
#   ANAUS_GPUS_PER_NODE         GPUs per node; 0 runs on CPU [2, the paper's two GPUs]
#   ANAUS_TASKS_PER_NODE        ranks per node = Trainer devices [ANAUS_GPUS_PER_NODE, at least 1]
#   ANAUS_CPUS_PER_TASK         CPU cores per rank, for data loading [8]
#   ANAUS_MEM                   memory per node, e.g. 64G [site default]
#   ANAUS_TIME_<STAGE>          wall-clock limit per job [template: adapt 08:00:00, annotate 04:00:00,
#                               pretrain 24:00:00, evaluate 08:00:00]; fit stages continue by requeue
#   ANAUS_EVALUATE_ARRAY        array indices for evaluate, one fold (or task) each [0-4]; empty: no array
#   ANAUS_EVALUATE_GPUS         GPUs per evaluate array task [1 if ANAUS_GPUS_PER_NODE > 0, else 0]
# The job's command is shaped by the variables listed in slurm/launch.sh (ANAUS_ARGS, ANAUS_SITE, ANAUS_RUN,
# ANAUS_PRECISION: the stage config keeps its own precision unless that one is set, and the job log says so, ...);
# sbatch hands the submitting shell's environment to the jobs.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export ANAUS_HOME=${ANAUS_HOME:-$(dirname "$HERE")}
STAGES=(adapt annotate pretrain evaluate)

die() { echo "submit_chain: $*" >&2; exit 2; }
index_of() { local i; for i in "${!STAGES[@]}"; do [[ ${STAGES[$i]} == "$1" ]] && { echo "$i"; return; }; done; die "unknown stage '$1' (one of ${STAGES[*]})"; }

dry_run=0 from=adapt to=evaluate after="" extra=()
while (($#)); do
  case $1 in
    --dry-run) dry_run=1 ;;
    --from) from=${2:?--from needs a stage}; shift ;;
    --to) to=${2:?--to needs a stage}; shift ;;
    --after) after=${2:?--after needs a job id}; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -n 's/^# \{0,1\}//p'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
  shift
done
first=$(index_of "$from")
last=$(index_of "$to")
((first <= last)) || die "--from $from comes after --to $to"

gpus=${ANAUS_GPUS_PER_NODE:-2}
tasks=${ANAUS_TASKS_PER_NODE:-$((gpus > 0 ? gpus : 1))}
eval_gpus=${ANAUS_EVALUATE_GPUS:-$((gpus > 0 ? 1 : 0))}

common=(--parsable --chdir="$ANAUS_HOME" --kill-on-invalid-dep=yes)
[[ -n ${ANAUS_PARTITION:-} ]] && common+=(--partition="$ANAUS_PARTITION")
[[ -n ${ANAUS_ACCOUNT:-} ]] && common+=(--account="$ANAUS_ACCOUNT")
[[ -n ${ANAUS_QOS:-} ]] && common+=(--qos="$ANAUS_QOS")
[[ -n ${ANAUS_MEM:-} ]] && common+=(--mem="$ANAUS_MEM")
[[ -n ${ANAUS_CPUS_PER_TASK:-} ]] && common+=(--cpus-per-task="$ANAUS_CPUS_PER_TASK")

# resources STAGE: the per-stage sbatch options
resources() {
  local time_var="ANAUS_TIME_${1^^}"
  [[ -n ${!time_var:-} ]] && echo "--time=${!time_var}"
  if [[ $1 == evaluate ]]; then
    echo "--nodes=1"; echo "--ntasks-per-node=1"
    ((eval_gpus > 0)) && echo "--gpus-per-node=$eval_gpus"
  else
    echo "--nodes=${ANAUS_NODES:-1}"; echo "--ntasks-per-node=$tasks"
    ((gpus > 0)) && echo "--gpus-per-node=$gpus"
  fi
  return 0
}

# submit LABEL DEPENDENCY TEMPLATE SBATCH_OPTION...: print "LABEL ID" and set $job_id
submit() {
  local label=$1 dependency=$2 template=$3; shift 3
  local cmd=(sbatch "${common[@]}" ${dependency:+"--dependency=afterok:$dependency"} "$@" "${extra[@]}" "$template")
  if ((dry_run)); then
    job_id="<$label>"
    echo "$label $job_id: ${cmd[*]}"
  else
    job_id=$("${cmd[@]}")
    job_id=${job_id%%;*}
    echo "$label $job_id"
  fi
}

((dry_run)) || mkdir -p "$ANAUS_HOME/runs/slurm"   # the jobs' log directory (see the templates)
previous=$after
for stage in "${STAGES[@]:first:last - first + 1}"; do
  mapfile -t options < <(resources "$stage")
  template="$ANAUS_HOME/slurm/$stage.sbatch"
  if [[ $stage == evaluate && -n ${ANAUS_EVALUATE_ARRAY-0-4} ]]; then
    submit evaluate "$previous" "$template" "${options[@]}" --array="${ANAUS_EVALUATE_ARRAY-0-4}"
    # The whole evaluate command after the array: finished folds are skipped, the report is written.
    submit evaluate-report "$job_id" "$template" "${options[@]}" --job-name=anaus-evaluate-report \
      --output=runs/slurm/%x-%j.out
  else
    submit "$stage" "$previous" "$template" "${options[@]}"
  fi
  previous=$job_id
done
