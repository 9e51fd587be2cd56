"""Bone maps: which target bone each canonical bone (or IK effector) drives, stored as JSON presets.

A preset file (`blender_addon/presets/<name>.json`):

    {"name": "mixamo", "description": "...",
     "bones": [{"canonical": "upper_arm.L", "target": "mixamorig:LeftArm", "mode": "ROTATION"}, ...]}

`mode` is ROTATION (copy the bone's rotation), LOCATION (move the bone's head to the joint: IK
controls, the root) or BOTH. Names match exactly, else ignoring a `namespace:` prefix, so
`mixamorig1:LeftArm` or a plain `LeftArm` still match the Mixamo preset. Hand and finger slots
(`hands.HAND_SLOTS`) are optional: an armature without fingers still takes a preset that maps them, and
they do not count when a preset is detected.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from .hands import HAND_SLOTS
from .retarget import EFFECTOR_JOINTS, RIG_BONES

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"
SLOTS = RIG_BONES + tuple(EFFECTOR_JOINTS) + HAND_SLOTS
OPTIONAL_SLOTS = frozenset(HAND_SLOTS)
MODES = ("ROTATION", "LOCATION", "BOTH")
ROOT_SLOT = "hips"
LEG_SLOTS = frozenset({"thigh.L", "shin.L", "thigh.R", "shin.R", "foot.L", "foot.R"})
MIN_DETECT_SCORE = 0.6  # fraction of a preset's bones that must exist for auto-detection to pick it


class BoneMapError(ValueError):
    """A bone map that cannot drive an armature; the message says which bones and what to do."""


def list_presets() -> list[str]:
    """Names of the shipped presets, sorted."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.json"))


def preset_path(name: str) -> Path:
    return PRESETS_DIR / f"{name}.json"


def load_preset(name_or_path: str | Path) -> dict:
    """A preset by shipped name or file path: {"name", "description", "bones": [entry, ...]}."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = preset_path(str(name_or_path))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BoneMapError(f"bone map preset {path} not found; shipped presets: {', '.join(list_presets())}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BoneMapError(f"bone map preset {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("bones"), list):
        raise BoneMapError(f"bone map preset {path} needs a 'bones' list of {{canonical, target, mode}}")
    bones = validate_entries(data["bones"], source=str(path))
    return {"name": str(data.get("name") or path.stem), "description": str(data.get("description", "")),
            "bones": bones}


def validate_entries(entries: Iterable[dict], source: str = "bone map") -> list[dict]:
    """Check slots, modes and duplicates; returns clean entries or raises BoneMapError."""
    clean, seen, problems = [], set(), []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(f"entry {i} is not an object")
            continue
        slot, target = entry.get("canonical"), entry.get("target")
        mode = str(entry.get("mode", "ROTATION")).upper()
        if slot not in SLOTS:
            problems.append(f"entry {i}: unknown canonical bone {slot!r} (use one of {', '.join(SLOTS)})")
        elif slot in seen:
            problems.append(f"entry {i}: {slot} is mapped twice")
        if not isinstance(target, str) or not target:
            problems.append(f"entry {i}: target bone name missing")
        if mode not in MODES:
            problems.append(f"entry {i}: mode {mode!r} is not one of {', '.join(MODES)}")
        seen.add(slot)
        clean.append({"canonical": slot, "target": target, "mode": mode})
    if problems:
        raise BoneMapError(f"{source}: " + "; ".join(problems))
    return clean


def save_preset(path: str | Path, name: str, entries: Sequence[dict], description: str = "") -> Path:
    """Write entries as a preset file (validated first)."""
    bones = validate_entries(entries)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"name": name, "description": description, "bones": bones}, indent=2) + "\n",
                    encoding="utf-8")
    return path


def _short(name: str) -> str:
    return name.rsplit(":", 1)[-1]


def resolve_name(bone_names: Iterable[str], wanted: str) -> str | None:
    """The armature's bone for `wanted`: the exact name, else the only bone equal to it without namespace."""
    names = bone_names if isinstance(bone_names, (set, frozenset, dict)) else set(bone_names)
    if wanted in names:
        return wanted
    short = _short(wanted)
    hits = [n for n in names if _short(n) == short]
    return hits[0] if len(hits) == 1 else None


def resolve_entries(bone_names: Iterable[str], entries: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    """(entries with target names as they exist in the armature, required entries whose target is missing); an
    optional slot (OPTIONAL_SLOTS) whose bone the armature lacks is in neither."""
    names = set(bone_names)
    found, missing = [], []
    for entry in entries:
        name = resolve_name(names, entry["target"])
        if name is None:
            if entry["canonical"] not in OPTIONAL_SLOTS:
                missing.append(entry)
        else:
            found.append({**entry, "target": name})
    return found, missing


def require_entries(armature_name: str, bone_names: Iterable[str], entries: Sequence[dict]) -> list[dict]:
    """Resolved entries, or BoneMapError naming every missing bone."""
    if not entries:
        raise BoneMapError(f"the bone map for {armature_name!r} is empty: press Detect or load a preset")
    found, missing = resolve_entries(bone_names, entries)
    if missing:
        listed = ", ".join(f"{e['canonical']} -> {e['target']!r}" for e in missing)
        raise BoneMapError(f"armature {armature_name!r} has no bone(s) {listed}; fix these names in the bone map, "
                           f"or press Detect to pick a preset that fits")
    return found


def score_preset(bone_names: Iterable[str], preset: dict) -> tuple[float, int]:
    """(fraction of the preset's required bones found, count found)."""
    required = [e for e in preset["bones"] if e["canonical"] not in OPTIONAL_SLOTS]
    found, _ = resolve_entries(bone_names, required)
    total = len(required) or 1
    return len(found) / total, len(found)


def detect_preset(bone_names: Iterable[str]) -> tuple[str, float]:
    """The shipped preset that fits these bones best, and its score; BoneMapError if none fits."""
    names = set(bone_names)
    scored = []
    for name in list_presets():
        frac, count = score_preset(names, load_preset(name))
        scored.append((frac, count, name))
    if not scored:
        raise BoneMapError(f"no bone map presets in {PRESETS_DIR}")
    frac, _count, best = max(scored)
    if frac < MIN_DETECT_SCORE:
        report = ", ".join(f"{n} {f:.0%}" for f, _c, n in sorted(scored, reverse=True))
        raise BoneMapError(f"no preset fits this armature (bones found: {report}); map the bones by hand "
                           f"in the bone map list and save it as a preset")
    return best, frac
