#!/usr/bin/env bash
# A one-node Slurm cluster on 127.0.0.1 for the tests (tests/test_slurm.py), on Debian 12 as root,
# without systemd: Slurm, munge and the Torque/PBS qsub wrappers, plus slurmdbd with MariaDB so
# that `sacct` works (Snakemake's slurm executor polls job states with it).
#
#   tests/slurm/slurm.sh start    install what is missing (apt), write the config, start munged,
#                                 mariadbd, slurmdbd, slurmctld and slurmd, wait until the node is idle
#   tests/slurm/slurm.sh stop     cancel every job, stop the daemons, remove the config
#   tests/slurm/slurm.sh status   the daemons running and the node's state
#
# start and stop are idempotent. The node declares at least 8 CPUs (SlurmdParameters=config_overrides) so that
# the tests' multi-worker jobs and `srun -n 5` fit on a 2-core machine; the processes then share the
# real cores. Slurm is never left configured but stopped: with slurm.conf present and slurmctld down,
# every `snakemake` start waits ~9 s (the slurm executor plugin asks `scontrol` when imported).
# The test account is `esrepro` (user root and $SUDO_USER); the partition is `debug`.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
MARK="# written by tests/slurm/slurm.sh"
CLUSTER=esrepro
ACCOUNT=esrepro
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server slurm-wlm-torque)
# daemon name, pid file
DAEMONS=("slurmd /run/slurmd.pid" "slurmctld /run/slurmctld.pid" "slurmdbd /run/slurmdbd.pid"
         "mariadbd /run/mysqld/mysqld.pid" "munged /run/munge/munged.pid")

log() { echo "slurm.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# The pid of a running daemon (pid file present and /proc/<pid>/comm is the daemon), else nothing.
daemon_pid() {
    local pid
    pid=$(cat "$2" 2>/dev/null) || return 0
    [[ "$pid" =~ ^[0-9]+$ ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$1" ]] && echo "$pid"
    return 0
}

# Wait up to $1 seconds for the command to succeed.
wait_for() {
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.3
    done
}

ours_or_absent() { [[ ! -e "$1" ]] || head -1 "$1" | grep -qxF "$MARK"; }

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
        { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
}

write_config() {
    ours_or_absent "$CONF" && ours_or_absent "$DBD_CONF" || die "$CONF or $DBD_CONF exists and was not written here"
    local host node cpus mem
    host=$(hostname -s)
    node=$(slurmd -C | head -1)                      # NodeName=vm CPUs=2 ... RealMemory=24105
    cpus=$(grep -oP '(?<= CPUs=)\d+' <<<"$node")
    mem=$(grep -oP '(?<= RealMemory=)\d+' <<<"$node")
    ((cpus >= 8)) || cpus=8
    mkdir -p /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
    chown slurm:slurm /var/lib/slurm/slurmctld /var/log/slurm
    cat >"$CONF.tmp" <<CONFIG
$MARK
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SlurmdParameters=config_overrides
MinJobAge=600
ReturnToService=2
KillWait=5
MailProg=/bin/true
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobAcctGatherType=jobacct_gather/linux
AccountingStoreFlags=job_comment
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONFIG
    cat >"$DBD_CONF.tmp" <<CONFIG
$MARK
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
PidFile=/run/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StorageLoc=slurm_acct_db
CONFIG
    chown slurm:slurm "$DBD_CONF.tmp" && chmod 600 "$DBD_CONF.tmp"
    mv "$CONF.tmp" "$CONF" && mv "$DBD_CONF.tmp" "$DBD_CONF"
}

start_munge() {
    [[ -n "$(daemon_pid munged /run/munge/munged.pid)" ]] && return
    [[ -s /etc/munge/munge.key ]] || mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    install -d -o munge -g munge -m 755 /run/munge
    runuser -u munge -- /usr/sbin/munged
    wait_for 10 sh -c 'munge -n | unmunge' || die "munged did not start"
}

start_mariadb() {
    if [[ -z "$(daemon_pid mariadbd /run/mysqld/mysqld.pid)" ]]; then
        install -d -o mysql -g mysql -m 755 /run/mysqld
        setsid mariadbd --user=mysql --skip-networking --pid-file=/run/mysqld/mysqld.pid \
            --socket=/run/mysqld/mysqld.sock --log-error=/var/log/slurm/mariadbd.log </dev/null >/dev/null 2>&1 &
        wait_for 30 mariadb-admin --socket=/run/mysqld/mysqld.sock ping || die "mariadbd did not start (/var/log/slurm/mariadbd.log)"
    fi
    mariadb --socket=/run/mysqld/mysqld.sock -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED VIA unix_socket;
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
}

start_slurm() {
    if [[ -z "$(daemon_pid slurmdbd /run/slurmdbd.pid)" ]]; then
        slurmdbd
        wait_for 30 bash -c '</dev/tcp/127.0.0.1/6819' || die "slurmdbd did not start (/var/log/slurm/slurmdbd.log)"
    fi
    [[ -n "$(daemon_pid slurmctld /run/slurmctld.pid)" ]] || slurmctld
    [[ -n "$(daemon_pid slurmd /run/slurmd.pid)" ]] || slurmd
    wait_for 60 sh -c 'sinfo -h -o %T | grep -qx idle' || die "the node did not become idle (/var/log/slurm/)"
    wait_for 30 sh -c "sacctmgr -n -P show cluster format=cluster | grep -qx $CLUSTER" ||
        die "slurmctld did not register with slurmdbd (/var/log/slurm/)"
    local user
    sacctmgr -n -P show account "$ACCOUNT" format=account | grep -qx "$ACCOUNT" ||
        sacctmgr -i -Q add account "$ACCOUNT" cluster="$CLUSTER" >/dev/null
    for user in root ${SUDO_USER:-}; do
        sacctmgr -n -P show assoc where user="$user" account="$ACCOUNT" format=user | grep -qx "$user" ||
            sacctmgr -i -Q add user "$user" account="$ACCOUNT" cluster="$CLUSTER" >/dev/null
    done
}

start() {
    install_packages
    write_config
    # A failed start stops what it started and removes the config: never configured but stopped.
    trap 'log "start failed: stopping"; stop' EXIT
    start_munge
    start_mariadb
    start_slurm
    trap - EXIT
    log "Slurm is up: $(sinfo -h -N -o '%N %c CPUs %m MB %T')"
}

stop() {
    if [[ -n "$(daemon_pid slurmctld /run/slurmctld.pid)" ]]; then
        squeue -h -o %i | xargs -r scancel 2>/dev/null || true
        wait_for 20 sh -c '[ -z "$(squeue -h -o %i)" ]' || log "jobs still listed: $(squeue -h -o %i | tr '\n' ' ')"
    fi
    local entry name file pid
    for entry in "${DAEMONS[@]}"; do
        read -r name file <<<"$entry"
        pid=$(daemon_pid "$name" "$file")
        if [[ -n "$pid" ]]; then
            kill -TERM "$pid"
            wait_for 30 sh -c "[ \"\$(cat /proc/$pid/comm 2>/dev/null)\" != $name ]" || die "$name ($pid) did not stop"
        fi
        rm -f "$file"
    done
    ours_or_absent "$CONF" && rm -f "$CONF"
    ours_or_absent "$DBD_CONF" && rm -f "$DBD_CONF"
    log "Slurm is stopped and unconfigured"
}

status() {
    local entry name file
    for entry in "${DAEMONS[@]}"; do
        read -r name file <<<"$entry"
        echo "$name: $(daemon_pid "$name" "$file" | sed 's/^/pid /')"
    done
    [[ -e "$CONF" ]] && echo "config: $CONF" || echo "config: none"
    [[ -n "$(daemon_pid slurmctld /run/slurmctld.pid)" ]] && sinfo -N -o '%N %c %m %T'
    return 0
}

[[ $EUID -eq 0 ]] || die "run as root"
case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
