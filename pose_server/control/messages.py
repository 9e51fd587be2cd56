"""Control API message schema: commands, their arguments, replies, events and validation.

Everything here is plain data and pure functions so that the server, the client and the tests
share one definition. The wire format is documented in docs/control-api.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from pose_server.config import BACKENDS, PRECISIONS
from pose_server.protocol import MAX_STRING
from pose_server.udp import parse_target

PROTOCOL = 1
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
# Messages up to SOFT_MAX_BYTES are parsed. Larger ones, up to HARD_MAX_BYTES (the websockets
# max_size), are read and answered with a "message_too_large" error; the connection stays up.
# Beyond HARD_MAX_BYTES websockets closes the connection with code 1009 (message too big).
SOFT_MAX_BYTES = 64 * 1024
HARD_MAX_BYTES = 1024 * 1024

STREAMS = ("status", "preview", "keypoints")
ENCODINGS = ("base64", "binary")


class ProtocolError(Exception):
    """A bad request: becomes an error reply, never closes the connection."""

    def __init__(self, code: str, message: str, request_id: Any = None, cmd: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id
        self.cmd = cmd


@dataclass(frozen=True)
class Arg:
    """One typed argument of a command or one configuration field."""

    types: tuple[type, ...]
    required: bool = False
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    nullable: bool = False
    max_items: int | None = None
    max_len: int | None = None  # characters of a string
    doc: str = ""


def _num(lo: float | None, hi: float | None, doc: str, integer: bool = False, **kw: Any) -> Arg:
    return Arg((int,) if integer else (int, float), min=lo, max=hi, doc=doc, **kw)


# Command name -> its arguments. Every request may also carry "id" (string or integer), echoed back.
COMMANDS: dict[str, dict[str, Arg]] = {
    "hello": {},
    "ping": {},
    "get_status": {},
    "get_config": {},
    "set_config": {"changes": Arg((dict,), required=True, doc="configuration fields to change")},
    "start": {},
    "stop": {},
    "start_recording": {"path": Arg((str,), nullable=True, doc="session file to write; default chosen by server")},
    "stop_recording": {},
    "get_preview": {
        "max_width": _num(32, 1920, "downscale the JPEG to at most this width", integer=True),
        "encoding": Arg((str,), choices=ENCODINGS, doc="base64 in the reply, or a binary frame after it"),
    },
    "get_keypoints": {},
    "list_checkpoints": {},
    "subscribe": {
        "stream": Arg((str,), required=True, choices=STREAMS),
        "rate": _num(0.1, 30, "messages per second (default: status 2, preview 5, keypoints 10)"),
        "max_width": _num(32, 1920, "preview only: downscale to at most this width", integer=True),
        "encoding": Arg((str,), choices=ENCODINGS, doc="preview only: base64 JSON events or binary frames"),
    },
    "unsubscribe": {"stream": Arg((str,), required=True, choices=STREAMS)},
}

DEFAULT_RATES = {"status": 2.0, "preview": 5.0, "keypoints": 10.0}

# Configuration fields the API accepts in set_config, with their types and ranges. The pipeline
# validates again (it knows e.g. whether a checkpoint file exists); this table catches wrong
# types and out-of-range numbers before anything reaches it.
CONFIG_FIELDS: dict[str, Arg] = {
    # restart the pipeline when changed
    "source": Arg((str, int), doc="webcam index, video file, image folder or recorded session (.jsonl)"),
    "realtime": Arg((bool,), doc="pace files to their frame rate"),
    "drop_stale": Arg((bool,), nullable=True,
                      doc="keep only the newest frame at each stage (null: for live sources only)"),
    "threads": _num(1, 256, "inference threads (null: every core)", integer=True, nullable=True),
    "camera_backend": Arg((str,), choices=("any", "v4l2", "ffmpeg", "gstreamer", "dshow", "msmf", "avfoundation")),
    "camera_width": _num(1, 16384, "requested webcam width", integer=True, nullable=True),
    "camera_height": _num(1, 16384, "requested webcam height", integer=True, nullable=True),
    "camera_fps": _num(1, 1000, "requested webcam frame rate", nullable=True),
    "checkpoint": Arg((str,), nullable=True, doc="model weights: file, HF folder or hub id"),
    "model_config": Arg((str,), nullable=True, doc="model config for a bare .pth (official .py or configs/*.json)"),
    "dataset": Arg((str,), nullable=True, choices=("coco", "aic", "mpii", "ap10k", "apt36k", "wholebody"),
                   doc="ViTPose+ head (wholebody: 133 keypoints)"),
    "model_size": Arg((str,), nullable=True, choices=("small", "base", "large", "huge"), doc="ViTPose size"),
    "device": Arg((str,), doc="cpu, cuda, cuda:0, ..."),
    "backend": Arg((str,), choices=BACKENDS,
                   doc="inference backend (auto: the fastest accurate one on this machine)"),
    "quantize": Arg((bool,), doc="int8 dynamic quantization (onnx backend)"),
    "precision": Arg((str,), nullable=True, choices=PRECISIONS,
                     doc="openvino: fp32 | bf16 | int8; torch: fp32 | fp16 | bf16"),
    "flip_test": Arg((bool,), doc="average with the mirrored image (twice the work)"),
    "preview": Arg((str,), nullable=True, doc="write an overlay .mp4 here"),
    "replay_speed": _num(0.01, 100.0, "speed of a replayed session"),
    "lifter": Arg((str,), choices=("learned", "geometric"), doc="3D lifter: learned (temporal network) or geometric"),
    "depth_prior": Arg((bool,), doc="the geometric lifter's learned depth prior (off: geometric priors only)"),
    "swap_guard": Arg((bool,), doc="put back a detector's brief exchange of left and right labels (on by default)"),
    "performer_height": _num(0.6, 2.4, "performer's height in metres: the 3D skeleton's scale"),
    "camera_hfov": _num(20.0, 170.0, "camera's horizontal field of view in degrees (its focal length)"),
    "camera_pitch": _num(-80.0, 80.0, "degrees the camera looks down (negative: up); 0 = level; null: estimated "
                         "from the performers (the learned lifter; the geometric one takes it as level)",
                         nullable=True),
    # applied live
    "loop": Arg((bool,), doc="restart a video file at its end"),
    "max_frames": _num(1, 2**53, "stop after this many frames", integer=True, nullable=True),
    "detector": Arg((str,), doc="auto, yolox, yolox-tiny, hog, full-frame or a .onnx path"),
    "det_threshold": _num(0.0, 1.0, "person detector score threshold"),
    "kpt_threshold": _num(0.0, 1.0, "keypoint score below which a keypoint is held/predicted"),
    "det_interval": _num(1, 1000, "frames between detector runs while every track holds", integer=True),
    "max_people": _num(1, 16, "most people tracked", integer=True),
    "min_cutoff": _num(0.0001, 100.0, "One Euro minimum cutoff frequency (Hz): lower = smoother"),
    "beta": _num(0.0, 100.0, "One Euro speed coefficient: higher = less lag on fast moves"),
    "d_cutoff": _num(0.0001, 100.0, "One Euro derivative cutoff (Hz)"),
    "hold_s": _num(0.0, 10.0, "seconds a low-confidence keypoint is held/predicted"),
    "lift_3d": Arg((bool,), doc="lift keypoints to 3D joints"),
    "protocol_version": _num(1, 4, "pose packet version sent over UDP (2 adds rotations, 3 foot contacts, 4 hands)",
                             integer=True),
    "udp": Arg((list,), max_items=32, doc="UDP targets as host:port strings"),
    "udp_token": Arg((str,), nullable=True, max_len=MAX_STRING,
                     doc="shared secret sent as meta.token (Blender off loopback needs it)"),
    "vmc": Arg((list,), max_items=32, doc="VMC protocol (OSC over UDP) targets as host:port strings"),
    "vmc_person": _num(0, 2**31 - 1, "track id the VMC avatar follows (null: the largest person, kept while "
                       "tracked)", integer=True, nullable=True),
    "fps_limit": _num(0.0, 240.0, "process at most this many frames per second (0 = no limit)"),
    "record": Arg((str,), nullable=True, doc="record packets to this .jsonl file (null stops)"),
    "log_every": _num(0.1, 3600.0, "seconds between fps/latency log lines"),
    "progress": Arg((bool,), doc="tqdm bar on the server's terminal"),
}


def _type_name(types: tuple[type, ...]) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}
    if types == (int, float):
        return "number"
    return " or ".join(names.get(t, t.__name__) for t in types)


def check_value(name: str, value: Any, spec: Arg) -> None:
    """Raise ProtocolError("wrong_type"/"out_of_range") when value does not fit spec."""
    if value is None:
        if spec.nullable:
            return
        raise ProtocolError("wrong_type", f"'{name}' must be a {_type_name(spec.types)}, not null")
    # bool is an int in Python; a JSON true is never a valid number here.
    ok = isinstance(value, spec.types) and not (isinstance(value, bool) and bool not in spec.types)
    if not ok:
        got = type(value).__name__ if not isinstance(value, bool) else "boolean"
        raise ProtocolError("wrong_type", f"'{name}' must be a {_type_name(spec.types)}, got {got}: {value!r:.60}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ProtocolError("out_of_range", f"'{name}' must be finite, got {value}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
            raise ProtocolError("out_of_range", f"'{name}' must be in [{spec.min}, {spec.max}], got {value}")
    if spec.choices is not None and value not in spec.choices:
        raise ProtocolError("out_of_range", f"'{name}' must be one of {list(spec.choices)}, got {value!r:.60}")
    if isinstance(value, list) and spec.max_items is not None and len(value) > spec.max_items:
        raise ProtocolError("out_of_range", f"'{name}' may hold at most {spec.max_items} items, got {len(value)}")
    if isinstance(value, str):
        if spec.max_len is not None and len(value) > spec.max_len:
            raise ProtocolError("out_of_range", f"'{name}' may be at most {spec.max_len} characters, got {len(value)}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # JSON's "\ud800": a string no packet or file can carry
            raise ProtocolError("out_of_range", f"'{name}' contains a lone surrogate (\\ud800-\\udfff)") from None


def check_udp_targets(name: str, targets: list[Any]) -> None:
    """Every UDP target is "host:port" or "[IPv6]:port" with a port in 1..65535, as the senders parse it."""
    for t in targets:
        if not isinstance(t, str):
            raise ProtocolError("wrong_type", f"'{name}' items must be strings like \"127.0.0.1:9000\", got {t!r:.60}")
        try:
            parse_target(t)
        except ValueError:
            raise ProtocolError("out_of_range", f"'{name}' item {t!r:.60} is not host:port ([IPv6]:port) with a port "
                                               "in 1..65535") from None


def validate_config_changes(changes: dict[str, Any], known: set[str] | None = None) -> dict[str, Any]:
    """Check a set_config "changes" object field by field; returns it unchanged when valid.

    known: the fields the running pipeline actually has (its config keys). A field outside it, or
    outside CONFIG_FIELDS when the pipeline has no opinion, is an "unknown_field" error.
    """
    if not changes:
        raise ProtocolError("missing_field", "'changes' is empty: give at least one configuration field")
    allowed = set(known) if known is not None else set(CONFIG_FIELDS)
    for name, value in changes.items():
        if name not in allowed:
            raise ProtocolError("unknown_field", f"unknown configuration field '{name:.60}'; known: {sorted(allowed)}")
        spec = CONFIG_FIELDS.get(name)
        if spec is None:
            continue  # a pipeline field the API has no range for: the pipeline validates it
        check_value(name, value, spec)
        if name in ("udp", "vmc"):
            check_udp_targets(name, value)
    return changes


@dataclass
class Request:
    """One parsed and validated command."""

    cmd: str
    id: Any = None
    args: dict[str, Any] = field(default_factory=dict)


def _reject_constant(token: str) -> Any:
    raise ProtocolError("invalid_json", f"{token} is not valid JSON")


def parse_request(raw: str | bytes) -> Request:
    """Decode and validate one client message. Raises ProtocolError with the request id when known."""
    if isinstance(raw, bytes):
        raise ProtocolError("binary_not_accepted", "send commands as JSON text frames, not binary frames")
    if len(raw.encode("utf-8", "surrogatepass")) > SOFT_MAX_BYTES:
        raise ProtocolError("message_too_large", f"messages are limited to {SOFT_MAX_BYTES} bytes")
    try:
        msg = json.loads(raw, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise ProtocolError("invalid_json", f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise ProtocolError("invalid_json", "invalid JSON: nested too deeply") from None
    if not isinstance(msg, dict):
        got = type(msg).__name__
        raise ProtocolError("not_an_object", f'a message is a JSON object like {{"cmd": "ping"}}, got {got}')
    req_id, cmd = msg.get("id"), msg.get("cmd")
    named = cmd if isinstance(cmd, str) and cmd in COMMANDS else None
    if req_id is not None and (isinstance(req_id, bool) or not isinstance(req_id, (str, int))):
        raise ProtocolError("wrong_type", "'id' must be a string or an integer", cmd=named)
    if isinstance(req_id, str) and len(req_id) > 128:
        raise ProtocolError("out_of_range", "'id' may be at most 128 characters", cmd=named)
    if cmd is None:
        raise ProtocolError("missing_field", "missing 'cmd'; commands: " + ", ".join(COMMANDS), req_id)
    if not isinstance(cmd, str):
        raise ProtocolError("wrong_type", "'cmd' must be a string", req_id)
    spec = COMMANDS.get(cmd)
    if spec is None:
        raise ProtocolError("unknown_command", f"unknown command '{cmd:.60}'; commands: " + ", ".join(COMMANDS), req_id)
    args = {k: v for k, v in msg.items() if k not in ("cmd", "id")}
    try:
        for name in args:
            if name not in spec:
                raise ProtocolError("unknown_field", f"'{cmd}' takes no argument '{name:.60}'; it takes {sorted(spec)}")
        for name, arg in spec.items():
            if name not in args:
                if arg.required:
                    raise ProtocolError("missing_field", f"'{cmd}' needs '{name}' ({arg.doc or _type_name(arg.types)})")
                continue
            check_value(name, args[name], arg)
    except ProtocolError as e:
        e.request_id, e.cmd = req_id, cmd
        raise
    return Request(cmd=cmd, id=req_id, args=args)


def reply(req: Request, result: dict[str, Any]) -> dict[str, Any]:
    return {"type": "reply", "id": req.id, "cmd": req.cmd, "ok": True, "result": result}


def error(code: str, message: str, request_id: Any = None, cmd: str | None = None) -> dict[str, Any]:
    return {"type": "error", "id": request_id, "cmd": cmd, "ok": False, "error": {"code": code, "message": message}}


def error_from(e: ProtocolError) -> dict[str, Any]:
    return error(e.code, e.message, e.request_id, e.cmd)


def dumps(msg: dict[str, Any]) -> str:
    """JSON text of an outgoing message. NaN/inf become null (JSON has neither); numpy values become lists
    and numbers; anything else unknown becomes its str()."""
    return json.dumps(_clean(msg), separators=(",", ":"), default=str, allow_nan=False)


def _clean(o: Any) -> Any:
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, set)):
        return [_clean(v) for v in o]
    if hasattr(o, "tolist"):  # numpy arrays and scalars
        return _clean(o.tolist())
    return o
