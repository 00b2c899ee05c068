"""Fixtures of the tests of ``common``."""

import pytest

from common.crypto.gm import use_backend
from common.crypto.gm._backend import BACKENDS


@pytest.fixture(params=BACKENDS)  # every backend the library knows, one added later too
def backend(request):
    """Each GM backend in turn (its name), chosen for the test and unset after."""
    use_backend(request.param)
    yield request.param
    use_backend(None)
