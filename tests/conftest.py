"""Shared pytest configuration for the jaxdl suite."""

import os

# The tests run on the CPU, as in CI, unless JAX_PLATFORMS names another
# platform (JAX_PLATFORMS=cuda pytest runs them on a GPU). They compare
# float32 results with float64 oracles; tests that need x64 enable it.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import hypothesis
import jax
import numpy as np
import pytest

hypothesis.settings.register_profile(
    "jaxdl", deadline=None, max_examples=60, derandomize=True,
    suppress_health_check=[hypothesis.HealthCheck.too_slow])
hypothesis.settings.load_profile("jaxdl")


@pytest.fixture
def rng() -> np.random.Generator:
  """A seeded NumPy generator, fresh for every test."""
  return np.random.default_rng(0)


@pytest.fixture
def key() -> jax.Array:
  """A fixed JAX PRNG key."""
  return jax.random.key(0)
