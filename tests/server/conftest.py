"""Fixtures of the server tests: a real video clip, a tiny random-weight ViTPose, loopback UDP receivers."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "protocol" / "pose_packet.schema.json").read_text())


def write_clip(path: Path, frames: int = 24, size: tuple[int, int] = (320, 240), fps: float = 30.0) -> Path:
    """A real mp4 (mp4v) of a stick figure and a square moving across a textured background."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    rng = np.random.default_rng(0)
    background = rng.integers(40, 90, (h, w, 3), dtype=np.uint8)
    for i in range(frames):
        img = background.copy()
        x = 40 + i * 6
        cv2.circle(img, (x, 60), 12, (220, 200, 180), -1)  # head
        cv2.line(img, (x, 72), (x, 140), (200, 200, 200), 6)  # body
        cv2.line(img, (x, 140), (x - 20, 200), (200, 200, 200), 6)
        cv2.line(img, (x, 140), (x + 20, 200), (200, 200, 200), 6)
        cv2.line(img, (x - 30, 95), (x + 30, 95), (200, 200, 200), 6)
        cv2.rectangle(img, (w - 60 - i * 3, 170), (w - 30 - i * 3, 200), (30, 30, 220), -1)
        writer.write(img)
    writer.release()
    return path


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "moving.mp4")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pose_server.vitpose.tiny import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pth", fmt="mmpose")


class Receiver:
    """A real UDP socket on loopback that collects datagrams."""

    def __init__(self, family: int = socket.AF_INET, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        self.target = f"[{host}]:{self.port}" if family == socket.AF_INET6 else f"{host}:{self.port}"

    def collect(self, idle: float = 1.0, limit: int = 100000) -> list[bytes]:
        """Datagrams until none arrives for `idle` seconds."""
        out = []
        self.sock.settimeout(idle)
        while len(out) < limit:
            try:
                out.append(self.sock.recv(65535))
            except TimeoutError:
                break
        return out

    def drain(self) -> int:
        """Discard what is queued now (without waiting for a pause: a looping stream never pauses)."""
        n = 0
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recv(65535)
                n += 1
        except BlockingIOError:
            return n
        finally:
            self.sock.setblocking(True)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def receiver() -> Receiver:
    r = Receiver()
    yield r
    r.close()


def streamed_packets(pipe, receiver: Receiver, timeout: float = 60) -> list[dict]:
    """Run a pipeline to the end of its source; the packets the receiver got, each checked against the schema."""
    import jsonschema

    pipe.start()
    assert pipe.wait(timeout=timeout)
    packets = [json.loads(d) for d in receiver.collect(idle=0.5)]
    for p in packets:
        jsonschema.validate(p, SCHEMA)
    return packets
