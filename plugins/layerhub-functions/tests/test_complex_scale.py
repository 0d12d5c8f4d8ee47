"""Tests for layerhub_functions.complex_scale."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from keras import ops
from layerhub_functions import complex_scale

RNG = np.random.default_rng(5)


def reference(x: np.ndarray | list[np.ndarray], real: float, imag: float) -> list[np.ndarray]:
    z = x[0] + 1j * x[1] if isinstance(x, list) else x.astype("complex128")
    product = (real + 1j * imag) * z
    return [product.real, product.imag]


def as_numpy(tensors: list[object]) -> list[np.ndarray]:
    return [ops.convert_to_numpy(t) for t in tensors]


@pytest.mark.parametrize("shape", [(5,), (2, 3), (2, 3, 4)])
@pytest.mark.parametrize(("real", "imag"), [(2.0, -1.0), (0.0, 1.0), (-0.5, 0.25)])
def test_real_input_matches_numpy(shape: tuple[int, ...], real: float, imag: float) -> None:
    x = RNG.normal(size=shape).astype("float32")
    for got, want in zip(
        as_numpy(complex_scale(x, real, imag)), reference(x, real, imag), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("real", "imag"), [(2.0, -1.0), (0.3, 0.7)])
def test_pair_input_is_a_complex_multiplication(real: float, imag: float) -> None:
    parts = [RNG.normal(size=(3, 4)).astype("float32") for _ in range(2)]
    got = as_numpy(complex_scale(parts, real=real, imag=imag))
    for g, want in zip(got, reference(parts, real, imag), strict=True):
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-6)


def test_outputs_chain_and_a_phase_rotation_by_a_quarter_turn_four_times_is_identity() -> None:
    x = RNG.normal(size=(2, 3)).astype("float32")
    quarter = {"real": math.cos(math.pi / 2), "imag": math.sin(math.pi / 2)}
    z: object = x
    for _ in range(4):
        z = complex_scale(z, **quarter)
    real, imag = as_numpy(z)  # type: ignore[arg-type]
    np.testing.assert_allclose(real, x, atol=1e-6)
    np.testing.assert_allclose(imag, np.zeros_like(x), atol=1e-6)


def test_defaults_are_the_identity() -> None:
    x = RNG.normal(size=(2, 3)).astype("float32")
    real, imag = as_numpy(complex_scale(x))
    np.testing.assert_array_equal(real, x)
    np.testing.assert_array_equal(imag, np.zeros_like(x))


def test_lambda_layer_returns_two_outputs_with_unknown_batch() -> None:
    a, b = keras.Input((4,)), keras.Input((4,))
    layer = keras.layers.Lambda(complex_scale, arguments={"real": 2.0, "imag": -1.0})
    real, imag = layer([a, b])
    assert tuple(real.shape) == tuple(imag.shape) == (None, 4)
    model = keras.Model([a, b], [real, imag])
    model.compile(jit_compile=True)
    parts = [RNG.normal(size=(5, 4)).astype("float32") for _ in range(2)]
    got = model.predict(parts, verbose=0)
    for g, want in zip(got, reference(parts, 2.0, -1.0), strict=True):
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("policy", "tolerance"), [("mixed_float16", 2e-3), ("mixed_bfloat16", 2e-2)]
)
def test_under_mixed_precision_keeps_the_compute_dtype(policy: str, tolerance: float) -> None:
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        layer = keras.layers.Lambda(complex_scale, arguments={"real": 0.5, "imag": 2.0})
        x = RNG.normal(size=(2, 3)).astype("float32")
        real, imag = layer(x)
    finally:
        keras.config.set_dtype_policy(previous)
    assert keras.backend.standardize_dtype(real.dtype) == layer.compute_dtype
    assert keras.backend.standardize_dtype(imag.dtype) == layer.compute_dtype
    outputs = as_numpy([ops.cast(real, "float32"), ops.cast(imag, "float32")])
    for got, want in zip(outputs, reference(x, 0.5, 2.0), strict=True):
        np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {"real": float("nan")}, r"`real` must be a finite number\. Received: real=nan"),
        ((), {"imag": True}, r"`imag` must be a finite number\. Received: imag=True"),
        ((), {"imag": "1"}, r"Received: imag='1'"),
    ],
)
def test_rejects_bad_constants(
    args: tuple[object, ...], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        complex_scale(np.zeros((2, 3), "float32"), *args, **kwargs)  # type: ignore[arg-type]


def test_rejects_bad_pairs() -> None:
    x = np.zeros((2, 3), "float32")
    with pytest.raises(ValueError, match="a sequence of 3 tensors"):
        complex_scale([x, x, x])
    with pytest.raises(ValueError, match=r"Received: shapes \(2, 3\) and \(2, 4\)"):
        complex_scale([x, np.zeros((2, 4), "float32")])
