"""Valid pose packets for tests: one COCO-17 performer whose pose changes with time."""

from __future__ import annotations

import json
import math

# COCO-17 joints of a standing T-pose in metres: Z up, facing -Y, performer's left at +X.
REST_JOINTS = [
    (0.0, -0.10, 1.65),  # nose
    (0.03, -0.08, 1.68), (-0.03, -0.08, 1.68),  # eyes
    (0.08, 0.0, 1.66), (-0.08, 0.0, 1.66),  # ears
    (0.20, 0.0, 1.45), (-0.20, 0.0, 1.45),  # shoulders
    (0.45, 0.0, 1.45), (-0.45, 0.0, 1.45),  # elbows
    (0.70, 0.0, 1.45), (-0.70, 0.0, 1.45),  # wrists
    (0.10, 0.0, 0.95), (-0.10, 0.0, 0.95),  # hips
    (0.10, 0.0, 0.50), (-0.10, 0.0, 0.50),  # knees
    (0.10, 0.0, 0.08), (-0.10, 0.0, 0.08),  # ankles
]
IMAGE_SIZE = (640, 480)


def pose_at(phase: float) -> list[list[float]]:
    """The rest pose walked along +X by `phase` metres with the left forearm and right knee bending."""
    joints = [list(j) for j in REST_JOINTS]
    for j in joints:
        j[0] += phase
    bend = 0.3 * math.sin(phase * 4.0)
    joints[9] = [joints[7][0] + 0.25 * math.cos(bend), 0.0, 1.45 + 0.25 * math.sin(bend)]  # left wrist
    joints[14][1] -= 0.2 * abs(math.sin(phase * 4.0))  # right knee forward
    return [[round(c, 4) for c in j] for j in joints]


def make_packet(seq: int, timestamp: float, phase: float | None = None, people: int = 1, version: int = 1) -> dict:
    """A schema-valid packet; person i stands i metres to the left of person 0 and is smaller."""
    phase = seq * 0.01 if phase is None else phase
    persons = []
    for i in range(people):
        joints = [[x + i, y, z * (1.0 - 0.2 * i)] for x, y, z in pose_at(phase)]
        kps = [[round(320 + x * 150, 2), round(460 - z * 150, 2)] for x, _y, z in joints]
        xs, ys = [k[0] for k in kps], [k[1] for k in kps]
        persons.append({
            "id": i, "bbox": [min(xs) - 5, min(ys) - 5, max(xs) + 5, max(ys) + 5], "keypoints": kps,
            "scores": [0.9] * 17, "joints_3d": joints,
        })
    return {
        "v": version, "seq": seq, "timestamp": timestamp, "sent": timestamp + 0.001, "frame": seq,
        "source": "test", "skeleton": "coco17", "image_size": list(IMAGE_SIZE), "people": persons,
        "meta": {"fps": 30.0, "model": "test", "latency_ms": {"total": 5.0}},
    }


def encode(packet: dict) -> bytes:
    return json.dumps(packet, separators=(",", ":")).encode()
