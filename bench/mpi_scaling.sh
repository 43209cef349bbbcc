#!/usr/bin/env bash
# Scaling out with MPI (a benchmark, not a test):
#  1. speedup: classes + every filter of the demo model (bench/mpi_scaling.ini),
#     one process vs `mpirun -n 2`, one OpenMP thread per process;
#  2. weak scaling: 1, 2, 4, 8 ranks (--oversubscribe beyond the cores), each
#     rank with the same work (2 lanes of 11 filters of conv2d_5/conv2d_6 at
#     96 steps), showing the cost per item as ranks are added.
# Every run's outputs are compared with the one-process run's (same bytes).
# Usage: bench/mpi_scaling.sh [featviz binary]   (REPS=n: repetitions, median)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/release/featviz}
REPS=${REPS:-1}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
SCRATCH=$(mktemp -d /dev/shm/fv_mpi_bench.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
CORES=$(getconf _NPROCESSORS_ONLN) # (nproc would follow OMP_NUM_THREADS)
echo "machine: $CORES cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)"

# run NAME CMD...: median wall, user+sys CPU over REPS runs -> "wall cpu"
run() {
  local name=$1; shift
  local walls=() cpus=()
  for ((r = 0; r < REPS; r++)); do
    rm -rf "$SCRATCH/out"
    /usr/bin/time -f '%e %U %S' -o "$SCRATCH/time" "$@" > "$SCRATCH/$name.log" 2>&1 || { cat "$SCRATCH/$name.log"; exit 1; }
    read -r wall user sys < "$SCRATCH/time"
    walls+=("$wall"); cpus+=("$(echo "$user + $sys" | bc)")
  done
  local w c
  w=$(printf '%s\n' "${walls[@]}" | sort -n | sed -n "$(( (REPS + 1) / 2 ))p")
  c=$(printf '%s\n' "${cpus[@]}" | sort -n | sed -n "$(( (REPS + 1) / 2 ))p")
  echo "$w $c"
}

same_bytes() { # DIR_A DIR_B
  diff -r "$1" "$2" > /dev/null && echo "same bytes" || echo "OUTPUTS DIFFER"
}

CFG="bench/mpi_scaling.ini --set model.path=models/gtsrb32.h5 --set output.dir=$SCRATCH/out"
echo
echo "== speedup: classes (43 x 256 steps) + all 448 filters (96 steps), 1 thread per process"
read -r w1 c1 < <(run one "$BIN" run $CFG)
mv "$SCRATCH/out" "$SCRATCH/one"
read -r w2 c2 < <(run two mpirun -n 2 --oversubscribe "$BIN" run $CFG)
s=$(same_bytes "$SCRATCH/one" "$SCRATCH/out")
printf '%-22s %8s %8s\n' "" "wall s" "CPU s"
printf '%-22s %8.2f %8.2f\n' "1 process" "$w1" "$c1"
printf '%-22s %8.2f %8.2f   (%s)\n' "mpirun -n 2" "$w2" "$c2" "$s"
echo "speedup: $(echo "scale=2; $w1 / $w2" | bc)x"
rm -rf "$SCRATCH/one" "$SCRATCH/out"

echo
echo "== weak scaling: each rank 2 lanes of 11 filters (96 steps); 22 x N filters of conv2d_5 and conv2d_6"
printf '%-6s %6s %8s %8s %12s %14s %s\n' ranks items "wall s" "CPU s" "CPU s/item" "ideal wall s" ""
base_wall=""
for n in 1 2 4 8; do
  last=$((11 * n - 1))
  list=$(seq -s, 0 "$last")
  one_cmd=("$BIN" filters --config bench/mpi_scaling.ini --set model.path=models/gtsrb32.h5 -o "$SCRATCH/out"
           --layer conv2d_5,conv2d_6 --filters "$list")
  read -r w c < <(run "weak$n" mpirun -n "$n" --oversubscribe "${one_cmd[@]}")
  items=$((2 * n))
  per=$(echo "scale=3; $c / $items" | bc)
  [ -z "$base_wall" ] && base_wall=$w
  busy=$(( n < CORES ? n : CORES ))
  ideal=$(echo "scale=2; $base_wall * $n / $busy" | bc)
  printf '%-6s %6s %8.2f %8.2f %12.3f %14.2f\n' "$n" "$items" "$w" "$c" "$per" "$ideal"
done
echo "(ideal wall: the 1-rank time x ranks / busy cores; CPU s/item: all ranks' CPU time per item, overhead included)"
