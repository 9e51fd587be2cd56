"""`pose-server web` in a real headless Chromium (Debian's, driven by playwright): upload a second of the demo clip,
convert it with a tiny random-weight ViTPose, download the FBX the page offers and import it in a fresh real
Blender; cancel a running job; take a webcam snapshot (Chromium's fake camera playing a frame of the clip).
Two users at once, the model chooser and two performers (one FBX with an armature each) go through Gradio's own
client against the same real server.

The README's picture docs/images/web.png comes from scripts/screenshot_web.py (a real model), not from here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from playwright.sync_api import sync_playwright

from tests.browser.test_panel_browser import CHROMIUM, CHROMIUM_ARGS, open_browser
from tests.conftest import stop_process
from tests.control.live import free_port
from tests.e2e.clips import demo_clip
from tests.e2e.fbx_import import imported_keys

ROOT = Path(__file__).resolve().parents[2]
FRAMES = 30
LONG = 230  # the whole demo clip at half size: ~10 s of conversion here, time enough to cancel it


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
            status = page.locator("#status").inner_text()
            assert "30 frames" in status
            page.wait_for_function("document.querySelector('#model3d canvas') !== null", timeout=30_000)
            page.wait_for_timeout(4000)  # the 3D view loads the GLB and draws its first frame
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
    keys = imported_keys(fbx)
    for bone in ("hips", "forearm.L", "shin.R"):
        assert len(keys["frames"].get(bone, [])) >= FRAMES - 2, bone
    performers = json.loads(status.split("performers ", 1)[1])
    assert sorted(keys["armatures"]) == sorted(f"Performer_{pid}" for pid in performers)
    assert shot.stat().st_size > 20_000


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


def test_a_token_is_the_password_of_user_mocap(tmp_path):
    """With --token the page asks for user "mocap" and the token (compared in constant time) before anything."""
    port = free_port()
    log = (tmp_path / "web.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "pose_server.cli", "web", "--port", str(port), "--token", "s3cret",
                             "--work-dir", str(tmp_path / "work")], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def login(user: str, password: str) -> int:
        data = urllib.parse.urlencode({"username": user, "password": password}).encode()
        try:
            with urllib.request.urlopen(urllib.request.Request(f"{url}/login", data=data), timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    try:
        end = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "web.log").read_text()[-3000:]
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except urllib.error.HTTPError:
                break  # it answers (a login page or 401)
            except OSError:
                assert time.monotonic() < end, "the web app did not come up in time"
                time.sleep(0.5)
        assert login("mocap", "s3cret") == 200
        assert login("mocap", "wrong") >= 400 and login("admin", "s3cret") >= 400
    finally:
        stop_process(proc)
        log.close()


def test_beyond_loopback_needs_a_token():
    proc = subprocess.run([sys.executable, "-m", "pose_server.cli", "web", "--host", "0.0.0.0", "--token", ""],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--token" in proc.stderr


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    return demo_clip(tmp_path_factory.mktemp("long") / "long.mp4", LONG)


def job_folders(work: Path) -> set[Path]:
    return set((work / "jobs").glob("*")) if (work / "jobs").is_dir() else set()


def upload(page, url: str, clip: Path) -> None:
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector("#video input[type=file]", state="attached", timeout=60_000)
    page.locator("#video input[type=file]").set_input_files(str(clip))
    page.wait_for_selector("#video video", state="attached", timeout=60_000)


def test_cancel_stops_a_running_job_and_leaves_nothing_behind(web, long_clip, tmp_path):
    url, work, _ = web
    before = job_folders(work)
    with sync_playwright() as pw:
        browser = open_browser(pw, tmp_path)
        try:
            page = browser.new_page()
            upload(page, url, long_clip)
            page.click("#convert")
            bar = page.get_by_text("2D keypoints").first  # Gradio's progress bar over the outputs
            bar.wait_for(timeout=120_000)
            page.wait_for_function("document.body.innerText.match(/\\d+\\/230 frames/)", timeout=60_000)
            shown = page.evaluate("document.body.innerText.match(/(\\d+)\\/230 frames/)[1]")
            page.click("#cancel")
            page.get_by_text("conversion cancelled").first.wait_for(timeout=60_000)
        finally:
            browser.close()
    assert 0 < int(shown) < LONG, "cancelled while the frames were being read"
    new = job_folders(work) - before
    assert not new, f"the cancelled job left {[sorted(p.rglob('*')) for p in new]}"
    time.sleep(3)  # a job that had not stopped would write its files now
    assert not (job_folders(work) - before)


def test_a_second_user_waits_in_the_queue_and_cancel_frees_it(web, long_clip, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.utils import Status

    url, work, clip = web
    first, second = Client(url, verbose=False), Client(url, verbose=False)  # two sessions: two users
    a = first.submit(video=handle_file(str(long_clip)), snapshot=None, formats=["jsonl"], api_name="/convert")
    end = time.monotonic() + 120
    while a.status().code != Status.PROGRESS:
        assert time.monotonic() < end and not a.done(), "the first job did not start"
        time.sleep(0.2)
    b = second.submit(video=handle_file(str(clip)), snapshot=None, formats=["jsonl"], api_name="/convert")
    time.sleep(2)
    assert b.status().code == Status.IN_QUEUE, "one conversion at a time: the second user waits"
    assert first.predict(api_name="/cancel") == "cancelling..."
    with pytest.raises(Exception, match="conversion cancelled"):
        a.result(timeout=60)
    overlay, packet, files, glb, status = b.result(timeout=300)  # then the second one runs
    assert f"{FRAMES} frames" in status and [Path(f).name for f in files] == ["take.jsonl"]


def test_cancel_while_waiting_and_closing_the_tab_stop_the_jobs(web, long_clip, tmp_path):
    """Cancel pressed while a job waited in the queue was undone when the job started (it converted anyway); a tab
    closed during a conversion left it running to the end, everyone behind it waiting, its files on disk."""
    url, work, clip = web
    before = job_folders(work)
    with sync_playwright() as pw:
        browser = open_browser(pw, tmp_path)
        try:
            first, second = browser.new_page(), browser.new_page()
            upload(first, url, long_clip)
            upload(second, url, clip)
            first.click("#convert")
            first.get_by_text("2D keypoints").first.wait_for(timeout=120_000)
            second.click("#convert")
            time.sleep(1.0)
            second.click("#cancel")  # while it waits behind the first
            time.sleep(1.0)
            first.close()  # the running job's tab goes away
            end = time.monotonic() + 60
            while job_folders(work) - before and time.monotonic() < end:
                time.sleep(0.2)
            assert not (job_folders(work) - before), "the closed tab's job did not stop and clean up"
            time.sleep(3)  # the cancelled waiting job would have started by now, and written its folder
            assert not (job_folders(work) - before), "the job cancelled while waiting ran anyway"
            assert second.locator("#files a").count() == 0
        finally:
            browser.close()


def test_the_model_chooser_runs_the_embedded_blazepose(web):
    from gradio_client import Client, handle_file

    url, work, clip = web
    client = Client(url, verbose=False)
    _, packet, files, _, status = client.predict(video=handle_file(str(clip)), snapshot=None, model="blazepose-full",
                                                 formats=["jsonl"], estimate_pitch=True, api_name="/convert")
    first = json.loads(Path(files[0]).read_text().splitlines()[0])
    assert first["meta"]["model"] == "blazepose-full"
    assert f"{FRAMES} frames" in status
    assert "camera pitch estimated" in status, status  # asked for: the whole video's estimate, said
    with pytest.raises(Exception, match="weights|hub|download"):  # a size whose weights are not here: said so
        client.predict(video=handle_file(str(clip)), snapshot=None, model="huge", formats=["jsonl"],
                       api_name="/convert")


def test_two_performers_download_as_one_fbx_with_an_armature_each(web, tmp_path):
    """The clip beside its mirror image, HOG boxes and the embedded BlazePose (real weights: both people tracked):
    the FBX offered is one file holding both performers, the BVH one file each."""
    from gradio_client import Client, handle_file

    url, work, _ = web
    clip = demo_clip(tmp_path / "duo.mp4", FRAMES, mirrored=True)
    client = Client(url, verbose=False)
    _, _, files, _, status = client.predict(video=handle_file(str(clip)), snapshot=None, model="blazepose-full",
                                            formats=["fbx", "bvh"], detector="hog", api_name="/convert")
    performers = json.loads(status.split("performers ", 1)[1])
    assert len(performers) == 2, status
    names = [Path(f).name for f in files]
    assert names == ["take.fbx", *(f"take_person{pid}.bvh" for pid in performers)], names
    keys = imported_keys(files[0])
    assert sorted(keys["armatures"]) == sorted(f"Performer_{pid}" for pid in performers)
    for pid in performers:
        assert len(keys["armatures"][f"Performer_{pid}"]["frames"]) >= FRAMES - 2, (pid, keys["armatures"])


def y4m(frame_bgr: np.ndarray, path: Path, frames: int = 10) -> Path:
    """A .y4m video of one frame repeated: Chromium's fake camera plays it (--use-file-for-fake-video-capture)."""
    h, w = (d - d % 2 for d in frame_bgr.shape[:2])
    yuv = cv2.cvtColor(frame_bgr[:h, :w], cv2.COLOR_BGR2YUV_I420).tobytes()
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + yuv)
    return path


def test_a_webcam_snapshot_gives_a_lifted_pose(web, tmp_path):
    url, work, clip = web
    cap = cv2.VideoCapture(str(clip))
    ok, img = cap.read()
    cap.release()
    assert ok
    camera = y4m(img, tmp_path / "camera.y4m")
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, viewport={"width": 1600, "height": 1150},
            args=[*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  f"--use-file-for-fake-video-capture={camera}"])
        try:
            page = browser.new_page()
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_role("tab", name="webcam snapshot").click()
            page.locator("#snapshot [title='grant webcam access'] button").click()
            page.locator("#snapshot button[aria-label='capture photo']").click(timeout=60_000)
            page.wait_for_selector("#snapshot img[src]:not(.hide)", state="attached", timeout=30_000)
            page.click("#convert")
            page.wait_for_selector("#files a", timeout=300_000)
            status = page.locator("#status").inner_text()
            packet = page.locator("#packet").inner_text()
        finally:
            browser.close()
    assert "1 frames" in status
    assert '"rotations"' in packet


def test_uploads_land_in_the_apps_folder_whatever_their_name(web, tmp_path):
    url, work, clip = web
    with sync_playwright() as pw:
        ctx = pw.request.new_context()
        try:
            reply = ctx.post(f"{url}/gradio_api/upload", multipart={
                "files": {"name": "../../../../escape.mp4", "mimeType": "video/mp4", "buffer": clip.read_bytes()}})
            assert reply.status == 200, reply.text()[:300]
            paths = [Path(p).resolve() for p in reply.json()]
        finally:
            ctx.dispose()
    assert paths and all(p.is_relative_to(work.resolve()) and p.is_file() for p in paths), paths
    assert not any((d / "escape.mp4").exists() for d in (work.parent, work.parent.parent, Path("/tmp")))


def test_finished_sessions_files_are_removed_after_a_while(tmp_path):
    """Every finished session's folder stayed for as long as the app ran (13 jobs: 165 MB)."""
    from pose_server.web.app import Jobs

    jobs = Jobs(tmp_path / "jobs", keep_s=60)
    old, busy = jobs.folder("old"), jobs.folder("busy")
    jobs.folder("recent")
    for path in (old, busy):
        (path / "take.fbx").write_bytes(b"x")
        os.utime(path, (time.time() - 120, time.time() - 120))
    jobs.running.add("busy")
    jobs.folder("new")
    assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == ["busy", "new", "recent"]
    jobs.leave("recent")  # its tab closed, no job under way: removed at once
    jobs.leave("busy")  # a job under way: told to stop (it removes its folder itself)
    assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == ["busy", "new"] and jobs.flag("busy").is_set()


def test_the_folder_a_run_made_for_itself_goes_when_it_is_stopped(tmp_path):
    """Without --work-dir the app makes a temp folder for uploads and results; `docker stop` or a kill left it."""
    port = free_port()
    log = tmp_path / "web.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pose_server.cli", "web", "--port", str(port)], cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        end = time.monotonic() + 120
        while "(jobs in " not in log.read_text():
            assert proc.poll() is None and time.monotonic() < end, log.read_text()[-2000:]
            time.sleep(0.2)
        root = Path(log.read_text().split("(jobs in ", 1)[1].split(")", 1)[0])
        assert root.is_dir()
    finally:
        proc.terminate()  # SIGTERM
        proc.wait(30)
    assert not root.exists(), f"{root} is still there"


def test_an_error_names_the_upload_not_where_the_server_keeps_it(web, tmp_path):
    """A bad upload's error showed the server's own paths (`/srv/.../jobs/<session>/upload.mp4`)."""
    from gradio_client import Client, handle_file

    url, work, _ = web
    fake = tmp_path / "holiday.mp4"
    fake.write_text("not a video")
    with pytest.raises(Exception) as err:
        Client(url, verbose=False).predict(video=handle_file(str(fake)), snapshot=None, formats=["jsonl"],
                                           api_name="/convert")
    message = str(err.value)
    assert "upload.mp4" in message and str(work) not in message and "/jobs/" not in message, message


def test_a_page_beyond_loopback_does_not_download_weights_for_its_users(tmp_path, monkeypatch):
    """Anyone reaching a page served on the network could pick ViTPose-huge and make the server download it."""
    from pose_server.config import HUB_MODELS
    from pose_server.web.models import model_choices, model_fields

    monkeypatch.setenv("VITPOSE_CHECKPOINTS", str(tmp_path))  # no weights here
    with pytest.raises(ValueError, match="ViTPose huge's weights are not on this server"):
        model_fields("huge", None, "auto", downloads=False)
    assert model_fields("huge", None, "auto", downloads=True) == {"checkpoint": None, "model_size": "huge"}
    assert any("not on this server" in label for label, _v in model_choices(None, "auto", downloads=False))
    folder = tmp_path / "hf" / HUB_MODELS["huge"].replace("/", "--")  # fetched once by whoever runs the server
    folder.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (folder / name).write_text("{}")
    assert model_fields("huge", None, "auto", downloads=False)["model_size"] == "huge"
