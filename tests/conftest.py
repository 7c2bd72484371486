"""Fixtures shared by test packages."""

from collections.abc import Iterator

import pytest

from tests.ray_cluster import two_node_cluster


@pytest.fixture(scope="session")
def two_node_ray() -> Iterator[str]:
    """The address of a two-node Ray cluster on localhost, one CPU per node, for the session.

    A Ray this process had initialised (a module's local instance) is shut down before each
    use: runners join an initialised Ray whatever address they are given.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_MODE", "disabled")  # on a real cluster every node needs the token
        with two_node_cluster() as address:
            yield address


@pytest.fixture
def on_two_nodes(two_node_ray: str) -> Iterator[str]:
    """``two_node_ray``'s address, with no Ray initialised in this process before or after."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    yield two_node_ray
    if ray.is_initialized():
        ray.shutdown()
