"""Build the installable Blender extension zip: dist/vitpose_mocap-<version>.zip.

Only the add-on's own files go in (Python sources, the manifest, bone-map presets); caches and
anything else are left out. Install it in Blender with Edit > Preferences > Get Extensions >
Install from Disk. Standard library only.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADDON = ROOT / "blender_addon"
INCLUDE_SUFFIXES = {".py", ".toml", ".json"}
EXCLUDE_PARTS = {"__pycache__"}


def addon_files(source: Path = ADDON) -> list[Path]:
    """The files that belong in the package, sorted, relative to `source`."""
    files = []
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if not path.is_file() or EXCLUDE_PARTS & set(rel.parts) or any(p.startswith(".") for p in rel.parts):
            continue
        if path.suffix in INCLUDE_SUFFIXES:
            files.append(rel)
    return files


def build(source: Path = ADDON, out_dir: Path = ROOT / "dist") -> Path:
    """Write the zip and return its path. Raises SystemExit with a clear message on a broken source."""
    manifest_path = source / "blender_manifest.toml"
    if not manifest_path.is_file():
        raise SystemExit(f"{manifest_path} is missing: the extension needs its manifest")
    manifest = tomllib.loads(manifest_path.read_text())
    for key in ("id", "version", "blender_version_min"):
        if key not in manifest:
            raise SystemExit(f"{manifest_path} lacks '{key}'")
    files = addon_files(source)
    for rel in files:
        if rel.suffix == ".py":
            compile((source / rel).read_text(), str(rel), "exec")  # a syntax error fails the build, not Blender
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{manifest['id']}-{manifest['version']}.zip"
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rel in files:
            zf.write(source / rel, rel.as_posix())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=ROOT / "dist", help="where to write the zip (default dist/)")
    args = parser.parse_args(argv)
    out = build(out_dir=args.out_dir)
    with zipfile.ZipFile(out) as zf:
        count = len(zf.namelist())
    print(f"wrote {out} ({count} files, {out.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
