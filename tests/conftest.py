"""Suite-wide settings shared by every test file."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Pin torch to one thread for the whole suite: its tensors are small, and on a shared 2-core
    machine extra threads only contend (measured 5-12x slower under load); restore after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
