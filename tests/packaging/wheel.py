"""Build the wheel, install it into a fresh virtual environment, run the installed command.

What a user of `pip install monday-notify-*.whl` gets (contract §14): the wheel is built from a
copy of only what the package is made of (pyproject.toml, README.md, LICENSE, server/), so a file
the build forgets cannot be found in the source tree instead; the venv is new and its
dependencies come from the package index as pip resolves them; the server runs from an empty
directory without PYTHONPATH, so nothing of the checkout is importable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_FILES = ("pyproject.toml", "README.md", "LICENSE")


def installed_venv(base: Path) -> Path:
    """A venv under `base` with the freshly built wheel installed (built once per base)."""
    venv = base / "wheel-venv"
    if (venv / ".ready").exists():
        return venv
    source = base / "wheel-source"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    for name in PACKAGE_FILES:
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "server", source / "server", ignore=shutil.ignore_patterns("__pycache__")
    )
    dist = base / "wheel-dist"
    quiet = ["--quiet", "--disable-pip-version-check"]
    _run([sys.executable, "-m", "pip", "wheel", *quiet, "--no-deps", "-w", str(dist), str(source)])
    (wheel,) = dist.glob("monday_notify-*.whl")
    _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(venv / "bin" / "pip"), "install", *quiet, str(wheel)])
    (venv / ".ready").touch()
    return venv


def _run(command: list[str]) -> None:
    # Without PYTHONPATH: pip would take the checkout on it for an installed monday-notify.
    result = subprocess.run(
        command, env=clean_env(), capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{command[:4]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        )


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the checkout (PYTHONPATH) or any configuration of ours."""
    ours = ("MONDAY_", "APP_", "PYTHON", "VIRTUAL_ENV")
    named = {"DATABASE_URL", "ENCRYPTION_KEYS", "PUBLIC_BASE_URL", "FRAME_ANCESTORS", "HOST"}
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(ours) and k not in named and k != "PORT"
    }
    env.update(extra)
    return env


@dataclass
class Running:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start(command: list[str], cwd: Path, env: dict[str, str], port: int) -> Running:
    """Start `command` (a `serve` on 127.0.0.1:port) and wait until /readyz answers 200."""
    log = cwd.parent / f"{cwd.name}-server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as answer:  # noqa: S310
                if answer.status == 200:
                    return Running(url, process, log)
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait(timeout=10)
            raise AssertionError(f"the server did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
