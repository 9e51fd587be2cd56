"""Monocular 3D lifting of COCO-17 keypoints and the canonical 3D skeleton."""

from pose_server.lift.learned_lifter import LearnedLifter
from pose_server.lift.lifter import Lifter
from pose_server.lift.skeleton3d import CANONICAL_BONES, COCO17, REST_JOINTS

__all__ = ["Lifter", "LearnedLifter", "CANONICAL_BONES", "COCO17", "REST_JOINTS"]
