"""`make test`'s Blender legs: without Python 3.13 the 5.3 leg is skipped with a loud line saying how to get
it, and under CI=true a missing interpreter fails the run. Runs the real Makefile (targets that only print,
and `make -n`, which prints the commands without running them)."""

import os
import subprocess
import sys

from tests.conftest import ROOT


def make(*args: str, ci: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    env["CI"] = ci
    return subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_a_missing_python313_skips_the_53_leg_loudly_for_a_user():
    result = make("python313", "PYTHON313=/nonexistent/python3.13", ci="false")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SKIPPED: the add-on's tests on Blender 5.3" in result.stdout
    assert "pyenv install 3.13" in result.stdout and "PYTHON313=" in result.stdout


def test_a_missing_python313_fails_under_ci():
    result = make("test-bpy53", "PYTHON313=/nonexistent/python3.13", ci="true")
    assert result.returncode != 0
    assert "FAILED: the add-on's tests on Blender 5.3" in result.stdout
    assert "CI=true" in result.stderr


def test_an_interpreter_that_is_not_313_does_not_count():
    result = make("python313", f"PYTHON313={sys.executable}", ci="true")  # the main venv's Python 3.11
    assert result.returncode != 0
    assert f"'{sys.executable}' does not run it" in result.stdout


def test_make_test_runs_the_addon_tests_on_every_leg_it_can():
    plan = make("-n", "test", "PYTHON313=/nonexistent/python3.13", ci="false").stdout
    for leg in ("bpy42", "bpy45"):
        assert f".venv-{leg}/bin/python -m pytest -m bpy42 tests/addon" in plan, plan
    assert ".venv-bpy53/bin/python -m pytest" not in plan
    assert "SKIPPED: the add-on's tests on Blender 5.3" in plan


def test_make_addon_builds_the_zip_without_the_servers_venv(tmp_path):
    """`make addon` created .venv and installed torch and the whole server stack before running a build script
    that needs only the standard library."""
    result = make("-n", "addon", f"ADDON_ARGS=--out-dir {tmp_path}", ci="false")
    assert result.returncode == 0, result.stderr
    assert "pip" not in result.stdout and "venv" not in result.stdout, result.stdout
    assert f"scripts/build_addon.py --out-dir {tmp_path}" in result.stdout
    done = make("addon", f"ADDON_ARGS=--out-dir {tmp_path}", ci="false")
    assert done.returncode == 0, done.stdout + done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["vitpose_mocap-0.1.0.zip"]
