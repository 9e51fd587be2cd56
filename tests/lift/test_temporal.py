"""The temporal lifter: numpy streaming inference against the torch network, the training data's geometry, the
learned lifter's root placement, pose filter and foot locking, and the shipped weights on a procedural walk."""

import numpy as np
import pytest
import torch

from pose_server.filters import KeypointFilter
from pose_server.lift import LearnedLifter
from pose_server.lift.camera import PinholeCamera
from pose_server.lift.learned_lifter import MAX_ROOT_SPEED, _rotation
from pose_server.lift.proportions import REST_LENGTHS, measure_lengths, vertical_chain
from pose_server.lift.skeleton3d import REST_HEIGHT, J, segment_lengths
from pose_server.lift.synthetic import walk
from pose_server.lift.temporal import DEFAULT_TEMPORAL_LIFTER, FEATURES, TemporalLifterModel, frame_features, load_model
from pose_server.lift.temporal_data import (
    HOLD_S,
    ClipBank,
    _hip_placement,
    _hold_as_the_server,
    _proportions,
    sample_batch,
)
from pose_server.lift.temporal_training import TemporalNet, _loss, bone_error, export, load_exported, train
from pose_server.mocap import MocapClip
from pose_server.skeleton import SKELETONS

IMAGE = (1280, 720)


def _walk_clip(seconds: float = 4.0, fps: float = 60.0) -> MocapClip:
    joints, _ = walk(seconds=seconds, fps=fps, height=1.75, speed=1.1, turn_deg_s=20)
    ankles = joints[:, [J["l_ankle"], J["r_ankle"]]]
    speed = np.linalg.norm(np.gradient(ankles[..., :2], axis=0), axis=-1) * fps
    return MocapClip("walk", fps, joints, None, speed < 0.4, "walk", "synthetic")


@pytest.fixture(scope="module")
def random_net():
    torch.manual_seed(0)
    net = TemporalNet(channels=32, blocks=2)
    with torch.no_grad():  # batch-norm statistics that are not the identity, so folding them is tested
        for bn in [net.expand_bn, *net.conv_bns, *net.point_bns]:
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    return net.eval()


def test_streaming_numpy_matches_the_dense_torch_network(random_net, tmp_path):
    model = TemporalLifterModel.load(export(random_net, tmp_path / "m.npz", "test"))
    assert model.receptive_field == random_net.receptive_field == 27 and model.info == "test"
    feats = np.random.default_rng(0).normal(size=(60, FEATURES)).astype(np.float32)
    joints, contacts = model.run(feats)
    # the stream starts as if the first frame had always been there: torch on the sequence padded with it
    padded = np.concatenate([np.repeat(feats[:1], model.receptive_field - 1, 0), feats])
    with torch.no_grad():
        want_j, want_c = random_net(torch.from_numpy(padded).T[None])
    np.testing.assert_allclose(joints, want_j[0].numpy(), atol=1e-4)
    np.testing.assert_allclose(contacts, torch.sigmoid(want_c[0]).numpy(), atol=1e-5)


@pytest.mark.parametrize("mirror", [False, True])
def test_the_onnx_runtime_step_is_the_numpy_step(random_net, tmp_path, mirror):
    """The server's engine (one ONNX Runtime call a frame) answers as the numpy step, frame after frame, through a
    reset (a lost track) whose first frame refills the history."""
    path = export(random_net, tmp_path / "m.npz", "test")
    ort_model = load_model(path, mirror=mirror, engine="onnxruntime")
    np_model = load_model(path, mirror=mirror, engine="numpy")
    assert ort_model.onnx_step is not None and np_model.onnx_step is None
    feats = np.random.default_rng(4).normal(size=(70, FEATURES)).astype(np.float32)
    for i, f in enumerate(feats):
        if i == 40:
            ort_model.reset()
            np_model.reset()
        (j1, c1), (j2, c2) = ort_model.step(f), np_model.step(f)
        np.testing.assert_allclose(j1, j2, atol=1e-5, err_msg=f"frame {i}")
        np.testing.assert_allclose(c1, c2, atol=1e-6, err_msg=f"frame {i}")
    with pytest.raises(ValueError, match="onnxruntime, numpy"):
        load_model(path, engine="torch")


def test_the_mirror_average_is_the_mirror_image_of_itself(random_net, tmp_path):
    """Averaged with its mirror image, the model answers a mirrored performance with exactly the mirrored answer
    (alone it need not: training only mirrors half its sequences), and the features' mirror is the image's."""
    path = export(random_net, tmp_path / "m.npz", "test")
    rng = np.random.default_rng(3)
    px = rng.uniform(200, 900, (40, 17, 2)) + np.linspace(0, 200, 40)[:, None, None]
    sc = rng.uniform(0.3, 1.0, (40, 17))
    centre, flip = np.array([640.0, 360.0]), SKELETONS["coco17"].flip_indices()
    mirrored = np.stack([2 * centre[0] - px[:, flip, 0], px[:, flip, 1]], -1)

    def run(model: TemporalLifterModel, pixels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        prev = np.concatenate([pixels[:1], pixels[:-1]])
        return model.run(frame_features(pixels, scores, prev, centre, 1000.0))

    both = TemporalLifterModel.load(path, mirror=True)
    j, c = run(both, px, sc)
    jm, cm = run(both, mirrored, sc[:, flip])
    np.testing.assert_allclose(jm, j[:, flip] * np.array([-1.0, 1.0, 1.0]), atol=1e-5)
    np.testing.assert_allclose(cm, c[:, ::-1], atol=1e-6)
    single = TemporalLifterModel.load(path)
    js, _ = run(single, px, sc)
    jsm, _ = run(single, mirrored, sc[:, flip])
    np.testing.assert_allclose(j, 0.5 * (js + jsm[:, flip] * np.array([-1.0, 1.0, 1.0])), atol=1e-5)
    assert not np.allclose(jsm, js[:, flip] * np.array([-1.0, 1.0, 1.0]), atol=1e-3)


def test_features_do_not_depend_on_where_or_how_big_the_person_is():
    px = np.random.default_rng(1).uniform(300, 600, (17, 2))
    sc = np.full(17, 0.9)
    a = frame_features(px, sc, px - 3.0, np.array([640.0, 360.0]), 1000.0)
    b = frame_features(2.0 * px + 50.0, sc, 2.0 * (px - 3.0) + 50.0, np.array([640.0, 360.0]), 1000.0)
    np.testing.assert_allclose(a[:34 + 17 + 3], b[:34 + 17 + 3], atol=1e-5)  # keypoints, scores, motion
    assert a.shape == (FEATURES,) and not np.allclose(a[-3:], b[-3:])  # where in the image: differs


def test_training_batches_project_back_onto_their_keypoints():
    bank = ClipBank([_walk_clip()])
    batch = sample_batch(bank, 16, 30, np.random.default_rng(0))
    assert batch.features.shape == (16, 30, FEATURES) and batch.joints.shape == (16, 30, 17, 3)
    rel = batch.joints
    np.testing.assert_allclose(rel[..., [J["l_hip"], J["r_hip"]], :].mean(-2), 0.0, atol=1e-5)  # pelvis-relative
    lengths = segment_lengths(rel.reshape(-1, 17, 3)).reshape(16, 30, -1)
    np.testing.assert_allclose(lengths.std(1), 0.0, atol=2e-3)  # each sequence a rigid body
    thigh = np.linalg.norm(rel[..., J["l_knee"], :] - rel[..., J["l_hip"], :], axis=-1)
    # a 1.75 m body whatever the size drawn, its thighs x 0.92-1.08 (and 2 % between the sides)
    assert thigh.min() > 0.43 * 0.90 - 0.01 and thigh.max() < 0.43 * 1.10 + 0.01 and thigh.std() > 0.005
    assert set(np.unique(batch.contacts)) <= {0.0, 1.0} and 0 < batch.contacts.mean() < 1


def test_server_like_holds_move_on_as_the_servers_filter_holds_them():
    """``hold="server"``: a dropped keypoint is predicted on with its velocity, decaying as the server's keypoint
    filter decays it, with its last score for HOLD_S; then frozen with a low score. The same draws otherwise."""
    fps, v = 30.0, np.array([3.0, -1.0])
    track = np.arange(30)[:, None] * v  # a keypoint moving 3 px right and 1 up per frame
    # the server's filter, made transparent (its smoothing is not what is modelled here: its hold is)
    filt = KeypointFilter(1, 2, min_cutoff=1000.0, beta=0.0, d_cutoff=1000.0, min_score=0.3, hold_s=HOLD_S)
    for i in range(10):
        filt(track[i][None], np.array([0.9]), i / fps)
    served = [filt(track[10 + m][None] + 50.0, np.array([0.1]), (10 + m) / fps) for m in range(12)]
    seg, seg_scores = np.zeros((12, 2)), np.full(12, 0.1)
    _hold_as_the_server(seg, seg_scores, track[:10], 0.9, fps)
    within = np.arange(1, 13) <= HOLD_S * fps
    assert [bool(h[0]) for _, _, h in served] == within.tolist()  # the filter holds the same frames
    np.testing.assert_allclose(seg[within], np.array([p[0] for p, _, _ in served])[within], atol=0.05)
    np.testing.assert_allclose(seg_scores[within], 0.9)
    np.testing.assert_allclose(seg_scores[~within], 0.1)
    np.testing.assert_allclose(seg[~within], np.broadcast_to(seg[within][-1], seg[~within].shape))  # then frozen
    # in a batch: the same sequences, the same draws; only held keypoints differ
    bank = ClipBank([_walk_clip()])
    frozen = sample_batch(bank, 16, 30, np.random.default_rng(3))
    held = sample_batch(bank, 16, 30, np.random.default_rng(3), hold="server")
    np.testing.assert_array_equal(frozen.joints, held.joints)
    assert 0 < (frozen.features != held.features).any(-1).mean() < 0.5  # (a held hip moves every feature)
    with pytest.raises(ValueError, match="hold"):
        sample_batch(bank, 2, 30, np.random.default_rng(3), hold="later")


def test_contact_labels_led_by_a_frame_are_the_next_frames_labels_and_nothing_else_moves():
    """``contact_lead=1``: each frame's contact label is the one of the frame after it (the shipped network's
    probabilities lag the labels by a frame); the sequences, features and joints are the same draws."""
    bank = ClipBank([_walk_clip()])
    now = sample_batch(bank, 32, 30, np.random.default_rng(5))
    led = sample_batch(bank, 32, 30, np.random.default_rng(5), contact_lead=1.0)
    np.testing.assert_array_equal(now.features, led.features)
    np.testing.assert_array_equal(now.joints, led.joints)
    same = (led.contacts[:, :-1] == now.contacts[:, 1:]).all(-1)
    assert same.mean() > 0.98  # (lead 0 or -1: 0.83 or 0.67 here; clamped sequences may differ)
    assert (led.contacts != now.contacts).any()


def test_the_cameras_keep_a_runner_in_the_image_and_in_front_of_the_lens():
    """A sprint carries the performer 30 m in a 128-frame sequence, past cameras drawn 2-10 m from where it ends:
    framed, every frame's pelvis projects inside the image (features 54-55: its position over the focal length,
    at most tan 45 deg across and 720 / 1280 of that down); unframed, some leave it or pass behind the lens."""
    joints, _ = walk(seconds=12.0, fps=60.0, height=1.75, speed=7.0)
    bank = ClipBank([MocapClip("sprint", 60.0, joints, None, None, "run", "synthetic")])
    framed = sample_batch(bank, 64, 128, np.random.default_rng(2)).features
    loose = sample_batch(bank, 64, 128, np.random.default_rng(2), framing=False).features
    half = np.array([1.0, 720 / 1280]) + 1e-4  # the widest field of view drawn: 90 deg
    assert (np.abs(framed[..., 54:56]) <= half).all() and np.isfinite(framed).all()
    assert (np.abs(loose[..., 54:56]) > half).any(axis=(1, 2)).sum() >= 3


def test_random_proportions_rescale_bones_about_their_parents():
    joints = _walk_clip(1.0).joints[None].repeat(400, 0)
    out = _proportions(joints, np.random.default_rng(0))
    pelvis = joints[:, :, [J["l_hip"], J["r_hip"]]].mean(2)
    np.testing.assert_allclose(out[:, :, [J["l_hip"], J["r_hip"]]].mean(2), pelvis, atol=1e-9)
    for parent, child in (("l_shoulder", "l_elbow"), ("r_elbow", "r_wrist"), ("l_hip", "l_knee"),
                          ("r_knee", "r_ankle")):
        before = joints[:, :, J[child]] - joints[:, :, J[parent]]
        after = out[:, :, J[child]] - out[:, :, J[parent]]
        ratio = np.linalg.norm(after, axis=-1) / np.linalg.norm(before, axis=-1)
        np.testing.assert_allclose(ratio.std(1), 0.0, atol=1e-9)  # one factor per sequence, the bone's direction
        np.testing.assert_allclose(np.cross(after, before), 0.0, atol=1e-9)
        assert 0.9 < ratio.min() < 0.95 and 1.05 < ratio.max() < 1.11 and 0.7 < np.mean(ratio != 1.0) < 0.9
    hips = np.linalg.norm(out[:, 0, J["l_hip"]] - out[:, 0, J["r_hip"]], axis=-1)
    hips0 = np.linalg.norm(joints[:, 0, J["l_hip"]] - joints[:, 0, J["r_hip"]], axis=-1)
    assert 0.8 <= (hips / hips0).min() < 0.85 and 1.15 < (hips / hips0).max() <= 1.2
    rng = np.random.default_rng(0)  # share 0 draws nothing: runs made before this augmentation reproduce
    assert _proportions(joints, rng, share=0.0) is joints and rng.random() == np.random.default_rng(0).random()


def test_moved_hips_move_together_up_to_their_ranges_and_nothing_else_moves():
    joints = _walk_clip(1.0).joints[None].repeat(400, 0)
    out = _hip_placement(joints, np.random.default_rng(0), share=0.7)
    hips = [J["l_hip"], J["r_hip"]]
    others = [k for k in range(17) if k not in hips]
    np.testing.assert_array_equal(out[:, :, others], joints[:, :, others])
    moved = out[:, :, hips] - joints[:, :, hips]
    np.testing.assert_allclose(moved[:, :, 0], moved[:, :, 1], atol=1e-12)  # both hips, the same shift
    dist = np.linalg.norm(moved[:, :, 0], axis=-1)
    assert dist.max() <= 0.05 + 1e-9 and dist.max() > 0.04  # (4 cm, 3 cm) at most
    assert 0.6 < np.mean(dist[:, 0] > 0) < 0.8
    pelvis = joints[:, :, hips].mean(2)
    up = joints[:, :, [J["l_shoulder"], J["r_shoulder"]]].mean(2) - pelvis
    up_m = (moved[:, :, 0] * up).sum(-1) / np.linalg.norm(up, axis=-1)
    assert np.abs(up_m).max() <= 0.04 + 1e-9 and np.abs(up_m).max() > 0.035


def test_moved_hips_move_the_target_and_keep_every_other_draw_of_the_batch():
    """In the keypoints and the target alike (both are the moved mocap), and from their own random stream: the
    sequences, cameras, noise and contacts are the batch's without it, the target's pelvis-relative body shifted."""
    bank = ClipBank([_walk_clip()])
    plain = sample_batch(bank, 16, 30, np.random.default_rng(5))
    moved = sample_batch(bank, 16, 30, np.random.default_rng(5), hips=1.0, hips_rng=np.random.default_rng(9))
    np.testing.assert_array_equal(plain.contacts, moved.contacts)
    assert not np.allclose(plain.features, moved.features)
    shift = moved.joints - plain.joints  # (B, T, 17, 3): every other joint by the same vector in a frame
    others = [k for k in range(17) if k not in (J["l_hip"], J["r_hip"])]
    np.testing.assert_allclose(shift[:, :, others], shift[:, :, others[:1]].repeat(len(others), 2), atol=1e-5)
    assert np.abs(shift).max() > 0.01
    again = sample_batch(bank, 16, 30, np.random.default_rng(5), hips=0.0, hips_rng=np.random.default_rng(9))
    np.testing.assert_array_equal(plain.features, again.features)


def test_training_is_deterministic_and_learns():
    bank = ClipBank([_walk_clip()])
    torch.set_num_threads(1)
    losses: list[float] = []
    a = train(bank, steps=60, batch=8, outputs=8, channels=32, blocks=1, seed=3,
              progress=lambda s, m, c: losses.append(m))
    b = train(bank, steps=60, batch=8, outputs=8, channels=32, blocks=1, seed=3)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb)
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:10])


class _Fixed(torch.nn.Module):
    """Answers with the given joints (and no contact opinion), whatever the input."""

    def __init__(self, joints: np.ndarray) -> None:
        super().__init__()
        self.out = torch.from_numpy(joints)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.out, torch.zeros(*self.out.shape[:2], 2)


def test_the_velocity_loss_sees_jitter_but_not_a_steady_offset():
    batch = sample_batch(ClipBank([_walk_clip()]), 4, 20, np.random.default_rng(0))
    want = batch.joints[:, 4:].astype(np.float32)  # rf 5: outputs from the fifth frame on
    offset = want + np.float32(0.03)  # 3 cm off on every axis, on every frame
    rng = np.random.default_rng(1)
    jitter = want + rng.choice([-0.03, 0.03], size=want.shape).astype(np.float32)  # as far off, flipping
    gains = {}
    for name, pred in (("offset", offset), ("jitter", jitter)):
        plain, mpjpe, _ = _loss(_Fixed(pred), batch, 5)
        with_velocity, _, _ = _loss(_Fixed(pred), batch, 5, velocity=2.0)
        assert mpjpe == pytest.approx(0.03 * np.sqrt(3), rel=1e-4)  # the same joint error either way
        gains[name] = float(with_velocity - plain)
    assert gains["offset"] == pytest.approx(0.0, abs=1e-6)
    assert gains["jitter"] > 2.0 * 0.05  # about 2 x 0.07 m: consecutive frames 6 cm apart on some axes



def test_the_bone_loss_sees_a_limb_folded_towards_the_image_but_not_a_shifted_body():
    """A hedged depth (the knee halfway between its two possible depths) shortens the thigh and shin: the bone term
    charges it; the whole body moved (as far off per joint) keeps every length and costs nothing."""
    batch = sample_batch(ClipBank([_walk_clip()]), 4, 20, np.random.default_rng(0))
    want = batch.joints[:, 4:].astype(np.float32)
    shifted = want + np.float32(0.05)
    hedged = want.copy()
    knee, hip, ankle = J["l_knee"], J["l_hip"], J["l_ankle"]
    hedged[..., knee, :] = 0.5 * (want[..., hip, :] + want[..., ankle, :])  # the knee on the hip-ankle line
    gains = {}
    for name, pred in (("shifted", shifted), ("hedged", hedged)):
        plain, _, _ = _loss(_Fixed(pred), batch, 5)
        with_bones, _, _ = _loss(_Fixed(pred), batch, 5, bones=1.0)
        gains[name] = float(with_bones - plain)
        assert gains[name] == pytest.approx(float(bone_error(torch.from_numpy(pred), torch.from_numpy(want))), abs=1e-6)
    assert gains["shifted"] == pytest.approx(0.0, abs=1e-6)
    assert gains["hedged"] > 0.003  # two of the eight bones a few cm short: a walker's knee bends 10-60 deg

def test_exported_weights_load_back_into_a_network_that_computes_the_same(random_net, tmp_path):
    path = export(random_net, tmp_path / "a.npz")
    bank = ClipBank([_walk_clip()])
    net = load_exported(TemporalNet(channels=32, blocks=2), path, bank, np.random.default_rng(0), 4, 40, 2)
    again = np.load(export(net, tmp_path / "b.npz"))
    with np.load(path) as want:
        for k in [k for k in want.files if k != "info"]:
            np.testing.assert_allclose(again[k], want[k], atol=2e-5, err_msg=k)
    # batch norm now has the statistics of training batches: in training mode it computes nearly the same
    x = torch.from_numpy(sample_batch(bank, 8, 40, np.random.default_rng(1)).features).permute(0, 2, 1)
    with torch.no_grad():
        want_j = net(x)[0]
        net.train()
        net.drop.p = 0.0
        got_j = net(x)[0]
    assert float((got_j - want_j).norm(dim=-1).mean()) < 0.1 * float(want_j.norm(dim=-1).mean())
    with pytest.raises(ValueError, match="channels"):
        load_exported(TemporalNet(channels=16, blocks=2), path, bank, np.random.default_rng(0))


def test_exported_weights_grow_into_a_deeper_network(random_net, tmp_path):
    """A block appended (dilation 1) starts nearly silent, so the network answers nearly as the file does, and it
    learns: its convolution gets gradients."""
    path = export(random_net, tmp_path / "a.npz")
    bank = ClipBank([_walk_clip()])
    net = load_exported(TemporalNet(channels=32, dilations=[3, 9, 1]), path, bank, np.random.default_rng(0), 4, 40, 2)
    x = torch.from_numpy(sample_batch(bank, 8, 40, np.random.default_rng(1)).features).permute(0, 2, 1)
    with torch.no_grad():
        want = random_net(x)[0][:, 2:]  # the grown network's receptive field is 2 frames longer
    got = net(x)[0].detach()
    assert float((got - want).norm(dim=-1).mean()) < 0.02 * float(want.norm(dim=-1).mean())
    net.train()
    net(x)[0].sum().backward()
    assert float(net.convs[2].weight.grad.abs().sum()) > 0 and float(net.point_bns[2].weight.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="dilations"):  # the file's blocks must come first
        load_exported(TemporalNet(channels=32, dilations=[3, 1, 9]), path, bank, np.random.default_rng(0))


def test_a_head_only_training_moves_the_contacts_and_not_one_bit_of_the_rest(random_net, tmp_path):
    """Only the contact head learns; the file written keeps every other array of the weights it started from."""
    path = export(random_net, tmp_path / "a.npz")
    bank = ClipBank([_walk_clip()])
    torch.set_num_threads(1)
    bces: list[float] = []
    net = train(bank, steps=40, batch=8, outputs=8, channels=32, blocks=2, lr=3e-2, seed=3, init=path,
                head_only=True, progress=lambda s, m, c: bces.append(c))
    assert np.mean(bces[-5:]) < 0.8 * np.mean(bces[:5])
    start = load_exported(TemporalNet(channels=32, blocks=2), path, bank, np.random.default_rng(3), 8, 27 + 8 - 1)
    for (k, a), b in zip(net.state_dict().items(), start.state_dict().values(), strict=True):
        assert torch.equal(a, b) != k.startswith("contact."), k  # as train() loaded it, but for the head
    out = export(net, tmp_path / "b.npz", head_of=path)
    with np.load(path) as want, np.load(out) as got:
        for k in [k for k in want.files if k != "info"]:
            same = np.array_equal(got[k], want[k])
            assert same != k.startswith("contact."), k
    with pytest.raises(ValueError, match="init"):
        train(bank, steps=1, channels=32, blocks=2, head_only=True)


def test_the_root_is_solved_from_the_projection():
    lifter = LearnedLifter(IMAGE, model=DEFAULT_TEMPORAL_LIFTER)
    joints, _ = walk(seconds=0.2)
    rel = joints[0] - joints[0, [J["l_hip"], J["r_hip"]]].mean(0)
    cam_rel = rel[:, [0, 2, 1]] * np.array([1, -1, 1])  # world (x, y, z up) -> camera (x, -z, y): level camera
    root = np.array([0.4, 0.2, 4.5])
    px = lifter.focal * (cam_rel + root)[:, :2] / (cam_rel + root)[:, 2:] + lifter.center
    np.testing.assert_allclose(lifter._solve_root(cam_rel, px, np.ones(17)), root, atol=1e-6)


@pytest.mark.parametrize("axis", [(0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)])
def test_the_turn_fit_finds_the_rotation_that_the_pixels_show(axis):
    """The body turned (about the camera's vertical, across or along its view) by 3 deg against what the network
    said: one undamped Gauss-Newton step finds the turn, the damped one most of it and no other."""
    lifter = LearnedLifter(IMAGE, model=DEFAULT_TEMPORAL_LIFTER, turn_damping=0.0)
    joints, _ = walk(seconds=0.5)
    rel = joints[10] - joints[10, [J["l_hip"], J["r_hip"]]].mean(0)
    rel = rel[:, [0, 2, 1]] * np.array([1, -1, 1])  # world -> camera axes, level camera
    root = np.array([0.3, 0.1, 4.0])
    true = np.radians(3.0) * np.array(axis)
    seen = rel @ _rotation(true).T + root
    px = lifter.focal * seen[:, :2] / seen[:, 2:] + lifter.center
    np.testing.assert_allclose(lifter._fit_turn(rel, root, px, np.ones(17)), true, atol=np.radians(0.3))
    lifter.turn_damping = 0.05
    damped = lifter._fit_turn(rel, root, px, np.ones(17))
    assert 0.5 < damped @ true / (true @ true) <= 1.0
    assert np.linalg.norm(damped - (damped @ true) / (true @ true) * true) < np.radians(0.5)


def test_rotation_matrices_are_rotations_about_their_axis():
    v = np.array([0.3, -0.2, 0.5])
    r = _rotation(v)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(r @ v, v, atol=1e-12)
    assert np.degrees(np.arccos((np.trace(r) - 1) / 2)) == pytest.approx(np.degrees(np.linalg.norm(v)))
    np.testing.assert_allclose(_rotation(np.zeros(3)), np.eye(3))


def _lift_walk(lifter: LearnedLifter, seconds: float = 6.0, azimuth: float = 45.0):
    joints, _ = walk(seconds=seconds, fps=30, height=1.75, speed=1.1)
    cam = PinholeCamera.orbit(IMAGE, np.array([*joints[:, :, :2].mean((0, 1)), 1.0]), azimuth, 5.0, 1.0)
    px = cam.project(joints)
    out, contacts = [], []
    for i, p in enumerate(px):
        out.append(lifter(p, np.full(17, 0.9), i / 30))
        contacts.append(lifter.contacts.copy())
    return cam.level_world(joints), np.array(out), np.array(contacts)


def test_the_shipped_weights_lift_a_walk_and_pin_its_feet():
    gt, pred, contacts = _lift_walk(LearnedLifter(IMAGE))
    root = lambda a: a - a[:, [J["l_hip"], J["r_hip"]]].mean(1, keepdims=True)  # noqa: E731
    mpjpe = np.linalg.norm(root(pred) - root(gt), axis=-1).mean() * 1000
    assert mpjpe < 120, f"MPJPE {mpjpe:.0f} mm on a procedural walk (random weights: over 250)"
    assert 0.2 < (contacts > 0.5).mean() < 0.95  # a walk: feet planted part of the time
    # across the view the root path follows the planted feet: a planted ankle barely moves, and less than without
    # the lock (in depth the lock lets a walk through: the next test)
    _, free, _ = _lift_walk(LearnedLifter(IMAGE, foot_lock=False))
    planted = contacts[1:] > 0.6
    ankles = [J["l_ankle"], J["r_ankle"]]
    slide = lambda a: np.abs(np.diff(a[:, ankles, 0], axis=0))[planted].mean()  # noqa: E731
    assert slide(pred) < 0.5 * slide(free)
    # the floor under the feet
    assert abs(np.median(pred[:, ankles, 2].min(1)) - 0.08) < 0.05



@pytest.mark.parametrize("legs", [1.0, 1.12])
def test_the_lifted_body_stands_as_tall_as_the_performer(legs):
    """The network sizes bodies by their legs; a height counts the trunk too: a long-legged performer told his
    height must not come out short (nor a short-legged one tall)."""
    joints, _ = walk(seconds=4.0, fps=30, height=1.75, speed=1.1)
    for hip, knee, ankle in (("l_hip", "l_knee", "l_ankle"), ("r_hip", "r_knee", "r_ankle")):
        shin = joints[:, J[ankle]] - joints[:, J[knee]]
        joints[:, J[knee]] = joints[:, J[hip]] + legs * (joints[:, J[knee]] - joints[:, J[hip]])
        joints[:, J[ankle]] = joints[:, J[knee]] + legs * shin
    chain = np.median([vertical_chain(measure_lengths(p)) for p in joints])
    for height in (1.6, 1.9):
        performer = joints * height / (REST_HEIGHT * chain / vertical_chain(REST_LENGTHS))
        cam = PinholeCamera.orbit(IMAGE, np.array([*performer[:, :, :2].mean((0, 1)), 1.0]), 30.0, 5.0, 1.0)
        lifter = LearnedLifter(IMAGE, height_m=height)
        out = [lifter(p, np.full(17, 0.9), i / 30) for i, p in enumerate(cam.project(performer))]
        lifted = np.median([vertical_chain(measure_lengths(p)) for p in out[45:]])
        told = height * vertical_chain(REST_LENGTHS) / REST_HEIGHT
        assert lifted == pytest.approx(told, rel=0.02), f"legs x{legs}, {height} m"
        assert vertical_chain(lifter.lengths) == pytest.approx(told, rel=0.02)


def test_a_floor_seen_in_a_tracks_first_half_second_is_replaced_by_later_ones():
    """A track found mid-action (the demo's man crouching after his jump) is lifted far off for its first frames;
    the floor heights of its first WARMUP_S must not stay in its floor's median once later frames give theirs."""
    lifter = LearnedLifter(IMAGE)
    joints, _ = walk(seconds=3.0, fps=30, height=1.75, speed=1.1)
    cam = PinholeCamera.orbit(IMAGE, np.array([*joints[:, :, :2].mean((0, 1)), 1.0]), 45.0, 5.0, 1.0)
    px = cam.project(joints)
    px[:15, :, 1] += 120.0  # the first half second 120 px lower in the image: lifted half a metre low
    floors = []
    for i, p in enumerate(px):
        lifter(p, np.full(17, 0.9), i / 30)
        floors.append(lifter.floor)
    early, late = floors[10], floors[-1]
    assert abs(early - late) > 0.3  # the far start put the feet at another height (the warm floor)
    # 20 frames after the warm-up the floor is the walk's own, what the same walk gives without the bad start
    # (keeping the warm frames' heights in the median: still 0.57 m low then)
    clean = LearnedLifter(IMAGE)
    clean_floors = [clean(p, np.full(17, 0.9), i / 30) is not None and clean.floor
                    for i, p in enumerate(cam.project(joints))]
    assert abs(floors[35] - clean_floors[35]) < 0.05


def test_the_root_never_moves_faster_than_a_sprinter():
    """The demo's man landing from the roof on all fours: keypoints whose size jumps from frame to frame ask for a
    root metres away and back (3 m between two frames). The root's depth follows at most MAX_ROOT_SPEED, its
    image-plane position solved for that depth."""
    joints, _ = walk(seconds=3.0, fps=30, height=1.75, speed=1.1)
    cam = PinholeCamera.orbit(IMAGE, np.array([*joints[:, :, :2].mean((0, 1)), 1.0]), 45.0, 5.0, 1.0)
    px = cam.project(joints)
    centre = px.mean(axis=1, keepdims=True)
    size = np.ones(len(px))
    size[[50, 51]] = 0.5  # two frames at half size: twice as far
    px = centre + (px - centre) * size[:, None, None]
    pelvis = lambda a: np.array([o[[J["l_hip"], J["r_hip"]]].mean(0) for o in a])  # noqa: E731
    bounded = LearnedLifter(IMAGE)
    lifted = pelvis([bounded(p, np.full(17, 0.9), i / 30) for i, p in enumerate(px)])
    assert np.linalg.norm(np.diff(lifted, axis=0), axis=-1).max() * 30 < 10.0 * 1.05  # (the foot lock adds a little)
    assert MAX_ROOT_SPEED == 10.0
    # unbounded, the two frames move the pelvis 3 m away and back
    free = LearnedLifter(IMAGE)
    free._gate_depth = lambda root, *_: root
    unbounded = pelvis([free(p, np.full(17, 0.9), i / 30) for i, p in enumerate(px)])
    assert np.linalg.norm(unbounded[51] - unbounded[49]) > 2.0
    # and the walk itself is where it was: away from the two frames the bound changes nothing
    np.testing.assert_allclose(lifted[:50], unbounded[:50], atol=1e-9)


def test_the_root_is_never_farther_than_the_bones_allow():
    """A network answer three times too far (the demo's man found again on all fours was lifted 15 m away): the
    bones' image lengths rule it out, and the body is put at the cap. One keypoint thrown
    far (a long bone in the image) does not pull a body in: the cap takes the second tightest bone."""
    joints, _ = walk(seconds=2.0, fps=30, height=1.75, speed=1.1)
    cam = PinholeCamera.orbit(IMAGE, np.array([*joints[:, :, :2].mean((0, 1)), 1.0]), 45.0, 5.0, 1.0)
    px = cam.project(joints)
    hips = [J["l_hip"], J["r_hip"]]

    def lift(lifter: LearnedLifter, px: np.ndarray, far: float = 1.0) -> tuple[np.ndarray, list[float]]:
        gate = lifter._gate_depth
        lifter._gate_depth = lambda root, *a: gate(root * np.array([1.0, 1.0, far]), *a)
        out, depth = [], []
        for i, p in enumerate(px):
            out.append(lifter(p, np.full(17, 0.9), i / 30))
            depth.append(lifter._gate[0])
        return np.array(out), depth

    true = np.linalg.norm(cam.to_camera(joints)[:, hips].mean(1), axis=-1)
    _, capped = lift(LearnedLifter(IMAGE), px, far=3.0)
    _, free = lift(LearnedLifter(IMAGE, depth_cap=None), px, far=3.0)
    assert np.median(np.array(free) / true) > 2.5
    assert np.all(np.array(capped[10:]) < 1.3 * 1.15 * true[10:])  # the cap, with the network's lengths a little off
    # on clean keypoints the cap never binds; one ankle thrown 200 px does not make it bind either
    thrown = px.copy()
    thrown[30:, J["l_ankle"], 1] += 200.0
    for keypoints in (px, thrown):
        a, _ = lift(LearnedLifter(IMAGE), keypoints)
        b, _ = lift(LearnedLifter(IMAGE, depth_cap=None), keypoints)
        np.testing.assert_allclose(a, b, atol=1e-9)


@pytest.mark.parametrize("azimuth", [0.0, 180.0])
def test_walking_at_or_away_from_the_camera_is_not_frozen_by_the_foot_lock(azimuth):
    """Seen from the front or the back, where a planted foot is in depth relative to the pelvis is what one camera
    sees worst (the network puts it nearly under the pelvis): a lock that moved the root in depth at any speed froze
    such a walker (depth_gate=None: 0.5-2.4 m lifted of 5.5-6.6 m walked); the gated lock lets the measured path
    through."""
    pelvis = lambda a: a[:, [J["l_hip"], J["r_hip"]]].mean(1)  # noqa: E731
    travel = lambda a: np.linalg.norm(pelvis(a)[-1, :2] - pelvis(a)[0, :2])  # noqa: E731
    gt, pred, _ = _lift_walk(LearnedLifter(IMAGE), azimuth=azimuth)
    assert travel(pred) > 0.75 * travel(gt)
    _, frozen, _ = _lift_walk(LearnedLifter(IMAGE, depth_gate=None), azimuth=azimuth)
    assert travel(frozen) < 0.5 * travel(gt)


def test_the_pose_filter_opens_on_clean_keypoints_and_not_on_noisy_ones():
    """The pose filter's lag costs accuracy at every noise level, its smoothing is only needed against noise: on
    clean keypoints it opens, with the fits' filters (less lag, nearer the truth than the fixed filters), on 3 px it
    smooths as the fixed one does."""
    joints, _ = walk(seconds=6.0, fps=30, height=1.75, speed=1.1)
    cam = PinholeCamera.orbit(IMAGE, np.array([*joints[:, :, :2].mean((0, 1)), 1.0]), 45.0, 5.0, 1.0)
    px, gt = cam.project(joints), cam.level_world(joints)
    rel = lambda a: (a - a[:, [J["l_hip"], J["r_hip"]]].mean(1, keepdims=True))[45:]  # noqa: E731
    acc = lambda a: np.linalg.norm(np.diff(rel(a), 2, axis=0), axis=-1).mean()  # noqa: E731

    def lift(sigma: float, **kw: object) -> tuple[np.ndarray, LearnedLifter]:
        noisy = px + np.random.default_rng(1).normal(0.0, sigma, px.shape)
        lifter = LearnedLifter(IMAGE, **kw)
        return np.array([lifter(p, np.full(17, 0.9), i / 30) for i, p in enumerate(noisy)]), lifter

    mpjpe = lambda a: np.linalg.norm(rel(a) - rel(gt), axis=-1).mean() * 1000  # noqa: E731
    clean, opened = lift(0.0)
    fixed, _ = lift(0.0, pose_noise_ref=None)
    assert opened._smoother.min_cutoff > 10 * opened.pose_filter[0]
    assert opened._fit_px.min_cutoff > 10.0 and opened._fit_smoother.min_cutoff > 10.0  # the fits' filters with it
    assert mpjpe(clean) < mpjpe(fixed) - 2.0  # 65.6 against 69.4 mm with the pose filter alone opened
    noisy, shut = lift(3.0)
    noisy_fixed, _ = lift(3.0, pose_noise_ref=None)
    raw, _ = lift(3.0, smooth=False)
    assert shut.pose_noise > 2 * opened.pose_noise
    assert acc(noisy) < 1.1 * acc(noisy_fixed)  # 1.58 against 1.54x the walk's
    assert acc(noisy) < 0.6 * acc(raw)  # unfiltered: 3.6x


def test_the_limb_fit_puts_limb_joints_on_their_rays_at_their_bone_lengths():
    """bone_fit=1: a pose whose limb depths are off (the network's guess) is moved along the pixel rays onto the
    bones' lengths, at the solution nearer the guess, which here is the true pose; bone_fit=0.5 goes half way."""
    joints, _ = walk(seconds=0.2)
    rel = joints[0] - joints[0, [J["l_hip"], J["r_hip"]]].mean(0)
    true = rel[:, [0, 2, 1]] * np.array([1, -1, 1]) + np.array([0.3, 0.1, 4.0])  # camera axes, 4 m away
    full = LearnedLifter(IMAGE, bone_fit=1.0)
    full._set_lengths({k: float(np.linalg.norm(true[int(b)] - true[int(a)]))
                       for k in full._lengths if k.count("-") == 1 and not k.startswith("face")
                       for a, b in [k.split("-")]} | {k: v for k, v in full._lengths.items() if k.startswith("face")})
    px = full.focal * true[:, :2] / true[:, 2:] + full.center
    guess = true.copy()
    limbs = [J[n] for n in ("l_elbow", "r_elbow", "l_wrist", "r_wrist", "l_knee", "r_knee", "l_ankle", "r_ankle")]
    guess[limbs, 2] += np.random.default_rng(0).uniform(-0.005, 0.005, len(limbs))  # small depth errors
    fitted = full._fit_limbs(guess, px, np.ones(17, bool))
    np.testing.assert_allclose(fitted, true, atol=1e-6)
    assert np.abs(guess - true).max() > 0.003
    half = LearnedLifter(IMAGE, bone_fit=0.5)
    half._set_lengths(full._lengths)
    halfway = half._fit_limbs(guess, px, np.ones(17, bool))
    assert 0.3 < np.linalg.norm(halfway - true) / np.linalg.norm(guess - true) < 0.7
    missing = np.ones(17, bool)
    missing[J["l_wrist"]] = False  # a missing point keeps the guess's bone, hung from its fitted parent
    kept = full._fit_limbs(guess, px, missing)
    np.testing.assert_allclose(kept[J["l_wrist"]] - kept[J["l_elbow"]], guess[J["l_wrist"]] - guess[J["l_elbow"]])


def test_distilled_contacts_stay_near_the_starting_networks(random_net, tmp_path):
    """A fine-tune's contact head drifts with the trunk (every one lost held-out recall); distilled from a frozen copy
    of the starting network it stays near that network's probabilities, while the joints still learn."""
    path = export(random_net, tmp_path / "a.npz")
    bank = ClipBank([_walk_clip()])
    torch.set_num_threads(1)
    rf = TemporalNet(channels=32, blocks=2).receptive_field
    batch = sample_batch(bank, 8, rf + 8 - 1, np.random.default_rng(9))
    x = torch.from_numpy(batch.features).permute(0, 2, 1)
    start = load_exported(TemporalNet(channels=32, blocks=2), path, bank, np.random.default_rng(3), 8, rf + 8 - 1)
    with torch.no_grad():
        before = torch.sigmoid(start.eval()(x)[1])
    drift = {}
    for w in (0.0, 5.0):
        net = train(bank, steps=30, batch=8, outputs=8, channels=32, blocks=2, lr=1e-2, seed=3, init=path,
                    contact_weight=0.0, distill_contacts=w)
        with torch.no_grad():
            drift[w] = float((torch.sigmoid(net(x)[1]) - before).abs().mean())
    assert drift[5.0] < 0.5 * drift[0.0] and drift[0.0] > 0.02, drift
    with pytest.raises(ValueError, match="init"):
        train(bank, steps=1, channels=32, blocks=2, distill_contacts=0.2)
