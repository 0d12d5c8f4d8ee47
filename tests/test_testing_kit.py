"""The conformance kit catches the source tutorials' mistakes, each under the right rule."""

from __future__ import annotations

import math
import types
from typing import Any

import keras
import numpy as np
import pytest
from keras import ops

from layerhub import Registry, hookimpl
from layerhub.testing import (
    RULES,
    ConformanceError,
    _checks,
    _training,
    assert_roundtrip,
    assert_training_reduces_loss,
    check_layer,
    input_gradients,
    run_in_fresh_interpreter,
    weight_gradients,
)
from layerhub.testing.rules import _common, gradients

pytest_plugins = ["pytester"]
# Rule 8's notes (no masking support) are warnings; tests/test_kit_rules.py checks them.
pytestmark = pytest.mark.filterwarnings("ignore::layerhub.testing.ConformanceNote")

# The faulty layers below live in this test module, not in an installed plugin: rules 2 (load in
# a fresh interpreter) and 7 (plugin registration) cannot hold for them.
NOT_A_PLUGIN = (2, 7)
register = keras.saving.register_keras_serializable(package="layerhub_kit_tests")


@register
class ConvInCall(keras.layers.Layer):
    """The seed PAM's mistake: a Conv2D made inside call(), so every call has new weights."""

    def __init__(self, filters: int = 4, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters = filters

    def call(self, inputs: Any) -> Any:
        return keras.layers.Conv2D(self.filters, 1)(inputs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (*input_shape[:-1], self.filters)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"filters": self.filters})
        return config


@register
class FMForgetsConfig(keras.layers.Layer):
    """The seed FMLayer's mistake: get_config() leaves out a constructor argument."""

    def __init__(self, output_dim: int, factor_order: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.output_dim = output_dim
        self.factor_order = factor_order

    def build(self, input_shape: Any) -> None:
        self.w = self.add_weight(shape=(input_shape[-1], self.output_dim))
        self.v = self.add_weight(shape=(input_shape[-1], self.factor_order))

    def call(self, inputs: Any) -> Any:
        xv = ops.matmul(inputs, self.v)
        pairs = ops.square(xv) - ops.matmul(ops.square(inputs), ops.square(self.v))
        return ops.matmul(inputs, self.w) + 0.5 * ops.sum(pairs, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (input_shape[0], self.output_dim)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"output_dim": self.output_dim})  # factor_order forgotten
        return config


@register
class RuntimeSwitch(keras.layers.Layer):
    """Leaves a runtime-only switch out of its config on purpose."""

    def __init__(self, factor: float = 2.0, fast: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = factor
        self.fast = fast

    def call(self, inputs: Any) -> Any:
        return inputs * self.factor

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"factor": self.factor})
        return config


@register
class L2NormNoConfig(keras.layers.Layer):
    """The seed L2Normalization's mistake: no get_config() though it takes an initializer."""

    def __init__(self, scale_initializer: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale_initializer = keras.initializers.get(scale_initializer or "ones")

    def build(self, input_shape: Any) -> None:
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer=self.scale_initializer)

    def call(self, inputs: Any) -> Any:
        return ops.normalize(inputs, axis=-1) * self.scale

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


@register
class WrongOutputShape(keras.layers.Layer):
    """Sums the last axis but claims to keep the input shape."""

    def call(self, inputs: Any) -> Any:
        return ops.sum(inputs, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


@register
class FixedBatch(keras.layers.Layer):
    """Bakes the batch size seen in build() into call()."""

    def build(self, input_shape: Any) -> None:
        self.batch = input_shape[0]

    def call(self, inputs: Any) -> Any:
        return ops.reshape(inputs, (self.batch, -1))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (input_shape[0], math.prod(input_shape[1:]))


@register
class DeadWeight(keras.layers.Layer):
    """Creates a bias that call() never uses."""

    def build(self, input_shape: Any) -> None:
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1],), initializer="ones")
        self.bias = self.add_weight(name="bias", shape=(input_shape[-1],))

    def call(self, inputs: Any) -> Any:
        return inputs * self.kernel

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


@register
class GatedResidual(keras.layers.Layer):
    """PAM's residual gate: ``x + gamma * (x @ kernel)``, with ``gamma`` starting at zero."""

    def __init__(self, gamma_initializer: Any = "zeros", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)

    def build(self, input_shape: Any) -> None:
        channels = input_shape[-1]
        self.kernel = self.add_weight(name="kernel", shape=(channels, channels))
        self.gamma = self.add_weight(name="gamma", shape=(1,), initializer=self.gamma_initializer)

    def call(self, inputs: Any) -> Any:
        gamma = ops.cast(self.gamma, self.compute_dtype)
        return inputs + gamma * ops.matmul(inputs, ops.cast(self.kernel, self.compute_dtype))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"gamma_initializer": keras.initializers.serialize(self.gamma_initializer)})
        return config


@register
class Float32Constant(keras.layers.Layer):
    """Adds a float32 tensor, which a bfloat16 input cannot be added to."""

    def call(self, inputs: Any) -> Any:
        return inputs + ops.convert_to_tensor(np.ones(inputs.shape[-1], "float32"))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


@register
class ComputesInFloat32(keras.layers.Layer):
    """Casts to float32 "for precision", so under mixed precision it returns float32."""

    def call(self, inputs: Any) -> Any:
        return ops.exp(ops.cast(inputs, "float32"))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


@register
class PairwiseMix(keras.layers.Layer):
    """A correct two-input, two-output layer: ``(a * k + b, a - b)``."""

    def build(self, input_shape: Any) -> None:
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[0][-1],))

    def call(self, inputs: Any) -> Any:
        a, b = inputs
        return [a * ops.cast(self.kernel, self.compute_dtype) + b, a - b]

    def compute_output_shape(self, input_shape: Any) -> Any:
        return [tuple(input_shape[0]), tuple(input_shape[0])]


class Orphan(keras.layers.Layer):
    """Registered like a plugin's layer, but no installed distribution declares it."""

    __module__ = "layerhub_orphan.orphan"

    def call(self, inputs: Any) -> Any:
        return inputs * 2.0

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


keras.saving.register_keras_serializable(package="layerhub_orphan")(Orphan)


def broken_rules(layer_cls: type[Any], init_kwargs: dict[str, Any], shape: Any, **kw: Any) -> Any:
    with pytest.raises(ConformanceError) as caught:
        check_layer(layer_cls, init_kwargs, shape, **{"skip": NOT_A_PLUGIN, **kw})
    return caught.value


def test_conv2d_made_in_call_breaks_rule_4() -> None:
    error = broken_rules(ConvInCall, {}, (2, 5, 5, 3))
    assert 4 in error.rules
    message = error.failures.pop(4)
    assert message.startswith("[layerhub rule 4: weights in build()] ConvInCall: ")
    assert set(error.failures) <= {3, 6}
    if keras.backend.backend() == "tensorflow":  # TensorFlow names the variables created
        assert "created 4 new variables (kernel, bias, kernel, bias)" in message
        # tf.function refuses variables created while tracing, so the traced checks of rules 3
        # and 6 fail too; they point at rule 4 as the cause.
        assert all("see rule 4" in other for other in error.failures.values())
    else:
        assert "two calls on the same inputs gave different outputs" in message
    assert "Fix: create weights in build()" in message


def test_constructor_argument_missing_from_get_config_breaks_rule_1() -> None:
    error = broken_rules(FMForgetsConfig, {"output_dim": 2, "factor_order": 3}, (4, 5))
    assert error.rules == [1]
    message = str(error)
    assert "[layerhub rule 1: config round trip] FMForgetsConfig:" in message
    assert "lacks the constructor argument(s) factor_order" in message
    assert "config.update({'factor_order': self.factor_order})" in message


def test_arguments_left_out_of_get_config_on_purpose_can_be_exempted() -> None:
    error = broken_rules(RuntimeSwitch, {"factor": 3.0}, (2, 3), rules=[1])
    assert "lacks the constructor argument(s) fast" in str(error)
    check_layer(RuntimeSwitch, {"factor": 3.0}, (2, 3), rules=[1], config_exempt=["fast"])


def test_missing_get_config_with_an_initializer_argument_breaks_rule_1() -> None:
    init = {"scale_initializer": keras.initializers.Constant(20.0)}
    error = broken_rules(L2NormNoConfig, init, (2, 3))
    assert error.rules == [1]
    assert "get_config() is not implemented" in str(error)
    assert "config = super().get_config(); config.update" in str(error)


def test_plain_arguments_need_no_get_config() -> None:
    # Keras 3 writes the config of a layer whose arguments are plain values by itself.
    check_layer(L2NormNoConfig, {}, (2, 3), skip=NOT_A_PLUGIN)


def test_wrong_compute_output_shape_breaks_rule_3() -> None:
    error = broken_rules(WrongOutputShape, {}, (2, 3))
    assert error.rules == [3]
    message = str(error)
    assert "compute_output_shape((2, 3)) returns [(2, 3)]" in message
    assert "returns tensors of shape [(2, 1)]" in message


def test_batch_size_baked_into_build_breaks_rule_3() -> None:
    error = broken_rules(FixedBatch, {}, (2, 3, 4), rules=[3])
    assert "running the model on a batch of 3" in str(error)
    assert "never use the batch size of input_shape" in str(error)


def test_unused_weight_breaks_rule_5() -> None:
    error = broken_rules(DeadWeight, {}, (2, 3))
    assert error.rules == [5]
    message = str(error)
    assert "trainable weight(s) bias get no gradient" in message
    assert "kernel" not in message.partition("Fix:")[0]


def test_zero_gate_blocks_gradients_until_initialised_otherwise() -> None:
    error = broken_rules(GatedResidual, {}, (2, 3))
    assert error.rules == [5]
    assert "weight(s) kernel get no gradient" in str(error)
    assert "{'gamma_initializer': 'ones'}" in str(error)
    check_layer(GatedResidual, {"gamma_initializer": "ones"}, (2, 3), skip=NOT_A_PLUGIN)


# TensorFlow refuses to add a float32 constant to 16-bit inputs; JAX promotes to float32.
def _float32_seen(policy: str) -> str:
    if keras.backend.backend() == "tensorflow":
        return f"inputs of shape (2, 3) under the {policy!r} policy"
    return f"{policy!r} output 0 is float32 but the layer declares {policy.removeprefix('mixed_')}"


@pytest.mark.parametrize("layer_cls", [Float32Constant, ComputesInFloat32])
def test_float32_computation_under_mixed_precision_breaks_rule_6(layer_cls: type[Any]) -> None:
    before = keras.config.dtype_policy().name
    seen = (
        _float32_seen
        if layer_cls is Float32Constant
        else lambda p: f"{p!r} output 0 is float32 but the layer declares {p[6:]}"
    )
    # Both policies by default, float16 first; one when asked.
    error = broken_rules(layer_cls, {}, (2, 3))
    assert error.rules == [6]
    assert seen("mixed_float16") in str(error)
    error = broken_rules(layer_cls, {}, (2, 3), mixed_precision="mixed_bfloat16")
    assert seen("mixed_bfloat16") in str(error)
    assert keras.config.dtype_policy().name == before
    check_layer(layer_cls, {}, (2, 3), skip=NOT_A_PLUGIN, mixed_precision=None)


def test_multi_input_list_output_layer_passes() -> None:
    check_layer(PairwiseMix, {}, [(2, 3), (2, 3)], skip=NOT_A_PLUGIN)


@pytest.mark.parametrize(("layer_cls", "init_kwargs", "shape", "rule", "seen"), [
    (ConvInCall, {}, (2, 4, 4, 3), 4, "two calls on the same inputs gave different outputs"),
    (DeadWeight, {}, (2, 3), 5, "weight(s) bias get no gradient"),
    (FixedBatch, {}, (2, 3), 3, "running the model on a batch of 3"),
])  # fmt: skip
def test_backend_neutral_paths_catch_the_same_mistakes(
    monkeypatch: pytest.MonkeyPatch,
    layer_cls: type[Any],
    init_kwargs: dict[str, Any],
    shape: Any,
    rule: int,
    seen: str,
) -> None:
    # What JAX and PyTorch get: no tape, no variable creator, no tf.function.
    monkeypatch.setattr(_common, "tensorflow", lambda: False)
    monkeypatch.setattr(gradients, "tape_gradients", lambda: False)
    error = broken_rules(layer_cls, init_kwargs, shape, rules=[rule])
    assert seen in error.failures[rule]


def test_rule_7_accepts_a_plugin_registered_by_hand() -> None:
    plugin = types.ModuleType("layerhub_orphan")
    plugin.layerhub_layers = hookimpl(lambda: [Orphan])  # type: ignore[attr-defined]
    registry = Registry([])
    registry.register(plugin)
    check_layer(Orphan, {}, (2, 3), rules=[7], registry=registry)


def test_rule_7_rejects_a_layer_registered_under_another_package() -> None:
    error = broken_rules(DeadWeight, {}, (2, 3), rules=[7], skip=())
    message = str(error)
    assert "registered as 'layerhub_kit_tests>DeadWeight', not" in message
    assert "register_keras_serializable(package=" in message


@pytest.mark.slow
def test_a_layer_no_installed_plugin_provides_breaks_rules_2_and_7(tmp_path: Any) -> None:
    error = broken_rules(Orphan, {}, (2, 3), skip=(), tmp_path=tmp_path)
    assert error.rules == [2, 7]
    # One cause, one message: rule 7's, with rule 2's failure marked as its consequence.
    assert error.consequences == {2: 7}
    assert "no installed plugin declares 'layerhub_orphan>Orphan'" in error.failures[7]
    assert "(a consequence of rule 7: plugin registration)" in error.failures[2]
    assert "cannot find 'layerhub_orphan>Orphan'" in error.failures[2]
    assert (tmp_path / "Orphan" / "roundtrip.keras").is_file()


@pytest.mark.slow
def test_scale_passes_every_rule(layerhub_check: Any) -> None:
    from layerhub_scale import Scale

    layerhub_check(Scale, {"axis": -1}, (2, 3))


def test_scale_with_several_axes_passes_the_in_process_rules() -> None:
    from layerhub_scale import Scale

    check_layer(Scale, {"axis": [1, 2]}, (2, 3, 4), skip=[2])


@pytest.mark.slow
def test_assert_roundtrip_reports_outputs_the_file_does_not_reproduce(tmp_path: Any) -> None:
    # Rule 2 passing is covered by Scale's check above; here the live model is patched so that
    # its outputs differ from what the saved file gives in the fresh interpreter.
    from layerhub_scale import Scale

    inputs = keras.Input((3,))
    model = keras.Model(inputs, Scale()(inputs))
    original = model.call

    def shifted(*args: Any, **kwargs: Any) -> Any:
        return original(*args, **kwargs) + 1.0

    model.call = shifted
    with pytest.raises(AssertionError, match=r"\[layerhub rule 2: .*output 0 differs"):
        assert_roundtrip(model, np.ones((2, 3), "float32"), tmp_path)


def test_rule_numbers_are_checked() -> None:
    assert sorted(RULES) == [1, 2, 3, 4, 5, 6, 7, 8]
    with pytest.raises(ValueError, match=r"rules=\[9\]"):
        check_layer(DeadWeight, {}, (2, 3), rules=[9])


def test_a_constructor_that_refuses_the_kwargs_is_rule_1() -> None:
    error = broken_rules(FMForgetsConfig, {"units": 2}, (2, 3))
    assert error.rules == [1]
    assert "FMForgetsConfig(**{'units': 2}) raised TypeError" in str(error)


def test_weight_gradients_default_to_the_sum_of_squares() -> None:
    # d/dk sum((x * k)^2) = 2 * sum over the batch of x^2 * k; the unused bias gets None
    # (zeros on JAX, whose gradients do not say what is disconnected).
    x = np.array([[1.0, -2.0], [3.0, 0.5]], "float32")
    layer = DeadWeight()
    kernel, bias = weight_gradients(layer, x)
    if keras.backend.backend() != "jax":
        assert bias is None
    else:
        np.testing.assert_array_equal(bias, np.zeros_like(bias))
    assert kernel is not None
    np.testing.assert_allclose(kernel, 2 * np.sum(x**2, axis=0), rtol=1e-6)


def test_gradients_of_a_given_loss_for_weights_and_inputs() -> None:
    # PairwiseMix returns (a * k + b, a - b); loss = sum(u * out0) + sum(w * out1).
    rng = np.random.default_rng(0)
    a, b, u, w = rng.normal(size=(4, 2, 3)).astype("float32")
    layer = PairwiseMix()
    layer.build([a.shape, b.shape])
    layer.kernel.assign([0.5, -1.0, 2.0])

    def loss(outputs: Any) -> Any:
        return ops.sum(outputs[0] * u) + ops.sum(outputs[1] * w)

    (kernel,) = weight_gradients(layer, [a, b], loss)
    grad_a, grad_b = input_gradients(layer, [a, b], loss)
    np.testing.assert_allclose(kernel, np.sum(a * u, axis=0), rtol=1e-5)
    np.testing.assert_allclose(grad_a, u * np.array([0.5, -1.0, 2.0]) + w, rtol=1e-5)
    np.testing.assert_allclose(grad_b, u - w, rtol=1e-5)


def test_gradients_need_a_float_output_or_a_loss() -> None:
    cast = keras.layers.Lambda(lambda x: ops.cast(x, "int32"))
    with pytest.raises(ValueError, match="no floating-point output"):
        weight_gradients(cast, np.ones((2, 3), "float32"))


def test_gradients_skip_on_other_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_training, "_tensorflow", lambda: False)
    monkeypatch.setattr(keras.backend, "backend", lambda: "numpy")
    with pytest.raises(pytest.skip.Exception, match="gradients need the TensorFlow"):
        weight_gradients(DeadWeight(), np.ones((2, 3), "float32"))


def _regression(seed: int) -> tuple[Any, np.ndarray, np.ndarray]:
    keras.utils.set_random_seed(seed)
    x = np.random.default_rng(seed).normal(size=(32, 3)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    return model, x, x @ np.array([[1.0], [-2.0], [0.5]], "float32")


def test_assert_training_reduces_loss_returns_both_losses() -> None:
    model, x, y = _regression(1)
    before, after = assert_training_reduces_loss(
        model, x, y, optimizer=keras.optimizers.SGD(0.1), epochs=3, batch_size=8, factor=0.5
    )
    assert 0 <= after < 0.5 * before
    assert after == pytest.approx(model.evaluate(x, y, verbose=0))


def test_assert_training_reduces_loss_fails_when_the_loss_stays() -> None:
    model, x, y = _regression(2)
    with pytest.raises(AssertionError, match=r"2 epoch\(s\) of training took the loss from"):
        assert_training_reduces_loss(model, x, y, optimizer=keras.optimizers.SGD(0.0), epochs=2)
    with pytest.raises(ValueError, match=r"Received: factor=0"):
        assert_training_reduces_loss(model, x, y, factor=0)


def test_numeric_helper_examples_run() -> None:
    import doctest

    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    tests = [t for t in finder.find(_training) if t.examples]
    assert len(tests) == 3
    for test in tests:
        runner.run(test)
    assert runner.failures == 0


def test_fresh_interpreter_inherits_env_and_reports_failures() -> None:
    done = run_in_fresh_interpreter(
        """
        import os, sys
        print(os.environ["LAYERHUB_KIT_PROBE"], os.environ["TF_CPP_MIN_LOG_LEVEL"], sys.argv[1])
        """,
        "arg",
        env={"LAYERHUB_KIT_PROBE": "seen"},
    )
    assert done.stdout.split()[0] == "seen"
    assert done.stdout.split()[2] == "arg"
    with pytest.raises(AssertionError, match=r"exited with status 3(.|\n)*boom"):
        run_in_fresh_interpreter("import sys; print('boom', file=sys.stderr); sys.exit(3)")


def test_pytest_plugin_imports_no_keras() -> None:
    run_in_fresh_interpreter(
        """
        import sys
        import layerhub.testing
        import layerhub.testing.pytest_plugin
        heavy = sorted({"keras", "numpy", "tensorflow"} & set(sys.modules))
        assert not heavy, heavy
        """
    )


CONFORMANCE_ARGS = ("-p", "no:cacheprovider", "--layerhub-conformance", "--layerhub-pattern=Scale")


def test_conformance_option_skips_layers_without_examples(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import layerhub_scale

    monkeypatch.delattr(layerhub_scale, "LAYERHUB_EXAMPLES", raising=False)
    result = pytester.runpytest_inprocess(*CONFORMANCE_ARGS, "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no LAYERHUB_EXAMPLES entry for Scale*"])


def test_conformance_option_checks_each_example(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import layerhub_scale

    examples = {
        "Scale": [({"axis": -1}, (2, 3)), {"init_kwargs": {"axis": 1}, "input_shape": (2, 3, 4)}]
    }
    monkeypatch.setattr(layerhub_scale, "LAYERHUB_EXAMPLES", examples, raising=False)
    # Rule 2's fresh interpreter is covered above; stubbed here to save its seconds.
    monkeypatch.setattr(_checks, "_CHECKS", {**_checks._CHECKS, 2: lambda case: None})
    result = pytester.runpytest_inprocess(*CONFORMANCE_ARGS, "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["layerhub-conformance::layerhub_scale>Scale PASSED*"])

    monkeypatch.setattr(layerhub_scale, "LAYERHUB_EXAMPLES", {"Scale": ({"axis": 4}, (2, 3))})
    result = pytester.runpytest_inprocess(*CONFORMANCE_ARGS)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*[[]layerhub rule 3: output shapes] Scale: *axis*"])


def test_conformance_is_opt_in_and_the_fixture_works(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from layerhub_scale import Scale

        def test_kit(layerhub_check, tmp_path):
            layerhub_check(Scale, {"axis": -1}, (2, 3), skip=[2])
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_mask_helper_catches_a_layer_that_drops_the_mask() -> None:
    import keras

    from layerhub.testing import assert_mask_passes_through

    class Doubles(keras.layers.Layer):
        """Per-position, but without supports_masking: the mask stops here."""

        def call(self, x: Any) -> Any:
            return 2.0 * x + 1.0

    class DoublesMasked(Doubles):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.supports_masking = True

    assert_mask_passes_through(DoublesMasked())
    with pytest.raises(AssertionError):
        assert_mask_passes_through(Doubles())
