"""Model sizes, ViTPose+ datasets, and reading model config files.

Two config formats are read:
- the official ViTPose python configs (`ViTPose_base_coco_256x192.py`, the ViTPose+ and whole-body
  ones), parsed with `ast` without mmcv or executing any code;
- our own small JSON model files in `configs/` (see `docs/models.md`).
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .model import ViTPoseArch


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says what to do about it."""


@dataclass(frozen=True)
class Dataset:
    """One ViTPose+ training dataset: its expert/head index, keypoint count and skeleton name."""

    name: str
    index: int
    num_keypoints: int
    skeleton: str


# Order of the experts and heads in ViTPose+ checkpoints (index 0 is `keypoint_head`,
# index i > 0 is `associate_keypoint_heads.{i-1}`).
DATASETS: tuple[Dataset, ...] = (
    Dataset("coco", 0, 17, "coco17"),
    Dataset("aic", 1, 14, "aic14"),
    Dataset("mpii", 2, 16, "mpii16"),
    Dataset("ap10k", 3, 17, "ap10k17"),
    Dataset("apt36k", 4, 17, "ap10k17"),  # APT-36K uses the AP-10K keypoint definition
    Dataset("wholebody", 5, 133, "wholebody133"),
)
_ALIASES = {"coco17": "coco", "coco_wholebody": "wholebody", "cocowholebody": "wholebody", "wholebody133": "wholebody",
            "aic14": "aic", "mpii16": "mpii", "ap10k17": "ap10k", "ap36k": "apt36k"}

# name -> (embed_dim, depth, num_heads); the MLP ratio is 4 for all of them.
SIZES: dict[str, tuple[int, int, int]] = {
    "small": (384, 12, 12),
    "base": (768, 12, 12),
    "large": (1024, 24, 16),
    "huge": (1280, 32, 16),
}
SIZE_LETTERS = {"s": "small", "b": "base", "l": "large", "h": "huge"}
HEADS_BY_DIM = {dim: heads for dim, _, heads in SIZES.values()}
# Width of each ViTPose+ expert in the released checkpoints.
PART_FEATURES = {"small": 192, "base": 192, "large": 256, "huge": 320}


def get_dataset(key: str | int) -> Dataset:
    """Look a dataset up by name ("coco", "wholebody", ...), skeleton name or index."""
    if isinstance(key, int):
        if 0 <= key < len(DATASETS):
            return DATASETS[key]
    else:
        name = _ALIASES.get(key.lower().replace("-", "").replace("+", ""), key.lower())
        for dataset in DATASETS:
            if dataset.name == name:
                return dataset
    names = ", ".join(f"{d.name} ({d.index})" for d in DATASETS)
    raise ModelLoadError(f"unknown dataset {key!r}; choose one of: {names}")


def dataset_for_keypoints(num_keypoints: int, hint: str = "") -> Dataset:
    """Best guess of the dataset of a single-head model from its keypoint count (and a file name hint)."""
    hint = hint.lower()
    for name in ("apt36k", "ap10k", "aic", "mpii", "wholebody"):
        if name in hint and get_dataset(name).num_keypoints == num_keypoints:
            return get_dataset(name)
    for dataset in DATASETS:  # first match: 17 -> COCO
        if dataset.num_keypoints == num_keypoints:
            return dataset
    return Dataset(f"custom{num_keypoints}", -1, num_keypoints, f"custom{num_keypoints}")


def size_name(embed_dim: int) -> str:
    """"small"/"base"/"large"/"huge" for the official widths, else "custom"."""
    for name, (dim, _, _) in SIZES.items():
        if dim == embed_dim:
            return name
    return "custom"


# --------------------------------------------------------------------------------------------
# Official python configs
# --------------------------------------------------------------------------------------------

class _Unresolved:
    """Placeholder for a config value we cannot (and need not) evaluate, e.g. an f-string of paths."""

    def __repr__(self) -> str:
        return "<unresolved>"


UNRESOLVED = _Unresolved()
# mmcv substitutes `{{_base_.x}}` textually before parsing; these are dataset metadata, not model settings.
_BASE_REFERENCE = re.compile(r"\{\{\s*_base_\.[\w.]+\s*\}\}")


class _Evaluator(ast.NodeVisitor):
    """Evaluates the literal subset of python that mmcv configs use: dict(), lists, names, subscripts."""

    def __init__(self, variables: dict[str, Any]) -> None:
        self.variables = variables

    def eval(self, node: ast.AST) -> Any:
        try:
            return self.visit(node)
        except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError):
            return UNRESOLVED

    def generic_visit(self, node: ast.AST) -> Any:
        return UNRESOLVED

    def visit_Constant(self, node: ast.Constant) -> Any:
        return node.value

    def visit_List(self, node: ast.List) -> Any:
        return [self.eval(v) for v in node.elts]

    def visit_Tuple(self, node: ast.Tuple) -> Any:
        return tuple(self.eval(v) for v in node.elts)

    def visit_Dict(self, node: ast.Dict) -> Any:
        return {self.eval(k): self.eval(v) for k, v in zip(node.keys, node.values, strict=True) if k is not None}

    def visit_Name(self, node: ast.Name) -> Any:
        return {"True": True, "False": False, "None": None}.get(node.id, self.variables.get(node.id, UNRESOLVED))

    def visit_Subscript(self, node: ast.Subscript) -> Any:
        value, key = self.eval(node.value), self.eval(node.slice)
        if value is UNRESOLVED or key is UNRESOLVED:
            return UNRESOLVED
        return value[key]

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        value = self.eval(node.operand)
        if isinstance(node.op, ast.USub) and isinstance(value, int | float):
            return -value
        return UNRESOLVED

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        left, right = self.eval(node.left), self.eval(node.right)
        if isinstance(node.op, ast.Add) and type(left) is type(right) and isinstance(left, list | tuple | str):
            return left + right
        if not all(isinstance(v, int | float) for v in (left, right)):
            return UNRESOLVED
        ops = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
               ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b}
        op = ops.get(type(node.op))
        return op(left, right) if op else UNRESOLVED

    def visit_Call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name):
            return UNRESOLVED
        args = [self.eval(a) for a in node.args]
        kwargs = {k.arg: self.eval(k.value) for k in node.keywords if k.arg}
        if node.func.id == "dict" and not args:
            return kwargs
        if node.func.id in ("list", "tuple", "range") and all(a is not UNRESOLVED for a in args) and not kwargs:
            return {"list": list, "tuple": tuple, "range": range}[node.func.id](*args)
        return UNRESOLVED


def _merge(base: dict, child: dict) -> dict:
    """mmcv inheritance: child dicts update base dicts recursively unless they say `_delete_=True`."""
    merged = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and not value.get("_delete_", False):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = {k: v for k, v in value.items() if k != "_delete_"} if isinstance(value, dict) else value
    return merged


def parse_python_text(text: str, source: str = "<config>", base_dir: Path | None = None, _depth: int = 0) -> dict:
    """Variables of an official ViTPose/mmpose python config, with `_base_` files merged in when present."""
    try:
        tree = ast.parse(_BASE_REFERENCE.sub("None", text), filename=source)
    except SyntaxError as exc:
        raise ModelLoadError(f"{source} is not a python config file (line {exc.lineno}: {exc.msg})") from exc
    variables: dict[str, Any] = {}
    evaluator = _Evaluator(variables)
    for statement in tree.body:
        if isinstance(statement, ast.Assign):
            value = evaluator.eval(statement.value)
            for target in statement.targets:
                if isinstance(target, ast.Name):
                    variables[target.id] = value
    bases = variables.pop("_base_", [])
    bases = [bases] if isinstance(bases, str) else bases
    merged: dict[str, Any] = {}
    for base in bases if isinstance(bases, list | tuple) and base_dir else []:
        base_path = base_dir / str(base)
        # Base files are optional: the model settings always live in the config itself.
        if _depth < 8 and base_path.is_file():
            base_text = base_path.read_text(encoding="utf-8")
            merged = _merge(merged, parse_python_text(base_text, str(base_path), base_path.parent, _depth + 1))
    return _merge(merged, variables)


def parse_python_config(path: str | Path) -> dict[str, Any]:
    """`parse_python_text` of a file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"cannot read config file {path}: {exc}") from exc
    return parse_python_text(text, str(path), path.parent)


@dataclass(frozen=True)
class ConfigInfo:
    """What a config file says about a model: the architecture and the heads' keypoint counts."""

    arch: ViTPoseArch
    head_keypoints: tuple[int, ...]  # one per head: keypoint_head first, then the associate heads
    name: str = ""
    dataset: str | None = None
    checkpoint: str | None = None
    hub_id: str | None = None


def _need(section: dict, key: str, where: str, path: Path) -> Any:
    value = section.get(key, UNRESOLVED) if isinstance(section, dict) else UNRESOLVED
    if value is UNRESOLVED:
        raise ModelLoadError(f"{path}: cannot read {where}.{key}; is this a ViTPose top-down config?")
    return value


def _pair(value: Any) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int | float) else (int(value[0]), int(value[1]))


def arch_from_python_config(path: str | Path, text: str | None = None) -> ConfigInfo:
    """Read the model section of an official ViTPose / ViTPose+ config (a file, or its `text`)."""
    path = Path(path)
    variables = parse_python_config(path) if text is None else parse_python_text(text, str(path))
    model = variables.get("model")
    if not isinstance(model, dict):
        raise ModelLoadError(f"{path} has no `model = dict(...)`; pass an official ViTPose config file")
    backbone = _need(model, "backbone", "model", path)
    head = _need(model, "keypoint_head", "model", path)
    num_deconv = int(head.get("num_deconv_layers", 2) or 0)
    associate = model.get("associate_keypoint_head")
    heads = [head] + [h for h in (associate if isinstance(associate, list) else []) if isinstance(h, dict)]
    counts = tuple(int(_need(h, "out_channels", "keypoint_head", path)) for h in heads)
    num_experts = int(backbone.get("num_expert", 1) or 1)
    arch = ViTPoseArch(
        embed_dim=int(_need(backbone, "embed_dim", "model.backbone", path)),
        depth=int(_need(backbone, "depth", "model.backbone", path)),
        num_heads=int(_need(backbone, "num_heads", "model.backbone", path)),
        mlp_ratio=float(backbone.get("mlp_ratio", 4)),
        qkv_bias=bool(backbone.get("qkv_bias", True)),
        img_size=_pair(backbone.get("img_size", (256, 192))),
        patch_size=_pair(backbone.get("patch_size", 16))[0],
        num_experts=num_experts,
        part_features=int(backbone.get("part_features") or 0) if num_experts > 1 else 0,
        decoder="classic" if num_deconv > 0 else "simple",
        num_keypoints=counts[0],
        deconv_channels=int((head.get("num_deconv_filters") or [256])[0]),
        upsample=int(head.get("upsample", 4) or 4),
    )
    return ConfigInfo(arch=arch, head_keypoints=counts, name=path.stem)


def arch_from_json(path: str | Path) -> ConfigInfo:
    """Read one of our JSON model files (format in docs/models.md)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read model file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path}: a model file is a JSON object, see docs/models.md")
    size = data.get("size", "base")
    size = SIZE_LETTERS.get(size, size)
    if size not in SIZES and "embed_dim" not in data:
        raise ModelLoadError(
            f"{path}: size {size!r} unknown; use one of {sorted(SIZES)} or give embed_dim, depth and num_heads"
        )
    dim, depth, heads = SIZES.get(size, (0, 0, 0))
    dataset = data.get("dataset")
    default_k = get_dataset(dataset).num_keypoints if dataset else 17
    head_keypoints = tuple(int(k) for k in data.get("head_keypoints", [data.get("num_keypoints", default_k)]))
    num_experts = int(data.get("num_experts", 1))
    try:
        arch = ViTPoseArch(
            embed_dim=int(data.get("embed_dim", dim)),
            depth=int(data.get("depth", depth)),
            num_heads=int(data.get("num_heads", heads)),
            mlp_ratio=float(data.get("mlp_ratio", 4)),
            norm_eps=float(data.get("norm_eps", 1e-6)),
            img_size=tuple(data.get("input_size", (256, 192))),
            num_experts=num_experts,
            part_features=int(data.get("part_features", PART_FEATURES.get(size, 0))) if num_experts > 1 else 0,
            decoder=data.get("decoder", "classic"),
            num_keypoints=head_keypoints[0],
        )
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"{path}: {exc}") from exc
    return ConfigInfo(
        arch=arch,
        head_keypoints=head_keypoints,
        name=str(data.get("name", path.stem)),
        dataset=dataset,
        checkpoint=data.get("checkpoint"),
        hub_id=data.get("hub_id"),
    )


def read_config(path: str | Path) -> ConfigInfo:
    """Read a config file: `.py` (official ViTPose) or `.json` (ours)."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"config file {path} not found; pass an official ViTPose .py config or a configs/*.json")
    if path.suffix == ".json":
        return arch_from_json(path)
    return arch_from_python_config(path)


def python_config_text(arch: ViTPoseArch, head_keypoints: tuple[int, ...] | None = None) -> str:
    """An official-style python config for an architecture (what mmcv stores in a checkpoint's meta)."""
    counts = head_keypoints or (arch.num_keypoints,)

    def head(k: int) -> str:
        if arch.decoder == "classic":
            deconv = (f"num_deconv_layers=2, num_deconv_filters=({arch.deconv_channels}, {arch.deconv_channels}), "
                      "num_deconv_kernels=(4, 4), extra=dict(final_conv_kernel=1, ),")
        else:
            deconv = (f"num_deconv_layers=0, num_deconv_filters=[], num_deconv_kernels=[], upsample={arch.upsample}, "
                      "extra=dict(final_conv_kernel=3, ),")
        return (f"dict(type='TopdownHeatmapSimpleHead', in_channels={arch.embed_dim}, {deconv} out_channels={k}, "
                "loss_keypoint=dict(type='JointsMSELoss', use_target_weight=True))")

    moe = arch.num_experts > 1
    lines = [
        "model = dict(",
        f"    type='{'TopDownMoE' if moe else 'TopDown'}',",
        "    pretrained=None,",
        "    backbone=dict(",
        f"        type='{'ViTMoE' if moe else 'ViT'}', img_size={tuple(arch.img_size)}, patch_size={arch.patch_size},",
        f"        embed_dim={arch.embed_dim}, depth={arch.depth}, num_heads={arch.num_heads}, ratio=1,",
        f"        use_checkpoint=False, mlp_ratio={arch.mlp_ratio:g}, qkv_bias={arch.qkv_bias}, drop_path_rate=0.1,",
    ]
    if moe:
        lines.append(f"        num_expert={arch.num_experts}, part_features={arch.part_features},")
    lines += ["    ),", f"    keypoint_head={head(counts[0])},"]
    if len(counts) > 1:
        lines.append("    associate_keypoint_head=[")
        lines += [f"        {head(k)}," for k in counts[1:]]
        lines.append("    ],")
    lines += ["    train_cfg=dict(),", "    test_cfg=dict(flip_test=True, use_udp=True))", ""]
    return "\n".join(lines)
