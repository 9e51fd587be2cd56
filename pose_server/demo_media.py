"""The demo's pictures: `compare.mp4` (the video with its overlay beside the Blender render of the armature,
frame by frame) and a contact sheet of six moments (frame, overlay, rig), so a person can judge the motion."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .preview import PreviewWriter, draw_people
from .record import read_recording
from .skeleton import get_skeleton
from .sources import open_source, open_video

LABEL_COLOUR = (255, 255, 255)


def rig_frames(take: Path, t0: float, fps: float, start: int, end: int) -> list[tuple[int, int | None]]:
    """(video frame, rig frame or None) for every packet of the take, in the order they were sent.

    Blender keys the take on the scene's frame grid from the packets' capture timestamps, starting at `start`
    with the first packet it recorded (timestamp `t0`): a packet at time t shows on frame start + (t - t0) * fps.
    """
    out = []
    for packet in read_recording(take):
        frame = start + round((packet["timestamp"] - t0) * fps)
        out.append((int(packet["frame"]), frame if start <= frame <= end else None))
    return out


def write_overlay(source: Path, take: Path, out: Path, min_score: float) -> int:
    """``out``: each recorded packet's people drawn on its frame of the clip, one video frame per packet -- what the
    pipeline's live preview writes (``draw_people`` on the same packets), drawn after the run: encoding 1768x994
    frames took 12 ms of CPU a frame, which the demo's live part, with both cores busy, could not spare. The clip is
    read by the pipeline's own source, so a packet's frame index names the same frame (corrupt frames skipped and
    counted alike). Returns the frames written."""
    clip = open_source(str(source), realtime=False)
    writer = PreviewWriter(out, clip.fps)
    frame = None
    try:
        for packet in read_recording(take):
            while frame is None or frame.index < packet["frame"]:
                frame = clip.read()
                if frame is None:
                    raise ValueError(f"{source} ends before frame {packet['frame']} of {take}: is it the clip "
                                     "that was streamed?")
            bones = get_skeleton(packet.get("skeleton", "coco17")).bones
            writer.write(draw_people(frame.image, packet["people"], bones, min_score))
    finally:
        clip.close()
        writer.close()
    return writer.frames


def _fit(img: np.ndarray, height: int) -> np.ndarray:
    return cv2.resize(img, (max(1, round(img.shape[1] * height / img.shape[0])), height),
                      interpolation=cv2.INTER_AREA)


def _label(img: np.ndarray, text: str) -> np.ndarray:
    cv2.putText(img, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, LABEL_COLOUR, 1, cv2.LINE_AA)
    return img


def _rig_image(rig_dir: Path, frame: int | None, size: tuple[int, int]) -> np.ndarray:
    img = cv2.imread(str(rig_dir / f"rig_{frame:04d}.png")) if frame is not None else None
    if img is None:
        img = np.full((size[1], size[0], 3), 60, np.uint8)
        return _label(img, "no rig pose at this moment")
    return img


def _frames_at(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    """The frames of a video at the wanted indices (read in one pass; full-size frames are big)."""
    cap = open_video(path)
    frames: dict[int, np.ndarray] = {}
    index = 0
    while len(frames) < len(wanted):
        ok, img = cap.read()
        if not ok:
            break
        if index in wanted:
            frames[index] = img
        index += 1
    cap.release()
    return frames


def write_compare(overlay: Path, rig_dir: Path, mapping: list[tuple[int, int | None]], out: Path, fps: float,
                  model: str, height: int = 240) -> int:
    """overlay.mp4 beside the rig renders, one output frame per packet; returns the number of frames written."""
    cap = cv2.VideoCapture(str(overlay))
    writer = None
    written = 0
    for video_frame, rig_frame in mapping:
        ok, img = cap.read()
        if not ok:
            break
        left = _label(_fit(img, height), f"frame {video_frame}: video + 2D keypoints ({model})")
        right = _rig_image(rig_dir, rig_frame, (round(height * 4 / 3), height))
        right = _label(_fit(right, height), f"Blender rig, frame {rig_frame}" if rig_frame else "")
        both = np.hstack([left, right])
        if writer is None:
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (both.shape[1], both.shape[0]))
        writer.write(both)
        written += 1
    cap.release()
    if writer is not None:
        writer.release()
    return written


def write_sheet(source: Path, overlay: Path, rig_dir: Path, mapping: list[tuple[int, int | None]], out: Path,
                model: str, moments: int = 6, height: int = 200) -> list[int]:
    """Six moments spread over the take, one row each: the frame, the overlay, the rig. Returns the video frames."""
    usable = [i for i, (_, r) in enumerate(mapping) if r is not None]
    if not usable:
        return []
    picks = [usable[round(k * (len(usable) - 1) / max(1, moments - 1))] for k in range(moments)]
    raw = _frames_at(source, {mapping[i][0] for i in picks})
    over = _frames_at(overlay, set(picks))
    rows = []
    for i in picks:
        if i not in over or mapping[i][0] not in raw:
            continue
        video_frame, rig_frame = mapping[i]
        rows.append(np.hstack([
            _label(_fit(raw[video_frame], height), f"frame {video_frame} ({video_frame / 30:.1f} s)"),
            _label(_fit(over[i], height), f"2D: {model}"),
            _label(_fit(_rig_image(rig_dir, rig_frame, (320, 240)), height), f"Blender rig, frame {rig_frame}"),
        ]))
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), np.vstack(rows))
    return [mapping[i][0] for i in picks]
