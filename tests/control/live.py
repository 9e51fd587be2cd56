"""A real pose server for the control, panel and browser tests: the real Pipeline running a tiny
random-weight ViTPose (the real mmpose checkpoint format) on a small generated clip, with the real
control API in front of it."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from pose_server.config import PipelineConfig
from pose_server.control.server import ServerHandle, serve_in_thread
from pose_server.lift.skeleton3d import REST_JOINTS
from pose_server.pipeline import Pipeline
from pose_server.record import Recorder
from pose_server.vitpose.tiny import make_tiny_checkpoint


def make_clip(path: Path, frames: int = 30, size: tuple[int, int] = (192, 144), fps: float = 15.0) -> Path:
    """A short clip of a stick figure walking across a grey background."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(frames):
        img = np.full((h, w, 3), 90, np.uint8)
        x = int(w * 0.3 + i * w * 0.4 / frames)
        cv2.circle(img, (x, h // 5), h // 12, (220, 200, 180), -1)
        cv2.line(img, (x, h // 5), (x, h // 2 + h // 10), (220, 200, 180), 6)
        cv2.line(img, (x, h // 2 + h // 10), (x - 15, h - 10), (220, 200, 180), 5)
        cv2.line(img, (x, h // 2 + h // 10), (x + 15, h - 10), (220, 200, 180), 5)
        cv2.line(img, (x - 25, h // 3), (x + 25, h // 3), (220, 200, 180), 5)
        writer.write(img)
    writer.release()
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_session(path: Path, frames: int = 60) -> Path:
    """A recorded session (JSON lines) of one person standing in the rest pose, swaying."""
    t0 = 1_700_000_000.0
    with Recorder(path) as rec:
        for i in range(frames):
            joints = REST_JOINTS + [0.1 * np.sin(i / 5), 0.0, 0.0]
            rec.write({"v": 1, "seq": i, "timestamp": t0 + i / 30, "sent": t0 + i / 30, "frame": i,
                       "source": "session", "skeleton": "coco17", "image_size": [640, 480],
                       "people": [{"id": 3, "bbox": [100, 50, 300, 450], "keypoints": [[200.0, 250.0]] * 17,
                                   "scores": [0.9] * 17, "joints_3d": joints.round(4).tolist()}]})
    return path


def udp_socket() -> tuple[socket.socket, str]:
    """A bound UDP receiver on loopback and its "host:port"."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)
    return sock, f"127.0.0.1:{sock.getsockname()[1]}"


def make_pipeline(folder: Path, udp: list[str], source: str | None = None, config: dict | None = None) -> Pipeline:
    """The tiny random-weight ViTPose on `source` (default: a generated clip); `config` overrides fields, e.g.
    the embedded real model for pictures: {"checkpoint": "blazepose", "detector": "blazepose"}."""
    ckpt_dir = folder / "checkpoints"
    ckpt_dir.mkdir(exist_ok=True)
    ckpt = ckpt_dir / "vitpose_tiny.pth"
    make_tiny_checkpoint(ckpt, fmt="mmpose")
    clip = source or str(make_clip(folder / "clip.mp4"))
    cfg = PipelineConfig(source=clip, checkpoint=str(ckpt), backend="torch", detector="full-frame", loop=True,
                         realtime=True, kpt_threshold=0.0, udp=udp, log_every=3600.0)
    for name, value in (config or {}).items():
        setattr(cfg, name, value)
    return Pipeline(cfg)


@contextlib.contextmanager
def live_server(folder: Path, host: str = "127.0.0.1", token: str | None = None,
                source: str | None = None, config: dict | None = None,
                ) -> Iterator[tuple[Pipeline, ServerHandle, socket.socket]]:
    """A running pipeline behind a control API on a free port; everything is stopped afterwards."""
    sock, target = udp_socket()
    pipeline = make_pipeline(folder, [target], source, config)
    pipeline.start()
    handle = serve_in_thread(pipeline, host, 0, token, checkpoints_dir=folder / "checkpoints")
    try:
        yield pipeline, handle, sock
    finally:
        handle.stop()
        pipeline.stop()
        sock.close()
