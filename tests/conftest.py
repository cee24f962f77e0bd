"""Shared test settings: deterministic, single-threaded-friendly, fixtures next to the tests."""
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES
