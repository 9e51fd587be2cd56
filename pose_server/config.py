"""The capture server's configuration: PipelineConfig, the hub models it names, and the estimator it asks for."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_MODEL = "usyd-community/vitpose-base-simple"
LIFTERS = {"learned": "LearnedLifter", "geometric": "Lifter"}  # config value -> class in pose_server.lift
HUB_MODELS = {
    "small": "usyd-community/vitpose-plus-small",
    "base": "usyd-community/vitpose-base-simple",
    "large": "usyd-community/vitpose-plus-large",
    "huge": "usyd-community/vitpose-plus-huge",
}

# The embedded model (BlazePose landmarks out of the mediapipe wheel, fetched by `make`): name -> variant.
EMBEDDED_MODELS = {"blazepose": "full", "blazepose-lite": "lite", "blazepose-full": "full", "blazepose-heavy": "heavy"}
# Inference backends (auto: the fastest accurate one, measured once per machine) and the precisions they take:
# the command lines, the control API and the panel all offer these.
BACKENDS = ("auto", "torch", "onnx", "openvino")
PRECISIONS = ("fp32", "bf16", "int8", "fp16")
AUTO_MODEL = "auto"  # ViTPose when its weights are here or downloadable, else the embedded model

# Fields applied while running; every other field restarts the pipeline.
LIVE_FIELDS = {"min_cutoff", "beta", "d_cutoff", "hold_s", "kpt_threshold", "det_threshold", "det_interval",
               "max_people", "udp", "fps_limit", "protocol_version", "lift_3d", "detector", "loop", "max_frames",
               "record", "log_every", "udp_token", "vmc", "vmc_person"}


@dataclass
class PipelineConfig:
    """Everything the pipeline needs; the control API reads and changes these fields by name."""

    source: str | int = "0"
    loop: bool = False  # restart a video file / image folder / recording at its end
    realtime: bool = False  # pace files to their frame rate (else as fast as possible)
    drop_stale: bool | None = None  # keep only the newest frame at each stage; None = for live sources only
    max_frames: int | None = None  # stop after this many frames
    camera_backend: str = "any"  # any | v4l2 | ffmpeg | gstreamer | dshow | msmf | avfoundation
    camera_width: int | None = None
    camera_height: int | None = None
    camera_fps: float | None = None
    checkpoint: str | None = None  # file, folder or Hugging Face hub id; None = DEFAULT_MODEL / model_size
    model_config: str | None = None  # official ViTPose python config or configs/*.json for a bare .pth
    dataset: str | None = None  # ViTPose+ head: coco | aic | mpii | ap10k | apt36k | wholebody
    model_size: str | None = None  # small | base | large | huge (hub model when no checkpoint is given)
    device: str = "cpu"
    backend: str = "auto"  # auto (fastest accurate one, measured once per machine) | onnx | openvino | torch
    quantize: bool = True  # int8 dynamic quantization (onnx backend)
    precision: str | None = None  # openvino: fp32 | bf16 | int8; torch: fp32 | fp16 | bf16 (None: fp32, CUDA fp16)
    flip_test: bool = False
    threads: int | None = None  # inference threads (None = every core)
    detector: str = "auto"  # auto | yolox | yolox-tiny | hog | full-frame | path/to/model.onnx
    det_threshold: float = 0.3
    kpt_threshold: float = 0.3
    det_interval: int = 30  # frames between detector runs while every track holds
    max_people: int = 1
    min_cutoff: float = 1.0
    beta: float = 0.05
    d_cutoff: float = 1.0
    hold_s: float = 0.25
    swap_guard: bool = True  # undo a detector's left/right exchange of the upper or lower body (left_right.py)
    lift_3d: bool = True
    lifter: str = "learned"  # learned (the temporal network, resources/models/temporal_lifter.npz) | geometric
    depth_prior: bool = True  # the lifter's learned depth prior (resources/models/depth_prior.npz)
    # What monocular video cannot tell the lifter: the performer's height (the skeleton's scale), the camera's
    # horizontal field of view (its focal length) and how far it looks down (negative: up), in degrees; a pitch of
    # None is estimated from the performers' upright bodies (lift/world.py; the geometric lifter takes it as level).
    performer_height: float = 1.75
    camera_hfov: float = 60.0
    camera_pitch: float | None = 0.0
    protocol_version: int = 4  # 2 adds per-bone rotations, 3 foot contacts, 4 hands (whole-body models)
    udp: list[str] = field(default_factory=lambda: ["127.0.0.1:9000"])
    # Shared secret sent as meta.token: a Blender listening on anything but 127.0.0.1 accepts only
    # packets that carry its token.
    udp_token: str | None = None
    # VMC protocol (OSC over UDP) targets for Unity, Unreal, VSeeFace, Warudo...: the same motion on a humanoid.
    vmc: list[str] = field(default_factory=list)
    vmc_person: int | None = None  # the track id the VMC avatar follows; None: the largest, kept while tracked
    fps_limit: float = 0.0  # 0 = no limit
    record: str | None = None  # JSON-lines session file
    preview: str | None = None  # overlay .mp4
    replay_speed: float = 1.0
    progress: bool = False  # tqdm bar for files (the CLI turns it on)
    log_every: float = 5.0  # seconds between fps/latency log lines

    @property
    def model(self) -> str:
        if self.checkpoint:
            return str(self.checkpoint)
        return HUB_MODELS.get(self.model_size or "", DEFAULT_MODEL)


def load_estimator(cfg: PipelineConfig) -> Any:
    """The estimator a config asks for: ViTPose (int8 only applies to the ONNX backend), the embedded BlazePose
    (``blazepose``, ``blazepose-lite|full|heavy``) or ``auto``, which resolves ``cfg.checkpoint`` to the model
    it loaded."""
    if cfg.model == AUTO_MODEL:
        return _load_auto(cfg)
    if cfg.model in EMBEDDED_MODELS:
        return _load_blazepose(cfg, EMBEDDED_MODELS[cfg.model])
    return _load_vitpose(cfg)


def _load_auto(cfg: PipelineConfig) -> Any:
    from .vitpose.configs import ModelLoadError

    vitpose = HUB_MODELS.get(cfg.model_size or "", DEFAULT_MODEL)
    cfg.checkpoint = vitpose
    try:
        return _load_vitpose(cfg)
    except ModelLoadError as exc:
        reason = str(exc).splitlines()[0]
    cfg.checkpoint = "blazepose-full"
    log.warning("model auto: no ViTPose weights in checkpoints/ and none downloadable (%s); using the embedded "
                "BlazePose-full model instead. For ViTPose, run once with network or copy its files as "
                "docs/models.md says, then use --model auto or --model %s.", reason, vitpose)
    return _load_blazepose(cfg, "full")


def _load_blazepose(cfg: PipelineConfig, variant: str) -> Any:
    from .blazepose import BlazePoseEstimator

    if cfg.dataset not in (None, "coco"):
        raise ValueError(f"--model {cfg.model} gives the 17 COCO body keypoints (plus heels and big toes in its "
                         f"debug output): BlazePose has no whole-body face and hand points, so --dataset "
                         f"{cfg.dataset} needs a ViTPose+ checkpoint (docs/models.md)")
    log.info("loading the embedded BlazePose-%s model (LiteRT, %s)", variant, cfg.device)
    return BlazePoseEstimator(variant, threads=cfg.threads)


def _load_vitpose(cfg: PipelineConfig) -> Any:
    """ViTPose as the config asks (``quantize`` only applies to the ONNX backend, ``precision`` to OpenVINO
    and PyTorch; ``auto`` picks both)."""
    try:
        from .vitpose import VitPoseEstimator
    except ImportError:
        from .vitpose.estimator import VitPoseEstimator
    if cfg.backend == "onnx" and cfg.precision not in (None, "fp32", "int8"):
        raise ValueError(f"ONNX Runtime runs fp32 or int8, not {cfg.precision}; use --backend openvino or torch")
    # for ONNX a precision asked for decides (quantize is on by default, and fp32 asked for ran int8)
    quantize = cfg.backend == "onnx" and (cfg.quantize if cfg.precision is None else cfg.precision == "int8")
    precision = cfg.precision if cfg.backend in ("openvino", "torch") else None
    log.info("loading %s (%s, %s%s)", cfg.model, cfg.backend, cfg.device,
             ", int8" if quantize else f", {precision}" if precision else "")
    extra = {"threads": cfg.threads} if cfg.threads else {}
    return VitPoseEstimator(cfg.model, config=cfg.model_config, backend=cfg.backend, device=cfg.device,
                            quantize=quantize, precision=precision, flip_test=cfg.flip_test, dataset=cfg.dataset,
                            **extra)
