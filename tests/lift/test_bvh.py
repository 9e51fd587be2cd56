"""BVH reader: parsing, Euler channel order, forward kinematics, COCO-17 derivation, clear errors."""

import numpy as np
import pytest

from pose_server.bvh import read_bvh, to_z_up

CHAIN = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Arm
  {
    OFFSET 1 0 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 2 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.0333333
0 1 0 0 0 0 0 0 0
5 0 0 90 0 0 0 90 0
"""


def test_chain_forward_kinematics(tmp_path):
    path = tmp_path / "chain.bvh"
    path.write_text(CHAIN)
    bvh = read_bvh(path)
    assert [j.name for j in bvh.joints] == ["Hips", "Arm", "Arm_end"]
    assert bvh.frame_time == pytest.approx(1 / 30, rel=1e-4)
    pos, rot = bvh.forward_kinematics()
    np.testing.assert_allclose(pos[0], [[0, 1, 0], [1, 1, 0], [1, 3, 0]], atol=1e-9)
    # frame 1: root moved to x=5 and turned 90 deg about Z; the arm turns another 90 deg about its X
    np.testing.assert_allclose(pos[1, 1], [5, 1, 0], atol=1e-9)
    # end = arm + Rz(90) Rx(90) (0, 2, 0) = arm + Rz(90) (0, 0, 2) = arm + (0, 0, 2)
    np.testing.assert_allclose(pos[1, 2], [5, 1, 2], atol=1e-9)
    np.testing.assert_allclose(rot[1, 0] @ [1, 0, 0], [0, 1, 0], atol=1e-9)


def test_euler_order_follows_the_channel_list(tmp_path):
    text = CHAIN.replace("Zrotation Xrotation Yrotation\n    End", "Xrotation Zrotation Yrotation\n    End")
    path = tmp_path / "order.bvh"
    path.write_text(text)
    pos, _ = read_bvh(path).forward_kinematics()
    # now Rx(90) Rz(90) on the child: (0, 2, 0) -> Rz: (-2, 0, 0) -> Rx: (-2, 0, 0); then the root's Rz(90): (0, -2, 0)
    np.testing.assert_allclose(pos[1, 2] - pos[1, 1], [0, -2, 0], atol=1e-9)


def test_errors_say_what_is_wrong(tmp_path):
    path = tmp_path / "bad.bvh"
    path.write_text(CHAIN.replace("0 1 0 0 0 0 0 0 0\n", ""))
    with pytest.raises(ValueError, match="2 frames x 9 channels"):
        read_bvh(path)
    path.write_text("HIERARCHY\nROOT Hips\n{\n OFFSET 0 0")
    with pytest.raises(ValueError, match="truncated"):
        read_bvh(path)
    path.write_text(CHAIN)
    with pytest.raises(KeyError, match="Head"):
        read_bvh(path).index("Head")


def test_to_z_up_turns_y_up_files_into_the_projects_frame():
    # (x, y, z) Y-up, facing +Z -> (x, -z, y): Z up, facing -Y (the mocap readers' COCO points: test_mocap.py)
    np.testing.assert_allclose(to_z_up(np.array([1.0, 2.0, 3.0])), [1.0, -3.0, 2.0])
    np.testing.assert_allclose(to_z_up(np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])), [[0, 0, 1], [0, -1, 0]])
