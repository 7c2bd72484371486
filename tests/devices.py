"""Marks for tests about devices: CUDA tests run where a GPU is, and are skipped elsewhere."""

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()

needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
"""With ``@pytest.mark.cuda``: a test that runs on the GPU (``-m cuda`` selects them)."""

without_cuda = pytest.mark.skipif(HAS_CUDA, reason="checks the error where there is no GPU")
