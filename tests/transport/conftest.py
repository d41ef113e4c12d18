import pytest

from tests.transport.helpers import eventpipe_threads


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Every source started in a test is closed (its thread joined) by the test's end."""
    before = set(eventpipe_threads())
    yield
    leaked = [t.name for t in eventpipe_threads() if t not in before]
    assert not leaked, f"receive threads still running after the test: {leaked}"
