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


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray for the module's Ray Train tests (started once; later modules reuse it)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False)
    yield ray
