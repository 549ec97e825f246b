"""`pip install ./python` builds an installable, typed package: built here
with the pinned flit_core and no network, into a directory of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]


def test_pip_installs_the_package(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(PACKAGE),
        ],
        check=True,
        timeout=120,
    )
    installed = target / "edgestream"
    assert (installed / "py.typed").is_file()
    assert sorted(p.name for p in installed.glob("*.py")) == sorted(
        p.name for p in (PACKAGE / "src" / "edgestream").glob("*.py")
    )
    out = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); "
            "import edgestream, importlib.metadata as m; "
            "print(edgestream.__file__, edgestream.__version__, m.version('edgestream'), "
            "m.metadata('edgestream').get_all('Requires-Dist'))",
            str(target),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.split(" ", 3)
    assert out[0].startswith(str(target))
    assert out[1] == out[2] == "0.1.0"
    assert 'extra == "django"' in out[3] and "djangorestframework-simplejwt" in out[3]
