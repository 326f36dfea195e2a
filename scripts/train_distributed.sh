#!/usr/bin/env bash
# Data-parallel IPT training with MindSpore's own launcher (msrun), on one or more nodes.
#
#   scripts/train_distributed.sh NUM_WORKERS CONFIG [extra ipt-ms args]
#   scripts/train_distributed.sh 8 configs/pretrain.yaml --data /data/imagenet/train
#   scripts/train_distributed.sh 2 configs/tiny.yaml --data runs/photos --max-steps 50
#
# Every worker runs `ipt-ms train --config CONFIG ...`; MindSpore's init() picks the
# collective backend from the device: HCCL on Ascend, NCCL on GPU, MCCL on CPU. The
# config's data.batch_size is the global batch, split evenly over the workers; rank 0
# alone logs, writes checkpoints and exports. Resume with the same command plus --resume.
# The config and options are checked before msrun starts (one line, exit 2). The console
# shows rank 0's step lines, "resumed from ..." and the summary; every attempt's logs are
# kept under the run directory (RUN/logs/attempt-N/, RUN/logs/node-R/attempt-N/ on several
# nodes). Ctrl-C or SIGTERM: every worker finishes the same step, rank 0 writes a
# checkpoint, exit 130/143; a second one aborts at once. A taken port, a worker that exits
# or dies, or a scheduler that cannot start stop the launch within seconds, naming the cause;
# with MAX_RESTARTS=K the job is then started again from its newest checkpoint, K times at most.
#
# Environment (all optional):
#   LOCAL_WORKERS   workers on this node (default NUM_WORKERS: single node)
#   NODE_RANK       this node's index for multi-node runs (default: assigned by msrun)
#   MASTER_ADDR     scheduler host (default 127.0.0.1; on several nodes the first node's
#                   network address: msrun starts a scheduler on every node that owns it)
#   MASTER_PORT     scheduler port (default: a free one on a single node; required on several)
#   LOG_DIR         where attempt-N/ (msrun.log, scheduler.log, worker_N.log) and launcher.log
#                   go (default: RUN/logs, RUN the run directory: output.dir after -o/--set)
#   CLUSTER_TIMEOUT seconds to wait for all workers to join (default 600)
#   MAX_RESTARTS    restarts from the newest checkpoint after a worker or the scheduler
#                   failed (default 0)
#   SHOW_WORKER_LOG 1 (default): rank 0's log on the console; 0: quiet
#   SCHEDULER_GRACE seconds the workers may outlive a scheduler that exited without an
#                   error (default 20: at the end of a run it leaves moments before them)
#   TRAIN_ENTRY     Python script each worker runs (default: the ipt-ms CLI with `train`)
#   PYTHON          interpreter of the project's environment (default: python3 on PATH); its
#                   folder goes first on PATH because msrun starts workers as `python ...`
set -euo pipefail

say() { echo "train_distributed.sh: $*" >&2; }

if [[ $# -lt 2 ]]; then
    sed -n '2,36p' "$0" >&2
    exit 2
fi
NUM_WORKERS=$1
CONFIG=$2
shift 2
if ! [[ "$NUM_WORKERS" =~ ^[1-9][0-9]*$ ]]; then
    say "NUM_WORKERS must be a positive integer, got '$NUM_WORKERS'"
    exit 2
fi
if [[ ! -f "$CONFIG" ]]; then
    say "config not found: $CONFIG"
    exit 2
fi
PYTHON=$(command -v "${PYTHON:-python3}" || true)
if [[ -z "$PYTHON" ]]; then
    say "Python interpreter not found (set PYTHON=/path/to/venv/bin/python)"
    exit 2
fi
# msrun starts every worker as `python SCRIPT ...` from PATH: put this interpreter's folder first
PY_BIN=$(dirname "$PYTHON")
export PATH="$PY_BIN:$PATH"
if ! python -c 'import ipt_ms' 2>/dev/null; then
    say "'python' in $PY_BIN cannot import ipt_ms (activate the project's venv or set PYTHON)"
    exit 2
fi
MSRUN=${MSRUN:-$PY_BIN/msrun}
if [[ ! -x "$MSRUN" ]]; then
    MSRUN=$(command -v msrun || true)
fi
if [[ -z "$MSRUN" ]]; then
    say "msrun not found (it comes with the mindspore package)"
    exit 2
fi

LOCAL_WORKERS=${LOCAL_WORKERS:-$NUM_WORKERS}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
CLUSTER_TIMEOUT=${CLUSTER_TIMEOUT:-600}
SHOW_WORKER_LOG=${SHOW_WORKER_LOG:-1}
SCHEDULER_GRACE=${SCHEDULER_GRACE:-20}
MAX_RESTARTS=${MAX_RESTARTS:-0}
for var in LOCAL_WORKERS CLUSTER_TIMEOUT SCHEDULER_GRACE MAX_RESTARTS; do
    if ! [[ "${!var}" =~ ^[0-9]+$ ]]; then
        say "$var must be a non-negative integer, got '${!var}'"
        exit 2
    fi
done
if (( LOCAL_WORKERS < 1 || LOCAL_WORKERS > NUM_WORKERS )); then
    say "LOCAL_WORKERS must be 1 to NUM_WORKERS ($NUM_WORKERS), got $LOCAL_WORKERS"
    exit 2
fi
NODE_ARGS=()
if [[ -n "${NODE_RANK:-}" ]]; then
    if ! [[ "$NODE_RANK" =~ ^[0-9]+$ ]]; then
        say "NODE_RANK must be a non-negative integer, got '$NODE_RANK'"
        exit 2
    fi
    NODE_ARGS=(--node_rank="$NODE_RANK")
fi
SINGLE_NODE=0
if [[ -z "${NODE_RANK:-}" && "$LOCAL_WORKERS" == "$NUM_WORKERS" ]]; then
    SINGLE_NODE=1
fi
NODE=""  # "node R of N" on every line of a multi-node launcher: each console says which node it is
if [[ $SINGLE_NODE != 1 ]]; then
    NODES="?"
    (( NUM_WORKERS % LOCAL_WORKERS == 0 )) && NODES=$((NUM_WORKERS / LOCAL_WORKERS))
    NODE="node ${NODE_RANK:-?} of $NODES"
    say() { echo "train_distributed.sh [$NODE]: $*" >&2; [[ -z "${LAUNCH_LOG:-}" ]] || echo "$(date '+%F %T') $*" >> "$LAUNCH_LOG"; }
    # msrun starts a scheduler on every node that owns MASTER_ADDR: with a loopback address
    # each node (or each launcher on one host) would start its own and fail to bind
    if (( LOCAL_WORKERS < NUM_WORKERS )) && [[ "$MASTER_ADDR" =~ ^127\. || "$MASTER_ADDR" == localhost || "$MASTER_ADDR" == "::1" ]]; then
        say "MASTER_ADDR $MASTER_ADDR is a loopback address: msrun starts a scheduler on every node that owns MASTER_ADDR, so on several nodes set it to the first node's network address"
        exit 2
    fi
else
    say() { echo "train_distributed.sh: $*" >&2; [[ -z "${LAUNCH_LOG:-}" ]] || echo "$(date '+%F %T') $*" >> "$LAUNCH_LOG"; }
fi

# The scheduler's port: a free one on a single node; checked here before anything starts
# (a taken port otherwise leaves the workers retrying for CLUSTER_TIMEOUT seconds).
PORT_CHECK='
import errno, socket, sys
addr, port = sys.argv[1], int(sys.argv[2])
s = socket.socket()
try:
    s.bind((addr, port))
except OSError as err:
    sys.exit(3 if err.errno == errno.EADDRINUSE else 4 if err.errno == errno.EADDRNOTAVAIL else 5)
print(s.getsockname()[1])
'
PICK_PORT=0
if [[ -z "${MASTER_PORT:-}" ]]; then
    if [[ $SINGLE_NODE != 1 ]]; then
        say "set MASTER_PORT: every node of a multi-node run must use the same scheduler port"
        exit 2
    fi
    PICK_PORT=1
    MASTER_PORT=$("$PYTHON" -c "$PORT_CHECK" "$MASTER_ADDR" 0) || {
        say "MASTER_ADDR $MASTER_ADDR is not an address of this machine"
        exit 2
    }
else
    check=0
    "$PYTHON" -c "$PORT_CHECK" "$MASTER_ADDR" "$MASTER_PORT" > /dev/null || check=$?
    if [[ $check == 3 ]]; then
        say "MASTER_PORT $MASTER_PORT on $MASTER_ADDR is already in use; choose another, or leave MASTER_PORT unset for a free one"
        exit 2
    fi  # 4: the scheduler runs on another host (MASTER_ADDR is not local): nothing to check here
fi
PREFLIGHT=(-m ipt_ms.cli.preflight --node-rank "${NODE_RANK:-0}")
if [[ -n "${TRAIN_ENTRY:-}" ]]; then
    ENTRY=("$TRAIN_ENTRY")
    PREFLIGHT+=(--custom-entry)
else
    ENTRY=("$("$PYTHON" -c 'import os, ipt_ms; print(os.path.join(os.path.dirname(ipt_ms.__file__), "__main__.py"))')" train)
fi
# The config, its overrides and the paths, checked before msrun starts anything; the run
# directory it prints is where the logs go.
RUN_DIR=$("$PYTHON" "${PREFLIGHT[@]}" -- --config "$CONFIG" "$@") || exit 2

LOG_BASE=${LOG_DIR:-$RUN_DIR/logs}
[[ $SINGLE_NODE == 1 ]] || LOG_BASE=$LOG_BASE/node-${NODE_RANK:-$(hostname)}
mkdir -p "$LOG_BASE"
LAUNCH_LOG=$LOG_BASE/launcher.log  # what this script said, attempt after attempt

export GLOG_v=${GLOG_v:-3}  # MindSpore C++ log level: warnings and below off

children() {  # "pid sid state command" of msrun's live children (exited ones linger as zombies)
    ps -o pid=,sid=,stat=,comm= --ppid "$MSRUN_PID" 2>/dev/null | awk '$3 !~ /^Z/' || true
}
workers() {  # msrun starts each worker in a session of its own
    children | awk '$1 == $2 {print $1}'
}
scheduler_alive() {
    [[ -n "$(children | awk '$1 != $2 && $4 != "tail" {print $1}')" ]]
}
scheduler_death() {  # how a scheduler that msrun has not reaped yet ended ("" when it exited with 0)
    local pid stat status
    for pid in $(ps -o pid=,sid=,stat= --ppid "$MSRUN_PID" 2>/dev/null | awk '$1 != $2 && $3 ~ /^Z/ {print $1}'); do
        stat=$(< "/proc/$pid/stat") 2>/dev/null || continue
        status=${stat##* }  # the last field: the exit status in waitpid's form
        if (( status & 127 )); then
            echo "killed by signal $((status & 127)) ($(kill -l $((status & 127))))"
        elif (( status >> 8 )); then
            echo "exited with status $((status >> 8))"
        fi
    done
}
stop_all() {
    local pids
    pids=$(workers)
    [[ -n "$pids" ]] && kill -KILL $pids 2>/dev/null || true
    kill -KILL -- "-$MSRUN_PID" 2>/dev/null || true
    wait "$MSRUN_PID" 2>/dev/null || true
    stop_tail
}
stop_tail() {  # the console's tail follows msrun (--pid): it prints what is left, then ends
    if [[ -n "$TAIL_PID" ]]; then
        wait "$TAIL_PID" 2>/dev/null || true
        TAIL_PID=
    fi
}
show_log() {
    [[ -f "$1" ]] || return 0
    echo "== last lines of $1" >&2
    grep -v '^\s*$' "$1" | tail -n "${2:-15}" >&2 || true
}
show_rank0() {  # rank 0's log on the console as it grows, without MindSpore's C++ [INFO] lines
    tail -n +1 -s 0.3 -F --pid="$MSRUN_PID" "$LOG_DIR/worker_0.log" 2>/dev/null \
        | grep --line-buffered -v -E '^\[(DEBUG|INFO)\] [A-Z_]+\(' >&2 || true
}
newest_checkpoint() {
    ls -1 "$RUN_DIR"/checkpoints/step_*.ckpt 2>/dev/null | sort | tail -n1 || true
}

# A shell started with `&` from a script ignores SIGINT, and bash cannot trap a signal that
# was ignored (or blocked) when it started: say so, SIGTERM still stops the run cleanly.
# Read in this shell (no $(...): bash 5.2 blocks SIGINT in a command substitution's subshell).
if [[ -r /proc/$$/status ]]; then
    while read -r field mask; do
        if [[ $field == SigIgn: || $field == SigBlk: ]] && (( (16#$mask >> 1) & 1 )); then
            say "SIGINT is ignored or blocked in this shell (started in the background?): stop the run with SIGTERM (kill $$)"
            break
        fi
    done < "/proc/$$/status"
fi

MSRUN_PID=
TAIL_PID=
STOPPING=
on_signal() {
    local sig=$1 pids=""
    [[ -n "$MSRUN_PID" ]] && pids=$(workers)
    if [[ -n "$STOPPING" || -z "$pids" ]]; then  # a second signal, or no worker yet: abort now
        [[ -n "$pids" ]] && kill -s "$sig" $pids 2>/dev/null || true
        sleep 0.2
        [[ -n "$MSRUN_PID" ]] && stop_all
        say "aborted by ${STOPPING:+a second }SIG$sig"
        exit $((128 + $(kill -l "$sig")))
    fi
    STOPPING=$sig
    kill -s "$sig" $pids 2>/dev/null || true  # each worker finishes the step all of them agree on
}
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM

worker_failure() {  # the first worker failure msrun has logged, in words ("" when none)
    local line code cause
    line=$(grep -m1 -E 'Worker process [0-9]+ exit with exception' "$LOG_DIR/msrun.log" 2>/dev/null) || return 0
    code=$(sed -E 's/.*Error code: (-?[0-9]+).*/\1/' <<< "$line")
    if [[ $code == -* ]]; then
        echo "a worker was killed by signal ${code#-} ($(kill -l "${code#-}" 2>/dev/null || echo '?'))"
    else
        cause=$(grep -h -m1 -E 'error: |Error: ' "$LOG_DIR"/worker_*.log 2>/dev/null | head -n1 | cut -c1-300 || true)
        echo "a worker exited with status $code${cause:+: $cause}"
    fi
}

# One msrun launch; sets FAIL to the cause when it failed.
run_attempt() {
    FAIL=
    ONE_LINE=
    local sched_gone_at="" cause death status
    # msrun in a session of its own: a Ctrl-C reaches this script only, which forwards it to
    # the workers (msrun itself would SIGKILL them mid-step).
    setsid "$MSRUN" --worker_num="$NUM_WORKERS" --local_worker_num="$LOCAL_WORKERS" \
        --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" "${NODE_ARGS[@]}" \
        --log_dir="$LOG_DIR" --join=True --cluster_time_out="$CLUSTER_TIMEOUT" --tail_worker_log=0 \
        "${ENTRY[@]}" --config "$CONFIG" "$@" > "$LOG_DIR/msrun.log" 2>&1 &
    MSRUN_PID=$!
    if [[ $SHOW_WORKER_LOG == 1 ]]; then
        show_rank0 &
        TAIL_PID=$!
    fi
    while kill -0 "$MSRUN_PID" 2>/dev/null; do
        if [[ -n "$STOPPING" ]]; then
            [[ -z "$(workers)" ]] && break
        elif grep -q -s 'Building networking for MS_[A-Z]* failed' "$LOG_DIR"/*.log; then
            FAIL="the cluster did not form within CLUSTER_TIMEOUT=$CLUSTER_TIMEOUT s: not every worker joined (a node that never started, or one with another MASTER_ADDR, MASTER_PORT or NUM_WORKERS); logs in $LOG_DIR"
            ONE_LINE=1
            break
        elif FAIL=$(worker_failure); [[ -n "$FAIL" ]]; then
            break
        elif [[ -f "$LOG_DIR/scheduler.log" ]] && ! scheduler_alive && [[ -n "$(workers)" ]]; then
            cause=$(grep -h -m1 -E 'Failed to call bind|\[ERROR\]|Error' "$LOG_DIR/scheduler.log" | cut -c1-300 || true)
            if [[ -n "$cause" ]]; then
                FAIL="the scheduler exited: $cause"
                break
            fi
            death=$(scheduler_death)  # killed (OOM, kill -9) or a non-zero exit with nothing in its log
            if [[ -n "$death" ]]; then
                FAIL="the scheduler $death"
                break
            fi
            # At the end of a good run the scheduler leaves first and the workers follow within
            # moments: only workers still there SCHEDULER_GRACE seconds later mean it died early.
            sched_gone_at=${sched_gone_at:-$SECONDS}
            if (( SECONDS - sched_gone_at >= SCHEDULER_GRACE )); then
                FAIL="the scheduler exited and the workers were still running ${SCHEDULER_GRACE} s later"
                break
            fi
        fi
        sleep 0.5 &
        wait $! || true
    done
    if [[ -n "$FAIL" || -n "$STOPPING" ]]; then
        stop_all  # when stopping: the workers are done; msrun would wait for the scheduler's heartbeat
        return
    fi
    status=0
    wait "$MSRUN_PID" || status=$?
    stop_tail
    if [[ $status -ne 0 ]]; then
        # msrun can note a worker's exit and end between two looks of the loop above
        FAIL=$(worker_failure)
        if [[ -z "$FAIL" ]]; then
            cause=$(grep -h -m1 -E 'Cluster is not built|timed? ?out|[Tt]imeout' "$LOG_DIR"/worker_*.log "$LOG_DIR/scheduler.log" 2>/dev/null | head -n1 | cut -c1-300 || true)
            FAIL="msrun failed (exit $status)${cause:+: $cause}"
        fi
    fi
}

ATTEMPT=0
for dir in "$LOG_BASE"/attempt-*; do  # earlier launches' logs stay: number this one after them
    n=${dir##*/attempt-}
    [[ "$n" =~ ^[0-9]+$ ]] && (( n > ATTEMPT )) && ATTEMPT=$n
done
RESTARTS=0
ARGS=("$@")
while :; do
    ATTEMPT=$((ATTEMPT + 1))
    LOG_DIR=$LOG_BASE/attempt-$ATTEMPT
    mkdir -p "$LOG_DIR"
    say "$NUM_WORKERS worker(s) ($LOCAL_WORKERS on this node), scheduler $MASTER_ADDR:$MASTER_PORT, run $RUN_DIR, logs in $LOG_DIR"
    run_attempt "${ARGS[@]}"
    if [[ -n "$STOPPING" ]]; then
        line=$(grep -h -E '^interrupted at step' "$LOG_DIR/worker_0.log" 2>/dev/null | tail -n1 || true)
        say "${line:-stopped by SIG$STOPPING}"
        exit $((128 + $(kill -l "$STOPPING")))
    fi
    [[ -z "$FAIL" ]] && exit 0
    if (( RESTARTS >= MAX_RESTARTS )); then
        say "$FAIL"
        if [[ -z "$ONE_LINE" ]]; then
            show_log "$LOG_DIR/scheduler.log"
            for log in "$LOG_DIR"/worker_*.log; do show_log "$log" 8; done
        fi
        (( MAX_RESTARTS == 0 )) || say "failed $((RESTARTS + 1)) times (MAX_RESTARTS=$MAX_RESTARTS): giving up; last cause: $FAIL"
        exit 1
    fi
    RESTARTS=$((RESTARTS + 1))
    ckpt=$(newest_checkpoint)
    ARGS=("$@")
    if [[ -n "$ckpt" ]]; then
        ARGS+=(--resume)  # the newest checkpoint of the run directory (a later --resume wins)
        say "$FAIL; restart $RESTARTS of $MAX_RESTARTS from $ckpt"
    else
        say "$FAIL; restart $RESTARTS of $MAX_RESTARTS from the start (no checkpoint yet)"
    fi
    if [[ $PICK_PORT == 1 ]]; then  # a fresh free port: the dead scheduler's may linger
        MASTER_PORT=$("$PYTHON" -c "$PORT_CHECK" "$MASTER_ADDR" 0)
    fi
done
