"""Fixtures of the atlas tests: the synthetic atlas, two SimpleITK threads, no network."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from serialoct.atlas.space import VolumeGrid
from tests.atlas.synthetic_brain import make_atlas


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any socket connection fails: the atlas tests must never reach a server (file:// URLs still work)."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled in the atlas tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module", autouse=True)
def _itk_threads(two_itk_threads):
    yield


@pytest.fixture(scope="session")
def atlas() -> tuple[np.ndarray, VolumeGrid]:
    """The synthetic atlas (phantom on an (S, A, R) grid of 0.15 mm voxels) and its grid."""
    return make_atlas()
