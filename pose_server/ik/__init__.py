"""Joints -> per-bone local rotations of the canonical skeleton (protocol v2 ``rotations``)."""

from pose_server.ik.solve import JOINT_LIMITS_DEG, forward_rotations, solve_rotations

__all__ = ["solve_rotations", "forward_rotations", "JOINT_LIMITS_DEG"]
