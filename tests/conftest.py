from __future__ import annotations

import os
from pathlib import Path

import pytest

from repetita.laws.record import freeze_args, published_chinchilla

# Published data to validate against; tests that need it skip when the folder is absent.
ANCHORS = Path(os.environ.get("REPETITA_ANCHORS", Path(__file__).resolve().parents[2] / "shared" / "anchors"))


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # torch missing or broken: no GPU tests either way
        has_cuda = False
    if has_cuda:
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture
def one_torch_thread():
    """Train on one torch thread (timings and float reductions as in the docs), restoring the setting."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def anchors() -> Path:
    if not ANCHORS.is_dir():
        pytest.skip(f"anchors folder {ANCHORS} absent")
    return ANCHORS


# The published Chinchilla part of Muennighoff et al.'s fit, frozen (docs/laws.md), as fit arguments.
PUBLISHED_FREEZE = freeze_args(published_chinchilla())


@pytest.fixture
def published_freeze() -> list[str]:
    return list(PUBLISHED_FREEZE)


@pytest.fixture
def bootstrap_fit(tmp_path, capsys):
    """``bootstrap_fit(n)``: a data-constrained fit file of the datablations runs (Chinchilla part frozen at the
    published values) with ``n`` bootstrap resamples saved in it."""
    from repetita.cli import main

    def make(n: int) -> Path:
        path = tmp_path / f"dc-bootstrap-{n}.json"
        assert main(["fit", "--example", "datablations", "--law", "data-constrained", *PUBLISHED_FREEZE,
                     "--bootstrap", str(n), "--out", str(path), "--json"]) == 0
        capsys.readouterr()
        return path

    return make
