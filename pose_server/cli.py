"""`pose-server`: run the capture server, replay a session, export ONNX, benchmark, open the panel."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from .config import AUTO_MODEL, BACKENDS, EMBEDDED_MODELS, HUB_MODELS, PRECISIONS, PipelineConfig, load_estimator
from .control.messages import CONFIG_FIELDS
from .pipeline import Pipeline

log = logging.getLogger("pose_server")

# Errors that describe bad input or a missing file: shown as one line, without a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, RuntimeError, ImportError)


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def number_in(lo: float, hi: float, integer: bool = False) -> Callable[[str], float]:
    """An argparse type: a number (a whole one with ``integer``) from lo to hi, or a message that says the range."""

    def parse(text: str) -> float:
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if integer else ''}number") from None
        if not lo <= value <= hi:
            show = (lambda v: str(int(v))) if integer else (lambda v: f"{v:g}")  # 2147483647, not 2.14748e+09
            raise argparse.ArgumentTypeError(f"{show(value)} is outside {show(lo)}-{show(hi)}")
        return value

    return parse


def _config_number(name: str) -> Callable[[str], float]:
    """``number_in`` with the control API's range for the config field ``name``: one table for both."""
    spec = CONFIG_FIELDS[name]
    return number_in(spec.min, spec.max, integer=spec.types == (int,))


def _pitch(text: str) -> float | None:
    """--camera-pitch: degrees in the control API's range, or "auto" (None: the lifter estimates it)."""
    return None if text.strip().lower() == "auto" else _config_number("camera_pitch")(text)


def _people_args(g: argparse._ArgumentGroup, max_people: int) -> None:
    """The detector and tracker options (run and convert)."""
    g.add_argument("--detector", default="auto",
                   help="auto (YOLOX-nano if checkpoints/detectors/ has it, else BlazePose's if the embedded model "
                        "is there, else HOG), yolox / yolox-tiny (downloaded on first use), blazepose, hog, "
                        "full-frame, or a path to a YOLOX end2end .onnx")
    g.add_argument("--det-threshold", type=_config_number("det_threshold"), default=0.3,
                   help="person detector score threshold")
    g.add_argument("--det-interval", type=_config_number("det_interval"), default=30,
                   help="run the detector every N frames while tracks hold (and whenever one is lost)")
    g.add_argument("--max-people", type=_config_number("max_people"), default=max_people,
                   help="most people tracked (1-16)")


def add_swap_guard_arg(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The left/right guard's off-switch (run, convert, demo; config ``swap_guard``)."""
    p.add_argument("--no-swap-guard", action="store_true",
                   help="keep a detector's left/right labels even where it exchanged them for a few frames "
                        "(the guard puts them back so the body does not spin half round and back)")


def add_unmeasurable_args(p: argparse.ArgumentParser | argparse._ArgumentGroup,
                          pitch_over: str = "their first seconds") -> None:
    """What one camera cannot measure and the lifter needs: the performer's height, the field of view, the pitch
    (`pitch_over`: what an estimate looks at, live or offline)."""
    p.add_argument("--performer-height", type=_config_number("performer_height"), default=1.75, metavar="M",
                   help="the performer's height in metres: the 3D skeleton's scale, which one camera cannot see")
    p.add_argument("--hfov", type=_config_number("camera_hfov"), default=60.0, metavar="DEG",
                   help="the camera's horizontal field of view in degrees (a typical webcam: 60-78)")
    p.add_argument("--camera-pitch", type=_pitch, default=0.0, metavar="DEG|auto",
                   help="degrees the camera looks down (negative: up); a level camera is 0; auto: estimated from the "
                        f"performers' upright bodies over {pitch_over} (docs/lifting.md: when it works)")


def _model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default=AUTO_MODEL,
                   help="auto (ViTPose when its weights are in checkpoints/ or downloadable, else the embedded "
                        "BlazePose), blazepose[-lite|-full|-heavy] (the embedded model `make` fetches), a Hugging "
                        "Face hub id (downloaded once into checkpoints/hf/) or a size: "
                        + ", ".join(f"{k}={v}" for k, v in HUB_MODELS.items()))
    g.add_argument("--checkpoint", default=None,
                   help="local weights instead of --model: an official ViTPose .pth, a .safetensors file or a "
                        "Hugging Face folder (config.json + model.safetensors)")
    g.add_argument("--config", dest="model_config", default=None, metavar="CONFIG",
                   help="model config for a bare .pth: an official ViTPose python config "
                        "(ViTPose_base_coco_256x192.py, read without mmcv) or one of configs/*.json "
                        "(default: inferred from the weights)")
    g.add_argument("--dataset", default=None,
                   choices=("coco", "aic", "mpii", "ap10k", "apt36k", "wholebody"),
                   help="which head of a ViTPose+ checkpoint to use; wholebody gives 133 keypoints with hands "
                        "(default: coco, or the only head)")
    g.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="inference backend; auto times every backend once per machine and model on real crops and "
                        "keeps the fastest that matches PyTorch fp32 (choice saved in checkpoints/auto/); onnx "
                        "exports once to checkpoints/onnx/, openvino converts that to checkpoints/openvino/")
    g.add_argument("--device", default="cpu", help="cpu, cuda, cuda:0, ...")
    g.add_argument("--quantize", action=argparse.BooleanOptionalAction, default=True,
                   help="int8 dynamic quantization (onnx backend only)")
    g.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="openvino: fp32, bf16 (CPUs with native bf16) or int8 (NNCF, calibrated on the demo clip); "
                        "torch: fp32, fp16/bf16 on CUDA (default fp32, CUDA fp16)")
    g.add_argument("--flip-test", action="store_true", help="average with mirrored crops (2x compute)")
    g.add_argument("--threads", type=number_in(1, 256, integer=True), default=None,
                   help="inference threads (default: every core)")


def _checkpoint_of(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """(checkpoint, model_size) for PipelineConfig from --checkpoint / --model."""
    if args.checkpoint:
        return args.checkpoint, None
    if args.model in HUB_MODELS:
        return None, args.model
    return args.model, None


def _targets(values: Sequence[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or ():
        out += [t for t in v.replace(",", " ").split() if t]
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pose-server", formatter_class=_Formatter,
                                     description="ViTPose mocap server: frames in, pose packets out over UDP.")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.add_argument("--verbose", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="capture, estimate poses and stream them", formatter_class=_Formatter,
                         description="Capture frames, find and track people, run ViTPose, smooth, lift to 3D and "
                                     "stream one JSON packet per frame over UDP.")
    g = run.add_argument_group("source")
    g.add_argument("--source", default="0",
                   help="webcam index (0), video file (mp4/avi/mov/mkv), image folder, stream URL (rtsp://, "
                        "http://) or a recorded session (.jsonl, replayed without inference)")
    g.add_argument("--realtime", action="store_true",
                   help="pace files to their frame rate (default: as fast as possible)")
    g.add_argument("--drop-stale", action="store_true",
                   help="treat a file like a camera: with --realtime, skip frames the server is too slow for "
                        "(live sources always do)")
    g.add_argument("--loop", action="store_true", help="restart a file at its end")
    g.add_argument("--max-frames", type=_config_number("max_frames"), default=None, help="stop after N frames")
    g.add_argument("--fps-limit", type=_config_number("fps_limit"), default=0.0,
                   help="process at most this many frames/s (0 = no limit)")
    g.add_argument("--camera-backend", default="any",
                   choices=("any", "v4l2", "ffmpeg", "gstreamer", "dshow", "msmf", "avfoundation"),
                   help="OpenCV capture backend for webcams")
    g.add_argument("--width", type=_config_number("camera_width"), default=None, help="requested webcam width")
    g.add_argument("--height", type=_config_number("camera_height"), default=None, help="requested webcam height")
    g.add_argument("--camera-fps", type=_config_number("camera_fps"), default=None, help="requested webcam frame rate")
    _model_args(run)
    _people_args(run.add_argument_group("people"), max_people=1)
    g = run.add_argument_group("signal")
    g.add_argument("--kpt-threshold", type=_config_number("kpt_threshold"), default=0.3,
                   help="keypoint score below which a keypoint is held/predicted")
    g.add_argument("--min-cutoff", type=_config_number("min_cutoff"), default=1.0,
                   help="One Euro minimum cutoff (Hz): lower = smoother")
    g.add_argument("--beta", type=_config_number("beta"), default=0.05,
                   help="One Euro speed coefficient: higher = less lag")
    g.add_argument("--d-cutoff", type=_config_number("d_cutoff"), default=1.0, help="One Euro derivative cutoff (Hz)")
    g.add_argument("--hold", type=_config_number("hold_s"), default=0.25,
                   help="seconds a low-confidence keypoint is held/predicted")
    g.add_argument("--no-3d", action="store_true", help="do not lift to 3D joints")
    g.add_argument("--lifter", choices=("learned", "geometric"), default="learned",
                   help="3D lifter: the temporal network trained on CMU mocap (default) or the geometric lifter")
    g.add_argument("--no-depth-prior", action="store_true",
                   help="geometric lifter: the geometric priors only, without the learned depth prior")
    add_swap_guard_arg(g)
    add_unmeasurable_args(g)
    g.add_argument("--protocol", type=int, choices=(1, 2, 3, 4), default=4,
                   help="packet version (2 adds rotations, 3 foot contacts, 4 hands from whole-body models)")
    g = run.add_argument_group("output")
    g.add_argument("--udp", action="append", metavar="HOST:PORT",
                   help="UDP target, repeatable or comma-separated; IPv6 as [::1]:9000 (default 127.0.0.1:9000)")
    g.add_argument("--udp-token", default=os.environ.get("POSE_UDP_TOKEN"),
                   help="shared secret sent in every packet (meta.token); Blender needs it when it listens on "
                        "anything but 127.0.0.1 (default: $POSE_UDP_TOKEN)")
    g.add_argument("--vmc", action="append", metavar="HOST:PORT",
                   help="also stream the motion as the VMC protocol (OSC over UDP: Unity, Unreal, VSeeFace, Warudo); "
                        "repeatable; VMC receivers listen on port 39539 by default")
    g.add_argument("--vmc-person", type=_config_number("vmc_person"), default=None, metavar="TRACK_ID",
                   help="the track id the VMC avatar follows (default: the largest person, kept while tracked)")
    g.add_argument("--record", default=None, metavar="FILE.jsonl", help="write every packet as one JSON line")
    g.add_argument("--preview", default=None, metavar="FILE.mp4", help="write the overlay video (boxes, ids, bones)")
    g.add_argument("--control", default=None, metavar="HOST:PORT",
                   help="serve the websockets control API (e.g. 127.0.0.1:8765); a non-loopback host needs a token")
    g.add_argument("--control-token", default=os.environ.get("POSE_SERVER_TOKEN"),
                   help="control API token (default: $POSE_SERVER_TOKEN)")
    g.add_argument("--log-every", type=_config_number("log_every"), default=5.0,
                   help="seconds between fps/latency log lines")
    g.add_argument("--no-progress", action="store_true", help="no tqdm progress bar for files")
    run.set_defaults(func=cmd_run)

    rep = sub.add_parser("replay", help="re-stream a recorded session with its original timing",
                         formatter_class=_Formatter)
    rep.add_argument("session", help="a .jsonl file written by --record")
    rep.add_argument("--udp", action="append", metavar="HOST:PORT", help="UDP target(s) (default 127.0.0.1:9000)")
    rep.add_argument("--speed", type=_config_number("replay_speed"), default=1.0, help="playback speed factor")
    rep.add_argument("--loop", action="store_true", help="start again at the end")
    rep.add_argument("--udp-token", default=os.environ.get("POSE_UDP_TOKEN"),
                     help="shared secret sent as meta.token, the Blender add-on's Token (default: $POSE_UDP_TOKEN); "
                          "a recording keeps none")
    rep.set_defaults(func=cmd_replay)

    _convert_parser(sub)

    exp = sub.add_parser("export-onnx", help="export (and int8-quantize) the model to ONNX once",
                         formatter_class=_Formatter)
    _model_args(exp)
    exp.add_argument("--out", default=None, help="also copy the .onnx here (default: the cache in checkpoints/onnx/)")
    exp.set_defaults(func=cmd_export)

    bench = sub.add_parser("bench", help="processed fps and capture-to-send latency on a video", add_help=False)
    bench.set_defaults(func=cmd_bench)
    panel = sub.add_parser("panel", help="open the Streamlit control panel", add_help=False)
    panel.set_defaults(func=cmd_panel)
    web = sub.add_parser("web", help="the Gradio web app: upload a video, download the animation", add_help=False)
    web.set_defaults(func=cmd_web)
    return parser


def _convert_parser(sub: argparse._SubParsersAction) -> None:
    conv = sub.add_parser(
        "convert", help="a recorded video to a finished animation, offline (.fbx .bvh .glb .blend .jsonl .mp4)",
        formatter_class=_Formatter,
        description="Run the whole chain on a video file without UDP or a live Blender, using the future as well "
                    "as the past: two-sided smoothing of the 2D keypoints and of the 3D motion (no lag), gaps of "
                    "short occlusions filled, one armature per performer. Blender outputs are written by the "
                    "add-on's own code in a headless Blender (the bpy module).",
        epilog="examples:\n  pose-server convert clip.mp4 -o take.fbx\n"
               "  pose-server convert clip.mp4 -o take.fbx -o take.glb -o take.jsonl -o overlay.mp4 --person all")
    conv.add_argument("video", help="a video file or an image folder")
    conv.add_argument("-o", "--output", action="append", required=True, metavar="FILE",
                      help="output, repeatable: .fbx .glb .blend (every performer in one file, an armature "
                           "each), .bvh (one skeleton a file: take_person3.bvh, ... when there are several), "
                           ".jsonl (pose packets, for the add-on or `replay`), .mp4 (overlay)")
    conv.add_argument("--person", default="all", metavar="ID|all", help="one track id, or every performer")
    conv.add_argument("--max-frames", type=_config_number("max_frames"), default=None,
                      help="convert only the first N frames")
    _model_args(conv)
    g = conv.add_argument_group("people and signal")
    _people_args(g, max_people=4)
    g.add_argument("--kpt-threshold", type=_config_number("kpt_threshold"), default=0.3,
                   help="keypoint score below which a keypoint is missing")
    g.add_argument("--smooth-2d", type=number_in(0.0, 1.0), default=0.05, metavar="S",
                   help="sigma (s) of the two-sided Gaussian on the keypoints; 0 = none")
    g.add_argument("--smooth-3d", type=number_in(0.0, 1.0), default=None, metavar="S",
                   help="sigma (s) of the two-sided Gaussian on the 3D body; 0 = none; left out: the lifter's own "
                        "(0.03 learned, 0.08 geometric)")
    g.add_argument("--smooth-root", type=number_in(0.0, 1.0), default=0.08, metavar="S",
                   help="sigma (s) of the two-sided Gaussian on the 3D path of the pelvis; 0 = none")
    g.add_argument("--max-gap", type=number_in(0.0, 5.0), default=0.5, metavar="S",
                   help="longest occlusion (s) filled by interpolation")
    g.add_argument("--stride", type=int, default=1, choices=(1, 2, 3, 4),
                   help="run ViTPose on every N-th frame only and interpolate the others: about N times faster "
                        "2D, smoother and less precise on fast moves")
    g.add_argument("--no-lock-feet", action="store_true",
                   help="do not move the body to keep a foot on the floor where it was put down")
    g.add_argument("--lifter", choices=("learned", "geometric"), default="learned",
                   help="3D lifter, as `run`'s: the temporal network (causal: run forward, smoothed two-sided "
                        "after it) or the geometric lifter")
    g.add_argument("--no-depth-prior", action="store_true", help="geometric lifter: without the learned depth prior")
    add_swap_guard_arg(g)
    add_unmeasurable_args(g, pitch_over="the whole video")
    conv.add_argument("--no-progress", action="store_true", help="no progress bar")
    conv.set_defaults(func=cmd_convert)


def cmd_convert(args: argparse.Namespace) -> int:
    from .convert import ConvertOptions, convert

    if not Path(args.video).exists():
        raise FileNotFoundError(f"video not found: {args.video}")
    checkpoint, size = _checkpoint_of(args)
    cfg = PipelineConfig(
        source=args.video, checkpoint=checkpoint, model_size=size, model_config=args.model_config,
        dataset=args.dataset, device=args.device, backend=args.backend, quantize=args.quantize,
        precision=args.precision,
        flip_test=args.flip_test, threads=args.threads, detector=args.detector, det_threshold=args.det_threshold,
        det_interval=args.det_interval, max_people=args.max_people, kpt_threshold=args.kpt_threshold,
        lifter=args.lifter, depth_prior=not args.no_depth_prior, performer_height=args.performer_height,
        camera_hfov=args.hfov, camera_pitch=args.camera_pitch, max_frames=args.max_frames, udp=[],
        swap_guard=not args.no_swap_guard)
    opts = ConvertOptions(outputs=args.output, person=args.person, smooth_2d=args.smooth_2d,
                          smooth_3d=args.smooth_3d, smooth_root=args.smooth_root, max_gap=args.max_gap,
                          lock_feet=not args.no_lock_feet, stride=args.stride)
    summary = convert(cfg, opts, progress=not args.no_progress)
    print(f"converted {summary['frames']} frames ({summary['frames'] / summary['fps']:.1f} s of video) in "
          f"{summary['seconds']['total']:.1f} s ({summary['realtime_factor']:.2f}x real time: 2D "
          f"{summary['seconds']['2d']:.1f} s, 3D {summary['seconds']['lift']:.1f} s, files "
          f"{summary['seconds']['outputs']:.1f} s); performers {summary['people']}, lifted {summary['lifted']}")
    for paths in summary["files"].values():
        for path in paths:
            print(f"  {path}")
    return 0


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    checkpoint, size = _checkpoint_of(args)
    return PipelineConfig(
        source=args.source, loop=args.loop, realtime=args.realtime, max_frames=args.max_frames,
        drop_stale=True if args.drop_stale else None,
        fps_limit=args.fps_limit, camera_backend=args.camera_backend, camera_width=args.width,
        camera_height=args.height, camera_fps=args.camera_fps, checkpoint=checkpoint, model_size=size,
        model_config=args.model_config, dataset=args.dataset,
        device=args.device, backend=args.backend, quantize=args.quantize, precision=args.precision,
        flip_test=args.flip_test,
        threads=args.threads,
        detector=args.detector, det_threshold=args.det_threshold, det_interval=args.det_interval,
        max_people=args.max_people, kpt_threshold=args.kpt_threshold, min_cutoff=args.min_cutoff, beta=args.beta,
        d_cutoff=args.d_cutoff, hold_s=args.hold, lift_3d=not args.no_3d, protocol_version=args.protocol,
        lifter=args.lifter, depth_prior=not args.no_depth_prior, performer_height=args.performer_height,
        camera_hfov=args.hfov, camera_pitch=args.camera_pitch, swap_guard=not args.no_swap_guard,
        udp=_targets(args.udp) or ["127.0.0.1:9000"], udp_token=args.udp_token, vmc=_targets(args.vmc),
        vmc_person=args.vmc_person,
        record=args.record,
        preview=args.preview,
        progress=not args.no_progress, log_every=args.log_every,
    )


def _serve_control(pipeline: Pipeline, spec: str, token: str | None) -> object:
    from .control.server import serve_in_thread
    from .udp import parse_target

    try:
        host, port = parse_target(spec)
    except ValueError:
        raise ValueError(f"bad --control address {spec!r}: use HOST:PORT (127.0.0.1:8765) or [IPv6]:PORT") from None
    handle = serve_in_thread(pipeline, host, port, token)
    log.info("control API on %s", getattr(handle, "url", f"{host}:{port}"))
    return handle


def cmd_run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    pipeline = Pipeline(cfg)
    control = _serve_control(pipeline, args.control, args.control_token) if args.control else None
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        pipeline.start()
        while not stop.is_set():
            if pipeline.wait(timeout=0.2):
                if control is None:
                    break
                stop.wait(0.2)  # the source ended; with a control API the server stays up for the next start
    except KeyboardInterrupt:
        log.info("interrupted: stopping")
    finally:
        signal.signal(signal.SIGTERM, previous)
        pipeline.stop()
        if control is not None:
            control.stop()
    st = pipeline.status()
    log.info("done: %d frames sent, %d dropped, %d corrupt; latency p50 %s ms, p95 %s ms%s", st["frames"],
             st["dropped_frames"], st["corrupt_frames"], st["latency_ms"]["p50"], st["latency_ms"]["p95"],
             f"; recorded {cfg.record}" if cfg.record else "")
    if st["error"]:
        print(f"pose-server: error: {st['error']}", file=sys.stderr)
        return 1
    if st["frames_read"] == 0 and st["corrupt_frames"] > 0:
        from .sources import redact_url

        print(f"pose-server: error: none of the {st['corrupt_frames']} frames of {redact_url(str(cfg.source))} "
              "could be read; check the files are images or a video OpenCV can decode", file=sys.stderr)
        return 1
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .protocol import check_token
    from .record import load_session, replay
    from .udp import UdpSender

    if args.udp_token:
        check_token(args.udp_token)
    packets = load_session(args.session)  # read and checked once, before anything is sent
    sender = UdpSender(_targets(args.udp) or ["127.0.0.1:9000"])
    from tqdm import tqdm

    total = len(packets)
    with tqdm(total=total, unit="packet", desc=Path(args.session).name) as bar:
        try:
            n = replay(packets, lambda data, _p: sender.send(data), speed=args.speed, loop=args.loop,
                       on_packet=lambda i: bar.update(1) if i <= total else None, token=args.udp_token)
        except KeyboardInterrupt:
            n = bar.n
    sender.close()
    log.info("replayed %d packets to %s", n, ", ".join(sender.targets))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import shutil

    checkpoint, size = _checkpoint_of(args)
    if checkpoint in EMBEDDED_MODELS:
        raise ValueError("export-onnx exports ViTPose; the embedded BlazePose runs its .tflite files as they are")
    if checkpoint == AUTO_MODEL:
        checkpoint = None  # ViTPose's default hub model
    cfg = PipelineConfig(checkpoint=checkpoint, model_size=size, model_config=args.model_config,
                         dataset=args.dataset, backend="onnx", device=args.device, quantize=args.quantize,
                         flip_test=args.flip_test, threads=args.threads)
    est = load_estimator(cfg)
    path = Path(getattr(est.backend, "path", "") or "")
    if args.out and path.is_file():
        shutil.copyfile(path, args.out)
        path = Path(args.out)
    print(path)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main

    return bench_main(args.rest)


def cmd_panel(args: argparse.Namespace) -> int:
    from .panel import launch

    return int(launch(args.rest) or 0)


def cmd_web(args: argparse.Namespace) -> int:
    from .web import launch

    return int(launch(args.rest) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # bench and panel own their flags: pass everything after the subcommand through untouched.
    passthrough = {"bench", "panel", "web"}
    first, i = None, 0
    while i < len(argv):  # the first positional, skipping top-level options and their values
        if argv[i] == "--log-level":
            i += 2
            continue
        if not argv[i].startswith("-"):
            first = i
            break
        i += 1
    if first is not None and argv[first] in passthrough:
        args = parser.parse_args(argv[: first + 1])
        args.rest = argv[first + 1:]
    else:
        args = parser.parse_args(argv)
    # Our loggers at the chosen level; third-party ones (e.g. the ONNX quantizer) only from WARNING up.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("pose_server").setLevel(getattr(logging, args.log_level))
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        from tqdm.contrib.logging import logging_redirect_tqdm

        with logging_redirect_tqdm():
            return func(args)
    except KeyboardInterrupt:
        return 130
    except USER_ERRORS as exc:
        if args.verbose:
            raise
        print(f"pose-server: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
