#!/bin/bash
# Submit a sweep as N Slurm array tasks (one GPU each), then its merge once every task has ended:
#   bash bench/slurm/submit.sh N OUT [python -m tinygemm.bench arguments...]
#   bash bench/slurm/submit.sh 8 /shared/sweeps/llama70b --model Llama-3-70B --tp 4 8 --batches 4:32768:4
# OUT must be on a file system every node sees. Partition, account, QOS: sbatch's own environment
# variables (SBATCH_PARTITION, SBATCH_ACCOUNT, SBATCH_QOS) apply to both jobs.
set -euo pipefail
N=${1:?usage: submit.sh N OUT [bench arguments...]}
OUT=${2:?usage: submit.sh N OUT [bench arguments...]}
shift 2
if ! [[ $N =~ ^[1-9][0-9]*$ ]]; then
  echo "submit.sh: N must be a positive integer (the number of shards); got '$N'" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
array=$(sbatch --parsable --array=0-$((N - 1)) "$here/sweep.sbatch" "$OUT" "$@")
array=${array%%;*}  # "jobid;cluster" on federated clusters
# afterany, not afterok: after a failed shard the merge still runs and names its unfinished points
merge=$(sbatch --parsable --dependency=afterany:"$array" "$here/merge.sbatch" "$OUT")
echo "sweep array job $array ($N shards), merge job ${merge%%;*}: results in $OUT"
