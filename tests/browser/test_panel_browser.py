"""The panel in a real headless Chromium (Debian's, driven by playwright) against a running server.

Set UPDATE_PANEL_SCREENSHOT=1 to refresh docs/images/panel.png (the README's picture); otherwise the
screenshot goes to the test's temporary folder only, so a test run leaves the work tree clean.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Playwright, sync_playwright

from pose_server.panel import panel_command
from tests.conftest import stop_process
from tests.control.live import free_port, write_session

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("streamlit did not come up in time")


def open_browser(pw: Playwright, tmp_path: Path) -> BrowserContext:
    """Debian's Chromium with a fresh profile folder (playwright passes it as --user-data-dir)."""
    return pw.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                 args=CHROMIUM_ARGS, viewport={"width": 1600, "height": 1150})


@pytest.fixture()
def panel_url(live, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure_chromium.sh (apt-get install chromium)")
    port = free_port()
    env = {**os.environ, "POSE_SERVER_CONTROL_URL": live[1].url, "POSE_SERVER_TOKEN": ""}
    log = (tmp_path / "streamlit.log").open("w")
    proc = subprocess.Popen(panel_command(port, extra=["--server.fileWatcherType", "none"]), cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        stop_process(proc)
        log.close()


def test_panel_renders_preview_and_charts(panel_url, tmp_path):
    with sync_playwright() as pw:
        browser = open_browser(pw, tmp_path)
        try:
            page = browser.new_page()
            page.goto(panel_url, wait_until="domcontentloaded")
            # the live view refreshes every second and swaps the <img>: always query the current one
            page.wait_for_function("""() => { const img = document.querySelector('[data-testid="stImage"] img');
                                              return img && img.complete && img.naturalWidth === 640; }""",
                                   timeout=60_000)
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 2",
                                   timeout=60_000)
            metrics = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
            assert "running" in metrics, metrics
            assert page.locator('[data-testid="stSidebar"]').get_by_text("Smoothing (One Euro)").is_visible()
            assert page.locator('[data-testid="stException"]').count() == 0
            # The real model on the real clip: people found, lifted to 3D, the 3D skeleton drawn.
            page.wait_for_function("""() => [...document.querySelectorAll('.js-plotly-plot .gl-container canvas')]
                                              .some(c => c.width > 200 && c.height > 200)""", timeout=60_000)
            time.sleep(3)  # a few refreshes so the charts have a line
            shot = tmp_path / "panel.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 20_000
    if os.environ.get("UPDATE_PANEL_SCREENSHOT"):
        (ROOT / "docs/images").mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, ROOT / "docs/images/panel.png")


def test_3d_skeleton_renders_in_the_browser(live, panel_url, tmp_path):
    """A replayed session carries 3D joints (the random-weight model's keypoints do not lift)."""
    pipeline = live[0]
    old = pipeline.config.source
    pipeline.update(source=str(write_session(tmp_path / "take.jsonl")), loop=True)
    try:
        with sync_playwright() as pw:
            browser = open_browser(pw, tmp_path)
            try:
                page = browser.new_page()
                page.goto(panel_url, wait_until="domcontentloaded")
                page.wait_for_function("""() => [...document.querySelectorAll('.js-plotly-plot .gl-container canvas')]
                                                  .some(c => c.width > 200 && c.height > 200)""", timeout=60_000)
                page.wait_for_function("""() => [...document.querySelectorAll('.js-plotly-plot .legendtext')]
                                                  .some(t => t.textContent === 'person 3')""", timeout=10_000)
                assert page.get_by_text("WebGL is not supported").count() == 0
                page.screenshot(path=str(tmp_path / "panel_3d.png"), full_page=True)
            finally:
                browser.close()
    finally:
        pipeline.update(source=old)
