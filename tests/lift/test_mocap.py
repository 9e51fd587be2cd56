"""Mocap readers (pose_server/mocap): every flavour of generated clip -> the same COCO-17 joints in metres, Z up."""

import lzma

import numpy as np
import pytest

from pose_server.lift.skeleton3d import J
from pose_server.mocap import clip_subject, find_clips, load_clip
from pose_server.mocap.asf import read_amc, read_asf

# A small Y-up skeleton facing +Z (left = +X), metres; names per flavour: (cmu, cmu131, asf, daz, bandai) and
# parent index. Toes: the ball joint and its end (DAZ has only the foot's end).
_TREE = [  # name per flavour, parent, offset (m)
    (("Hips", "Hips", "hip", "hip", "Hips"), -1, (0, 0, 0)),
    (("LeftUpLeg", "LeftHip", "lfemur", "lThigh", "UpperLeg_L"), 0, (0.09, -0.05, 0)),
    (("LeftLeg", "LeftKnee", "ltibia", "lShin", "LowerLeg_L"), 1, (0, -0.42, 0)),
    (("LeftFoot", "LeftAnkle", "lfoot", "lFoot", "Foot_L"), 2, (0, -0.41, 0)),
    (("LeftToeBase", "LeftToe", "ltoes", None, "Toes_L"), 3, (0, -0.06, 0.12)),
    (("RightUpLeg", "RightHip", "rfemur", "rThigh", "UpperLeg_R"), 0, (-0.09, -0.05, 0)),
    (("RightLeg", "RightKnee", "rtibia", "rShin", "LowerLeg_R"), 5, (0, -0.42, 0)),
    (("RightFoot", "RightAnkle", "rfoot", "rFoot", "Foot_R"), 6, (0, -0.41, 0)),
    (("RightToeBase", "RightToe", "rtoes", None, "Toes_R"), 7, (0, -0.06, 0.12)),
    (("Spine", "Chest", "thorax", "chest", "Spine"), 0, (0, 0.3, 0)),
    (("Neck1", "Neck", "upperneck", "neck", "Neck"), 9, (0, 0.2, 0)),
    (("Head", "Head", "head", "head", "Head"), 10, (0, 0.1, 0)),
    (("LeftArm", "LeftShoulder", "lhumerus", "lShldr", "UpperArm_L"), 9, (0.18, 0.17, 0)),
    (("LeftForeArm", "LeftElbow", "lradius", "lForeArm", "LowerArm_L"), 12, (0.28, 0, 0)),
    (("LeftHand", "LeftWrist", "lwrist", "lHand", "Hand_L"), 13, (0.25, 0, 0)),
    (("RightArm", "RightShoulder", "rhumerus", "rShldr", "UpperArm_R"), 9, (-0.18, 0.17, 0)),
    (("RightForeArm", "RightElbow", "rradius", "rForeArm", "LowerArm_R"), 15, (-0.28, 0, 0)),
    (("RightHand", "RightWrist", "rwrist", "rHand", "Hand_R"), 16, (-0.25, 0, 0)),
]
FLAVOURS = {"cmu": 0, "cmu131": 1, "asf": 2, "daz": 3, "bandai": 4}
UNITS = {"cmu": 0.0254 / 0.45, "cmu131": 1.0, "asf": 0.0254 / 0.45, "daz": 0.01, "bandai": 0.01}
FPS = 120


def _motion(frames: int) -> np.ndarray:
    """(F, 3 + 18*3): root translation (m) and ZYX Euler angles (deg) per joint: walking-like leg swings, a turn."""
    t = np.arange(frames) / FPS
    m = np.zeros((frames, 3 + 3 * len(_TREE)))
    m[:, 0:3] = np.stack([0.3 * t, 0.92 + 0.02 * np.sin(4 * t), 0.8 * t], 1)
    m[:, 3] = 5 + 10 * np.sin(t)  # root Z rotation (never exactly 0: that would read as a T-pose frame)
    m[:, 4] = 30 * t  # root Y: turning
    for k, sign in ((1, 1), (5, -1)):  # thighs swing about X, knees bend
        m[:, 3 + 3 * k + 2] = sign * 30 * np.sin(2 * np.pi * t)
        m[:, 3 + 3 * (k + 1) + 2] = 20 + 20 * np.sin(2 * np.pi * t)
    m[:, 3 + 3 * 11 + 1] = 25 * np.sin(3 * t)  # head turns
    m[:, 3 + 3 * 12 + 0] = -60  # arms down
    m[:, 3 + 3 * 15 + 0] = 60
    return m


def _bvh(flavour: str, frames: int = 60, header_fps: float = FPS, tpose: bool = False) -> str:
    """The generated clip as BVH text of ``flavour`` (units, names; Bandai: 6 channels on every joint)."""
    f, unit = FLAVOURS[flavour], UNITS[flavour]
    six = flavour == "bandai"
    children = {i: [c for c, n in enumerate(_TREE) if n[1] == i] for i in range(len(_TREE))}
    lines, cols = ["HIERARCHY"], []

    def emit(i: int, depth: int) -> None:
        names, parent, off = _TREE[i]
        pad = "  " * depth
        lines.append(f"{pad}{'ROOT' if parent < 0 else 'JOINT'} {names[f]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {' '.join(str(v / unit) for v in off)}")
        pos = parent < 0 or six
        lines.append(f"{pad}  CHANNELS {6 if pos else 3} {'Xposition Yposition Zposition ' if pos else ''}"
                     "Zrotation Yrotation Xrotation")
        cols.append((i, pos))
        kids = [c for c in children[i] if _TREE[c][0][f] is not None]
        for c in kids:
            emit(c, depth + 1)
        if not kids:
            end = (0, -0.01, 0.06) if names[f] and "oe" in names[f] or flavour == "daz" and "Foot" in names[f] else (
                (0, 0.15, 0) if i == 11 else (0, 0, 0))
            lines.extend([f"{pad}  End Site", f"{pad}  {{",
                          f"{pad}    OFFSET {' '.join(str(v / unit) for v in end)}", f"{pad}  }}"])
        lines.append(f"{pad}}}")

    emit(0, 0)
    m = _motion(frames)
    if tpose:
        m = np.concatenate([np.zeros((1, m.shape[1])), m])
        m[0, 0:3] = m[1, 0:3]
    lines += ["MOTION", f"Frames: {len(m)}", f"Frame Time: {1 / header_fps:.7f}"]
    for row in m:
        vals = []
        for i, pos in cols:
            if pos:
                vals += list(row[0:3] / unit) if i == 0 else [v / unit for v in _TREE[i][2]]
            vals += list(row[3 + 3 * i: 6 + 3 * i])
        lines.append(" ".join(f"{v:.6f}" for v in vals))
    return "\n".join(lines) + "\n"


@pytest.fixture
def reference(tmp_path):
    path = tmp_path / "ref.bvh"
    path.write_text(_bvh("cmu131"))
    return load_clip(path)


@pytest.mark.parametrize("flavour", ["cmu", "daz", "bandai", "asf"])
def test_every_bvh_flavour_gives_the_same_joints_in_metres(tmp_path, reference, flavour):
    path = tmp_path / f"{flavour}.bvh"
    path.write_text(_bvh(flavour))
    clip = load_clip(path)
    assert clip.joints.shape == reference.joints.shape == (60, 17, 3)
    # the floor (Z = 0) comes from the feet, whose points differ where a skeleton has no toe joint (DAZ): compare
    # heights relative to the pelvis
    rel = lambda j: j - np.array([0, 0, 1]) * j[:, [J["l_hip"], J["r_hip"]], 2:].mean(1, keepdims=True)  # noqa: E731
    body = [J[n] for n in ("l_hip", "r_hip", "l_knee", "r_ankle", "l_shoulder", "r_elbow", "l_wrist")]
    np.testing.assert_allclose(rel(clip.joints)[:, body], rel(reference.joints)[:, body], atol=1e-4)
    # face points follow the head: same in every flavour, although their head axes are not the same
    np.testing.assert_allclose(rel(clip.joints)[:, :5], rel(reference.joints)[:, :5], atol=2e-3)


def test_z_up_metres_face_in_front_and_hips_from_the_thighs(reference):
    j = reference.joints
    assert 0.85 < np.median(j[:, J["l_hip"], 2]) < 1.0  # 0.87 m above the ankles, which are above the toes
    legs = np.linalg.norm(j[:, J["l_knee"]] - j[:, J["l_hip"]], axis=-1)
    np.testing.assert_allclose(legs, 0.42, atol=1e-6)  # the cmu131 file is in metres: hip = the thigh joint
    np.testing.assert_allclose(np.linalg.norm(j[:, J["l_hip"]] - j[:, J["r_hip"]], axis=-1), 0.18, atol=1e-6)
    assert (j[:, J["nose"], 2] > j[:, J["l_shoulder"], 2]).all()
    # the nose is in front of the ears: towards where the body faces (left x up)
    left = j[:, J["l_hip"]] - j[:, J["r_hip"]]
    fwd = np.cross(left, [0.0, 0.0, 1.0])
    face = j[:, J["nose"]] - 0.5 * (j[:, J["l_ear"]] + j[:, J["r_ear"]])
    assert ((face * fwd).sum(-1) > 0).all()
    # at frame 0 (no turn yet) the performer faces -Y (CMU faces +Z, Y up)
    assert fwd[0, 1] < -0.1


def test_feet_points_and_contacts(reference):
    feet = reference.feet
    assert feet.shape == (60, 6, 3)
    ankle = reference.joints[:, [J["l_ankle"]] * 3 + [J["r_ankle"]] * 3]
    assert (np.median(feet[..., 2] - ankle[..., 2], axis=0) < 0).all()  # toes and heels below the ankles
    assert feet[..., 2].min() > -0.05  # the floor is at Z = 0
    assert reference.contacts.shape == (60, 2) and reference.contacts.dtype == bool


def test_tpose_frame_is_dropped_and_xz_and_manifest_rate_are_read(tmp_path, reference):
    tmp_path = tmp_path / "clips"
    tmp_path.mkdir()
    text = _bvh("cmu", header_fps=30, tpose=True)
    with lzma.open(tmp_path / "01_02.bvh.xz", "wt") as f:
        f.write(text)
    (tmp_path / "MANIFEST.csv").write_text("path,source,clip_id,description,true_fps\n"
                                           "01_02.bvh.xz,cmu/test,01_02,run/jog,120\n")
    clip = load_clip(tmp_path / "01_02.bvh.xz")
    assert clip.fps == 120 and clip.category == "run" and clip.subject == "cmu01"
    np.testing.assert_allclose(clip.joints[:, 11:], reference.joints[:, 11:], atol=1e-4)  # T-pose frame gone
    assert load_clip(tmp_path / "01_02.bvh.xz", fps=60).fps == 60  # the flag wins
    assert find_clips([tmp_path / "MANIFEST.csv"]) == [(tmp_path / "01_02.bvh.xz").resolve()]
    assert find_clips([tmp_path]) == [tmp_path / "01_02.bvh.xz"]
    # without reading the motion (benchmarks pick a subject's clips first): from the manifest row, else the file name
    assert clip_subject(tmp_path / "01_02.bvh.xz") == "cmu01"
    assert clip_subject(tmp_path / "HDM_bd_01-02_03_120.amc") == "hdm_bd"


ASF = """:version 1.10
:units
  mass 1.0
  length 0.45
  angle deg
:root
   order TX TY TZ RX RY RZ
   axis XYZ
   position 0 0 0
   orientation 0 0 0
:bonedata
{bones}:hierarchy
  begin
{hier}  end
"""


def test_asf_amc_forward_kinematics(tmp_path):
    """A hip joint (no dof) then a femur: with axis 0 its rx swings the knee forwards; with its axis turned 90 deg
    about Z, its local x is the world y, the femur's own direction, so the same rx leaves the knee where it was."""
    text = ASF.format(
        bones="  begin\n     id 1\n     name lhipjoint\n     direction 1 0 0\n     length 1.5\n     axis 0 0 0 XYZ\n"
              "  end\n  begin\n     id 2\n     name lfemur\n     direction 0 -1 0\n     length 7.5\n"
              "     axis 0 0 {az} XYZ\n    dof rx ry rz\n  end\n",
        hier="     root lhipjoint\n     lhipjoint lfemur\n")
    for az in ("0", "90"):
        (tmp_path / "s.asf").write_text(text.replace("{az}", az))
        (tmp_path / "s.amc").write_text(":FULLY-SPECIFIED\n:DEGREES\n1\nroot 0 17.5 0 0 0 0\nlfemur 0 0 0\n"
                                        "2\nroot 0 17.5 0 0 0 0\nlfemur -90 0 0\n")
        asf = read_asf(tmp_path / "s.asf")
        assert asf.metres_per_unit == pytest.approx(0.0254 / 0.45)
        pos, _ = asf.forward_kinematics(read_amc(tmp_path / "s.amc", asf))
        names = asf.joint_names()
        assert names == ["root", "lhipjoint", "lfemur", "lfemur_end"]
        np.testing.assert_allclose(pos[0, 3], (1.5, 10.0, 0.0), atol=1e-9)  # straight down from the hip
        # rx = -90 about the bone's local x: world x with axis 0 (knee forwards, +Z), world y with axis 90 (a turn
        # about the vertical femur itself: the knee stays)
        expected = (1.5, 17.5, 7.5) if az == "0" else (1.5, 10.0, 0.0)
        np.testing.assert_allclose(pos[1, 3], expected, atol=1e-9)
    (tmp_path / "bad.amc").write_text("1\nroot 0 0 0 0 0 0\nlfemur 0 0\n")
    with pytest.raises(ValueError, match="lfemur"):
        read_amc(tmp_path / "bad.amc", asf)
