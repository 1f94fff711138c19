"""A stand-in for `python -m tinygemm.bench ... --shard I/N --out DIR` in the launcher's tests: a real
process that appends one CSV row per point of its shard, as the bench does (flushed row by row), honours
--resume, stops on SIGINT keeping its rows, and writes a results.json. Standard library only, so it
starts in milliseconds; what it writes comes from the spec file the test made with tinygemm's own
split (FAKE_SPEC names it):

    {"columns": [...], "plan": {...}, "backends": [...], "points": {"I": [[model, layer, tp, K, N, M], ...]},
     "shards": {"I": shard record}, "device": "...", "row_s": 0.0, "fail": {"I": rows before exit 3}}
"""

import csv
import json
import os
import sys
import time


def main(argv):
    shard = argv[argv.index("--shard") + 1]
    out = argv[argv.index("--out") + 1]
    resume = "--resume" in argv
    spec = json.load(open(os.environ["FAKE_SPEC"]))
    i, n = (int(x) for x in shard.split("/"))
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "results.csv")
    done = set()
    if resume and os.path.exists(path):
        done = {(r["backend"], r["K"], r["N"], r["M"]) for r in csv.DictReader(open(path))}
    new = not (resume and os.path.exists(path))
    f = open(path, "w" if new else "a", newline="")
    w = csv.DictWriter(f, fieldnames=spec["columns"], extrasaction="ignore")
    if new:
        w.writeheader()
    fail_after = spec.get("fail", {}).get(str(i))
    written, interrupted = 0, False
    try:
        for model, layer, tp, K, N, M in spec["points"][str(i)]:
            for b in spec["backends"]:
                if (b, str(K), str(N), str(M)) in done:
                    continue
                if fail_after is not None and written == fail_after:
                    f.close()
                    print(f"fake worker {i}/{n}: simulated GPU failure", file=sys.stderr)
                    return 3
                time.sleep(spec.get("row_s", 0.0))
                w.writerow({"op": "gemm", "backend": b, "model": model, "layer": layer, "tp": tp, "M": M, "N": N,
                            "K": K, "act_dtype": "float16", "group_size": 128, "time_us": 1.0 + M * K * N * 1e-9,
                            "samples": 10, "status": "ok", "note": ""})
                f.flush()
                written += 1
    except KeyboardInterrupt:
        interrupted = True
    f.close()
    meta = {"command": " ".join(argv), "device": {"name": spec["device"]},
            "visible": {v: os.environ.get(v) for v in ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")},
            "versions": {"tinygemm": "fake"}, "backends": spec["backends"], "unavailable": {}, "points": written,
            "timed_kernel_s": 0.0, "wall_s": 0.0, "interrupted": interrupted, "plan": spec["plan"],
            "shard": spec["shards"][str(i)]}
    json.dump(meta, open(os.path.join(out, "results.json"), "w"))
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
