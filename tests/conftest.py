from __future__ import annotations

import os
from pathlib import Path

import pytest

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
def anchors() -> Path:
    if not ANCHORS.is_dir():
        pytest.skip(f"anchors folder {ANCHORS} absent")
    return ANCHORS
