"""The built wheel carries what an installed user needs, and nothing of the development tree.

Also: each backend, imported without its framework, names the extra to install.
"""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import adamp_core

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("adamp_core", "adamp_torch", "adamp_keras", "adamp_jax", "adamp_conformance")
UNTRACKED = (
    ".venv",
    ".git",
    "site",
    "build",
    "dist",
    "demo_output",
    ".*_cache",
    ".hypothesis",
    "__pycache__",
)
GOLDEN = ROOT / "conformance" / "adamp_conformance" / "golden"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """Build the wheel from a copy of the tree (setuptools writes build/ and *.egg-info)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*UNTRACKED))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(work / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (path,) = (work / "dist").glob("adamp_reference-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


def test_wheel_has_every_package_and_its_py_typed(wheel):
    names = set(wheel.namelist())
    for package in PACKAGES:
        assert f"{package}/__init__.py" in names, package
        assert f"{package}/py.typed" in names, package


def test_wheel_has_every_golden_file(wheel):
    expected = {f"adamp_conformance/golden/{p.name}" for p in GOLDEN.iterdir() if p.is_file()}
    expected = {name for name in expected if name.endswith((".json", ".npz"))}
    assert expected, "no golden files in the source tree"
    assert expected <= set(wheel.namelist())


def test_wheel_has_the_fused_cpu_kernel_source(wheel):
    """fused=True compiles this file at first use on the CPU."""
    assert "adamp_torch/_cpu_step.cpp" in wheel.namelist()


def test_wheel_leaves_out_the_development_tree(wheel):
    top_level = {name.split("/")[0] for name in wheel.namelist()}
    dist_info = {name for name in top_level if name.endswith(".dist-info")}
    assert top_level - dist_info == set(PACKAGES)


def test_wheel_metadata(wheel):
    (metadata_name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    metadata = email.message_from_bytes(wheel.read(metadata_name))
    assert metadata["Name"] == "adamp-reference"
    assert metadata["Version"] == adamp_core.__version__
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("Project-URL")
    assert set(metadata.get_all("Provides-Extra")) >= {"torch", "keras", "jax", "all"}
    license_name = metadata_name.replace("METADATA", "licenses/LICENSE")
    assert "MIT License" in wheel.read(license_name).decode()


@pytest.mark.parametrize(
    ("package", "blocked", "extra"),
    [
        pytest.param("adamp_torch", "torch", "torch", id="torch"),
        pytest.param("adamp_keras", "keras", "keras", id="keras"),
        pytest.param("adamp_jax", "jax", "jax", id="jax"),
        pytest.param("adamp_jax", "optax", "jax", id="optax"),
    ],
)
def test_backend_without_its_framework_names_the_extra(package, blocked, extra):
    # sys.modules[name] = None makes `import name` fail as if it were not installed.
    code = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        f"try:\n    import {package}\n"
        "except ImportError as error:\n    print(type(error).__name__, error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip().endswith(f'pip install "adamp-reference[{extra}]"'), result.stdout
    assert f"({blocked} is not installed)" in result.stdout
