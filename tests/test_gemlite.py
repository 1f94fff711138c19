"""The gemlite backend: import handling, the weight mapping into gemlite's convention (CPU), and its
output against the fp32 reference through the sweep (GPU, skipped without gemlite)."""

import importlib
import importlib.util
import sys

import pytest
import torch

from tinygemm import formats, results
from tinygemm.backends import Problem, registry
from tinygemm.backends.gemlite import Gemlite, fma_zeros, reference_weight, to_gemlite

FORMATS = [(g, sym, dt) for g in (32, 64, 128, -1) for sym in (True, False)
           for dt in (torch.float16, torch.bfloat16)]


def test_unavailable_names_the_import_failure(monkeypatch):
    why = Gemlite().unavailable()
    try:
        importlib.import_module("gemlite")
    except Exception as e:  # not installed, or gemlite's import-time GPU queries fail here
        assert why and (type(e).__name__ in why or str(e) in why), why
    else:
        assert why == (None if torch.cuda.is_available() else "no GPU visible to torch")
    monkeypatch.setitem(sys.modules, "gemlite", None)  # an absent package: its import raises ImportError
    why = Gemlite().unavailable()
    assert why.startswith("gemlite is not installed") and "pip install gemlite" in why
    assert "gemlite" in registry()


@pytest.mark.parametrize("group_size,symmetric,dtype", FORMATS)
def test_mapping_keeps_the_weights(group_size, symmetric, dtype):
    """(q - z) * s over gemlite's [N, K] codes and [N, G] meta is tinygemm's dequantized weight exactly;
    fma mode (q * s + the stored -z * s) differs from it by the rounding of the stored zero only."""
    K, N = 256, 48
    qw = formats.quantize(torch.randn(K, N), group_size, symmetric)
    qw = formats.QuantizedWeight(qw.qweight, qw.scales.to(dtype), None if symmetric else qw.zeros.to(dtype),
                                 qw.shape, qw.group_size)
    q, s, z = to_gemlite(qw)
    G = 1 if group_size == -1 else K // group_size
    assert q.dtype == torch.uint8 and q.shape == (N, K) and int(q.max()) <= 15
    assert s.shape == (N, G) and s.dtype == dtype
    assert z == 8 if symmetric else (z.shape == (N, G) and z.dtype == dtype)
    exact = formats.dequantize(qw, torch.float32)
    assert torch.equal(reference_weight(q, s, z, fma=False), exact)
    assert torch.equal(q.t(), qw.unpack())
    if not symmetric:
        fma = reference_weight(q, s, z, fma=True)
        zs = fma_zeros(s, z)
        assert torch.equal(zs, (-z.float() * s.float()).to(dtype))
        step = (z.float() * s.float()).abs().max() * torch.finfo(dtype).eps
        assert (fma - exact).abs().max() <= step
        assert not torch.equal(fma, exact) or dtype == torch.float16  # bf16's 8-bit mantissa rounds z * s


@pytest.fixture(scope="module")
def bitpack():
    """gemlite's own bit packing. Its package __init__ queries the GPU at import, but bitpack.py runs on
    the CPU: without a GPU it is loaded from gemlite's installed files with that __init__ left out."""
    spec = importlib.util.find_spec("gemlite")
    if spec is None:
        pytest.skip("gemlite is not installed")
    try:
        yield importlib.import_module("gemlite.bitpack")
        return
    except Exception:
        pass
    saved = {k: v for k, v in sys.modules.items() if k == "gemlite" or k.startswith("gemlite.")}
    sys.modules["gemlite"] = importlib.util.module_from_spec(spec)  # the package, its __init__ not run
    try:
        yield importlib.import_module("gemlite.bitpack")
    finally:
        for k in [k for k in sys.modules if k == "gemlite" or k.startswith("gemlite.")]:
            del sys.modules[k]
        sys.modules.update(saved)


@pytest.mark.parametrize("symmetric", [True, False])
def test_codes_round_trip_through_gemlites_packing(bitpack, symmetric):
    """The codes to_gemlite hands over come back unchanged from gemlite's pack and unpack (the int32
    packing along K its GemLiteLinearTriton.pack does), as tinygemm's q."""
    K, N = 256, 32
    qw = formats.quantize(torch.randn(K, N), 64, symmetric)
    q, s, z = to_gemlite(qw)
    packed, per_word = bitpack.pack_weights_over_cols_torch(q, W_nbits=4, packing_bitwidth=32, transpose=True)
    assert per_word == 8 and packed.shape == (K // 8, N) and packed.dtype == torch.int32
    back = bitpack.unpack_over_cols_torch(packed.t().contiguous(), 4, K)
    assert torch.equal(back, q) and torch.equal(back.t(), qw.unpack())
    # pack() keeps the meta as [G, N] views of what it is given: tinygemm's own tensors
    assert torch.equal(s.view(N, -1).t(), qw.scales)
    assert symmetric or torch.equal(z.view(N, -1).t(), qw.zeros)


# --- GPU -----------------------------------------------------------------------------------------


def _need_gemlite():
    why = Gemlite().unavailable()
    if why:
        pytest.skip(why)


@pytest.mark.gpu
@pytest.mark.parametrize("args", [[], ["--dtype", "bf16"], ["--group-size", "64", "--asym"],
                                  ["--group-size", "-1"], ["--group-size", "32", "--asym", "--dtype", "bf16"]])
def test_gemlite_against_the_reference(tmp_path, monkeypatch, args):
    """gemlite's output at real layer shapes (Llama-3-8B o_proj / down_proj, 70B TP4 qkv) and M on
    every kernel path (GEMV rev-split-K, split-K GEMM, GEMM, odd M) against the fp32 reference."""
    _need_gemlite()
    from tinygemm.bench.__main__ import main

    monkeypatch.setattr(Gemlite, "autotune", "default")  # correctness, not speed: no long tuning
    rc = main(["--kn", "4096,4096", "--kn", "14336,4096", "--kn", "8192,2560", "--batches", "1,3,16,33,128",
               "--backends", "gemlite", "--out", str(tmp_path), "--quiet", "--max-samples", "10",
               "--budget-ms", "50", *args])
    assert rc == 0
    rows = results.read_rows(str(tmp_path / "results.csv"))
    assert len(rows) == 15
    for r in rows:
        assert r["status"] == "ok", (r["K"], r["N"], r["M"], r["status"], r["note"])
        assert float(r["max_rel_err"]) <= Gemlite.tolerance, r
        assert "autotune 'default'" in r["note"]
    import json

    ran = json.load(open(tmp_path / "results.json"))["backend_extra"]["gemlite"]["ran"]
    assert len(ran) == 15
    kinds = {v.split(":")[0] for v in ran.values()}
    assert kinds == {"GEMV_REVSPLITK", "GEMM_SPLITK", "GEMM"}, kinds


@pytest.mark.gpu
def test_gemlite_holds_tinygemms_codes(monkeypatch):
    """The packed codes gemlite holds unpack (with gemlite's own unpack) to tinygemm.quantize's q."""
    _need_gemlite()
    from gemlite.bitpack import unpack_over_cols_triton

    monkeypatch.setattr(Gemlite, "autotune", "default")
    K, N = 4096, 1024
    w = torch.randn(K, N, device="cuda") / K**0.5
    prep = Gemlite().prepare(w, Problem(K, N, torch.float16, 128, True))
    qw = formats.quantize(w.half(), 128, True)
    q = unpack_over_cols_triton(prep.states[0]["W_q"].t().contiguous(), 4, K)
    assert torch.equal(q.t(), qw.unpack())
    assert torch.equal(prep.ref_w, formats.dequantize(qw, torch.float32))
    x = torch.randn(5, K, device="cuda", dtype=torch.float16)
    xi, xref = prep.input(x)
    y = prep.call(prep.states[0], xi)
    ref = xref @ prep.ref_w
    assert ((y.float() - ref).abs().max() / ref.abs().max()).item() < 1e-2
