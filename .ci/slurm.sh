#!/usr/bin/env bash
# A one-node SLURM cluster for the CI (tests/test_slurm.py), as root, without systemd:
#   .ci/slurm.sh start   install what is missing (apt), write the configs under $LORABENCH_SLURM_DIR,
#                        start munged, mariadbd, slurmdbd, slurmctld and slurmd, wait until the node
#                        is idle and `sacct` answers; then `. $LORABENCH_SLURM_DIR/env` points the
#                        SLURM commands at it (SLURM_CONF) and names its account and partition.
#   .ci/slurm.sh stop    cancel its jobs, stop its daemons (by their pid files) and remove the dir.
# Both are idempotent: start on a running cluster only checks it, stop on none does nothing.
# Accounting (slurmdbd + MariaDB) is part of it: snakemake-executor-plugin-slurm asks `sacct` for its
# jobs' states and `sacctmgr` for the account, as on a real cluster.
# Everything lives in the state dir (configs, spool, logs, database) and on its own ports, so no
# file under /etc is written and a system munge / MariaDB / SLURM beside it is left alone.
set -euo pipefail

STATE=${LORABENCH_SLURM_DIR:-/tmp/lorabench-slurm}
CLUSTER=lorabench
ACCOUNT=lorabench
PARTITION=debug
PORT_BASE=${LORABENCH_SLURM_PORT_BASE:-16810}   # slurmctld +7, slurmd +8, slurmdbd +9, MariaDB +6
CTLD_PORT=$((PORT_BASE + 7)) SLURMD_PORT=$((PORT_BASE + 8)) DBD_PORT=$((PORT_BASE + 9)) DB_PORT=$((PORT_BASE + 6))
export SLURM_CONF=$STATE/slurm.conf
RUN=$STATE/run LOG=$STATE/log
# Commands inside jobs find the config at the compiled-in path only: the jobstep plugin runs each
# job's `srun` without the SLURM_* variables of the job, SLURM_CONF included. So the config is
# linked there too, unless a SLURM configuration is there already (then this script stops).
ETC_CONF=/etc/slurm/slurm.conf

log() { echo "slurm.sh: $*" >&2; }

wait_for() {  # wait_for SECONDS WHAT COMMAND...: until COMMAND succeeds
  local timeout=$1 what=$2; shift 2
  local end=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= end)); then
      log "timed out after ${timeout}s waiting for $what; logs in $LOG:"
      tail -n 20 "$LOG"/*.log >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

alive() { [ -s "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

install() {
  local missing=()
  for tool in munged:munge mariadbd:mariadb-server slurmdbd:slurmdbd slurmctld:slurmctld slurmd:slurmd \
              sbatch:slurm-client; do
    PATH=$PATH:/usr/sbin command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return
  log "installing ${missing[*]}"
  # The packages' scripts would start their daemons (munge, MariaDB, slurmd without a config):
  # a policy-rc.d that forbids it, for the install only, where the machine has none.
  local policy=/usr/sbin/policy-rc.d ours=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && ours=1
  fi
  local rc=0
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null || rc=$?
  [ -n "$ours" ] && rm -f "$policy"
  return $rc
}

need_root() {
  [ "$(id -u)" -eq 0 ] && return
  log "needs root: it runs the SLURM daemons as root, links $ETC_CONF and installs packages (sudo $0 $1)"
  exit 1
}

node_line() {  # this machine's CPUs and memory, as slurmd sees them
  slurmd -C | head -1 | sed -E "s/^NodeName=\S+/NodeName=$(hostname -s) NodeAddr=127.0.0.1/"
}

write_configs() {
  mkdir -p "$STATE" "$RUN" "$LOG" "$STATE/munge" "$STATE/ctld" "$STATE/d"
  chmod 755 "$STATE" "$STATE/munge"   # munged wants its socket's directories searchable by all
  if [ ! -s "$STATE/munge.key" ]; then
    dd if=/dev/urandom of="$STATE/munge.key" bs=1024 count=1 status=none
    chmod 400 "$STATE/munge.key"
  fi
  local auth="AuthInfo=socket=$STATE/munge/munge.socket"
  cat >"$STATE/slurm.conf" <<EOF
# written by .ci/slurm.sh: a one-node test cluster
ClusterName=$CLUSTER
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
$auth
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$STATE/munge/munge.socket
JobCompType=jobcomp/none
MinJobAge=300
MailProg=/bin/true
$(node_line) State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$STATE/slurmdbd.conf" <<EOF
# written by .ci/slurm.sh
AuthType=auth/munge
$auth
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$STATE/slurmdbd.conf"
  if [ "$(readlink "$ETC_CONF" 2>/dev/null)" != "$SLURM_CONF" ]; then
    if [ -e "$ETC_CONF" ] || [ -L "$ETC_CONF" ]; then
      log "$ETC_CONF exists: this machine has a SLURM configuration already; not starting a test cluster"
      exit 1
    fi
    mkdir -p "$(dirname "$ETC_CONF")"
    ln -s "$SLURM_CONF" "$ETC_CONF"
  fi
  cat >"$STATE/env" <<EOF
export SLURM_CONF=$SLURM_CONF LORABENCH_SLURM_ACCOUNT=$ACCOUNT LORABENCH_SLURM_PARTITION=$PARTITION
EOF
}

start_munge() {
  alive munged && return
  munged --force --socket="$STATE/munge/munge.socket" --key-file="$STATE/munge.key" \
    --pid-file="$RUN/munged.pid" --log-file="$LOG/munged.log" --seed-file="$STATE/munge.seed"
  wait_for 10 munged munge -n -S "$STATE/munge/munge.socket"
}

sql() { mariadb --no-defaults --socket="$STATE/mysql.sock" -uroot "$@"; }

start_mariadb() {
  alive mariadbd && return
  if [ ! -d "$STATE/mysql/mysql" ]; then
    mariadb-install-db --no-defaults --user=root --datadir="$STATE/mysql" --skip-test-db \
      --auth-root-authentication-method=socket >"$LOG/mariadb-install.log" 2>&1
  fi
  # innodb sized for a test: small redo log and buffer pool, no doublewrite, no fsync per commit
  mariadbd --no-defaults --user=root --datadir="$STATE/mysql" --socket="$STATE/mysql.sock" \
    --port="$DB_PORT" --bind-address=127.0.0.1 --pid-file="$RUN/mariadbd.pid" --log-error="$LOG/mariadbd.log" \
    --innodb-buffer-pool-size=64M --innodb-log-file-size=16M --innodb-doublewrite=0 \
    --innodb-flush-log-at-trx-commit=0 --skip-name-resolve >/dev/null 2>&1 &
  wait_for 60 mariadbd sql -e "select 1"
  sql -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
          GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
}

start_slurmdbd() {
  alive slurmdbd && return
  slurmdbd   # reads slurmdbd.conf beside $SLURM_CONF
  wait_for 60 slurmdbd sacctmgr -n list cluster
  if [ -z "$(sacctmgr -n -P list account "$ACCOUNT" format=account)" ]; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
    sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description=CI organization=lorabench >/dev/null
    for user in "$(id -un)" ${SUDO_USER:+"$SUDO_USER"}; do   # root, and who ran it with sudo
      sacctmgr -i add user "$user" account="$ACCOUNT" cluster="$CLUSTER" >/dev/null
    done
  fi
}

start_slurmctld() {
  alive slurmctld && return
  slurmctld -f "$SLURM_CONF"
  wait_for 30 slurmctld scontrol ping
}

start_slurmd() {
  alive slurmd && return
  slurmd -f "$SLURM_CONF"
}

node_idle() { [ "$(sinfo -h -N -o %t -p "$PARTITION")" = idle ]; }

cmd_start() {
  local t0=$SECONDS
  install
  write_configs
  start_munge
  start_mariadb
  start_slurmdbd
  start_slurmctld
  start_slurmd
  wait_for 60 "the node to be idle" node_idle
  wait_for 30 sacct sacct -n -X
  log "cluster $CLUSTER up in $((SECONDS - t0)) s: partition $PARTITION, account $ACCOUNT; use it with  . $STATE/env"
}

stop_daemon() {  # SIGTERM by pid file, then wait (SIGKILL after 20 s)
  local name=$1
  alive "$name" || { rm -f "$RUN/$name.pid"; return 0; }
  local pid; pid=$(cat "$RUN/$name.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || { rm -f "$RUN/$name.pid"; return 0; }; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$RUN/$name.pid"
}

cmd_stop() {
  [ -d "$STATE" ] || return 0
  if alive slurmctld; then  # its jobs first, so no slurmstepd outlives slurmd
    scancel --quiet --user="$(id -un)" 2>/dev/null || true
    wait_for 30 "jobs to end" test -z "$(squeue -h -o %i 2>/dev/null)" || true
  fi
  stop_daemon slurmd
  stop_daemon slurmctld
  stop_daemon slurmdbd
  stop_daemon mariadbd
  stop_daemon munged
  [ "$(readlink "$ETC_CONF" 2>/dev/null)" = "$SLURM_CONF" ] && rm -f "$ETC_CONF"
  rm -rf "$STATE"
  log "stopped; $STATE removed"
}

case "${1:-}" in
  start) need_root start; cmd_start ;;
  stop) need_root stop; cmd_stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
