"""Refresh docs/images/web.png, the README's picture of `pose-server web`, with a real model.

    .venv/bin/python scripts/screenshot_web.py [--model blazepose-full] [--frames 90] [--out docs/images/web.png]

Starts the web app on a free loopback port with the embedded BlazePose (real weights, fetched by `make`), uploads
the first frames of the demo clip in Debian's headless Chromium, converts, waits for the 3D view and saves a
full-page screenshot. Look at the result before committing it.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def clip(path: Path, frames: int) -> Path:
    """The first `frames` frames of the demo clip at half size."""
    cap = cv2.VideoCapture(str(ROOT / "resources/videos/default.mp4"))
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) // 2, int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) // 2)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, size)
    for _ in range(frames):
        ok, img = cap.read()
        if not ok:
            break
        writer.write(cv2.resize(img, size))
    writer.release()
    cap.release()
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="blazepose-full", help="the page's model (pose-server web --model)")
    ap.add_argument("--frames", type=int, default=90, help="frames of the demo clip to convert")
    ap.add_argument("--out", type=Path, default=ROOT / "docs/images/web.png")
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: run scripts/ensure_chromium.sh")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        proc = subprocess.Popen([sys.executable, "-m", "pose_server.cli", "web", "--port", str(port), "--model",
                                 args.model, "--work-dir", str(tmp_path / "work")], cwd=ROOT)
        try:
            url = f"http://127.0.0.1:{port}"
            end = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"pose-server web exited with {proc.returncode}")
                try:
                    with urllib.request.urlopen(url, timeout=2):
                        break
                except OSError:
                    if time.monotonic() > end:
                        raise SystemExit("the web app did not come up within 120 s") from None
                    time.sleep(0.5)
            video = clip(tmp_path / "clip.mp4", args.frames)
            with sync_playwright() as pw:
                browser = pw.chromium.launch_persistent_context(
                    str(tmp_path / "profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                    viewport={"width": 1600, "height": 1150})
                try:
                    page = browser.new_page()
                    page.goto(url, wait_until="domcontentloaded")
                    page.wait_for_selector("#video input[type=file]", state="attached", timeout=60_000)
                    page.locator("#video input[type=file]").set_input_files(str(video))
                    page.wait_for_selector("#video video", state="attached", timeout=60_000)
                    page.click("#convert")
                    page.wait_for_selector("#files a", timeout=900_000)
                    page.wait_for_function("document.querySelector('#model3d canvas') !== null", timeout=30_000)
                    page.wait_for_timeout(4000)  # the 3D view loads the GLB and draws its first frame
                    page.screenshot(path=str(args.out), full_page=True)
                finally:
                    browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
