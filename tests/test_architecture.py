"""The package's architecture is a contract: the import layers (import-linter), ruff's lint and format, module
size, and the module map in telucodec/__init__.py all hold, and each check fails on a deliberate violation."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib  # Python 3.11+
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

import telucodec

ROOT = Path(__file__).resolve().parents[1]
PKG = Path(telucodec.__file__).parent
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
LAYERS = next(c for c in CONTRACTS if c["id"] == "layers")["layers"]
MAX_LINES = 400


def modules() -> set:
    """Every module of the package as a dotted name under telucodec (subpackage __init__ files excluded)."""
    out = set()
    for path in PKG.rglob("*.py"):
        if path.name in ("__init__.py", "__main__.py"):
            continue
        out.add(".".join(path.relative_to(PKG).with_suffix("").parts))
    return out


def module_map() -> tuple:
    """The map in telucodec's docstring: [(role line, [modules])] in the order written."""
    text = telucodec.__doc__.split("Module map.", 1)[1]
    roles = []
    for line in text.splitlines():
        if line.startswith("      ") and line.strip():
            roles[-1][1].append(line.split()[0])
        elif line.startswith("    ") and line.strip():
            roles.append((line.strip(), []))
    return roles


def run(cmd, cwd=ROOT, env_path=None):
    env = None
    if env_path:
        import os

        env = dict(os.environ, PYTHONPATH=str(env_path))
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)


def test_the_module_map_lists_every_module_under_its_role_in_the_contract_order():
    roles = module_map()
    layer_names = [" | ".join(p.strip().removeprefix("telucodec.") for p in layer.split("|")) for layer in LAYERS]
    assert [r for r, _ in roles] == layer_names
    listed = [m for _, ms in roles for m in ms]
    assert len(listed) == len(set(listed)), "a module is listed twice"
    assert set(listed) == modules()
    for role, ms in roles:  # each module sits under the role that owns its folder
        owners = [p.strip() for p in role.split("|")]
        for m in ms:
            assert m.split(".")[0] in owners, (m, role)


def test_the_top_level_is_a_dozen_roles_and_foundations():
    """Nine role folders and four foundation modules: a new role has to earn its place."""
    entries = [p.name for p in PKG.iterdir() if not p.name.startswith(("__", "."))]
    assert len(entries) <= 13, sorted(entries)


def test_no_module_is_over_400_lines():
    long = {
        m: n
        for m in modules()
        if (n := len((PKG / (m.replace(".", "/") + ".py")).read_text().splitlines())) > MAX_LINES
    }
    assert not long


def test_fit_fits_on_one_screen():
    import inspect

    from telucodec.training.loop import fit

    assert len(inspect.getsource(fit).splitlines()) <= 60


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter is not installed")
def test_the_import_contracts_hold_and_catch_a_violation(tmp_path):
    ok = run(["lint-imports"])
    assert ok.returncode == 0, ok.stdout[-2000:]
    # the same contracts on a copy of the package whose codec imports the training loop (a layer broken upward)
    copy = tmp_path / "src"
    shutil.copytree(PKG, copy / "telucodec", ignore=shutil.ignore_patterns("__pycache__"))
    model = copy / "telucodec" / "codec" / "model.py"
    model.write_text(model.read_text() + "\n\ndef _broken():\n    from telucodec.training import loop  # noqa\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bad = run(["lint-imports"], cwd=tmp_path, env_path=copy)
    assert bad.returncode != 0
    assert "telucodec.codec.model -> telucodec.training.loop" in bad.stdout


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
def test_ruff_lint_and_format_hold_and_catch_a_violation(tmp_path):
    for cmd in (["ruff", "check", "."], ["ruff", "format", "--check", "."]):
        r = run(cmd)
        assert r.returncode == 0, (cmd, r.stdout[-2000:])
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "bad.py").write_text("import os\nx=[1,2 ]\n")  # an unused import, unformatted
    assert run(["ruff", "check", "bad.py"], cwd=tmp_path).returncode != 0
    assert run(["ruff", "format", "--check", "bad.py"], cwd=tmp_path).returncode != 0


def test_the_cli_entry_point_is_stable():
    r = run([sys.executable, "-m", "telucodec", "--help"])
    assert r.returncode == 0 and "encode" in r.stdout
    from telucodec.cli import main

    assert callable(main) and callable(telucodec.load)


def test_the_readme_layout_table_names_every_role_folder():
    import re

    layout = (ROOT / "README.md").read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    folders = {p.name for p in PKG.iterdir() if p.is_dir() and not p.name.startswith("__")}
    named = set(re.findall(r"^\| `telucodec/(\w+)/` \|", layout, flags=re.M))
    assert named == folders


def test_every_results_folder_names_the_command_that_made_it():
    """Each folder under results/ has a README naming a command (`python -m telucodec ...`, `python scripts/...`,
    `bash scripts/...`), or its parent's README does and names the folder."""
    import re

    command = re.compile(r"(python|bash) (-m telucodec|scripts/)")
    missing = []
    for folder in sorted(p for p in (ROOT / "results").rglob("*") if p.is_dir()):
        own = folder / "README.md"
        if own.exists():
            ok = bool(command.search(own.read_text()))
        else:
            parent = next((a / "README.md" for a in folder.parents if (a / "README.md").exists()), None)
            text = parent.read_text().lower() if parent else ""
            words = re.findall(r"[a-z]+", folder.name.lower())  # "seed1-nine" is named as "seed<k>-nine"
            ok = bool(command.search(text)) and all(w in text for w in words)
        if not ok:
            missing.append(str(folder.relative_to(ROOT)))
    assert not missing
