"""Hands from whole-body keypoints: wrist orientation and finger rotations (protocol v4 ``hands``)."""

from pose_server.hands.tracker import REST_FRAMES, HandTracker, forearm_deltas, hand_quaternions, world_from_camera

__all__ = ["HandTracker", "REST_FRAMES", "forearm_deltas", "hand_quaternions", "world_from_camera"]
