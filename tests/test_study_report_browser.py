"""The study report renders in a real browser with every figure loaded (slow: runs a study and Chromium)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from test_study_run import _spec  # tests/ is on sys.path (pytest rootdir-relative import)

from repetita.cli import main

pytestmark = pytest.mark.slow

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def _browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def test_report_renders_with_every_figure_loaded(tmp_path, capsys):
    browser = _browser()
    if browser is None:
        pytest.skip("no Chromium on PATH (Debian: apt install chromium)")
    study = tmp_path / "study"
    assert main(["run", str(_spec(tmp_path)), "--dir", str(study), "--workers", "2", "--json"]) == 0
    assert main(["report", str(study), "--json"]) == 0
    capsys.readouterr()
    page = study / "report" / "report.html"
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
         "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout
    images = re.search(r'data-images="(\d+)"', dom)
    loaded = re.search(r'data-images-loaded="(\d+)"', dom)
    assert images and loaded, "the page's load handler did not run"
    assert int(images.group(1)) >= 2
    assert int(loaded.group(1)) == int(images.group(1))
