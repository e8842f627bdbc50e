#!/usr/bin/env bash
# A single-node Slurm on this machine, for `sweep run --executor slurm` tests
# and for trying the executor without a cluster.
#
#   scripts/slurm-local.sh start    # install (once), then start munged, slurmctld, slurmd
#   scripts/slurm-local.sh status   # sinfo + squeue
#   scripts/slurm-local.sh stop     # stop the three daemons
#
# Debian 12's slurm-wlm is 22.05: it has no `auth/slurm`, so munge signs
# the messages. No systemd: the daemons are started directly and write
# their pid files under the state dir ($SWEEP_SLURM_DIR, default
# /var/tmp/sweep-slurm), which also holds the spool, logs and the job
# completion file. The config goes to /etc/slurm (where sbatch, squeue, …
# look for it); a config this script did not write is never overwritten.
#
# The node offers two fake GPUs (char devices like /dev/null, listed in
# gres.conf) so `--gres=gpu:1` schedules and sets CUDA_VISIBLE_DEVICES.
# Needs root (apt-get, /etc/slurm, mknod).
set -euo pipefail

STATE="${SWEEP_SLURM_DIR:-/var/tmp/sweep-slurm}"
CONF_DIR=/etc/slurm
MARKER="# written by sweep's scripts/slurm-local.sh"
HOST="$(hostname -s)"

die() { echo "slurm-local: $*" >&2; exit 1; }

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
    && command -v sbatch >/dev/null && command -v munged >/dev/null; then
    return
  fi
  [[ $(id -u) == 0 ]] || die "installing Slurm needs root (apt-get)"
  echo "slurm-local: installing slurmctld slurmd slurm-client munge (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
}

start_munge() {
  mkdir -p /run/munge
  chown munge:munge /run/munge
  chmod 0755 /run/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey --create --keyfile /etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
  fi
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    return # already running
  fi
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return
    sleep 0.1
  done
  die "munged did not come up"
}

write_config() {
  for f in slurm.conf gres.conf; do
    if [[ -e $CONF_DIR/$f ]] && ! grep -qF "$MARKER" "$CONF_DIR/$f"; then
      die "$CONF_DIR/$f exists and was not written by this script; not touching it"
    fi
  done
  mkdir -p "$CONF_DIR" "$STATE"/{state,spool,log,dev}
  for n in 0 1; do
    [[ -c $STATE/dev/fakegpu$n ]] || mknod "$STATE/dev/fakegpu$n" c 1 3
  done
  # This machine's CPUs and memory as slurmd sees them.
  local node
  node="$(slurmd -C | head -n1)"
  [[ $node == NodeName=* ]] || die "slurmd -C printed no node line: $node"
  cat >"$CONF_DIR/slurm.conf" <<EOF
$MARKER
ClusterName=sweep
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
MailProg=/bin/true
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ReturnToService=2
# No cgroups here: track processes by their parents, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# Cores and memory are consumable, and each job asks for little memory by
# default: without DefMemPerCPU every job takes the whole node.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
# 22.05 reads this here (SchedulerParameters ignores it): a job whose afterok
# dependency failed is cancelled instead of pending forever.
DependencyParameters=kill_invalid_depend
# No slurmdbd: finished jobs' states go to a text file that `sacct -c` reads.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/log/jobcomp.txt
GresTypes=gpu
$node Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$CONF_DIR/gres.conf" <<EOF
$MARKER
AutoDetect=off
NodeName=$HOST Name=gpu File=$STATE/dev/fakegpu[0-1]
EOF
}

running() { # pid file → 0 if its process lives
  [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

start() {
  install_packages
  start_munge
  write_config
  if ! running "$STATE/slurmctld.pid"; then
    slurmctld -i
  fi
  if ! running "$STATE/slurmd.pid"; then
    slurmd
  fi
  # Wait for the node to report idle (a restart may leave it down: resume it).
  for i in $(seq 100); do
    local state
    state="$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)"
    case "$state" in
      idle* | mixed* | allocated*) echo "slurm-local: node $HOST $state (state dir $STATE)"; return ;;
      down* | drain*) scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;;
    esac
    sleep 0.2
    ((i % 25 == 0)) && echo "slurm-local: waiting for node $HOST (state: ${state:-none})"
  done
  die "node $HOST did not become idle; see $STATE/log/"
}

stop() {
  local f
  for f in slurmd slurmctld; do
    if running "$STATE/$f.pid"; then
      kill "$(cat "$STATE/$f.pid")"
    fi
  done
  if [[ -s /run/munge/munged.pid ]] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; then
    kill "$(cat /run/munge/munged.pid)"
  fi
  echo "slurm-local: stopped"
}

status() {
  sinfo
  squeue
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
