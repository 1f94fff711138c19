#!/usr/bin/env bash
# One call on the GPU machine: build tinygemm there, run the GPU tests, then the named benchmarks.
# Everything it measures lands in $OUT (default ./gpu-out). Usage:
#   bash bench/gpu_session.sh [build] [test] [test-split] [test-triton] [test-sm90] [gemv] [gemm-ncu] [tune] [tune-gemm] [tune-sm90] [tiles] [ncu-source] [decode] [harness-ncu] [bench]
#                             [seeds|seed000] [sweep-cost] [seed002] [peers] [machete-schedule] [seed001] [seed003] [seed004]
#                             [seed004-bf16] [pytest:NAME,NAME...] [list]
# With vLLM: carry .vllm-bundle (../shared/vllm-offline/build-bundle.sh) and it is installed first.
# PACK_OUT=1 packs $OUT into one gpu-out.tgz at the end.
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
stages=${*:-build test}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/session.log"; }

if ls .whl/*.whl >/dev/null 2>&1; then  # carried wheels (gemlite): installed beside vLLM
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/whl-site .whl/*.whl \
    && export PYTHONPATH=/tmp/whl-site${PYTHONPATH:+:$PYTHONPATH}
fi
if [ -d .vllm-bundle ]; then
  bash .vllm-bundle/install.sh /tmp/vllm-site >/dev/null && export PYTHONPATH=/tmp/vllm-site${PYTHONPATH:+:$PYTHONPATH}
  export TINYGEMM_IMPORT_VLLM_STUBS=1
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv | tee -a "$OUT/session.log"

for s in $stages; do
  case $s in
    build)
      log build
      # ARCH=90a (say) builds for the machine's GPU only: a quarter of the default build's time
      CMAKE_BUILD_PARALLEL_LEVEL=16 python3 -m pip install -v --no-build-isolation --no-deps \
        ${ARCH:+-Ccmake.define.CMAKE_CUDA_ARCHITECTURES=$ARCH} . >"$OUT/build.log" 2>&1 \
        || { tail -40 "$OUT/build.log"; exit 1; }
      python3 -c "import tinygemm, tinygemm._C as c; print('tinygemm', tinygemm.__version__, c.gpu_backend, c.device_info().name)" ;;
    test)
      log "GPU tests"
      python3 -m pytest tests -q -m "gpu or vllm" -p no:cacheprovider --junitxml="$OUT/gpu-tests.xml" 2>&1 \
        | tee "$OUT/gpu-tests.log" | tail -25 ;;
    test-split)
      # each GPU test file on its own, under its own time limit, its log and junit file kept: one slow
      # or hanging file cannot hide the others' results (pytest -m "gpu or vllm" selects the GPU tests)
      # every test file with a GPU- or vLLM-marked test (found, not listed: a list missed two files);
      # TEST_FILES="tests/a.py tests/b.py" runs only those (a call's time limit holds only some files)
      # an entry FILE@EXPR runs only FILE's tests whose names match EXPR (pytest -k EXPR)
      for e in ${TEST_FILES:-$(grep -lE "mark\.(gpu|vllm)" tests/test_*.py)}; do
        f=${e%%@*}; k=""; [ "$f" != "$e" ] && k=${e#*@}
        k=${k:-${TEST_K:-}}
        b=$(basename "$f" .py)
        # the two kernel-matrix files (correctness only, nothing timed) run on 4 workers when pytest-xdist
        # is carried (.whl/): most of their time is Triton's and the reference's, not the GPU's
        par=""
        case $b in test_w4a16_gpu|test_w4a16_gemm_sm90_gpu)
          python3 -c "import xdist" 2>/dev/null && par="-n ${XDIST_WORKERS:-4}" ;;
        esac
        log "GPU tests: $f $par${k:+ -k $k}"
        # TEST_K="expr" selects tests by name in every file without its own @EXPR (pytest -k)
        timeout "${TEST_TIMEOUT:-300}" python3 -m pytest "$f" $par -q -m "gpu or vllm" ${k:+-k "$k"} -p no:cacheprovider -rfE \
          --durations=12 --junitxml="$OUT/$b.xml" >"$OUT/$b.log" 2>&1
        echo "   exit $? ($(tail -1 "$OUT/$b.log"))" | tee -a "$OUT/session.log"
      done ;;
    gemv)
      log "GEMV implementations and layouts per layer (Llama-3-8B TP1, Llama-3-70B TP4), then ncu per layer"
      python3 bench/tune_w4a16_gemv_sm90.py --model Llama-3-8B Llama-3-70B --tp 1 4 --m "${TUNE_M:-1,2,4,8,16}" \
        --out "$OUT/tune_gemv_sm90.csv" >"$OUT/tune_gemv_sm90.log" 2>&1
      grep "^sum" "$OUT/tune_gemv_sm90.log"
      python3 bench/int4_ncu.py --m 1,8,16 --kernels gemv --out "$OUT/int4_ncu" 2>&1 | tail -24 ;;
    gemm-ncu)
      log "Hopper GEMM per layer under ncu (tensor-pipe rate, stalls), Llama-3-8B TP1"
      python3 bench/int4_ncu.py --m "${NCU_M:-16,128,512}" --kernels gemm_sm90 --out "$OUT/int4_ncu_gemm" 2>&1 | tail -16 ;;
    test-triton)
      log "Triton GEMM GPU tests"
      python3 -m pytest tests/test_w4a16_gpu.py -q -x -p no:cacheprovider -k "triton or public_api or opcheck" 2>&1 \
        | tee "$OUT/gpu-tests-triton.log" | tail -15 ;;
    test-sm90)
      log "Hopper GEMM GPU tests"
      python3 -m pytest tests/test_w4a16_gemm_sm90_gpu.py -q -x -p no:cacheprovider 2>&1 \
        | tee "$OUT/gpu-tests-sm90.log" | tail -15 ;;
    tune-sm90)
      log "Hopper GEMM configuration sweep (beside the GEMV and the Triton GEMM)"
      python3 bench/tune_w4a16_gemm_sm90.py --m "${TUNE_M:-1,8,16,32,64,128,256,512}" \
        --out "$OUT/tune_w4a16_gemm_sm90.csv" 2>&1 | tee "$OUT/tune_w4a16_gemm_sm90.log" | tail -${TUNE_TAIL:-80} ;;
    tiles)
      # issue 11: the Hopper GEMM's token tiles (64: two CTAs per SM) and consumer warpgroups (3 at 128
      # tokens) at M >= 128, per layer of both bar models
      log "Hopper GEMM block_m 64/128 x warpgroups 2/3 (Llama-3-8B TP1, Llama-3-70B TP4)"
      for mt in "Llama-3-8B 1" "Llama-3-70B 4"; do
        set -- $mt
        python3 bench/tune_w4a16_gemm_sm90.py --model "$1" --tp "$2" --m "${TUNE_M:-128,256,512}" --splits 1,2,3 \
          --block-m 64,128 --warpgroups 2,3 --no-baselines --out "$OUT/tune_tiles_$1_tp$2.csv" >"$OUT/tune_tiles_$1_tp$2.log" 2>&1
        tail -1 "$OUT/tune_tiles_$1_tp$2.log"
      done ;;
    ncu-source)
      # where the kernels' warps wait, per SASS instruction: the Hopper GEMM at M = 512 and both GEMV
      # layouts at M = 1, gate_up_proj of Llama-3-8B (bench/results/h200/sweeps/ncu_source_*)
      log "ncu source views: gemm_sm90 M=512, gemv (sm90 and v1 layouts) M=1, 4096 x 28672"
      python3 bench/ncu_source_view.py --k 4096 --n 28672 --m 512 --backend gemm_sm90 --out "$OUT/ncu_source_gemm512.csv" | tail -8
      python3 bench/ncu_source_view.py --k 4096 --n 28672 --m 1 --backend gemv --out "$OUT/ncu_source_gemvsm90.csv" | tail -8
      python3 bench/ncu_source_view.py --k 4096 --n 28672 --m 1 --backend gemv --layout tinygemm-w4-v1 \
        --out "$OUT/ncu_source_gemvv1.csv" | tail -8 ;;
    tune-gemm)
      log "Triton GEMM configuration sweep"
      python3 bench/tune_w4a16_gemm.py --m "${TUNE_M:-1,16,32,64,128,256}" --out "$OUT/tune_w4a16_gemm.csv" 2>&1 \
        | grep -v "^  bm" | tail -40 ;;
    tune)
      log "GEMV configuration sweep"
      python3 bench/tune_w4a16_gemv.py --out "$OUT/tune_w4a16_gemv.csv" 2>&1 | tail -60 ;;
    decode)
      log "INT4 decode benchmark (issue 3)"
      python3 bench/w4a16_decode.py --out "$OUT/w4a16_decode" --force 2>&1 | tail -60 ;;
    harness-ncu)
      log "harness vs ncu"
      python3 bench/harness_vs_ncu.py --out "$OUT/harness_vs_ncu.csv" --out-spin "$OUT/harness_vs_ncu_spin.csv" 2>&1 \
        | tail -24 ;;
    bench)
      log "python -m tinygemm.bench (defaults)"
      python3 -m tinygemm.bench --out "$OUT/bench-default" --force 2>&1 | tail -40 ;;
    seeds|seed000)
      log "seed 000: GEMM inconsistency sweep, Llama-3-8B gate_up_proj tp2 (K=4096, N=14336), torch fp16, M 4:32768:4"
      python3 -m tinygemm.bench --model Llama-3-8B --tp 2 --module gate_up_proj --batches 4:32768:4 \
        --backends torch_matmul --kernel-names --export-seed --max-samples 50 --budget-ms 300 \
        --out "$OUT/seed000" --force --quiet 2>&1 | tail -5
      python3 -m tinygemm.analyze cliffs "$OUT/seed000/results.csv" --check-split -o "$OUT/seed000/analysis" 2>&1 | tail -30
      python3 -m tinygemm.plot "$OUT/seed000/results.csv" --out "$OUT/seed000/plots" >/dev/null
      python3 -m tinygemm.report "$OUT/seed000" --force ;;
    sweep-cost)
      # issue 15: where each sweep's wall time goes (results.json's phase_s, bench/phases.py), for the
      # default run and for seed 000's sweep (its command as in seed000, another --out); the process's
      # own wall clock too (imports and ceilings are outside the sweep's)
      phases() { python3 -c "import json, sys; from tinygemm.bench.phases import line; m = json.load(open(sys.argv[1]))
print(m['points'], 'points,', m['timed_kernel_s'], 's timed kernels (one launch per sample);', line(m['phase_s'], m['wall_s'], m['outside_sweep_s']))" "$1/results.json"; }
      TIMEFORMAT="   process wall clock %R s"
      log "sweep cost: python -m tinygemm.bench (defaults)"
      time { python3 -m tinygemm.bench --out "$OUT/bench-default" --force 2>&1 | tail -3; }
      phases "$OUT/bench-default"
      log "sweep cost: seed 000's sweep (torch fp16, K=4096 N=14336, M 4:32768:4, --kernel-names)"
      time { python3 -m tinygemm.bench --model Llama-3-8B --tp 2 --module gate_up_proj --batches 4:32768:4 \
        --backends torch_matmul --kernel-names --export-seed --max-samples 50 --budget-ms 300 \
        --out "$OUT/sweep-cost-seed000" --force --quiet 2>&1 | tail -5; }
      phases "$OUT/sweep-cost-seed000" ;;
    seed002)
      log "seed 002: INT4 implementations at m=1, n=k=8192, group 128 (time, weight and peak memory)"
      python3 -m tinygemm.bench --shapes "1,8192,8192" --backends all --prepare-cost --out "$OUT/seed002" --force \
        --quiet 2>&1 | tail -25 ;;
    peers)
      log "issue 6: tinygemm vs Marlin vs Machete vs torch int4pack vs fp16, with load-time preparation"
      for mt in "Llama-3-8B 1" "Llama-3-70B 4"; do
        set -- $mt
        python3 -m tinygemm.bench --model "$1" --tp "$2" --batches 1,4,16,32,64,128,256,512 \
          --backends tinygemm_gemv,tinygemm_triton,marlin_uint4b8,machete_uint4b8,torch_int4pack,torch_matmul \
          --prepare-cost --out "$OUT/int4_peers" --resume --quiet 2>&1 | tail -3
      done
      python3 -m tinygemm.analyze sums "$OUT/int4_peers/results.csv" -o "$OUT/int4_peers/sums.md" --force | tail -60 ;;
    machete-schedule)
      log "issue 6: Machete's heuristic against named schedules (--machete-schedule), Llama-3-8B TP1"
      d="$OUT/machete-schedule"
      python3 -m tinygemm.bench --model Llama-3-8B --tp 1 --batches 1,16,64,128 --backends machete_uint4b8 \
        --out "$d/heuristic" --force --quiet 2>&1 | tail -2
      # the schedules this vLLM supports are recorded in results.json; time the first few by name
      for sc in $(python3 -c "import json, sys; e = json.load(open(sys.argv[1]))['backend_extra']['machete_uint4b8']
print(' '.join(e['machete_supported_schedules'][:int(sys.argv[2])]))" "$d/heuristic/results.json" "${MACHETE_SCHEDULES:-3}"); do
        python3 -m tinygemm.bench --model Llama-3-8B --tp 1 --batches 1,16,64,128 --backends machete_uint4b8 \
          --machete-schedule "$sc" --out "$d/$sc" --force --quiet 2>&1 | tail -2
      done
      for r in "$d"/*/results.csv; do echo "== $r"; python3 -m tinygemm.analyze sums "$r" | head -8; done ;;
    seed004)
      log "seed 004: Marlin over quant types, group sizes, act_order, k_full (+ repack), fp16 baseline; Llama-2-7B"
      for gs in 128 -1 32 64; do
        python3 -m tinygemm.bench --model Llama-2-7B --batches 1,16,64,256 --group-size "$gs" --prepare-cost \
          --backends torch_matmul,marlin_uint4b8,marlin_uint4,marlin_uint8b128,marlin_uint4b8_actorder,marlin_uint4b8_actorder_kpartial,marlin_float8_e4m3fn,marlin_nvfp4,marlin_mxfp4 \
          --out "$OUT/seed004" --resume --quiet 2>&1 | tail -2
      done
      python3 -m tinygemm.analyze sums "$OUT/seed004/results.csv" -o "$OUT/seed004/sums.md" --force | tail -20 ;;
    seed004-bf16)
      log "seed 004, bf16 activations (MXFP4 Marlin runs with bf16 only)"
      python3 -m tinygemm.bench --model Llama-2-7B --batches 1,16,64,256 --dtype bf16 --prepare-cost \
        --backends torch_matmul,marlin_uint4b8,marlin_float8_e4m3fn,marlin_nvfp4,marlin_mxfp4 \
        --out "$OUT/seed004-bf16" --force --quiet 2>&1 | tail -2
      python3 -m tinygemm.analyze sums "$OUT/seed004-bf16/results.csv" -o "$OUT/seed004-bf16/sums.md" --force | head -12 ;;
    seed001)
      log "seed 001 (torch half): FP8 per-token x per-channel _scaled_mm vs fp16, aiter's models at TP 4 and 8"
      python3 -m tinygemm.bench --model Llama-4-Scout Qwen3-Coder-480B-A35B DeepSeek-V3 --tp 4 8 \
        --batches 1,2,4,8,16,32,64,128,256,512,1024,2048,4096 --backends torch_fp8_rowwise,torch_matmul \
        --out "$OUT/seed001" --force --quiet 2>&1 | tail -3
      python3 -m tinygemm.analyze compare "$OUT/seed001/results.csv" --a-backend torch_matmul \
        --b-backend torch_fp8_rowwise -o "$OUT/seed001/fp8_vs_fp16.csv" --force 2>&1 | tail -30 ;;
    seed003)
      log "seed 003: decode INT4 study (speedup vs N, dequant breakdown, % of peak from ncu)"
      python3 -m tinygemm.bench --kn 4096,1024 --kn 4096,4096 --kn 4096,14336 --kn 4096,28672 --batches 1,2,4,8 \
        --backends torch_matmul,dequant_matmul,tinygemm_gemv,tinygemm_triton --out "$OUT/seed003" --force --quiet 2>&1 | tail -3
      python3 -m tinygemm.plot "$OUT/seed003/results.csv" --out "$OUT/seed003/plots" >/dev/null
      python3 bench/seed003_ncu.py --out "$OUT/seed003" 2>&1 | tail -20 ;;
    pytest:*)  # pytest:a,b,c runs the tests whose names match a or b or c
      k=${s#pytest:}
      log "GPU tests: ${k//,/ or }"
      python3 -m pytest tests -q -p no:cacheprovider -k "${k//,/ or }" 2>&1 | tee -a "$OUT/gpu-tests-k.log" | tail -6 ;;
    list)
      python3 -m tinygemm.bench --list-backends 2>&1 | tail -40 ;;
    *) echo "unknown stage $s"; exit 2 ;;
  esac
done
log done
# PACK_OUT=1: everything under $OUT as one $OUT/gpu-out.tgz (the lent GPU machine returns only a few
# files per call; a test-split run writes two per test file)
if [ "${PACK_OUT:-0}" = 1 ]; then
  if [ -e "$OUT/.git" ] || [ "$(cd "$OUT" && pwd -P)" = "$(pwd -P)" ]; then
    echo "PACK_OUT: $OUT is the working tree; not packing (it would be emptied)"; exit 2
  fi
  pack=$(mktemp /tmp/gpu-out.XXXXXX.tgz)
  tar czf "$pack" -C "$OUT" . && find "$OUT" -mindepth 1 -delete && mv "$pack" "$OUT/gpu-out.tgz"
fi
