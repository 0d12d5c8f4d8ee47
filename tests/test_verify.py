"""Keras 2 files checked against what wrote them: stored tensors by identity, tf-keras' outputs.

The files come from the session's tf-keras interpreter (``keras2_models.py``); a corrupted
weight, whether in the converted file or placed wrongly while loading, must fail the check.
"""

from __future__ import annotations

import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import layerhub
from layerhub._private.keras2 import placement

from .test_legacy_h5 import keras2, keras2_dir, reference  # noqa: F401  (fixtures)

LAYERHUB = str(Path(sysconfig.get_path("scripts")) / "layerhub")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LAYERHUB, *args], capture_output=True, text=True, timeout=600, check=False
    )


def outputs(model: Any, xs: list[np.ndarray]) -> list[np.ndarray]:
    got = model(xs if len(xs) > 1 else xs[0], training=False)
    return [keras.ops.convert_to_numpy(y) for y in keras.tree.flatten(got)]


@keras2
@pytest.mark.parametrize("suffix", [".h5", "_savedmodel"])
def test_nested_models_with_batchnorm_load_with_the_writers_outputs(
    keras2_dir: Path,  # noqa: F811
    reference: Any,  # noqa: F811
    suffix: str,
) -> None:
    # 0.1 put a nested model's moving statistics into other slots (SavedModel) and answered
    # up to 1.37 away from tf-keras without a word.
    model = layerhub.load_model(keras2_dir / f"nested_batchnorm{suffix}", compile=False)
    xs, expected = reference("nested_batchnorm")
    for got, want in zip(outputs(model, xs), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # The nested Sequential, whose graph layerhub builds once, is Keras' own class, built, and
    # saves as Keras' Sequential.
    block = model.get_layer("block")
    assert type(block) is keras.Sequential
    assert block.built
    assert [layer.name for layer in block.layers][-1].startswith("batch_normalization")
    saved = keras.saving.serialize_keras_object(block)
    assert (saved["module"], saved["class_name"]) == ("keras", "Sequential")


@keras2
@pytest.mark.parametrize("suffix", [".h5", "_savedmodel"])
def test_verify_compares_every_stored_weight_and_tf_keras_outputs(
    keras2_dir: Path,  # noqa: F811
    suffix: str,
) -> None:
    done = layerhub.verify(keras2_dir / f"nested_batchnorm{suffix}")
    assert done.ok, done.lines()
    assert done.weights_equal
    names = {check.layer for check in done.layers}
    for model in ("block", "inner"):
        assert any(n.startswith(f"{model}/batch_normalization") for n in names), names
    # Every BatchNormalization holds four weights, each compared.
    assert all(c.weights == 4 for c in done.layers if "batch_normalization" in c.layer)
    assert done.outputs, done.reference  # tf-keras ran the original
    assert done.reference.startswith("tf-keras")


@keras2
def test_a_corrupted_weight_in_the_converted_file_fails_verify(
    keras2_dir: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    source = keras2_dir / "nested_batchnorm_savedmodel"
    converted = layerhub.convert(source, tmp_path / "good.keras", compile=False)
    assert converted.ok, converted.lines()
    model = keras.saving.load_model(tmp_path / "good.keras", compile=False)
    inner = model.get_layer("inner")
    norm = next(layer for layer in inner.layers if "batch_normalization" in layer.name)
    value = keras.ops.convert_to_numpy(norm.moving_variance)
    value[0] += 0.25
    norm.moving_variance.assign(value)
    keras.saving.save_model(model, tmp_path / "bad.keras")
    done = layerhub.verify(source, tmp_path / "bad.keras")
    assert not done.ok
    bad = {c.layer: c.max_difference for c in done.layers if c.max_difference}
    assert bad == {f"inner/{norm.name}": pytest.approx(0.25)}
    result = run_cli("verify", str(source), str(tmp_path / "bad.keras"))
    assert result.returncode == 1, result.stderr
    assert f"inner/{norm.name}" in result.stdout
    assert "DIFFERENT" in result.stdout


@keras2
def test_convert_fails_when_a_weight_was_placed_wrongly(
    keras2_dir: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A loader defect that moves one value: the check against the file must see it, although
    # the converted file reloads to the same (wrong) predictions.
    placed = placement.place

    def misplace(model: Any, stored: Any, file: str) -> None:
        placed(model, stored, file)
        variable = next(v for v in model.weights if "moving_mean" in v.path)
        variable.assign(keras.ops.convert_to_numpy(variable) + 1.0)

    monkeypatch.setattr(placement, "place", misplace)
    done = layerhub.convert(
        keras2_dir / "nested_batchnorm.h5", tmp_path / "new.keras", compile=False
    )
    assert done.max_difference == 0.0  # the reload agrees with the wrong model
    assert done.verification is not None
    assert not done.verification.weights_equal
    assert not done.ok


@keras2
@pytest.mark.parametrize("suffix", [".h5", "_savedmodel"])
def test_convert_handles_dict_inputs(
    keras2_dir: Path,  # noqa: F811
    tmp_path: Path,
    suffix: str,
) -> None:
    result = run_cli("convert", str(keras2_dir / f"dict_inputs{suffix}"), str(tmp_path / "d.keras"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "outputs vs tf-keras" in result.stdout


@keras2
def test_verify_of_a_keras3_file_is_a_usage_error_with_exit_status_2(
    keras2_dir: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    keras.saving.save_model(model, tmp_path / "new.keras")
    result = run_cli("verify", str(tmp_path / "new.keras"))
    assert result.returncode == 2
    assert "not a Keras 2 file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_weights_without_a_counterpart_are_refused_by_name() -> None:
    dense = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="head")])
    stored = [
        placement.StoredWeight(("head",), (("kernel",),), np.zeros((3, 2), "float32")),
        placement.StoredWeight(("head",), (("gamma",),), np.zeros((2,), "float32")),
        placement.StoredWeight(("head",), (("beta",),), np.zeros((2,), "float32")),
    ]
    with pytest.raises(layerhub.ModelFileError, match=r"layer head \(Dense\) has no variable"):
        placement.place(dense, stored, "f.h5")


def test_a_shape_that_disagrees_is_refused_by_name() -> None:
    dense = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="head")])
    stored = [
        placement.StoredWeight(("head",), (("kernel",),), np.zeros((2, 3), "float32")),
        placement.StoredWeight(("head",), (("bias",),), np.zeros((2,), "float32")),
    ]
    with pytest.raises(layerhub.ModelFileError, match=r"head/kernel has shape \(2, 3\)"):
        placement.place(dense, stored, "f.h5")


def test_weights_are_placed_by_name_whatever_their_order() -> None:
    norm = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(name="bn")])
    values = {
        n: np.full((3,), i + 1.0, "float32")
        for i, n in enumerate(["moving_variance", "gamma", "moving_mean", "beta"])
    }
    stored = [placement.StoredWeight(("bn",), ((n,),), v) for n, v in values.items()]
    placement.place(norm, stored, "f.h5")
    layer = norm.get_layer("bn")
    for name, value in values.items():
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(getattr(layer, name)), value)


def test_a_layer_the_file_lacks_is_refused() -> None:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="head")])
    with pytest.raises(layerhub.ModelFileError, match="stores no weights for layer head"):
        placement.place(model, [], "f.h5")


@pytest.mark.parametrize(
    ("stored", "loaded", "expected"),
    [
        # equal bytes, NaN included: a faithful load
        ([1.5, float("nan"), -2.0], [1.5, float("nan"), -2.0], 0.0),
        # equal values in other bytes: -0.0 is 0.0
        ([0.0, 1.0], [-0.0, 1.0], 0.0),
        ([1.0, 2.0], [1.0, 2.25], 0.25),
        ([1.0, float("nan")], [1.0, 3.0], float("inf")),
        ([1.0, 3.0], [1.0, float("nan")], float("inf")),
    ],
)
def test_stored_and_loaded_values_are_compared_exactly(
    stored: list[float], loaded: list[float], expected: float
) -> None:
    from layerhub._private.keras2.verify import _layer_checks

    # Long enough to span several of the comparison's blocks, the difference in the last one.
    size = 3 * (1 << 16) + 7
    pad = np.zeros(size - len(stored), "float32")
    layer = keras.layers.Dense(1)
    layer.build((size,))
    layer.kernel.assign(np.concatenate([pad, loaded]).astype("float32")[:, None])
    pair = placement.Placed(
        placement.StoredWeight(
            ("head",), (("kernel",),), np.concatenate([pad, stored]).astype("float32")[:, None]
        ),
        layer.kernel,
    )
    (check,) = _layer_checks([pair])
    assert check.max_difference == expected


def test_a_deferred_weight_that_cannot_be_read_is_a_one_line_model_file_error() -> None:
    def broken() -> np.ndarray:
        raise OSError("Can't read data (inflate() failed)\nsecond line")

    with pytest.raises(layerhub.ModelFileError, match="its weights cannot be read") as info:
        np.asarray(placement.Deferred((2,), broken, "f.h5"))
    assert "\n" not in str(info.value)
    short = placement.Deferred((3,), lambda: np.zeros((2,), "float32"), "f.h5")
    with pytest.raises(layerhub.ModelFileError, match=r"holds shape \(2,\), its header says"):
        np.asarray(short)


def test_deferred_weights_are_read_when_placed_one_at_a_time() -> None:
    norm = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(name="bn")])
    reads: list[str] = []

    def reader(name: str, value: float) -> Any:
        def read() -> np.ndarray:
            reads.append(name)
            return np.full((3,), value, "float32")

        return placement.Deferred((3,), read, "f.h5")

    names = ["gamma", "beta", "moving_mean", "moving_variance"]
    stored = [
        placement.StoredWeight(("bn",), ((n,),), reader(n, i + 2.0)) for i, n in enumerate(names)
    ]
    matched = placement.match(norm, stored, "f.h5")
    assert reads == []  # matching needs names and shapes only
    placement.place(norm, stored, "f.h5")
    assert sorted(reads) == sorted(names)
    assert len(matched) == 4
    for i, name in enumerate(names):
        got = keras.ops.convert_to_numpy(getattr(norm.get_layer("bn"), name))
        np.testing.assert_array_equal(got, np.full((3,), i + 2.0, "float32"))
