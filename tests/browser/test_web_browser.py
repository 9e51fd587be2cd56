"""`pose-server web` in a real headless Chromium (Debian's, driven by playwright): upload a second of the demo clip,
convert it with a tiny random-weight ViTPose, download the FBX the page offers and import it in a fresh real
Blender.

Set UPDATE_WEB_SCREENSHOT=1 to refresh docs/images/web.png (the README's picture).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.browser.test_panel_browser import CHROMIUM, open_browser
from tests.conftest import stop_process
from tests.control.live import free_port
from tests.e2e.clips import demo_clip

ROOT = Path(__file__).resolve().parents[2]
FRAMES = 30


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """(url, work folder, clip) of a running `pose-server web` on loopback."""
    from pose_server.vitpose.tiny import make_tiny_checkpoint

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure_chromium.sh (apt-get install chromium)")
    tmp = tmp_path_factory.mktemp("web")
    ckpt = make_tiny_checkpoint(tmp / "tiny.pth", fmt="mmpose")
    work = tmp / "work"
    port = free_port()
    log = (tmp / "web.log").open("w")
    # Random weights give low keypoint scores: threshold 0 keeps the person tracked and lifted.
    proc = subprocess.Popen([sys.executable, "-m", "pose_server.cli", "web", "--port", str(port), "--checkpoint",
                             str(ckpt), "--backend", "torch", "--detector", "full-frame", "--kpt-threshold", "0",
                             "--work-dir", str(work), "--max-upload-mb", "20"],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp / "web.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                assert time.monotonic() < end, "the web app did not come up in time"
                time.sleep(0.5)
        yield url, work, demo_clip(tmp / "clip.mp4", FRAMES)
    finally:
        stop_process(proc)
        log.close()


def test_upload_convert_and_download_an_fbx_blender_imports(web, tmp_path):
    url, work, clip = web
    with sync_playwright() as pw:
        browser = open_browser(pw, tmp_path)
        try:
            page = browser.new_page()
            page.goto(url, wait_until="domcontentloaded")
            page.wait_for_selector("#video input[type=file]", state="attached", timeout=60_000)
            page.locator("#video input[type=file]").set_input_files(str(clip))
            page.wait_for_selector("#video video", state="attached", timeout=60_000)  # the upload has landed
            page.click("#convert")
            page.wait_for_selector("#files a", timeout=600_000)
            links = page.locator("#files a").evaluate_all("els => els.map(e => e.href)")
            assert page.locator("#overlay img").count() == 4
            assert '"rotations"' in page.locator("#packet").inner_text()
            assert "30 frames" in page.locator("#status").inner_text()
            page.wait_for_function("document.querySelector('#model3d canvas') !== null", timeout=30_000)
            page.wait_for_timeout(1500)  # the 3D view draws its first frame
            shot = tmp_path / "web.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    names = sorted(Path(urllib.parse.urlparse(h).path).name for h in links)
    assert names == ["take.fbx", "take.glb"], links
    for h in links:  # every result is served from inside the app's own folder
        assert str(work.resolve()) in urllib.parse.unquote(urllib.parse.urlparse(h).path), h
    fbx = tmp_path / "downloaded.fbx"
    with urllib.request.urlopen(next(h for h in links if h.endswith(".fbx")), timeout=30) as r:
        fbx.write_bytes(r.read())
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "e2e" / "fbx_keys.py"), str(fbx)],
                          capture_output=True, text=True, timeout=300)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("KEYS ")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-2000:]
    keys = json.loads(line[5:])
    for bone in ("hips", "forearm.L", "shin.R"):
        assert len(keys["frames"].get(bone, [])) >= FRAMES - 2, bone
    assert shot.stat().st_size > 20_000
    if os.environ.get("UPDATE_WEB_SCREENSHOT"):
        shutil.copy(shot, ROOT / "docs/images/web.png")


def test_uploads_over_the_limit_are_refused(web, tmp_path):
    url, work, _ = web
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (21 * 1024 * 1024))
    with sync_playwright() as pw:
        ctx = pw.request.new_context()
        try:
            reply = ctx.post(f"{url}/gradio_api/upload", multipart={
                "files": {"name": "big.mp4", "mimeType": "video/mp4", "buffer": big.read_bytes()}})
            assert reply.status == 413, (reply.status, reply.text()[:300])
        finally:
            ctx.dispose()
    assert not any(p.stat().st_size > 20 * 1024 * 1024 for p in work.rglob("*") if p.is_file())


def test_beyond_loopback_needs_a_token():
    proc = subprocess.run([sys.executable, "-m", "pose_server.cli", "web", "--host", "0.0.0.0", "--token", ""],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--token" in proc.stderr
