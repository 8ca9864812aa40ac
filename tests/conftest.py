"""Shared fixtures: the public-domain astronaut portrait and fixture models."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fixture_model import build_fixture_model  # noqa: E402


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """NASA's astronaut portrait (public domain), (512,512,3) uint8."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def fixture_models(tmp_path_factory) -> dict[str, Path]:
    """A few fixture models with known outputs."""
    d = tmp_path_factory.mktemp("models")
    return {
        "identity": build_fixture_model(d / "identity.onnx"),
        "shift": build_fixture_model(d / "shift.onnx", dx=4.0, dy=0.0),
        "paint": build_fixture_model(d / "paint.onnx", mask=1.0, rgb=0.0),
    }
