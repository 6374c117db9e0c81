"""Shared fixtures: paths to the shipped sample acquisition."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def sample_acquisition() -> Path:
    """The tiny raw acquisition copied from shared/samples (2 slices of 2x2 tiles)."""
    return DATA / "tiny-acquisition"


@pytest.fixture(scope="session")
def sample_expected() -> tuple[dict[str, np.ndarray], dict]:
    """Expected decoded tiles (key ``SS_XX_YY``) and the geometry / galvo truth."""
    with np.load(DATA / "tiny-acquisition-expected.npz") as npz:
        tiles = {key: npz[key] for key in npz.files}
    meta = json.loads((DATA / "tiny-acquisition-expected.json").read_text())
    return tiles, meta


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator, fresh per test."""
    return np.random.default_rng(1234)


@pytest.fixture(scope="module")
def two_itk_threads():
    """SimpleITK's global thread count at 2 for a module's tests (registrations are then repeatable and cheap), restored after."""
    import SimpleITK as sitk

    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(2)
    yield
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)
