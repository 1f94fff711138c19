"""bench/e2e_decode.py on the CPU: argument errors, a tiny run end to end (eager), and the decode
step's static-cache bookkeeping against a plain forward over the whole sequence; bench/act_order_gather.py's
argument and no-GPU errors."""

import csv
import importlib.util
import os

import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

BENCH = os.path.join(os.path.dirname(__file__), "..", "bench")


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(BENCH, name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def e2e():
    return _load("e2e_decode")


@pytest.mark.parametrize("args,msg", [
    (["--tiny"], "--out"), (["--tiny", "--batches", "1,x"], "--batches must be comma-separated"),
    (["--tiny", "--variants", "fp16,bogus"], "--variants must be among"), (["--tiny", "--group-size", "48"], "--group-size"),
    (["--tiny", "--context", "0"], "--context must be >= 1"),
])
def test_bad_arguments_exit_2_with_one_line(e2e, capsys, tmp_path, args, msg):
    if msg != "--out":
        args = args + ["--out", str(tmp_path)]
    assert e2e.main(args) == 2
    err = capsys.readouterr().err
    assert msg in err and len(err.strip().splitlines()) == 1, err


def test_tiny_run_writes_csv_and_summary(e2e, capsys, tmp_path):
    out = tmp_path / "e2e"
    assert e2e.main(["--tiny", "--out", str(out), "--context", "8", "--steps", "2", "--batches", "1,2",
                     "--device", "cpu"]) == 0

    rows = list(csv.DictReader(open(out / "e2e_decode.csv")))
    ok = {(x["variant"], x["batch"]) for x in rows if x["status"] == "ok"}
    assert ok == {("fp16", "1"), ("fp16", "2"), ("tinygemm", "1"), ("tinygemm", "2")}
    assert {x["status"] for x in rows if x["variant"] in ("torch_int4pack", "marlin")} == {"unavailable"}
    assert all(float(x["tokens_per_s"]) > 0 for x in rows if x["status"] == "ok")
    assert float([x for x in rows if x["variant"] == "tinygemm"][0]["load_s"]) > 0
    md = (out / "e2e_decode.md").read_text()
    assert "| 1 |" in md and "## Bars" in md
    capsys.readouterr()
    assert e2e.main(["--tiny", "--out", str(out)]) == 2 and "not overwriting" in capsys.readouterr().err


def test_decoder_step_matches_a_full_forward(e2e):
    """Decode steps with the static cache give the logits of the whole sequence run at once."""
    m = e2e
    model = m.build_model(m.llama_config(2, tiny=True), torch.float32, "cpu")
    dec = m.Decoder(model, batch=2, context=6, max_len=16, device="cpu", dtype=torch.float32)
    toks = [dec.tok.clone()]
    got = [dec.step()[:, -1]]
    dec.tok.copy_(torch.randint(0, 512, (2, 1)))
    toks.append(dec.tok.clone())
    got.append(dec.step()[:, -1])
    with torch.no_grad():
        full = model(torch.cat([dec.prompt] + toks, dim=1)).logits
    assert torch.allclose(got[0], full[:, 6], atol=1e-4, rtol=1e-4)
    assert torch.allclose(got[1], full[:, 7], atol=1e-4, rtol=1e-4)
    assert int(dec.pos) == 8


def test_act_order_gather_errors(capsys, tmp_path):
    import tinygemm

    g = _load("act_order_gather")
    assert g.main(["--out", str(tmp_path), "--batches", "0"]) == 2
    assert "--batches must be >= 1" in capsys.readouterr().err
    if not tinygemm.gpu_available():
        assert g.main(["--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert "needs a GPU" in err and len(err.strip().splitlines()) == 1
