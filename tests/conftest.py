import os

import torch

# Without a GPU the Triton kernels run in Triton's CPU interpreter (it must be chosen before import).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

import tinygemm  # noqa: E402

HAS_GPU = tinygemm.gpu_available()


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs a GPU and a GPU build of tinygemm")
    for item in items:
        if "gpu" in item.keywords and not HAS_GPU:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fresh_seed(request):
    # fresh random data per test, reproducible per test id
    torch.manual_seed(abs(hash(request.node.nodeid)) % (2**31))
