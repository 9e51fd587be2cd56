"""docker/Dockerfile's install steps in step with the Makefile's, and what the issue asks of the image. Building
and running it takes root, podman and ~15 minutes (`make docker-local`, scripts/check_docker_image.sh checks the
running image): not part of `make test`."""

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
    assert re.search(r"^USER 1000:1000$", final, re.M) and "useradd --create-home --uid 1000 mocap" in final
    assert not re.search(r"\b(gcc|g\+\+|build-essential|make|git)\b", run_lines(final))
    assert 'VOLUME ["/app/checkpoints"]' in final
    for port in ("7860", "8501"):
        assert port in final.split("EXPOSE", 1)[1].splitlines()[0]
    assert "--device /dev/video0" in DOCKERFILE  # the webcam, documented where the image is


def test_the_local_build_overrides_the_build_args_the_dockerfile_declares():
    script = (ROOT / "scripts" / "build_docker_local.sh").read_text()
    passed = set(re.findall(r"--build-arg (\w+)=", script))
    declared = set(re.findall(r"^ARG (\w+)=", DOCKERFILE, re.M))
    assert passed == {"BASE_IMAGE", "TORCH_INDEX"} and passed <= declared, (passed, declared)
    stages = re.findall(r"^FROM (\S+)", DOCKERFILE, re.M)
    assert stages == ["${BASE_IMAGE}", "${BASE_IMAGE}"], "both stages on the same base: the venv's python links"
    assert "pip install torch==2.13.0 --index-url ${TORCH_INDEX}" in run_lines(DOCKERFILE)
