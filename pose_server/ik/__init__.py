"""Joints -> per-bone local rotations of the canonical skeleton (protocol v2 ``rotations``), and back."""

from pose_server.ik.fk import fk_joints
from pose_server.ik.solve import JOINT_LIMITS_DEG, forward_rotations, quaternions, solve_rotations

__all__ = ["solve_rotations", "forward_rotations", "quaternions", "fk_joints", "JOINT_LIMITS_DEG"]
