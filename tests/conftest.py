"""Shared pytest configuration for the jaxdl suite."""

import os

# Tests compare against float64 oracles, so enable x64 where a test asks for
# it explicitly; by default jaxdl runs in float32 like its users.
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
