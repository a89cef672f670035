"""environment.yml (conda) and pyproject.toml (pip) name the same packages; the CPU path pins torch.

Only the CPU venv path can be tested on these machines (no conda channel is reachable), so this test
is what keeps the conda file honest: same package set, same lower bounds.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from conftest import ROOT

# conda-forge name -> PyPI name
CONDA_ALIASES = {"pytorch": "torch"}
# Named in pyproject but deliberately not installed by environment.yml, with the reason.
ONLY_IN_PYPROJECT = {
    "vllm": "CUDA-only and pins its own torch: a commented GPU note in environment.yml",
    "verl": "the verl extra pins transformers<5.11: it lives in its own venv (make test builds .venv-verl)",
    "transferqueue": "part of the verl extra (its own venv)",
    "cachetools": "part of the verl extra (its own venv)",
    "sr1": "the test extra's self-reference (sr1[data,...]); environment.yml installs sr1 with `-e .`",
}
# Named in environment.yml only: the interpreter and the installer.
ONLY_IN_ENVIRONMENT = {"python", "pip"}


def canonical(name: str) -> str:
    """PEP 503 name normalisation (PyStemmer == pystemmer, faiss_cpu == faiss-cpu)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_requirements() -> dict[str, SpecifierSet]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    out: dict[str, SpecifierSet] = {}
    for text in reqs:
        r = Requirement(text)
        out[canonical(r.name)] = r.specifier
    return out


def conda_spec(text: str) -> tuple[str, SpecifierSet]:
    """`name>=1.0` / `name=3.11` (conda match spec, the subset we use) -> (name, specifier)."""
    m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", text.strip())
    assert m, f"environment.yml: cannot parse {text!r}"
    name, spec = m.groups()
    if re.fullmatch(r"=[^=<>!].*", spec):  # conda's `=3.11` means 3.11.*
        spec = f"=={spec[1:]}.*"
    return canonical(CONDA_ALIASES.get(name, name)), SpecifierSet(spec)


def environment_requirements() -> dict[str, SpecifierSet]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out: dict[str, SpecifierSet] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for line in dep.get("pip", []):
                if line.startswith("-"):  # -e . and pip options
                    continue
                r = Requirement(line)
                out[canonical(r.name)] = r.specifier
        else:
            name, spec = conda_spec(dep)
            out[name] = spec
    return out


def test_environment_yml_and_pyproject_name_the_same_packages():
    pip_side = set(pyproject_requirements()) - set(ONLY_IN_PYPROJECT)
    conda_side = set(environment_requirements()) - ONLY_IN_ENVIRONMENT
    assert conda_side == pip_side, (
        f"add to environment.yml: {sorted(pip_side - conda_side)}; "
        f"add to pyproject.toml (or explain in tests/test_packaging.py): {sorted(conda_side - pip_side)}"
    )


def test_lower_bounds_agree():
    pip_side, conda_side = pyproject_requirements(), environment_requirements()
    differ = {n: (str(pip_side[n]), str(conda_side[n])) for n in set(pip_side) & set(conda_side)
              if pip_side[n] != conda_side[n]}
    assert not differ, f"version bounds differ (pyproject, environment.yml): {differ}"


def test_exceptions_are_real():
    # Every deliberate exception must still be needed, or the dicts rot.
    assert set(ONLY_IN_PYPROJECT) <= set(pyproject_requirements())
    env = environment_requirements()
    assert ONLY_IN_ENVIRONMENT <= set(env) and not set(ONLY_IN_PYPROJECT) & set(env)
    assert "vllm" in (ROOT / "environment.yml").read_text()  # the GPU note is there
    assert env["python"].contains("3.11.9")


def test_conda_spec_parsing():
    assert conda_spec("pytorch>=2.4") == ("torch", SpecifierSet(">=2.4"))
    assert conda_spec("python=3.11")[1].contains("3.11.2") and not conda_spec("python=3.11")[1].contains("3.12")
    assert conda_spec("PyStemmer") == ("pystemmer", SpecifierSet(""))


def makefile_variables(text: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Z_]+)\s*:?=\s*(.*?)\s*$", text, flags=re.M))


def test_makefile_cpu_path_pins_torch():
    text = (ROOT / "Makefile").read_text()
    pin = makefile_variables(text).get("TORCH_CPU")
    assert pin == "torch==2.13.*", f"Makefile TORCH_CPU is {pin!r}"
    # every install that resolves dependencies must pin the CPU torch (a --no-deps install cannot pull one)
    installs = [line for line in text.splitlines()
                if ("pip install" in line or "install_venv.py" in line) and "-e" in line and "--no-deps" not in line]
    assert installs and all("$(TORCH_CPU)" in line for line in installs), installs
    # the pin must satisfy pyproject's own bound on torch
    assert pyproject_requirements()["torch"].contains("2.13.0")


def test_pyproject_declares_the_console_script():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["sr1"] == "sr1lib.cli:main"


@pytest.mark.parametrize("name", ["faiss_cpu", "Sentence.Transformers", "PyStemmer"])
def test_canonical_names(name):
    assert canonical(name) == canonical(name.lower().replace("_", "-").replace(".", "-"))


def load_installer():
    spec = importlib.util.spec_from_file_location("install_venv", ROOT / "tools" / "install_venv.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_installer_passes_pips_settings_to_uv():
    inst = load_installer()
    listing = ("global.find-links='/opt/wheels'\n"
               "global.extra-index-url='file:///a/simple file:///b/simple'\n"
               "global.constraint='/etc/c.txt'\n"
               "global.cert='/etc/ssl/ca.crt'\n"
               "user.index-url='https://mirror/simple'\n"
               ":env:.find-links='/env/wheels'\n"
               ":env:.default-timeout='180'\n")
    flags = inst.uv_flags(inst.pip_settings(listing))
    pairs = list(zip(flags[::2], flags[1::2]))
    assert ("--index-strategy", "unsafe-best-match") in pairs  # pip's choice of the best version over all indexes
    # the environment variable overrides the file, as it does for pip; several values become several flags
    assert [v for f, v in pairs if f == "--find-links"] == ["/env/wheels"]
    assert [v for f, v in pairs if f == "--extra-index-url"] == ["file:///a/simple", "file:///b/simple"]
    assert ("--index-url", "https://mirror/simple") in pairs and ("--constraint", "/etc/c.txt") in pairs
    assert not any("cert" in f or "timeout" in f for f in flags)
