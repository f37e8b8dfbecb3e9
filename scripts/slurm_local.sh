#!/usr/bin/env bash
# A real one-node SLURM cluster on the loopback interface, for `make test-slurm` and local trials.
#
# usage: scripts/slurm_local.sh install|start|stop|status|wait JOBID [SECONDS]|env
#   install  apt-get the Debian packages if absent (slurmctld slurmd slurm-client munge)
#   start    start munged (unless one answers already), slurmctld and slurmd; wait until the node is idle
#   stop     cancel every job, stop the daemons this script started (by recorded pid), check none is left
#   wait     poll a job (every 0.5 s) until it ends; exit 0 only if it COMPLETED (all array tasks)
#   env      print the export line clients need: eval "$(scripts/slurm_local.sh env)"
# Needs root (daemons run as root, munged as the munge user) and no systemd. The configuration is
# private (SLURM_CONF=$STATE/slurm.conf), so an existing /etc/slurm is never touched.
# Variables: ANAUS_SLURM_STATE (/run/anaus-slurm-local), ANAUS_SLURM_SPOOL (/var/tmp/anaus-slurm-local),
#            ANAUS_SLURM_CPUS (the machine's), ANAUS_SLURM_PORT (6817; slurmd uses the next one).
set -euo pipefail

STATE=${ANAUS_SLURM_STATE:-/run/anaus-slurm-local}
SPOOL=${ANAUS_SLURM_SPOOL:-/var/tmp/anaus-slurm-local}
CONF=$STATE/slurm.conf
PORT=${ANAUS_SLURM_PORT:-6817}
NODE=$(hostname -s)
export SLURM_CONF=$CONF

log() { echo "[slurm_local $(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# alive PID COMM: PID is a live, non-zombie process named COMM (guards against recycled pids)
alive() {
  [[ -n ${1:-} && -r /proc/$1/comm && $(cat "/proc/$1/comm" 2>/dev/null) == "$2" ]] || return 1
  [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]
}
recorded() { cat "$STATE/$1.pid" 2>/dev/null || true; }

# remember NAME PIDFILE: wait for the daemon's own pid file, then record its pid as ours
remember() {
  local pid=""
  for _ in $(seq 60); do
    pid=$(cat "$2" 2>/dev/null || true)
    alive "$pid" "$1" && { echo "$pid" >"$STATE/$1.pid"; log "$1 running (pid $pid)"; return; }
    sleep 0.5
  done
  die "$1 did not start; see $SPOOL/log/$1.log"
}

# halt NAME: TERM the pid we recorded for NAME, KILL that same pid after 20 s
halt() {
  local pid; pid=$(recorded "$1")
  if alive "$pid" "$1"; then
    log "stopping $1 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 40); do alive "$pid" "$1" || break; sleep 0.5; done
    if alive "$pid" "$1"; then log "$1 ignored SIGTERM: SIGKILL $pid"; kill -KILL "$pid" 2>/dev/null || true; sleep 0.5; fi
  fi
  rm -f "$STATE/$1.pid"
}

do_install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
     && command -v munged >/dev/null; then
    return
  fi
  log "installing slurmctld slurmd slurm-client munge (Debian packages, about 13 MB)"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then log "munged already answering: using it"; return; fi
  if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    install -d -o munge -g munge -m 0700 /etc/munge
    mungekey --create --keyfile=/etc/munge/munge.key --force
  fi
  chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  runuser -u munge -- /usr/sbin/munged        # munged refuses to run as root
  remember munged /run/munge/munged.pid
  munge -n | unmunge >/dev/null || die "munge round trip failed"
}

write_conf() {
  local hardware cpus memory
  hardware=$(slurmd -C | head -1)
  cpus=${ANAUS_SLURM_CPUS:-$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hardware")}
  # 90% of the memory slurmd sees: a RealMemory above it would drain the node.
  memory=$(($(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hardware") * 9 / 10))
  getent hosts "$NODE" >/dev/null || die "host name $NODE does not resolve; add '127.0.0.1 $NODE' to /etc/hosts"
  # Quoted heredoc: nothing in it is expanded by the shell; the values are substituted by sed below.
  sed -e "s|@NODE@|$NODE|g" -e "s|@CPUS@|$cpus|g" -e "s|@MEMORY@|$memory|g" -e "s|@SPOOL@|$SPOOL|g" \
      -e "s|@STATE@|$STATE|g" -e "s|@PORT@|$PORT|g" -e "s|@DPORT@|$((PORT + 1))|g" >"$CONF" <<'EOF_CONF'
# Written by scripts/slurm_local.sh: one node on loopback, no cgroups, no accounting.
ClusterName=anauslocal
SlurmctldHost=@NODE@(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# A requeued job waits cred_expire seconds before it may start again (default 120).
AuthInfo=cred_expire=10
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmdParameters=config_overrides
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# Scan pending jobs often, so a requeued job restarts within seconds (defaults 30 s / 60 s).
SchedulerParameters=bf_interval=5,sched_interval=10
ReturnToService=2
StateSaveLocation=@SPOOL@/ctld
SlurmdSpoolDir=@SPOOL@/d
SlurmctldPidFile=@STATE@/slurmctld.daemon.pid
SlurmdPidFile=@STATE@/slurmd.daemon.pid
SlurmctldLogFile=@SPOOL@/log/slurmctld.log
SlurmdLogFile=@SPOOL@/log/slurmd.log
SlurmctldPort=@PORT@
SlurmdPort=@DPORT@
# Listen on the address the node name resolves to (loopback), not on every interface.
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
# Keep finished jobs' records for an hour: the tests read them after the whole chain (13 min on a loaded machine).
MinJobAge=3600
# Lightning ignores SIGTERM during a requeue; tasks are SIGKILLed after KillWait seconds.
KillWait=10
MailProg=/bin/true
Waittime=0
NodeName=@NODE@ NodeHostname=@NODE@ NodeAddr=127.0.0.1 CPUs=@CPUS@ RealMemory=@MEMORY@ State=UNKNOWN
PartitionName=debug Nodes=@NODE@ Default=YES MaxTime=INFINITE State=UP
EOF_CONF
}

wait_idle() {
  local state=""
  for _ in $(seq 120); do
    state=$(sinfo -h -N -n "$NODE" -o %T 2>/dev/null || true)
    case $state in
      idle|mixed|allocated) log "node $NODE $state"; return ;;
      down*|drain*|fail*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 0.5
  done
  die "node $NODE not ready (state '$state'); see $SPOOL/log/"
}

do_start() {
  command -v slurmctld >/dev/null || die "SLURM is not installed: run $0 install"
  [[ $(id -u) == 0 ]] || die "run as root (the daemons need it)"
  mkdir -p "$STATE" "$SPOOL/ctld" "$SPOOL/d" "$SPOOL/log"
  if alive "$(recorded slurmctld)" slurmctld && alive "$(recorded slurmd)" slurmd; then
    log "already running"; wait_idle; return
  fi
  start_munge
  write_conf
  local daemon
  for daemon in slurmctld slurmd; do
    if ! alive "$(recorded "$daemon")" "$daemon"; then
      alive "$(cat "$STATE/$daemon.daemon.pid" 2>/dev/null || true)" "$daemon" \
        && die "a $daemon this script did not record is running (pid file $STATE/$daemon.daemon.pid)"
      "$daemon"                               # daemonizes and writes its pid file
      remember "$daemon" "$STATE/$daemon.daemon.pid"
    fi
  done
  wait_idle
}

# leftovers: live SLURM processes (daemons, job step daemons); zombies awaiting their reaper do not count
leftovers() {
  local dir name
  for dir in /proc/[0-9]*; do
    name=$(cat "$dir/comm" 2>/dev/null || true)
    case $name in
      slurmctld|slurmd|slurmstepd|slurmscriptd) alive "${dir#/proc/}" "$name" && echo "${dir#/proc/} $name" ;;
    esac
  done
  return 0
}

do_stop() {
  if alive "$(recorded slurmctld)" slurmctld; then
    local jobs; jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
    if [[ -n ${jobs// /} ]]; then
      log "cancelling jobs: $jobs"
      # shellcheck disable=SC2086  # a list of job ids
      scancel $jobs || true
      # slurmstepd outlives slurmd by design: let the jobs end first (KillWait is 10 s).
      for _ in $(seq 60); do [[ -z $(squeue -h -o %A 2>/dev/null) ]] && break; sleep 0.5; done
    fi
  fi
  halt slurmd
  halt slurmctld
  halt munged
  local left; left=$(leftovers)
  [[ -z $left ]] || die "SLURM processes still running: $left"
  log "stopped; no SLURM daemon left"
}

do_status() {
  local daemon
  for daemon in munged slurmctld slurmd; do
    if alive "$(recorded "$daemon")" "$daemon"; then echo "$daemon: running (pid $(recorded "$daemon"))"
    else echo "$daemon: not started by this script"; fi
  done
  if alive "$(recorded slurmctld)" slurmctld; then sinfo; squeue; fi
}

# do_wait ID [SECONDS]: every task of the job (or array) must end COMPLETED
do_wait() {
  local id=$1 limit=${2:-600} states=""
  for _ in $(seq $((limit * 2))); do
    states=$(scontrol show job "$id" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | sort -u | tr '\n' ' ')
    [[ -n $states && ! $states =~ (PENDING|RUNNING|CONFIGURING|COMPLETING|REQUEUED|SUSPENDED|RESIZING) ]] && break
    sleep 0.5
  done
  log "job $id: ${states:-unknown}"
  [[ $states == "COMPLETED " ]]
}

case ${1:-} in
  install) do_install ;;
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  wait) do_wait "${2:?job id}" "${3:-600}" ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed -n 's/^# \{0,1\}//p'; exit 2 ;;
esac
