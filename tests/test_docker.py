"""docker/Dockerfile cannot be built here (no container engine on the development machine or in CI): these
tests keep its install steps in step with the Makefile's and check what the issue asks of the image."""

import re

from tests.conftest import ROOT

DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()


def run_lines(text: str) -> str:
    """The RUN instructions, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return "\n".join(line for line in joined.splitlines() if line.startswith("RUN "))


def test_installs_the_makefiles_torch_first_then_the_package_with_constraints():
    make_torch = re.search(r"pip install --quiet (torch==\S+)", MAKEFILE).group(1)
    runs = run_lines(DOCKERFILE)
    torch_at = runs.index(f"pip install {make_torch}")
    package_at = runs.index("pip install -c constraints.txt -e .")
    assert torch_at < package_at, "torch first, as the Makefile does, so nothing pulls another build"
    assert "-c constraints.txt" in MAKEFILE
    bpy_pin = re.search(r'"(bpy==[\d.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert bpy_pin in runs, "convert's Blender side needs the same bpy as the tests use"


def test_runtime_image_is_non_root_without_build_tools_with_the_models_volume():
    final = DOCKERFILE.split("\nFROM ")[-1]  # the last stage is the image
    assert re.search(r"^USER mocap$", final, re.M)
    assert not re.search(r"\b(gcc|g\+\+|build-essential|make|git)\b", run_lines(final))
    assert 'VOLUME ["/app/checkpoints"]' in final
    for port in ("7860", "8501"):
        assert port in final.split("EXPOSE", 1)[1].splitlines()[0]
    assert "--device /dev/video0" in DOCKERFILE  # the webcam, documented where the image is
