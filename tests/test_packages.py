"""Package seams: each distribution declares what it imports and pins its siblings to the one
workspace version, layers import only downwards, and a wheel installs and works on its own."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
#: Imports point only to lower layers: core <- storage, media, executor <- dataset <- pipeline <-
#: distributed <- cli.
LAYERS = {
    "roboflow_core": 0,
    "roboflow_storage": 1,
    "roboflow_media": 1,
    "roboflow_executor": 1,
    "roboflow_dataset": 2,
    "roboflow_pipeline": 3,
    "roboflow_distributed": 4,
    "roboflow_cli": 5,
}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9_.\-]+", requirement)
    assert match, requirement
    return _normal(match.group(0))


class Package:
    """One workspace distribution, read from its pyproject.toml."""

    def __init__(self, pyproject: Path) -> None:
        self.root = pyproject.parent
        self.project = tomllib.loads(pyproject.read_text())["project"]
        self.name: str = self.project["name"]
        self.module = self._module()

    def _module(self) -> str:
        modules = [p.name for p in (self.root / "src").iterdir() if (p / "__init__.py").exists()]
        assert len(modules) == 1, modules
        return modules[0]

    @property
    def requirements(self) -> list[str]:
        return list(self.project.get("dependencies", []))

    @property
    def declared(self) -> set[str]:
        extras = self.project.get("optional-dependencies", {}).values()
        return {_requirement_name(r) for r in [*self.requirements, *(r for group in extras for r in group)]}

    def sources(self) -> Iterator[Path]:
        yield from sorted((self.root / "src" / self.module).rglob("*.py"))


PACKAGES = [
    Package(p) for p in sorted([*ROOT.glob("packages/*/pyproject.toml"), *ROOT.glob("apps/*/pyproject.toml")])
]
BY_MODULE = {p.module: p for p in PACKAGES}
BY_NAME = {_normal(p.name): p for p in PACKAGES}


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name.split(".")[0]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


@cache
def _distributions_of(module: str) -> frozenset[str]:
    return frozenset(_normal(d) for d in packages_distributions().get(module, []))


def test_every_package_is_in_the_layer_map() -> None:
    assert {p.module for p in PACKAGES} == set(LAYERS)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_layers_import_only_downwards(package: Package) -> None:
    upward = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in package.sources()
        for line, module in _imports(path)
        if module in LAYERS and module != package.module and LAYERS[module] >= LAYERS[package.module]
    ]
    assert not upward, "\n".join(upward)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_every_import_is_declared(package: Package) -> None:
    missing = []
    for path in package.sources():
        for line, module in _imports(path):
            if module in sys.stdlib_module_names or module == "__future__" or module == package.module:
                continue
            dists = _distributions_of(module) or frozenset({_normal(module)})  # not installed: its name
            if module in BY_MODULE:
                dists = frozenset({_normal(BY_MODULE[module].name)})
            if not dists & package.declared:
                missing.append(
                    f"{path.relative_to(ROOT)}:{line} imports {module} ({', '.join(dists) or '?'})"
                )
    assert not missing, f"{package.name} does not declare:\n" + "\n".join(missing)


def test_one_version_everywhere_and_siblings_pinned_to_it() -> None:
    version = tomllib.loads((ROOT / "packages/roboflow-core/pyproject.toml").read_text())["project"][
        "version"
    ]
    assert {p.project["version"] for p in PACKAGES} == {version}
    for package in PACKAGES:
        for requirement in package.requirements:
            name = _requirement_name(requirement)
            if name in BY_NAME:
                pin = re.sub(r"\[[^\]]*\]", "", requirement)
                assert pin.endswith(f"=={version}"), (
                    f"{package.name}: {requirement} is not pinned to {version}"
                )
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {version}" in changelog, "CHANGELOG.md has no section for the version"


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_metadata_and_typing_marker(package: Package) -> None:
    project = package.project
    for key in ("description", "readme", "license", "urls", "classifiers"):
        assert project.get(key), f"{package.name}: no {key}"
    assert (package.root / project["readme"]).is_file()
    assert (package.root / "src" / package.module / "py.typed").is_file()


def _uv() -> str:
    found = shutil.which(os.environ.get("UV", "uv")) or shutil.which(str(Path.home() / ".local/bin/uv"))
    if found is None:
        pytest.skip("uv is not installed")
    return found


_SMOKE = """
import importlib.util, sys, tempfile
from pathlib import Path
from roboflow_dataset.inspect import inspect_source
from roboflow_dataset.synth import write_recording
rec = write_recording(Path(tempfile.mkdtemp()) / "r.mcap", "mcap", duration_s=0.5)
summary = inspect_source(rec.path)
assert summary["message_count"] > 0, summary
from roboflow_core import loads_config
from roboflow_dataset.lerobot import read_dataset
config, out = loads_config(open(sys.argv[2]).read()), Path(tempfile.mkdtemp()) / "ds"
if sys.argv[1] == "roboflow-dataset":  # the library's own entry point
    from roboflow_dataset.convert import write_dataset
    write_dataset(rec.path, config, out)
else:
    from roboflow_pipeline import convert
    convert([rec.path], config, out)
back = read_dataset(out)
assert back.info["total_episodes"] == len(back.episodes) == 1, back.info
assert back.info["total_frames"] == len(back.data) > 0, back.info
absent = [m for m in ("click", "aetcd", "tikv_client") if importlib.util.find_spec(m)]
assert not absent, f"installed without being needed: {absent}"
print("ok", summary["message_count"], len(back.data))
"""


def test_wheels_install_alone_and_work(tmp_path: Path) -> None:
    uv = _uv()
    dist = tmp_path / "dist"
    subprocess.run([uv, "build", "--all-packages", "--wheel", "-q", "-o", str(dist)], cwd=ROOT, check=True)
    assert len(list(dist.glob("*.whl"))) == len(PACKAGES)
    config = tmp_path / "sample.toml"
    config.write_text((ROOT / "examples/sample.toml").read_text().replace("libsvtav1", "libx264"))
    for wheel in ("roboflow-dataset", "roboflow-pipeline"):
        venv = tmp_path / wheel
        subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(venv)], check=True)
        python = str(venv / "bin" / "python")
        subprocess.run(
            [uv, "pip", "install", "-q", "--python", python, "--find-links", str(dist), wheel], check=True
        )
        done = subprocess.run(
            [python, "-c", _SMOKE, wheel, str(config)], capture_output=True, text=True, cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("ok")
