"""Shared fixtures: the public-domain astronaut portrait, made neutral (as an array and as a PNG file;
see tests/portrait.py) and as she smiles, and fixture models."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from fixture_model import build_fixture_model  # noqa: E402
from portrait import neutral_astronaut, smiling_astronaut  # noqa: E402


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """NASA's astronaut portrait (public domain) with her smile taken away, (512,512,3) uint8: a face
    the engine edits at any positive strength (tests/portrait.py)."""
    return np.array(neutral_astronaut())


@pytest.fixture(scope="session")
def picture(astronaut) -> np.ndarray:
    """The neutral astronaut the video tests move across a canvas (``astronaut``): every strength above 0 edits her."""
    return astronaut


@pytest.fixture(scope="session")
def model():
    """The bundled default model, loaded once (a test module may define its own ``model``)."""
    import smilecore

    return smilecore.load_model()


@pytest.fixture(scope="session")
def smiling() -> np.ndarray:
    """NASA's astronaut portrait as she is: smiling broadly, (512,512,3) uint8."""
    return np.array(smiling_astronaut())


@pytest.fixture(scope="session")
def fixture_models(tmp_path_factory) -> dict[str, Path]:
    """A few fixture models with known outputs."""
    d = tmp_path_factory.mktemp("models")
    return {
        "identity": build_fixture_model(d / "identity.onnx"),
        "shift": build_fixture_model(d / "shift.onnx", dx=4.0, dy=0.0),
        "paint": build_fixture_model(d / "paint.onnx", mask=1.0, rgb=0.0),
    }


@pytest.fixture(scope="session")
def shift(fixture_models) -> Path:
    """The fixture model that moves pixels by 4 crop px: every edited face visibly changes."""
    return fixture_models["shift"]


@pytest.fixture(scope="session")
def loaded_shift(shift):
    """The :func:`shift` model, loaded once (a :class:`smilecore.SmileModel`)."""
    import smilecore

    return smilecore.load_model(shift)


@pytest.fixture
def photo(tmp_path: Path, astronaut) -> Path:
    """The astronaut as ``astro.png`` in the test's own folder."""
    p = tmp_path / "astro.png"
    Image.fromarray(astronaut).save(p)
    return p
