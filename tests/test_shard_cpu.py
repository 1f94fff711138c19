"""Sweeps beyond one GPU, without a GPU: the shard split, the merge, the --gpus launcher (with a fake
worker process), the Slurm and Kubernetes scripts, and compare naming two GPUs."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import tinygemm
from tinygemm import analyze, results
from tinygemm.bench import launch, shard
from tinygemm.bench.__main__ import build_plan, main, parse_args
from tinygemm.bench.cost import point_cost_s

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FAKE = os.path.join(HERE, "fake_bench_worker.py")


def plan(*argv):
    _, a = parse_args(list(argv))
    return build_plan(a), a


# the README's plans, and the full-range sweep over several models
DEFAULT_PLANS = [(), ("--model", "Llama-3-70B", "--tp", "4", "8", "--batches", "decode"),
                 ("--kn", "4096,14336", "--batches", "4:32768:4"),
                 ("--model", "Mixtral-8x7B", "DeepSeek-V3", "--batches", "4:32768:4")]


@pytest.mark.parametrize("argv", DEFAULT_PLANS)
@pytest.mark.parametrize("n", [2, 3, 4, 8])
def test_split_is_disjoint_complete_and_balanced(argv, n):
    p, _ = plan(*argv)
    parts = [shard.select(p, i, n) for i in range(n)]
    got = [(s.model, s.layer, s.tp, s.K, s.N, M) for part in parts for s in part for M in s.batches]
    want = [(s.model, s.layer, s.tp, s.K, s.N, M) for s in p for M in s.batches]
    assert len(got) == len(set(got)) and sorted(got) == sorted(want)  # disjoint, and their union is the plan
    share = shard.plan_cost_s(p) / n
    costs = [shard.plan_cost_s(part) for part in parts]
    assert max(abs(c - share) for c in costs) <= 0.10 * share, (costs, share)


def test_split_is_deterministic_and_weighs_bytes_and_flops():
    p1, a1 = plan("--kn", "4096,14336", "--batches", "4:32768:4")
    p2, a2 = plan("--kn", "4096,14336", "--batches", "4:32768:4")
    assert shard.owners(p1, 4) == shard.owners(p2, 4)
    assert shard.plan_record(p1, shard.plan_options(a1)) == shard.plan_record(p2, shard.plan_options(a2))
    # a large M moves and computes more, so it costs more, and the shard of the large batches has fewer points
    assert point_cost_s(4096, 14336, 32768) > 2 * point_cost_s(4096, 14336, 4)
    small, large = (sum(len(s.batches) for s in shard.select(p1, i, 2)) for i in (0, 1))
    assert small > 1.2 * large
    # the split does not depend on options that do not change the points
    p3, a3 = plan("--kn", "4096,14336", "--batches", "4:32768:4", "--l2", "hot")
    assert shard.owners(p3, 4) == shard.owners(p1, 4)
    assert shard.plan_record(p3, shard.plan_options(a3))["digest"] != shard.plan_record(p1, shard.plan_options(a1))["digest"]


def test_shard_record_and_more_shards_than_points():
    p, _ = plan("--kn", "4096,4096", "--batches", "1,2")
    recs = [shard.shard_record(p, i, 5) for i in range(5)]
    assert sum(r["points"] for r in recs) == 2 and [r["index"] for r in recs] == list(range(5))
    assert sum(1 for i in range(5) if not shard.select(p, i, 5)) == 3  # empty shards run nothing


@pytest.mark.parametrize("text, msg", [("1/1", "0 <= I < N"), ("3", "I/N"), ("-1/2", "0 <= I < N"),
                                       ("a/b", "I/N"), ("0/0", "N >= 1")])
def test_parse_shard_errors(text, msg):
    with pytest.raises(ValueError, match=msg):
        shard.parse_shard(text)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "tinygemm.bench", *args], capture_output=True, text=True, timeout=120)


def test_cli_shard_dry_run_and_errors():
    r = cli("--kn", "4096,14336", "--batches", "4:32768:4", "--shard", "1/3", "--dry-run")
    assert r.returncode == 0 and re.search(r"shard 1/3: \d+ of 8192 points", r.stdout), r.stdout + r.stderr
    r = cli("--shard", "3/3", "--dry-run")
    assert r.returncode == 2 and "0 <= I < N" in r.stderr
    r = cli("--gpus", "0,1", "--shard", "0/2", "--dry-run")
    assert r.returncode == 2 and "not both" in r.stderr
    if not tinygemm.gpu_available():  # the launcher's own probe finds no GPU: one line, exit 2
        r = cli("--gpus", "0", "--batches", "1")
        assert r.returncode == 2 and "no GPU is visible" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = cli("--gpus", "0,1", "--dry-run", "--out", "X")
    assert r.returncode == 0 and "GPU 0: shard 0/2" in r.stdout and "GPU 1: shard 1/2" in r.stdout
    assert os.path.join("X", "shard-1-of-2") in r.stdout


# --- merge ----------------------------------------------------------------------------------------


def write_shard(d, p, rec, i, n, backends=("a", "b"), device="NVIDIA H100 80GB HBM3", versions=None, drop=0,
                extra_rows=(), phase_s=None):
    """A shard directory as the bench writes it (rows via results.CsvWriter), less `drop` rows."""
    os.makedirs(d, exist_ok=True)
    w = results.CsvWriter(os.path.join(d, "results.csv"), append=False)
    rows = [{"op": "gemm", "backend": b, "model": s.model, "layer": s.layer, "tp": s.tp, "M": M, "N": s.N, "K": s.K,
             "act_dtype": "float16", "group_size": 128, "time_us": 1.0 + M / 100, "status": "ok"}
            for s in shard.select(p, i, n) for b in backends for M in s.batches]
    for r in rows[: len(rows) - drop] + list(extra_rows):
        w.write(r)
    w.close()
    results.write_json(os.path.join(d, "results.json"), {
        "device": {"name": device}, "versions": versions or {"tinygemm": "0.1.0", "torch": "2.11.0"},
        "backends": list(backends), "unavailable": {}, "points": len(rows) - drop, "timed_kernel_s": 1.0,
        "wall_s": 2.0 + i, "interrupted": False, "measured_ceilings": {"copy_gbps": 3000.0 + i},
        "plan": rec, "shard": shard.shard_record(p, i, n),
        **({"phase_s": phase_s, "outside_sweep_s": {"startup": 1.0, "ceilings": 0.5}} if phase_s else {})})
    return str(d)


@pytest.fixture
def small_plan():
    p, a = plan("--model", "Llama-3-8B", "--batches", "1,2,4,8,16,32")
    return p, shard.plan_record(p, shard.plan_options(a))


def test_merge_gives_the_unsharded_rows_in_order(tmp_path, small_plan):
    p, rec = small_plan
    dirs = [write_shard(tmp_path / f"s{i}", p, rec, i, 3) for i in (2, 0, 1)]
    whole = write_shard(tmp_path / "whole", p, rec, 0, 1)
    assert main(["merge", *dirs, "--out", str(tmp_path / "m")]) == 0
    got = results.read_rows(str(tmp_path / "m" / "results.csv"))
    want = results.read_rows(os.path.join(whole, "results.csv"))
    assert [results.row_key(r) for r in got] == [results.row_key(r) for r in want]
    meta = json.load(open(tmp_path / "m" / "results.json"))
    assert meta["complete"] and meta["missing_points"] == 0 and "shard" not in meta
    assert [m["shard"]["index"] for m in meta["merged_from"]] == [0, 1, 2] and meta["wall_s"] == 4.0
    # never overwritten without --force
    assert main(["merge", *dirs, "--out", str(tmp_path / "m")]) == 2
    assert main(["merge", *dirs, "--out", str(tmp_path / "m"), "--force"]) == 0


def test_merge_sums_the_shards_phases(tmp_path, small_plan):
    """phase_s (where each shard's wall clock went) is summed over the shards, key by key, a key only
    one shard has included; wall_s stays the longest shard's. Shards from before phase_s merge to {}."""
    p, rec = small_plan
    ph = [{"prepare": 0.5, "timing.samples": 1.0, "other": 0.5}, {"prepare": 0.25, "timing.samples": 1.5,
                                                                  "kernel_names": 0.125, "other": 0.125}]
    dirs = [write_shard(tmp_path / f"s{i}", p, rec, i, 2, phase_s=ph[i]) for i in (0, 1)]
    assert main(["merge", *dirs, "--out", str(tmp_path / "m")]) == 0
    meta = json.load(open(tmp_path / "m" / "results.json"))
    assert meta["phase_s"] == {"prepare": 0.75, "timing.samples": 2.5, "kernel_names": 0.125, "other": 0.625}
    assert meta["outside_sweep_s"] == {"startup": 2.0, "ceilings": 1.0} and meta["wall_s"] == 3.0
    old = [write_shard(tmp_path / f"o{i}", p, rec, i, 2) for i in (0, 1)]
    assert main(["merge", *old, "--out", str(tmp_path / "mo")]) == 0
    assert json.load(open(tmp_path / "mo" / "results.json"))["phase_s"] == {}


def test_merge_reports_missing_points_and_shards(tmp_path, small_plan, capsys):
    p, rec = small_plan
    dirs = [write_shard(tmp_path / "s0", p, rec, 0, 3, drop=3), write_shard(tmp_path / "s2", p, rec, 2, 3)]
    assert main(["merge", *dirs, "--out", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err
    assert "shard 0/3: 3 points missing" in err
    n1 = shard.shard_record(p, 1, 3)["points"] * 2
    assert f"shard 1/3 (not among the inputs): {n1} points missing" in err
    meta = json.load(open(tmp_path / "m" / "results.json"))
    assert meta["complete"] is False and meta["missing_points"] == 3 + n1


def test_merge_refuses_duplicates(tmp_path, small_plan, capsys):
    p, rec = small_plan
    a = write_shard(tmp_path / "a", p, rec, 0, 2)
    b = write_shard(tmp_path / "b", p, rec, 0, 2)
    assert main(["merge", a, b, "--out", str(tmp_path / "m")]) == 2
    assert "shard 0/2 given twice" in capsys.readouterr().err
    # a point of shard 0 also written by shard 1 (a re-run into the wrong directory)
    s0 = write_shard(tmp_path / "c", p, rec, 0, 2)
    stolen = results.read_rows(os.path.join(s0, "results.csv"))[0]
    s1 = write_shard(tmp_path / "d", p, rec, 1, 2, extra_rows=[stolen])
    assert main(["merge", s0, s1, "--out", str(tmp_path / "m")]) == 2
    assert "1 points are in two inputs" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "m")


@pytest.mark.parametrize("change, msg", [
    (dict(device="NVIDIA H200"), "GPU model differ: NVIDIA H100 80GB HBM3"),
    (dict(versions={"tinygemm": "0.1.0", "torch": "2.12.0"}), "software versions differ: torch: 2.11.0"),
    (dict(backends=("a",)), "backends differ"),
])
def test_merge_refuses_mismatched_inputs(tmp_path, small_plan, capsys, change, msg):
    p, rec = small_plan
    a = write_shard(tmp_path / "a", p, rec, 0, 2)
    b = write_shard(tmp_path / "b", p, rec, 1, 2, **change)
    assert main(["merge", a, b, "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert msg in err, err
    if "GPU" in msg:
        assert "analyze compare" in err


def test_merge_refuses_other_plans_and_splits(tmp_path, small_plan, capsys):
    p, rec = small_plan
    p2, a2 = plan("--model", "Llama-3-8B", "--batches", "1,2,4,8,16,32", "--dtype", "bf16")
    rec2 = shard.plan_record(p2, shard.plan_options(a2))
    a = write_shard(tmp_path / "a", p, rec, 0, 2)
    assert main(["merge", a, write_shard(tmp_path / "b", p2, rec2, 1, 2), "--out", str(tmp_path / "m")]) == 2
    assert "dtype: 'fp16' vs 'bf16'" in capsys.readouterr().err
    assert main(["merge", a, write_shard(tmp_path / "c", p, rec, 1, 3), "--out", str(tmp_path / "m")]) == 2
    assert "shards of different splits" in capsys.readouterr().err
    os.remove(tmp_path / "a" / "results.json")
    assert main(["merge", a, "--out", str(tmp_path / "m")]) == 2
    assert "no results.json (the sweep did not finish there); rerun its shard with --resume" in capsys.readouterr().err


def test_resume_refuses_another_shards_directory(tmp_path, small_plan):
    p, rec = small_plan
    d = write_shard(tmp_path / "s", p, rec, 1, 3)
    assert shard.resume_conflict(d, rec, shard.shard_record(p, 1, 3)) is None
    assert "holds shard 1/3, not 0/3" in shard.resume_conflict(d, rec, shard.shard_record(p, 0, 3))
    p2, a2 = plan("--model", "Llama-3-8B", "--batches", "1,2")
    assert "another plan" in shard.resume_conflict(d, shard.plan_record(p2, shard.plan_options(a2)),
                                                   shard.shard_record(p2, 1, 3))


# --- the launcher ----------------------------------------------------------------------------------


def test_parse_gpus_and_pinning():
    assert launch.parse_gpus("0, 2,3", 4, {}) == ["0", "2", "3"]
    assert launch.parse_gpus("all", 2, {}) == ["0", "1"]
    assert launch.parse_gpus("all", 2, {"CUDA_VISIBLE_DEVICES": "4,6"}) == ["4", "6"]
    assert launch.parse_gpus("4,6", 2, {"CUDA_VISIBLE_DEVICES": "4,6"}) == ["4", "6"]
    for spec, msg in [("0,0", "more than once"), ("0,,1", "comma-separated"), ("0,5", "has 2 GPU")]:
        with pytest.raises(ValueError, match=msg):
            launch.parse_gpus(spec, 2, {})
    for spec in ("all", "0"):
        with pytest.raises(ValueError, match="no GPU is visible"):
            launch.parse_gpus(spec, 0, {})
    env = launch.pinned_env({"CUDA_VISIBLE_DEVICES": "0,1", "X": "1"}, "HIP_VISIBLE_DEVICES", "1")
    assert env["HIP_VISIBLE_DEVICES"] == "1" and "CUDA_VISIBLE_DEVICES" not in env and env["X"] == "1"
    assert launch.pinned_env({}, "CUDA_VISIBLE_DEVICES", "3")["CUDA_VISIBLE_DEVICES"] == "3"
    assert launch.worker_argv(["--kn", "4096,4096", "--gpus=0,1", "--group-size", "-1", "--out", "X", "--resume"]) \
        == ["--kn", "4096,4096", "--group-size", "-1", "--resume"]


def fake_setup(tmp_path, gpus, **spec):
    p, a = plan("--kn", "4096,4096", "--kn", "4096,14336", "--batches", "1,2,4,8,16,32,64")
    rec = shard.plan_record(p, shard.plan_options(a))
    n = len(gpus)
    backends = ["x", "y"]
    spec = {"columns": results.COLUMNS, "plan": rec, "backends": backends, "device": "Fake GPU",
            "points": {str(i): [[s.model, s.layer, s.tp, s.K, s.N, M] for s in shard.select(p, i, n) for M in s.batches]
                       for i in range(n)},
            "shards": {str(i): shard.shard_record(p, i, n) for i in range(n)}, **spec}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    out = tmp_path / "out"
    workers = [launch.Worker(g, i, n, str(out / shard.shard_dir_name(i, n)), len(spec["points"][str(i)]) * 2)
               for i, g in enumerate(gpus)]
    env = {**os.environ, "FAKE_SPEC": str(tmp_path / "spec.json")}
    return p, backends, out, workers, env


def fake_cmd(*extra):
    return lambda w: [sys.executable, FAKE, "--shard", f"{w.index}/{w.count}", "--out", w.dir, *extra]


def test_launcher_runs_one_pinned_worker_per_gpu_and_merges(tmp_path):
    from rich.console import Console

    p, backends, out, workers, env = fake_setup(tmp_path, ["3", "5"])
    launch.run(workers, fake_cmd(), "CUDA_VISIBLE_DEVICES", quiet=True, env=env)
    assert [w.rc for w in workers] == [0, 0]
    for w in workers:
        meta = json.load(open(os.path.join(w.dir, "results.json")))
        assert meta["visible"]["CUDA_VISIBLE_DEVICES"] == w.gpu and meta["shard"]["index"] == w.index
        assert w.counter.rows() == w.expected_rows
    assert launch.finish(workers, p, backends, str(out), Console(quiet=True)) == 0
    rows = results.read_rows(str(out / "results.csv"), required=results.KEY)
    assert len(rows) == 2 * sum(len(s.batches) for s in p) and json.load(open(out / "results.json"))["complete"]


def test_launcher_reports_a_failed_gpu_and_resume_completes_it(tmp_path):
    from rich.console import Console

    p, backends, out, workers, env = fake_setup(tmp_path, ["0", "1"], fail={"1": 3})
    launch.run(workers, fake_cmd(), "CUDA_VISIBLE_DEVICES", quiet=True, env=env)
    assert [w.rc for w in workers] == [0, 3]
    console = Console(record=True, width=400)
    assert launch.finish(workers, p, backends, str(out), console) == 1
    text = console.export_text()
    left = workers[1].expected_rows - 3
    assert f"GPU 1 (shard 1/2) failed with exit code 3: {left} points unfinished" in text
    assert "simulated GPU failure" in text and not os.path.exists(out / "results.csv")
    # the same command with --resume: the finished shard skips everything, the failed one completes
    spec = json.loads((tmp_path / "spec.json").read_text())
    spec.pop("fail")
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    for w in workers:
        w.rc = None
    launch.run(workers, fake_cmd("--resume"), "CUDA_VISIBLE_DEVICES", quiet=True, env=env)
    assert launch.finish(workers, p, backends, str(out), Console(quiet=True)) == 0
    rows = results.read_rows(str(out / "results.csv"), required=results.KEY)
    keys = [results.row_key(r) for r in rows]
    assert len(keys) == len(set(keys)) == 2 * sum(len(s.batches) for s in p)


LAUNCHER = """
import json, os, sys
from rich.console import Console
from tinygemm.bench import launch, shard
spec = json.load(open(os.environ["FAKE_SPEC"]))
plan = shard.plan_from_record(spec["plan"])
n = len(spec["points"])
out = sys.argv[1]
ws = [launch.Worker(str(i), i, n, os.path.join(out, shard.shard_dir_name(i, n)), 2 * len(spec["points"][str(i)]))
      for i in range(n)]
cmd = lambda w: [sys.executable, sys.argv[2], "--shard", f"{w.index}/{n}", "--out", w.dir]
print("started", flush=True)
launch.run(ws, cmd, "CUDA_VISIBLE_DEVICES", quiet=True)
sys.exit(launch.finish(ws, plan, spec["backends"], out, Console(quiet=True)))
"""


def test_ctrl_c_keeps_finished_rows_and_merges(tmp_path):
    p, backends, out, workers, env = fake_setup(tmp_path, ["0", "1"], row_s=0.05)
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(out), FAKE], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    deadline = time.time() + 60
    while time.time() < deadline and not all(launch.RowCounter(os.path.join(w.dir, "results.csv")).rows() >= 2
                                             for w in workers):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    rows = results.read_rows(str(out / "results.csv"), required=results.KEY)
    total = 2 * sum(len(s.batches) for s in p)
    assert 4 <= len(rows) < total
    for w in workers:
        assert json.load(open(os.path.join(w.dir, "results.json")))["interrupted"] is True
    meta = json.load(open(out / "results.json"))
    assert meta["interrupted"] and meta["missing_points"] == total - len(rows)


# --- cluster scripts ---------------------------------------------------------------------------------


def test_slurm_array_task_runs_its_shard(tmp_path):
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_COUNT": "3",
           "PYTHON": sys.executable}
    r = subprocess.run(["bash", os.path.join(ROOT, "bench", "slurm", "sweep.sbatch"), str(tmp_path / "res"),
                        "--kn", "4096,14336", "--batches", "4:4096:4", "--dry-run"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert re.search(r"shard 1/3: \d+ of 1024 points", r.stdout), r.stdout
    assert "shard-1-of-3" in r.stdout  # where its results go


def test_slurm_submit_makes_the_array_and_a_dependent_merge(tmp_path):
    # an sbatch on PATH that records its arguments and answers a job id, as `sbatch --parsable` does
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text('#!/bin/sh\necho "$@" >> "$SBATCH_LOG"\necho $((4000 + $(wc -l < "$SBATCH_LOG")))\n')
    (bin_dir / "sbatch").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SBATCH_LOG": str(tmp_path / "log")}
    submit = os.path.join(ROOT, "bench", "slurm", "submit.sh")
    r = subprocess.run(["bash", submit, "4", str(tmp_path / "res"), "--model", "Llama-3-8B"], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    array, merge_call = (tmp_path / "log").read_text().splitlines()
    assert array.startswith("--parsable --array=0-3 ") and "sweep.sbatch" in array
    assert array.endswith(f"{tmp_path / 'res'} --model Llama-3-8B")
    assert merge_call.startswith("--parsable --dependency=afterany:4001 ") and "merge.sbatch" in merge_call
    r = subprocess.run(["bash", submit, "0", str(tmp_path / "res")], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "positive integer" in r.stderr


def test_kubernetes_indexed_job_runs_its_shard(tmp_path):
    yaml = pytest.importorskip("yaml")
    docs = list(yaml.safe_load_all(open(os.path.join(ROOT, "bench", "k8s", "sweep-job.yaml"))))
    job = next(d for d in docs if d and d["kind"] == "Job" and d["spec"].get("completionMode") == "Indexed")
    shards = job["spec"]["completions"]
    assert job["spec"]["parallelism"] == shards
    c = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}
    assert int(env["SHARDS"]) == shards
    # run the container's command here, as the Job's pod 1 would, with a dry run
    script = c["command"][-1].replace(" /results/", f" {tmp_path}/")
    r = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=120,
                       env={**os.environ, **env, "JOB_COMPLETION_INDEX": "1", "PYTHON": sys.executable,
                            "BENCH_ARGS": "--kn 4096,14336 --batches 4:4096:4 --dry-run"})
    assert r.returncode == 0, r.stderr
    assert f"shard 1/{shards}:" in r.stdout
    merge_job = next(d for d in docs if d and d["kind"] == "Job" and d is not job)
    assert "tinygemm.bench merge" in json.dumps(merge_job)


# --- compare names the GPUs ---------------------------------------------------------------------------


def test_compare_names_two_gpu_models(tmp_path, capsys):
    for name, gpu, t in (("h100", "NVIDIA H100 80GB HBM3", 10.0), ("h200", "NVIDIA H200", 8.0)):
        d = tmp_path / name
        d.mkdir()
        w = results.CsvWriter(str(d / "results.csv"), append=False)
        for M in (1, 16):
            w.write({"op": "gemm", "backend": "torch_matmul", "model": "custom", "layer": "custom", "tp": 1, "M": M,
                     "N": 4096, "K": 4096, "act_dtype": "float16", "group_size": 128, "time_us": t, "status": "ok"})
        w.close()
        results.write_json(str(d / "results.json"), {"device": {"name": gpu}})
    assert analyze.main(["compare", str(tmp_path / "h100" / "results.csv"), str(tmp_path / "h200" / "results.csv")]) == 0
    out = capsys.readouterr().out
    assert "geomean speedup of B (NVIDIA H200) over A (NVIDIA H100 80GB HBM3): 1.250" in out
    assert "A: " in out and "on NVIDIA H100 80GB HBM3" in out
    assert analyze.main(["compare", str(tmp_path / "h100" / "results.csv"), str(tmp_path / "h100" / "results.csv")]) == 0
    assert "geomean speedup of B over A: 1.000" in capsys.readouterr().out


def test_cluster_merge_jobs_merge_the_shard_directories(tmp_path, small_plan):
    p, rec = small_plan
    yaml = pytest.importorskip("yaml")
    run = tmp_path / "llama3-70b"
    for i in range(4):
        write_shard(run / shard.shard_dir_name(i, 4), p, rec, i, 4)
    env = {**os.environ, "PYTHON": sys.executable}
    r = subprocess.run(["bash", os.path.join(ROOT, "bench", "slurm", "merge.sbatch"), str(run)], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 0 and "merged 4 of 4 shards" in r.stdout, r.stderr
    first = (run / "results.csv").read_text()
    docs = [d for d in yaml.safe_load_all(open(os.path.join(ROOT, "bench", "k8s", "sweep-job.yaml"))) if d]
    job = next(d for d in docs if d["metadata"]["name"] == "tinygemm-merge")["spec"]["template"]["spec"]
    c = job["containers"][0]
    kenv = {e["name"]: e["value"] for e in c["env"]}
    assert kenv["RUN"] == run.name and kenv["SHARDS"] == "4"
    for step in (job["initContainers"][0], c):  # the wait ends at once (all shards are there), then the merge
        r = subprocess.run(["sh", "-c", step["command"][-1].replace(" /results/", f" {tmp_path}/")], capture_output=True,
                           text=True, env={**env, **kenv}, timeout=120)
        assert r.returncode == 0, r.stderr
    assert (run / "results.csv").read_text() == first


def test_resume_may_grow_an_unsharded_plan_only(tmp_path):
    """--resume over a finished run with more batch sizes (same options) continues it; dropping
    points, changing an option or growing a shard's plan is refused."""
    p, a = plan("--model", "Llama-3-8B", "--batches", "1,2")
    rec = shard.plan_record(p, shard.plan_options(a))
    d = write_shard(tmp_path / "run", p, rec, 0, 1)
    p3, a3 = plan("--model", "Llama-3-8B", "--batches", "1,2,4")
    grown = shard.plan_record(p3, shard.plan_options(a3))
    assert shard.resume_conflict(d, grown, shard.shard_record(p3, 0, 1)) is None
    p1, a1 = plan("--model", "Llama-3-8B", "--batches", "1")
    assert "another plan" in shard.resume_conflict(d, shard.plan_record(p1, shard.plan_options(a1)),
                                                   shard.shard_record(p1, 0, 1))
    pb, ab = plan("--model", "Llama-3-8B", "--batches", "1,2,4", "--dtype", "bf16")
    assert "dtype" in shard.resume_conflict(d, shard.plan_record(pb, shard.plan_options(ab)),
                                            shard.shard_record(pb, 0, 1))
    s = write_shard(tmp_path / "shard", p, rec, 1, 3)
    assert "another plan" in shard.resume_conflict(s, grown, shard.shard_record(p3, 1, 3))
