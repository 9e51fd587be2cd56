"""The panel's decisions as plain functions (tested without a browser): what a form change sends to
the server, how a status becomes metrics and chart rows, where uploads go."""

from __future__ import annotations

import math
import re
import time
from collections import deque
from pathlib import Path
from typing import Any

from pose_server.control import messages as m

DEFAULT_CLIP = "resources/videos/default.mp4"
SOURCE_KINDS = ("Bundled clip", "Video file", "Upload", "Webcam")
UPLOAD_DIR = Path("out/uploads")


def field_range(name: str) -> tuple[float, float]:
    """The control API's range for a numeric config field, for the widget that edits it."""
    spec = m.CONFIG_FIELDS[name]
    return float(spec.min), float(spec.max)


def source_kind(source: Any) -> str:
    """Which radio button the current source belongs to."""
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        return "Webcam"
    if source is None or str(source).endswith(DEFAULT_CLIP):
        return "Bundled clip"
    if str(source).startswith(str(UPLOAD_DIR)):
        return "Upload"
    return "Video file"


def source_value(kind: str, path: str = "", webcam: int = 0, upload: str | None = None) -> str | int:
    """The "source" config value for the chosen radio button; ValueError says what is missing."""
    if kind == "Bundled clip":
        return DEFAULT_CLIP
    if kind == "Webcam":
        return int(webcam)
    if kind == "Upload":
        if not upload:
            raise ValueError("choose a video file to upload first")
        return upload
    if not path.strip():
        raise ValueError("enter the path of a video file, image folder or session file on the server machine")
    return path.strip()


def parse_udp_targets(text: str) -> list[str]:
    """One host:port per line or comma; ValueError names the bad entry."""
    targets = [t.strip() for t in re.split(r"[,\n]", text) if t.strip()]
    try:
        m.check_udp_targets("udp", targets)
    except m.ProtocolError as e:
        raise ValueError(e.message) from None
    return targets


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return a == b


def config_changes(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The fields of wanted that the server knows and that differ from its current config."""
    return {k: v for k, v in wanted.items() if k in current and not _same(current[k], v)}


def describe_update(result: dict[str, Any]) -> str:
    """One sentence for the user about what a set_config did."""
    applied = result.get("applied", result.get("changes", {}))
    if not applied:
        return "Nothing changed."
    if result.get("restarted"):
        return f"Restarted the pipeline to apply: {', '.join(result.get('restart_reason') or applied)}."
    return f"Applied without a restart: {', '.join(applied)}."


def save_upload(name: str, data: bytes, folder: Path = UPLOAD_DIR) -> Path:
    """Store an uploaded clip where the server can open it (same machine); never overwrites."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).strip("._") or "upload.mp4"
    path = folder / stem
    n = 1
    while path.exists():
        path = folder / f"{Path(stem).stem}_{n}{Path(stem).suffix}"
        n += 1
    path.write_bytes(data)
    return path


def _get(d: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        cur: Any = d
        for part in k.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        if cur is not None:
            return cur
    return None


def status_metrics(status: dict[str, Any]) -> dict[str, Any]:
    """The figures the panel shows, whatever nesting the pipeline's status uses."""
    return {
        "running": bool(_get(status, "running")),
        "fps": _get(status, "fps"),
        "latency_p50": _get(status, "latency_ms.p50", "latency_p50_ms", "latency.p50"),
        "latency_p95": _get(status, "latency_ms.p95", "latency_p95_ms", "latency.p95"),
        "people": _get(status, "people"),
        "dropped": _get(status, "dropped_frames", "dropped"),
        "source": _get(status, "source"),
        "model": _get(status, "model"),
        "device": _get(status, "device"),
        "backend": _get(status, "inference", "backend"),  # what runs ("openvino fp32 (auto)"), else the setting
        "udp": _get(status, "udp_targets", "udp") or [],
        "recording": _recording_path(status.get("recording")),
        "error": _get(status, "error", "last_error"),
    }


def _recording_path(rec: Any) -> str | None:
    """The file being recorded, or None; the status gives {"active", "path", ...} (or a bare path)."""
    if isinstance(rec, dict):
        return rec.get("path") if rec.get("active") else None
    return rec if isinstance(rec, str) and rec else None


class History:
    """The last N status samples for the FPS and latency charts."""

    def __init__(self, maxlen: int = 120) -> None:
        self.rows: deque[dict[str, float]] = deque(maxlen=maxlen)

    def add(self, metrics: dict[str, Any], t: float | None = None) -> None:
        def num(v: Any) -> float:
            return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else float("nan")

        self.rows.append({
            "t": time.time() if t is None else t,
            "fps": num(metrics.get("fps")),
            "latency p50 (ms)": num(metrics.get("latency_p50")),
            "latency p95 (ms)": num(metrics.get("latency_p95")),
        })

    def table(self, columns: tuple[str, ...]) -> dict[str, list[float]]:
        """Column -> values, with "seconds ago" as the x axis."""
        if not self.rows:
            return {"seconds ago": [], **{c: [] for c in columns}}
        last = self.rows[-1]["t"]
        return {"seconds ago": [round(r["t"] - last, 1) for r in self.rows], **{c: [r[c] for r in self.rows]
                                                                               for c in columns}}


def joints_3d(packet: dict[str, Any] | None) -> list[tuple[int, list[list[float]]]]:
    """(track id, 17 joints in metres) of every person that has 3D joints in the packet."""
    if not packet:
        return []
    return [(int(p.get("id", i)), p["joints_3d"]) for i, p in enumerate(packet.get("people", []))
            if p.get("joints_3d")]
