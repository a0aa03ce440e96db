"""The study report as a reader sees it, in a real headless Chromium (slow: runs a study and a browser).

``make test-browser`` installs Debian's Chromium where it can (apt-get as root) and runs this file; where
no browser can be found the test skips and says how to get one.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess

import pytest
from test_study_run import _spec  # tests/ is on sys.path (pytest rootdir-relative import)

from repetita.cli import main

pytestmark = pytest.mark.slow

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
# Without the background-networking flags Chromium tries to reach Google's hosts at start, which a closed
# network refuses; a fresh profile keeps runs independent.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--allow-file-access-from-files",
         "--hide-scrollbars", "--window-size=1400,900", "--virtual-time-budget=5000")


def _browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    browser = _browser()
    if browser is None:
        pytest.skip("no Chromium on PATH: run `make browser` (Debian's chromium package; needs apt-get as root)")
    tmp = tmp_path_factory.mktemp("browser")
    study = tmp / "study"
    # a second model size, so that the study can recommend one and the first screen holds its table
    spec = _spec(tmp, extra="\n[[models]]\nn_layer = 1\nd_model = 24\n")
    assert main(["run", str(spec), "--dir", str(study), "--workers", "2", "--json"]) == 0
    assert main(["report", str(study), "--json"]) == 0
    return browser, study / "report" / "report.html", tmp


def _run(browser, *args, tmp):
    return subprocess.run([browser, *FLAGS, f"--user-data-dir={tmp / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120)


def test_report_renders_with_every_figure_loaded_and_the_decision_first(report, capsys):
    browser, page, tmp = report
    capsys.readouterr()
    dom = _run(browser, "--dump-dom", page.as_uri(), tmp=tmp).stdout

    def attr(name):
        m = re.search(rf'data-{name}="([^"]*)"', dom)
        assert m, f"the page's load handler did not set data-{name}"
        return m.group(1)

    assert int(attr("images")) >= 2
    assert attr("images-loaded") == attr("images")  # every figure loaded
    assert attr("first") == "decision"  # the decision is the first thing on the page
    assert 0 <= int(attr("decision-top")) < 100  # and it starts at the top of the first screen (1400 x 900)
    assert 0 < int(attr("sentence-bottom")) <= 900  # the decision sentence and its table fit on that screen
    assert 0 < int(attr("table-bottom")) <= 900
    assert attr("overflow") == "0"  # nothing wider than the window


def test_first_screen_screenshot(report):
    browser, page, tmp = report
    shot = tmp / "first_screen.png"
    _run(browser, f"--screenshot={shot}", page.as_uri(), tmp=tmp)
    head = shot.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", head[16:24]) == (1400, 900)  # width, height from the IHDR chunk
