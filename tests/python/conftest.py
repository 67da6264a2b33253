"""Shared fixtures of the Python package's tests: the built CLI, the shipped models, the parity
fixtures. Run from the repository root after the build:
    PYTHONPATH=build/python python3 -m pytest tests/python
"""

import os
import subprocess

import numpy as np
import pytest

import varcode

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLI = os.environ.get("VARCODE_CLI", os.path.join(ROOT, "build", "varcode"))
MODELS = os.path.join(ROOT, "models")
FIXTURES = os.path.join(os.environ.get("VARCODE_FIXTURES", os.path.join(ROOT, "..", "shared", "fixtures")), "tiny")


def run_cli(*args):
    """Runs the varcode CLI; returns stdout; fails the test with its stderr when it fails."""
    p = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.fail(f"varcode {' '.join(map(str, args))} failed ({p.returncode}): {p.stderr}")
    return p.stdout


def read_png(path):
    """The PNG's pixels as uint8 [H, W, 3], read by Pillow (an independent decoder)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="session")
def builtin():
    return varcode.Generator.builtin()


@pytest.fixture(scope="session")
def tiny_pair():
    """The fixtures' tiny CoDe pair (256 px, 1000 classes) in f32."""
    if not os.path.exists(os.path.join(FIXTURES, "drafter.pth")):
        pytest.fail(f"parity fixtures not found in {FIXTURES} (set VARCODE_FIXTURES)")
    return varcode.Generator(vae=f"{FIXTURES}/vae.pth", drafter=f"{FIXTURES}/drafter.pth",
                             refiner=f"{FIXTURES}/refiner.pth", draft_steps=4, dtype="f32")
