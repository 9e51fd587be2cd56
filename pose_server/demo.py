"""`make demo`: a video in, a recorded Blender animation out.

Runs the pose server on a video (or a webcam) with the default model, streams the packets over UDP
on loopback to a headless Blender (`scripts/demo_blender.py`, the real add-on in the `bpy` module),
which makes a capture rig per tracked person (up to --max-people) and records them all into one take,
and writes to `out/`: `demo.blend`, `demo.fbx` (every performer), `demo_P0.bvh`, `demo_P1.bvh`, ... (one
per performer), `overlay.mp4`, `take.jsonl`, `demo_rig.png` (a render of the rigs), `compare.mp4` (the
overlay beside the rigs, frame by frame), `demo_sheet.png` (six moments: frame, overlay, rigs) and
`summary.json` (with each performer's frames and packets).

    python -m pose_server.demo                         # resources/videos/default.mp4, default model
    python -m pose_server.demo --checkpoint checkpoints/vitpose_small.pth
    python -m pose_server.demo --webcam 0 --seconds 20
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from .cli import add_swap_guard_arg, add_unmeasurable_args, number_in
from .config import AUTO_MODEL, BACKENDS, PRECISIONS, PipelineConfig, load_estimator
from .demo_media import rig_frames, write_compare, write_overlay, write_sheet
from .pipeline import Pipeline

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "scripts" / "demo_blender.py"
DEFAULT_VIDEO = ROOT / "resources" / "videos" / "default.mp4"
log = logging.getLogger("pose_server.demo")


EGL_NOTICE = "EGL_BAD_MATCH"


class DemoError(RuntimeError):
    """The demo cannot go on; the message says what to do."""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BlenderWorker:
    """The headless Blender process: started, told to stop, and read for its summary."""

    def __init__(self, port: int, out: Path, render: bool, frames_dir: Path | None = None, performers: int = 2) -> None:
        cmd = [sys.executable, str(WORKER), "--port", str(port), "--out", str(out), "--performers", str(performers)]
        if not render:
            cmd.append("--no-render")
        elif frames_dir is not None:
            cmd += ["--frames-dir", str(frames_dir)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, cwd=ROOT)
        self.lines: list[str] = []
        self.egl_notices = 0  # Blender's headless GPU context's EGL_BAD_MATCH lines, counted instead of shown
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._err_reader = threading.Thread(target=self._read_errors, daemon=True)
        self._err_reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("READY"):
                self._ready.set()

    def _read_errors(self) -> None:
        """Blender's stderr passed on, but for the EGL_BAD_MATCH lines its headless GPU context prints while it
        tries configurations before one works (the renders are written all the same): to a new user they read as
        the demo failing."""
        for line in self.proc.stderr:
            if EGL_NOTICE in line:
                self.egl_notices += 1
            else:
                sys.stderr.write(line)

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(self.lines[-15:])
                raise DemoError(f"headless Blender did not start (exit code {self.proc.poll()}):\n{tail}")

    def finish(self, timeout: float = 600.0) -> dict:
        """Tell Blender to stop and export; returns its summary."""
        try:
            self.proc.stdin.write("stop\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        self.proc.wait(timeout)
        self._reader.join(5)
        self._err_reader.join(5)
        if self.egl_notices:
            log.info("headless Blender's GPU context printed %d EGL_BAD_MATCH notices while choosing a configuration "
                     "(not shown; rendering went on)", self.egl_notices)
        for line in reversed(self.lines):
            if line.startswith("SUMMARY "):
                return json.loads(line[len("SUMMARY "):])
        raise DemoError("headless Blender ended without a summary:\n" + "\n".join(self.lines[-15:]))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m pose_server.demo", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--source", default=str(DEFAULT_VIDEO), help="video file, image folder or URL")
    src.add_argument("--webcam", type=int, default=None, metavar="INDEX", help="capture from this webcam instead")
    ap.add_argument("--seconds", type=float, default=15.0, help="how long to capture from a webcam")
    ap.add_argument("--model", default=AUTO_MODEL,
                    help="auto (ViTPose when its weights are in checkpoints/ or downloadable, else the embedded "
                         "BlazePose), blazepose[-lite|-full|-heavy], or a Hugging Face hub id")
    ap.add_argument("--checkpoint", default=None, help="a local .pth file or model folder (overrides --model)")
    ap.add_argument("--backend", choices=BACKENDS, default="auto",
                    help="inference backend (auto: the fastest accurate one on this machine, measured once)")
    ap.add_argument("--quantize", action=argparse.BooleanOptionalAction, default=True,
                    help="int8 dynamic quantization (onnx backend)")
    ap.add_argument("--precision", choices=PRECISIONS, default=None,
                    help="openvino: fp32, bf16 (CPUs with native bf16, such as AMX) or int8; as pose-server run's")
    ap.add_argument("--detector", default="auto", help="auto | yolox | blazepose | hog | full-frame | path.onnx")
    ap.add_argument("--max-people", type=number_in(1, 16, integer=True), default=2,
                    help="people tracked; Blender makes a capture rig for each (a rig whose person is lost for 1 s "
                         "passes to a person tracked under a new id)")
    ap.add_argument("--kpt-threshold", type=float, default=0.3,
                    help="keypoint score below which a keypoint counts as missing")
    ap.add_argument("--max-frames", type=int, default=None, help="stop the video after N frames")
    ap.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=True,
                    help="pace the video at its own frame rate, as a live performance would arrive")
    ap.add_argument("--drop-stale", action="store_true",
                    help="treat the video like a camera: skip frames the server is too slow for (the take then "
                         "has gaps the recorder interpolates; latency stays low)")
    ap.add_argument("--no-preview", action="store_true", help="do not write overlay.mp4")
    ap.add_argument("--no-depth-prior", action="store_true",
                    help="lift with the geometric priors only, without the learned depth prior")
    add_swap_guard_arg(ap)
    add_unmeasurable_args(ap)
    ap.add_argument("--out", default=str(ROOT / "out"), help="output folder")
    ap.add_argument("--no-render", action="store_true",
                    help="skip the rendered preview image, compare.mp4 and the contact sheet")
    ap.add_argument("--update-docs", action="store_true",
                    help="also copy the contact sheet to docs/images/demo_sheet.png (the README's picture)")
    return ap


def run_demo(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    source = str(args.webcam) if args.webcam is not None else args.source
    if args.webcam is None and not Path(source).is_file():  # said before the model loads and anything is replaced
        raise DemoError(f"source not found: {source}; give a video file with --source, or --webcam N")
    out.mkdir(parents=True, exist_ok=True)
    cfg = PipelineConfig(
        source=source, checkpoint=args.checkpoint, backend=args.backend, quantize=args.quantize,
        precision=args.precision, detector=args.detector, max_people=args.max_people, kpt_threshold=args.kpt_threshold,
        realtime=args.realtime and args.webcam is None, drop_stale=True if args.drop_stale else None,
        max_frames=args.max_frames, record=str(out / "take.jsonl"),
        # a clip's overlay is drawn after the run (write_overlay); a webcam's frames are gone by then
        preview=None if args.no_preview or args.webcam is None else str(out / "overlay.mp4"),
        progress=True, udp=[], depth_prior=not args.no_depth_prior, performer_height=args.performer_height,
        camera_hfov=args.hfov, camera_pitch=args.camera_pitch, swap_guard=not args.no_swap_guard,
    )
    if args.checkpoint is None:
        cfg.checkpoint = args.model
    # Load the model before starting Blender: a missing model is the most likely failure here.
    estimator = load_estimator(cfg)
    port = free_udp_port()
    cfg.udp = [f"127.0.0.1:{port}"]
    pictures = not args.no_render and not args.no_preview
    worker = BlenderWorker(port, out, render=not args.no_render, frames_dir=out / "rig_frames" if pictures else None,
                           performers=args.max_people)
    pipeline = Pipeline(cfg, estimator=estimator)
    # A new run replaces the previous demo's files; its take (the recorder never overwrites one) is set aside and
    # put back if this run fails, so a failed run loses nothing.
    take, previous = out / "take.jsonl", out / "take.previous.jsonl"
    if take.exists():
        take.replace(previous)
    try:
        worker.wait_ready()
        log.info("headless Blender is listening on 127.0.0.1:%d; streaming %s", port, source)
        pipeline.start()
        if args.webcam is not None:
            pipeline.wait(args.seconds)
            pipeline.stop()
        else:
            pipeline.wait()
        status = pipeline.status()
        pipeline.stop()
        time.sleep(0.3)  # the last datagrams are in flight on loopback
        blender = worker.finish()
    except BaseException:
        pipeline.stop()
        worker.kill()
        if previous.exists():
            previous.replace(take)
        raise
    previous.unlink(missing_ok=True)
    if status.get("error"):
        raise DemoError(f"the pose server stopped with an error: {status['error']}")
    overlay = not args.no_preview
    if overlay and args.webcam is None:
        log.info("drawing overlay.mp4 from the recorded session (%d frames)", status["frames"])
        try:
            write_overlay(Path(source), out / "take.jsonl", out / "overlay.mp4", cfg.kpt_threshold)
        except ValueError as exc:  # the take and the Blender files are made: say so, keep them
            log.warning("overlay.mp4 not drawn (%s); the take, .blend, .fbx and .bvh are", exc)
            overlay = pictures = False
    sent = sum(t["sent"] for t in status["udp"])
    summary = {
        "source": source,
        "model": cfg.model,
        "backend": status.get("inference") or cfg.backend,
        "frames": status["frames"],
        "fps": status["fps"],
        "server_latency_ms": status["latency_ms"],
        # capture -> applied: from the packet's timestamp, which for a paced file is the frame's time in the clip
        # (stages.py), so it also counts the frames waiting because the server runs slower than the clip
        "applied_latency_ms": {"p50": blender.get("applied_latency_ms_p50"),
                               "p95": blender.get("applied_latency_ms_p95"),
                               "last": blender.get("applied_latency_ms_last")},
        "blender_latency_ms": {"p50": blender.get("sent_to_applied_ms_p50"),  # Blender's own share
                               "p95": blender.get("sent_to_applied_ms_p95")},
        "paced_file": args.webcam is None and args.realtime,
        "packets_sent": sent,
        "packets_received": blender.get("received"),
        "packets_lost": None if blender.get("received") is None else sent - blender["received"],
        "packets_applied": blender.get("applied"),
        "dropped_by_receiver": blender.get("dropped_by_receiver"),
        "invalid": blender.get("invalid"),
        "performers": [{k: p[k] for k in ("name", "track_ids", "action", "frames", "packets", "frame_start",
                                          "frame_end", "bvh")} for p in blender.get("performers", [])],
        "blender": blender,
        "files": {**blender.get("files", {}), "session": str(out / "take.jsonl"),
                  **({"overlay": str(out / "overlay.mp4")} if overlay else {})},
    }
    if blender.get("error"):
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        raise DemoError(f"Blender recorded nothing: {blender['error']}")
    if pictures and blender.get("files", {}).get("rig_frames"):
        summary["files"].update(write_pictures(args, out, blender, cfg.model))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def write_pictures(args: argparse.Namespace, out: Path, blender: dict, model: str) -> dict[str, str]:
    """out/compare.mp4 and out/demo_sheet.png (copied to docs/images/ with --update-docs)."""
    mapping = rig_frames(out / "take.jsonl", blender["take_t0"], blender["fps"], blender["frame_start"],
                         blender["frame_end"])
    rig_dir = Path(blender["files"]["rig_frames"])
    log.info("writing compare.mp4 and demo_sheet.png (%d frames)", len(mapping))
    write_compare(out / "overlay.mp4", rig_dir, mapping, out / "compare.mp4", blender["fps"], model)
    files = {"compare": str(out / "compare.mp4")}
    if args.webcam is None and write_sheet(Path(args.source), out / "overlay.mp4", rig_dir, mapping,
                                           out / "demo_sheet.png", model):
        files["sheet"] = str(out / "demo_sheet.png")
        if args.update_docs:
            shutil.copy(out / "demo_sheet.png", ROOT / "docs" / "images" / "demo_sheet.png")
    return files


def latency_line(summary: dict) -> str:
    """The latencies in words. A paced file keeps every frame for the take, so where the server runs slower than
    the clip the frames queue: capture -> applied would count that wait, which is the clip's backlog, not the
    product's latency; it is told apart as how far the rigs trail the clip at its end."""
    lat, app, bl = summary["server_latency_ms"], summary["applied_latency_ms"], summary["blender_latency_ms"]
    line = (f"capture->send p50/p95 {lat['p50']}/{lat['p95']} ms; sent->applied in Blender p50/p95 "
            f"{bl['p50']}/{bl['p95']} ms")
    if not summary["paced_file"]:
        return line + f"; capture->applied p50/p95 {app['p50']}/{app['p95']} ms"
    if app.get("last") is None:
        return line
    return (line + f"; every frame kept for the take, so the rigs trail the clip by {app['last'] / 1000:.1f} s at "
            "its end (--drop-stale skips frames to keep up)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("pose_server").setLevel(logging.INFO)
    from .cli import USER_ERRORS

    try:
        summary = run_demo(args)
    except (DemoError, *USER_ERRORS) as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(report(summary, Path(args.out)))
    return 0


def report(summary: dict, out: Path) -> str:
    """What the demo made, for the terminal: the run, each performer's take, every file written."""
    lines = [f"\nDemo finished: {summary['frames']} frames at {summary['fps']} fps; {latency_line(summary)}; "
             f"packets sent {summary['packets_sent']}, received {summary['packets_received']}, "
             f"lost {summary['packets_lost']}"]
    for p in summary["performers"]:
        lines.append(f"  {p['name']} (track ids {', '.join(map(str, p['track_ids']))}): {p['action']}, "
                     f"{p['frames']} frames from {p['packets']} packets")
    for name, path in summary["files"].items():
        # files["bvh"] is the first performer's (older readers); a BVH holds one skeleton, so each has its own
        paths = [p["bvh"] for p in summary["performers"] if p.get("bvh")] if name == "bvh" else []
        lines += [f"  {name:8s} {one}" for one in paths or [path]]
    lines.append(f"  summary  {out / 'summary.json'}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
