from __future__ import annotations

import pytest
from django.utils import translation


@pytest.fixture(autouse=True)
def english():
    """Messages are asserted in English here; one test checks the zh-hans catalogue."""
    with translation.override("en"):
        yield
