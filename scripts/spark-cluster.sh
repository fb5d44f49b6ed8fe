#!/usr/bin/env bash
# A Spark standalone cluster on loopback from the pyspark distribution: one master and N workers (default 2,
# 1 core and 1 GB each), for benchmarks and trying the Spark engine on a cluster (the tests start their own:
# tests/integration/test_spark_cluster.py).
#   bash scripts/spark-cluster.sh start [WORKERS]   # prints the master URL (spark://127.0.0.1:7077)
#   bash scripts/spark-cluster.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export SPARK_HOME=$($PY -c "import os, pyspark; print(os.path.dirname(pyspark.__file__))")
export SPARK_LOCAL_IP=127.0.0.1
state=${SPARK_CLUSTER_DIR:-.spark-cluster}
case "${1:-}" in
  start)
    workers=${2:-2}
    mkdir -p "$state"
    "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.master.Master --host 127.0.0.1 --port 7077 \
      --webui-port 8090 > "$state/master.log" 2>&1 &
    echo $! > "$state/pids"
    for i in $(seq 1 "$workers"); do
      mkdir -p "$state/work$i"
      "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.worker.Worker spark://127.0.0.1:7077 --cores 1 \
        --memory 1g --webui-port $((8090 + i)) --work-dir "$state/work$i" > "$state/worker$i.log" 2>&1 &
      echo $! >> "$state/pids"
    done
    for _ in $(seq 1 240); do
      alive=$(curl -s http://127.0.0.1:8090/json/ | $PY -c "import json,sys; print(sum(w['state']=='ALIVE' for w in json.load(sys.stdin)['workers']))" 2>/dev/null || echo 0)
      if [ "$alive" = "$workers" ]; then echo "spark://127.0.0.1:7077"; exit 0; fi
      sleep 0.5
    done
    echo "the cluster did not come up; see $state/*.log" >&2; exit 1 ;;
  stop)
    [ -f "$state/pids" ] && xargs -r kill < "$state/pids" 2>/dev/null || true
    rm -f "$state/pids" ;;
  *) echo "usage: $0 start [WORKERS] | stop" >&2; exit 2 ;;
esac
