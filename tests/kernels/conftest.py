"""``kernel_device``: Triton tests run on the GPU where there is one, else through the interpreter."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def kernel_device():
    """Make new tensors CUDA tensors on a GPU machine, so the Triton tests run the compiled
    kernels there; on a machine without one, tests/conftest.py has set TRITON_INTERPRET=1 and
    the kernels run on CPU tensors through Triton's interpreter."""
    if not torch.cuda.is_available():
        yield torch.device("cpu")
        return
    torch.set_default_device("cuda")
    try:
        yield torch.device("cuda")
    finally:
        torch.set_default_device("cpu")
