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
#
# Environment (all optional):
#   LOCAL_WORKERS   workers on this node (default NUM_WORKERS: single node)
#   NODE_RANK       this node's index for multi-node runs (default: assigned by msrun)
#   MASTER_ADDR     scheduler host (default 127.0.0.1)   MASTER_PORT (default 8118)
#   LOG_DIR         per-worker logs worker_N.log (default runs/msrun_logs)
#   CLUSTER_TIMEOUT seconds to wait for all workers to join (default 600)
#   TRAIN_ENTRY     Python script each worker runs (default: the ipt-ms CLI with `train`)
#   PYTHON          interpreter of the project's environment (default: python3 on PATH); its
#                   folder goes first on PATH because msrun starts workers as `python ...`
set -euo pipefail

if [[ $# -lt 2 ]]; then
    sed -n '2,20p' "$0" >&2
    exit 2
fi
NUM_WORKERS=$1
CONFIG=$2
shift 2
if ! [[ "$NUM_WORKERS" =~ ^[1-9][0-9]*$ ]]; then
    echo "train_distributed.sh: NUM_WORKERS must be a positive integer, got '$NUM_WORKERS'" >&2
    exit 2
fi
if [[ ! -f "$CONFIG" ]]; then
    echo "train_distributed.sh: config not found: $CONFIG" >&2
    exit 2
fi
PYTHON=$(command -v "${PYTHON:-python3}" || true)
if [[ -z "$PYTHON" ]]; then
    echo "train_distributed.sh: Python interpreter not found (set PYTHON=/path/to/venv/bin/python)" >&2
    exit 2
fi
# msrun starts every worker as `python SCRIPT ...` from PATH: put this interpreter's folder first
PY_BIN=$(dirname "$PYTHON")
export PATH="$PY_BIN:$PATH"
if ! python -c 'import ipt_ms' 2>/dev/null; then
    echo "train_distributed.sh: 'python' in $PY_BIN cannot import ipt_ms (activate the project's venv or set PYTHON)" >&2
    exit 2
fi
MSRUN=${MSRUN:-$PY_BIN/msrun}
if [[ ! -x "$MSRUN" ]]; then
    MSRUN=$(command -v msrun || true)
fi
if [[ -z "$MSRUN" ]]; then
    echo "train_distributed.sh: msrun not found (it comes with the mindspore package)" >&2
    exit 2
fi

LOCAL_WORKERS=${LOCAL_WORKERS:-$NUM_WORKERS}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-8118}
LOG_DIR=${LOG_DIR:-runs/msrun_logs}
CLUSTER_TIMEOUT=${CLUSTER_TIMEOUT:-600}
NODE_ARGS=()
if [[ -n "${NODE_RANK:-}" ]]; then
    NODE_ARGS=(--node_rank="$NODE_RANK")
fi
if [[ -n "${TRAIN_ENTRY:-}" ]]; then
    ENTRY=("$TRAIN_ENTRY")
else
    ENTRY=("$("$PYTHON" -c 'import os, ipt_ms; print(os.path.join(os.path.dirname(ipt_ms.__file__), "__main__.py"))')" train)
fi

export GLOG_v=${GLOG_v:-3}  # MindSpore C++ log level: warnings and below off
mkdir -p "$LOG_DIR"
echo "msrun: $NUM_WORKERS worker(s) ($LOCAL_WORKERS on this node), scheduler $MASTER_ADDR:$MASTER_PORT, logs in $LOG_DIR" >&2
status=0
"$MSRUN" --worker_num="$NUM_WORKERS" --local_worker_num="$LOCAL_WORKERS" \
    --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" "${NODE_ARGS[@]}" \
    --log_dir="$LOG_DIR" --join=True --cluster_time_out="$CLUSTER_TIMEOUT" \
    "${ENTRY[@]}" --config "$CONFIG" "$@" || status=$?
if [[ $status -ne 0 ]]; then
    echo "train_distributed.sh: msrun failed (exit $status); last lines of the worker logs:" >&2
    for log in "$LOG_DIR"/worker_*.log; do
        [[ -f "$log" ]] || continue
        echo "== $log" >&2
        tail -n 15 "$log" >&2
    done
fi
exit $status
