"""Learned depth prior: features, numpy inference against PyTorch, training on synthetic motion, the shipped
weights, the DeepMimic reader (on clips written by the tests), and its effect inside the lifter."""

import json

import numpy as np
import pytest
import torch

from pose_server.lift import Lifter
from pose_server.lift.camera import PinholeCamera
from pose_server.lift.deepmimic import OFFSETS, load_motion, mirror
from pose_server.lift.learned import DEFAULT_DEPTH_PRIOR, DepthPrior, window_features
from pose_server.lift.skeleton3d import LIMB_SEGMENTS, J
from pose_server.lift.synthetic import walk
from pose_server.lift.training import DepthNet, combine, export, sample_batch, train

IMAGE = (1280, 720)


def test_features_ignore_where_and_how_big_the_person_is():
    rng = np.random.default_rng(0)
    win = rng.uniform(0, 500, (5, 17, 2))
    f, s = window_features(win)
    f2, s2 = window_features(win * 2.5 + np.array([300.0, -40.0]))
    assert f.shape == (5 * 34,)
    np.testing.assert_allclose(f, f2, atol=1e-9)
    assert s2 == pytest.approx(2.5 * s)
    # the current (last) frame's pelvis is the origin; earlier frames keep their offsets
    pelvis = f.reshape(5, 17, 2)[-1, [J["l_hip"], J["r_hip"]]].mean(0)
    np.testing.assert_allclose(pelvis, 0.0, atol=1e-9)
    batch, scales = window_features(np.stack([win, win * 2]))
    assert batch.shape == (2, 170) and scales.shape == (2,)


def test_numpy_inference_matches_pytorch(tmp_path):
    torch.manual_seed(0)
    net = DepthNet(window=4, hidden=32).eval()
    with torch.no_grad():  # the file stores float16: compare with the same rounding
        for p in net.parameters():
            p.copy_(p.half().float())
    prior = DepthPrior.load(export(net, tmp_path / "p.npz", info="test"))
    x = np.random.default_rng(1).normal(size=(10, 4 * 34)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(prior(x), want, atol=1e-4)
    assert prior.window == 4 and prior.info == "test"


def test_bad_prior_files_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_lifter.py"):
        DepthPrior.load(tmp_path / "missing.npz")
    with pytest.raises(FileNotFoundError, match="depth_prior=None"):
        Lifter(IMAGE, depth_prior=tmp_path / "missing.npz")
    net = DepthNet(window=4, hidden=8)
    path = export(net, tmp_path / "p.npz")
    data = dict(np.load(path))
    data["m0/window"] = np.array(5)
    np.savez(tmp_path / "bad.npz", **data)
    with pytest.raises(ValueError, match="window"):
        DepthPrior.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "empty.npz", info=np.array("x"))
    with pytest.raises(ValueError, match="no networks"):
        DepthPrior.load(tmp_path / "empty.npz")


def test_an_ensemble_votes_with_its_mean_and_spread(tmp_path):
    torch.manual_seed(1)
    short, long = DepthNet(window=3, hidden=16).eval(), DepthNet(window=6, hidden=16).eval()
    both = DepthPrior.load(combine([export(short, tmp_path / "a.npz", "A"), export(long, tmp_path / "b.npz", "B")],
                                   tmp_path / "ab.npz"))
    assert [m.window for m in both.members] == [3, 6] and both.window == 6 and both.info == "A | B"
    x = np.random.default_rng(2).normal(size=(4, 6 * 34)).astype(np.float32)
    with torch.no_grad():  # the short network sees only the last 3 frames
        a, b = short(torch.from_numpy(x[:, -3 * 34:])).numpy(), long(torch.from_numpy(x)).numpy()
    mean, spread = both.predict(x)
    np.testing.assert_allclose(mean, (a + b) / 2, atol=2e-2)  # float16 weights
    np.testing.assert_allclose(spread, np.abs(a - b) / 2, atol=2e-2)
    assert DepthPrior.load(tmp_path / "a.npz").predict(x[:, -3 * 34:])[1] is None


def test_training_learns_depth_from_synthetic_walks():
    clips = [walk(seconds=3.0, heading_deg=h, speed=s)[0] for h, s in ((0, 1.0), (70, 1.3), (200, 0.8))]
    rng = np.random.default_rng(5)
    x, y = sample_batch(clips, 512, 5, rng)
    assert x.shape == (512, 170) and y.shape == (512, 17)
    assert np.isfinite(x).all() and np.isfinite(y).all()
    losses = []
    net = train(clips, window=5, hidden=64, steps=150, batch=64, progress=lambda step, loss: losses.append(loss))
    assert len(losses) == 150
    with torch.no_grad():
        err = (net(torch.from_numpy(x)) - torch.from_numpy(y)).abs().mean().item()
    baseline = np.abs(y - y.mean(0)).mean()  # predicting the mean depth of every joint
    assert err < 0.5 * baseline, f"L1 {err:.3f} vs {baseline:.3f} for the mean"


def test_shipped_prior_loads_and_knows_a_walk_it_never_saw():
    prior = DepthPrior.load(DEFAULT_DEPTH_PRIOR)
    assert prior.window >= 1 and "DeepMimic" in prior.info
    joints, _ = walk(seconds=4.0, heading_deg=30.0)
    target = np.array([*joints[:, :, :2].mean((0, 1)), 1.0])
    cam = PinholeCamera.orbit(IMAGE, target, 45.0, distance=5.0, height=1.2)
    px, pc = cam.project(joints), cam.to_camera(joints)
    idx = np.clip(np.arange(len(px))[:, None] + np.arange(-prior.window + 1, 1), 0, None)
    feats, _ = window_features(px[idx] - cam.center)
    z = prior(feats)
    right, wrong = 0, 0
    for a, b in LIMB_SEGMENTS:  # depth order of each limb bone where the bone clearly points in depth
        dz = pc[:, b, 2] - pc[:, a, 2]
        clear = np.abs(dz) > 0.3 * np.linalg.norm(pc[:, b] - pc[:, a], axis=-1)
        agree = np.sign(z[:, b] - z[:, a]) == np.sign(dz)
        right, wrong = right + int((agree & clear).sum()), wrong + int((~agree & clear).sum())
    assert right > 4 * wrong, f"{right} right, {wrong} wrong depth orders"


def _deepmimic_clip(path, knee_angles):
    frames = []
    for k in knee_angles:
        f = [1 / 30, 0.0, 0.9, 0.0, *[1.0, 0.0, 0.0, 0.0] * 3]  # dt, root, root/chest/neck identity
        for _ in range(2):  # right, then left side
            f += [1.0, 0.0, 0.0, 0.0, k, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
        frames.append(f)
    path.write_text(json.dumps({"Loop": "none", "Frames": frames}))
    return path


def test_deepmimic_reader_builds_the_skeleton_in_the_project_frame(tmp_path):
    clip = load_motion(_deepmimic_clip(tmp_path / "c.txt", [0.0, 0.0, -0.6]), fps=30.0)
    assert clip.shape == (2, 17, 3)  # 2 frames of 1/30 s: times 0 and 1/30
    first = clip[0]
    hip_w = first[J["l_hip"]] - first[J["r_hip"]]
    np.testing.assert_allclose(hip_w, [2 * OFFSETS["hip"][2], 0, 0], atol=1e-9)  # left = +X
    shin = first[J["l_ankle"]] - first[J["l_knee"]]
    np.testing.assert_allclose(shin, [0, 0, OFFSETS["ankle"][1]], atol=1e-9)  # straight down, Z up
    assert first[J["nose"], 1] < first[J["l_ear"], 1]  # the face looks towards -Y
    bent = load_motion(tmp_path / "c.txt", fps=60.0)[-1]  # halfway to -0.6: the knee bends backwards (+Y)
    assert bent[J["l_ankle"], 1] - bent[J["l_knee"], 1] > 0.05
    m = mirror(clip)
    np.testing.assert_allclose(m[:, J["r_hip"], 0], -clip[:, J["l_hip"], 0])
    np.testing.assert_allclose(mirror(m), clip)
    # Perturbed copies: new poses, the same bone lengths, reproducible from the generator's seed.
    path = tmp_path / "c.txt"
    turned = load_motion(path, perturb_deg=15.0, rng=np.random.default_rng(7))
    assert np.abs(turned - clip).max() > 0.02
    np.testing.assert_allclose(turned, load_motion(path, perturb_deg=15.0, rng=np.random.default_rng(7)))
    bones = [(J["l_hip"], J["l_knee"]), (J["l_knee"], J["l_ankle"]), (J["r_shoulder"], J["r_elbow"])]
    for a, b in bones:
        np.testing.assert_allclose(np.linalg.norm(turned[:, b] - turned[:, a], axis=-1),
                                   np.linalg.norm(clip[:, b] - clip[:, a], axis=-1), atol=1e-9)
    (tmp_path / "bad.txt").write_text(json.dumps({"Frames": [[0.1, 1, 2]]}))
    with pytest.raises(ValueError, match="DeepMimic"):
        load_motion(tmp_path / "bad.txt")


@pytest.mark.parametrize("azimuth", [0.0, 45.0, 90.0])
def test_default_lifter_stays_accurate_on_a_walk(azimuth):
    joints, _ = walk(seconds=4.0, height=1.7)
    cam = PinholeCamera.orbit(IMAGE, np.array([*joints[:, :, :2].mean((0, 1)), 1.0]), azimuth, 6.0, 1.0)
    lifter = Lifter(IMAGE, height_m=1.7)
    pred = np.array([lifter(p, np.ones(17), i / 30) for i, p in enumerate(cam.project(joints))], dtype=float)
    gt = cam.level_world(joints)
    rel = lambda a: a - 0.5 * (a[:, [J["l_hip"]]] + a[:, [J["r_hip"]]])  # noqa: E731
    err = np.linalg.norm(rel(pred) - rel(gt), axis=-1).mean()
    assert err < 0.06, f"MPJPE {err * 1000:.0f} mm"


def test_lifter_with_and_without_the_prior():
    joints, _ = walk(seconds=4.0, height=1.7)
    target = np.array([*joints[:, :, :2].mean((0, 1)), 1.0])
    cam = PinholeCamera.orbit(IMAGE, target, 45.0, distance=6.0, height=1.0)
    px = cam.project(joints)
    plain = Lifter(IMAGE, height_m=1.7, depth_prior=None)
    learned = Lifter(IMAGE, height_m=1.7)
    assert plain.depth_prior is None and learned.depth_prior is not None
    assert learned.depth_prior is Lifter(IMAGE).depth_prior  # one copy per process
    a = [plain(p, np.ones(17), i / 30) for i, p in enumerate(px)]
    b = [learned(p, np.ones(17), i / 30) for i, p in enumerate(px)]
    assert all(x is not None for x in a + b)
    assert not np.allclose(np.array(a), np.array(b))  # the prior takes part in the choice
