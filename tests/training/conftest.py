"""Shared fixtures for the training tests."""

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """Two shared cores: one intra-op thread avoids oversubscription (Ray workers do the same)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
