"""Every Python example of the README and the documentation site runs, each as a
program of its own (or, for a pytest example, as a test file; for a client example,
against a server); and the site builds with ``mkdocs build --strict``."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

from tests.helpers import wait_for

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
EXAMPLES = [
    (page.relative_to(ROOT), i, block)
    for page in PAGES
    if page.is_file() and not page.is_symlink() and "plots" not in page.parts
    for i, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S))
]
BLOCKS = [block for _, _, block in EXAMPLES]
COMPONENT = next(b for b in BLOCKS if b.startswith("# hello_component/__init__.py"))


def kind(block: str) -> str:
    if block is COMPONENT:
        return "component"  # installed for the example that boots with it
    if "def test_" in block:
        return "pytest"
    if "rumpclient.connect()" in block:
        return "client"
    return "program"


def install_component(where: pathlib.Path) -> None:
    """The README's component, as pip would install it: a package and its entry point."""
    (where / "hello_component").mkdir()
    (where / "hello_component" / "__init__.py").write_text(COMPONENT)
    info = where / "hello_component-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hello-component\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[rumpmp.components]\nhello = hello_component:component\n"
    )


def run(argv: list[str], cwd: pathlib.Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    out = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=100)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    return out


@pytest.mark.timeout(120)
@pytest.mark.parametrize("block", BLOCKS, ids=[f"{page}:{i}" for page, i, _ in EXAMPLES])
def test_the_example_runs(block, tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    env.pop("RUMP_LOCKDEBUG", None)  # as a user runs it
    install_component(tmp_path)
    what = kind(block)
    if what == "component":
        run([sys.executable, "-c", "import hello_component"], tmp_path, env)
    elif what == "pytest":
        (tmp_path / "test_example.py").write_text(block)
        run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rump-ncpu", "2"],
            tmp_path,
            env,
        )
    elif what == "program":
        run([sys.executable, "-c", block], tmp_path, env)
    else:
        url = f"unix://{tmp_path}/kern.sock"
        env["RUMP_SERVER"] = url
        run([sys.executable, "-m", "rumpmp", "server", "-c", "2", url], tmp_path, env)
        try:
            wait_for(lambda: (tmp_path / "kern.sock").exists(), 30, "the server's socket")
            run([sys.executable, "-c", block], tmp_path, env)
        finally:
            run([sys.executable, "-m", "rumpmp", "halt"], tmp_path, env)


@pytest.mark.timeout(180)
def test_the_documentation_site_builds_strictly(tmp_path):
    pytest.importorskip(
        "mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')"
    )
    pytest.importorskip("mkdocstrings", reason="the docs extra is not installed")
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=170,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "site" / "reference" / "api" / "index.html").exists()


def test_the_readme_is_a_landing_page():
    """At most 200 lines, and every link into the docs leads to a page."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    links = re.findall(r"\]\((docs/[^)#]+)", text)
    assert links and all((ROOT / link).is_file() for link in links), links
    ci = (ROOT / ".ci" / "run").read_text()
    for command in re.findall(r"```sh\n(python3 -m pip install .*?)\n(python3 -m pytest)\n", text)[
        0
    ]:
        assert command.replace("pip install", "pip install -q") in ci or command in ci
