"""BVH reader: parsing, Euler channel order, forward kinematics, COCO-17 derivation, clear errors."""

import numpy as np
import pytest

from pose_server.bvh import coco17_from_cmu, read_bvh, to_z_up
from pose_server.lift.skeleton3d import J

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


def cmu_like() -> str:
    """A T-posed CMU-style skeleton (Y up, facing +Z, left = +X), one frame."""
    joints = [
        ("LeftHip", "Hips", (0.1, -0.1, 0)), ("LeftKnee", "LeftHip", (0, -0.4, 0)),
        ("LeftAnkle", "LeftKnee", (0, -0.4, 0)), ("RightHip", "Hips", (-0.1, -0.1, 0)),
        ("RightKnee", "RightHip", (0, -0.4, 0)), ("RightAnkle", "RightKnee", (0, -0.4, 0)),
        ("Chest", "Hips", (0, 0.5, 0)), ("Head", "Chest", (0, 0.2, 0)),
        ("LeftShoulder", "Chest", (0.2, 0, 0)), ("LeftElbow", "LeftShoulder", (0.3, 0, 0)),
        ("LeftWrist", "LeftElbow", (0.25, 0, 0)), ("RightShoulder", "Chest", (-0.2, 0, 0)),
        ("RightElbow", "RightShoulder", (-0.3, 0, 0)), ("RightWrist", "RightElbow", (-0.25, 0, 0)),
    ]  # fmt: skip
    children: dict[str, list] = {}
    for name, parent, off in joints:
        children.setdefault(parent, []).append((name, off))

    def block(name: str, off: tuple, depth: int, root: bool = False) -> str:
        pad = "  " * depth
        chans = "3 Zrotation Yrotation Xrotation"
        if root:
            chans = "6 Xposition Yposition Zposition Zrotation Yrotation Xrotation"
        s = f"{pad}{'ROOT' if root else 'JOINT'} {name}\n{pad}{{\n{pad}  OFFSET {off[0]} {off[1]} {off[2]}\n"
        s += f"{pad}  CHANNELS {chans}\n"
        for child, coff in children.get(name, []):
            s += block(child, coff, depth + 1)
        if name not in children:
            s += f"{pad}  End Site\n{pad}  {{\n{pad}    OFFSET 0 0.1 0\n{pad}  }}\n"
        return s + f"{pad}}}\n"

    channels = 6 + 3 * len(joints)
    motion = " ".join(["0", "1", "0"] + ["0"] * (channels - 3))
    return "HIERARCHY\n" + block("Hips", (0, 0, 0), 0, root=True) + f"MOTION\nFrames: 1\nFrame Time: 0.01\n{motion}\n"


def test_coco17_from_a_cmu_skeleton(tmp_path):
    path = tmp_path / "cmu.bvh"
    path.write_text(cmu_like())
    coco = coco17_from_cmu(read_bvh(path))[0]
    # Z up, facing -Y: the left wrist is at +X, the head above the hips, the nose in front (-Y) of the ears
    np.testing.assert_allclose(coco[J["l_wrist"]], [0.75, 0, 1.5], atol=1e-9)
    np.testing.assert_allclose(coco[J["r_ankle"]], [-0.1, 0, 0.1], atol=1e-9)
    assert coco[J["nose"], 1] < coco[J["l_ear"], 1] - 0.05
    assert coco[J["l_ear"], 0] > 0 > coco[J["r_ear"], 0]
    np.testing.assert_allclose(to_z_up(np.array([1.0, 2.0, 3.0])), [1.0, -3.0, 2.0])
