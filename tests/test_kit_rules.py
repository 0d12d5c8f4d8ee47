"""The stricter conformance rules, each fed the porting bug it exists for.

Masking (rule 8), both 16-bit policies (rule 6), base arguments in the config (rule 1), seeded
relative gradients (rule 5), and messages that point at the real cause.
"""

from __future__ import annotations

import types
import warnings
from typing import Any

import keras
import numpy as np
import pytest
from keras import ops

from layerhub import Registry, hookimpl
from layerhub.testing import (
    ConformanceError,
    ConformanceNote,
    RoundTripError,
    check_layer,
    run_in_fresh_interpreter,
)
from layerhub.testing.rules import roundtrip

pytest_plugins = ["pytester"]

NOT_A_PLUGIN = (2, 7)
register = keras.saving.register_keras_serializable(package="layerhub_kit_rules")


# Notes are warnings; the tests about them catch them with pytest.warns.
pytestmark = pytest.mark.filterwarnings("ignore::layerhub.testing.ConformanceNote")


def broken_rules(layer_cls: type[Any], init_kwargs: dict[str, Any], shape: Any, **kw: Any) -> Any:
    with pytest.raises(ConformanceError) as caught:
        check_layer(layer_cls, init_kwargs, shape, **{"skip": NOT_A_PLUGIN, **kw})
    return caught.value


class _Elementwise(keras.layers.Layer):
    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


# -- rule 8: masking -------------------------------------------------------------------------------


@register
class PoolsButPassesMask(keras.layers.Layer):
    """Halves the steps, yet passes the input mask through (supports_masking=True)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs: Any) -> Any:
        return inputs[:, ::2]

    def compute_output_shape(self, input_shape: Any) -> Any:
        steps = None if input_shape[1] is None else (input_shape[1] + 1) // 2
        return (input_shape[0], steps, *input_shape[2:])


@register
class CentresOverTime(_Elementwise):
    """Subtracts the mean over all steps, padded ones included, though it claims masking."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs: Any) -> Any:
        return inputs - ops.mean(inputs, axis=1, keepdims=True)


@register
class MaskedMeanOverTime(keras.layers.Layer):
    """Averages the unmasked steps: consumes the mask, as GlobalAveragePooling1D does."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs: Any, mask: Any = None) -> Any:
        if mask is None:
            return ops.mean(inputs, axis=1)
        weights = ops.cast(mask, inputs.dtype)[..., None]
        return ops.sum(inputs * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return None

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (input_shape[0], *input_shape[2:])


@register
class Doubles(_Elementwise):
    """Correct, and without masking support."""

    def call(self, inputs: Any) -> Any:
        return inputs * 2.0


@register
class ClaimsWrongShape(_Elementwise):
    """Returns one column, declares all; no masking support."""

    def call(self, inputs: Any) -> Any:
        return inputs[:, :1]


def test_a_mask_passed_through_a_layer_that_changes_the_steps_breaks_rule_8() -> None:
    error = broken_rules(PoolsButPassesMask, {}, (2, 4, 3))
    assert error.rules == [8]
    message = error.failures[8]
    assert "supports_masking = True passes the input mask through unchanged" in message
    assert "mask of shape (2, 4), but output 0 has shape (2, 2, 3)" in message
    assert "define compute_mask(inputs, mask)" in message


def test_a_layer_that_mixes_masked_steps_into_the_others_breaks_rule_8() -> None:
    error = broken_rules(CentresOverTime, {}, (2, 4, 3))
    assert error.rules == [8]
    assert "changing only the masked input steps changed output 0 at unmasked" in str(error)
    assert "take mask=None in call()" in str(error)


def test_a_layer_that_honours_the_mask_passes_rule_8() -> None:
    report = check_layer(MaskedMeanOverTime, {}, (2, 4, 3), skip=NOT_A_PLUGIN)
    assert 8 in report.rules
    assert report.notes == []


def test_a_layer_without_masking_gets_a_note_not_a_failure() -> None:
    with pytest.warns(ConformanceNote, match=r"Doubles: rule 8 \(masking\): .* does not support"):
        report = check_layer(Doubles, {}, (2, 4, 3), skip=NOT_A_PLUGIN)
    assert len(report.notes) == 1
    assert "supports_masking is False" in report.notes[0]


def test_inputs_the_rule_cannot_mask_get_a_note() -> None:
    with pytest.warns(ConformanceNote, match="masking was not checked"):
        report = check_layer(CentresOverTime, {}, (2, 3), skip=NOT_A_PLUGIN, rules=[8])
    assert "(batch, steps, features)" in report.notes[0]


def test_notes_are_listed_under_the_failures() -> None:
    error = broken_rules(Doubles, {"units": 1}, (2, 4, 3))  # the constructor refuses: rule 1
    assert error.rules == [1]
    error = broken_rules(ClaimsWrongShape, {}, (2, 3), rules=[3, 8])
    assert error.rules == [3]
    assert len(error.notes) == 1
    assert str(error).endswith(error.notes[0])
    assert "\n\nNotes:\n- rule 8 (masking)" in str(error)


# -- rule 6: both 16-bit policies ------------------------------------------------------------------


@register
class HugeMaskConstant(_Elementwise):
    """Masks negative inputs with -1e9: inf in float16, and inf * 0 is nan."""

    def call(self, inputs: Any) -> Any:
        negative = ops.cast(inputs < 0, self.compute_dtype)
        return ops.softmax(inputs + negative * ops.cast(-1e9, self.compute_dtype), axis=-1)


def test_a_constant_beyond_float16_breaks_rule_6_under_mixed_float16() -> None:
    error = broken_rules(HugeMaskConstant, {}, (2, 5))
    assert error.rules == [6]
    assert "under 'mixed_float16' output 0 has inf or nan values" in str(error)
    assert "float16 ends at 65504" in str(error)
    # bfloat16 alone, the old default, lets it pass.
    check_layer(HugeMaskConstant, {}, (2, 5), rules=[6], mixed_precision="mixed_bfloat16")
    check_layer(HugeMaskConstant, {}, (2, 5), rules=[6], mixed_precision=None)


# -- rule 1: base arguments ------------------------------------------------------------------------


@register
class ForgetsSuperConfig(_Elementwise):
    """get_config() without super().get_config(): name, trainable and dtype are lost."""

    def __init__(self, factor: float = 2.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs: Any) -> Any:
        return inputs * self.factor

    def get_config(self) -> dict[str, Any]:
        return {"factor": self.factor}


@register
class SwallowsKwargs(_Elementwise):
    """Writes the base arguments but never passes them to super().__init__()."""

    def __init__(self, factor: float = 2.0, **kwargs: Any) -> None:
        super().__init__()
        self.factor = factor

    def call(self, inputs: Any) -> Any:
        return inputs * self.factor

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"factor": self.factor, "name": "x", "trainable": False})
        return {**config, "name": "layerhub_check_name", "dtype": "float64"}


def test_get_config_without_super_breaks_rule_1() -> None:
    error = broken_rules(ForgetsSuperConfig, {}, (2, 3), rules=[1])
    message = error.failures[1]
    assert "name='layerhub_check_name' came back as 'forgets_super_config" in message
    assert "trainable=False came back as True" in message
    assert "dtype='float64' came back as 'float32'" in message
    assert "does not call super().get_config()" in message
    assert "config = super().get_config()" in message.partition("Fix:")[2]


def test_arguments_not_passed_to_super_break_rule_1() -> None:
    error = broken_rules(SwallowsKwargs, {}, (2, 3), rules=[1])
    assert "trainable=False came back as True" in str(error)
    assert "does not pass them on to super().__init__()" in str(error)


# -- rule 5: seeded, relative gradients ------------------------------------------------------------


@register
class BiasBeforeSoftmax(_Elementwise):
    """A scalar bias added before a softmax over the same axis: its gradient cancels out."""

    def build(self, input_shape: Any) -> None:
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1],))
        self.bias = self.add_weight(name="bias", shape=(1,), initializer="random_normal")

    def call(self, inputs: Any) -> Any:
        return ops.softmax(inputs * self.kernel + self.bias, axis=-1)


def test_a_bias_cancelled_by_a_softmax_breaks_rule_5_every_time() -> None:
    # Its gradient is rounding noise (not always exactly zero): relative to the kernel's, none.
    messages = {str(broken_rules(BiasBeforeSoftmax, {}, (4, 6), seed=s)) for s in (0, 0, 1)}
    for message in messages:
        assert "trainable weight(s) bias get no gradient" in message
        assert "a bias or offset added before a softmax or normalisation" in message
        assert "over the same axis cancels out" in message
    assert len(messages) == 1


# -- messages that point at the real cause ---------------------------------------------------------


@register
class ArrayInConfig(_Elementwise):
    """Keeps a NumPy array in its config."""

    def __init__(self, table: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table = np.ones((1, 9), "float32") if table is None else np.asarray(table)

    def call(self, inputs: Any) -> Any:
        return inputs * float(self.table.sum())

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "table": self.table}


def _ones(shape: Any, dtype: Any = None) -> Any:
    return ops.ones(shape, dtype)


@register
class LambdaInitializer(_Elementwise):
    """A lambda as the default initializer."""

    def __init__(self, kernel_initializer: Any = lambda s, dtype=None: _ones(s, dtype), **kw: Any):
        super().__init__(**kw)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape: Any) -> None:
        self.kernel = self.add_weight(shape=(input_shape[-1],), initializer=self.kernel_initializer)

    def call(self, inputs: Any) -> Any:
        return inputs * self.kernel

    def get_config(self) -> dict[str, Any]:
        initializer = keras.initializers.serialize(self.kernel_initializer)
        return {**super().get_config(), "kernel_initializer": initializer}


def test_an_array_in_the_config_names_the_key_and_plain_json() -> None:
    error = broken_rules(ArrayInConfig, {}, (2, 3), rules=[1])
    message = error.failures[1]
    assert "holds a numpy.ndarray under 'table', which is not a plain JSON value" in message
    assert "Fix: return plain JSON values from get_config(): convert 'table'" in message
    assert "register" not in message


def test_a_lambda_initializer_gets_an_initializer_fix() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Keras warns about serialising lambdas
        error = broken_rules(LambdaInitializer, {}, (2, 3), rules=[1])
    message = error.failures[1]
    assert "holds a Python lambda under 'kernel_initializer'" in message
    fix = message.partition("Fix:")[2]
    assert "use a built-in initializer for 'kernel_initializer'" in fix
    assert "Lambda" not in fix


def _fresh_failure(seen: str) -> RoundTripError:
    return RoundTripError(
        f"loading the saved model in a fresh interpreter failed: {seen}", "the usual fix"
    )


class Added(_Elementwise):
    """A layer added to an installed plugin, whose entry points were written before it."""

    __module__ = "layerhub_grown.added"

    def call(self, inputs: Any) -> Any:
        return inputs * 3.0


class Old(Added):
    __module__ = "layerhub_grown.old"


keras.saving.register_keras_serializable(package="layerhub_grown")(Added)
keras.saving.register_keras_serializable(package="layerhub_grown")(Old)


def _grown_registry() -> Registry:
    plugin = types.ModuleType("layerhub_grown")
    plugin.layerhub_layers = hookimpl(lambda: [Old])  # type: ignore[attr-defined]
    registry = Registry([])
    registry.register(plugin)
    return registry


def test_a_layer_added_without_reinstalling_gets_one_message_reinstall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    missing = "MissingPluginError: the model needs layerhub_grown>Added, which is not installed"

    def fails(*args: Any, **kwargs: Any) -> None:
        raise _fresh_failure(missing + "; run: pip install layerhub-grown")

    # The fresh interpreter's own report, without spending its seconds.
    monkeypatch.setattr(roundtrip, "assert_roundtrip", fails)
    error = broken_rules(Added, {}, (2, 3), rules=[2, 7], skip=(), registry=_grown_registry())
    assert error.rules == [2, 7]
    assert error.causes == [7]
    assert error.consequences == {2: 7}
    assert list(error.failures) == [7, 2]
    assert str(error).startswith("[layerhub rule 7: plugin registration] Added: the plugin")
    assert "installed entry points do not declare 'layerhub_grown>Added'" in error.failures[7]
    assert "reinstall the plugin (pip install -e" in error.failures[7]
    assert "(a consequence of rule 7: plugin registration)" in error.failures[2]
    assert "pip install layerhub-grown" not in str(error)
    # Rule 2 alone says the same.
    error = broken_rules(Added, {}, (2, 3), rules=[2], skip=(), registry=_grown_registry())
    assert "the plugin layerhub_grown is installed" in error.failures[2]
    assert "reinstall the plugin" in error.failures[2]


def test_the_lambda_report_of_rule_2_defers_to_rule_1() -> None:
    seen = "UnsafeModelError: layer 'x' holds Python bytecode in its kernel_initializer"
    case = types.SimpleNamespace(cls=LambdaInitializer, registry=Registry([]))
    broken = roundtrip._explained(case, _fresh_failure(seen))  # type: ignore[arg-type]
    assert broken.cause == 1
    assert "Lambda" not in (broken.fix or "")


@register
class LazyWeights(_Elementwise):
    """Creates its weight in the first call()."""

    def call(self, inputs: Any) -> Any:
        if not hasattr(self, "kernel"):
            self.kernel = self.add_weight(shape=(inputs.shape[-1],), initializer="ones")
        return inputs * self.kernel


def test_weights_made_in_call_report_rule_4_first_and_the_rest_as_consequences() -> None:
    error = broken_rules(LazyWeights, {}, (2, 3))
    assert error.causes == [4]
    assert str(error).startswith("[layerhub rule 4: weights in build()] LazyWeights:")
    assert error.consequences
    assert all(cause == 4 for cause in error.consequences.values())
    for rule in error.consequences:
        assert "(a consequence of rule 4: weights in build())" in error.failures[rule]
        assert "Fix: fix rule 4 first" in error.failures[rule]


FAKE_TENSORFLOW = types.ModuleType("fake_tf")
exec(  # a library frame outside the layer's file, as TensorFlow's would be
    compile(
        "def tensordot(a, b, axes):\n"
        "    raise AttributeError(\"'str' object has no attribute '_error_repr'\")\n",
        "<fake tensorflow>",
        "exec",
    ),
    FAKE_TENSORFLOW.__dict__,
)
tf = FAKE_TENSORFLOW


@register
class CallsTensorflow(_Elementwise):
    def build(self, input_shape: Any) -> None:
        self.kernel = self.add_weight(shape=(input_shape[-1], input_shape[-1]))

    def call(self, inputs: Any) -> Any:
        return tf.tensordot(inputs, self.kernel, axes=1)  # type: ignore[attr-defined]


def test_an_error_inside_a_library_the_layer_calls_names_the_layers_line() -> None:
    error = broken_rules(CallsTensorflow, {}, (2, 3), rules=[3])
    message = error.failures[3]
    assert "the layer raised AttributeError: 'str' object has no attribute '_error_repr'" in message
    assert "at test_kit_rules.py:" in message
    assert "`return tf.tensordot(inputs, self.kernel, axes=1)" in message


@pytest.mark.slow
def test_tensorflow_calls_on_jax_report_the_layers_error(tmp_path: Any) -> None:
    pytest.importorskip("jax")  # the layer runs on the JAX backend, in a fresh interpreter
    (tmp_path / "tf_dot.py").write_text(
        "import keras, tensorflow as tf\n"
        "\n"
        "class TfDot(keras.layers.Layer):\n"
        "    def build(self, shape):\n"
        "        self.k = self.add_weight(shape=(shape[-1], 2))\n"
        "\n"
        "    def call(self, x):\n"
        "        return tf.tensordot(x, self.k, axes=1)\n"
        "\n"
        "    def compute_output_shape(self, shape):\n"
        "        return (*shape[:-1], 2)\n"
    )
    done = run_in_fresh_interpreter(
        """
        from layerhub.testing import ConformanceError, check_layer
        from tf_dot import TfDot

        try:
            check_layer(TfDot, {}, (2, 3), rules=[6], mixed_precision=None)
        except ConformanceError as error:
            print(error)
        """,
        env={"KERAS_BACKEND": "jax", "PYTHONPATH": str(tmp_path)},
    )
    assert "the layer raised AttributeError" in done.stdout
    assert "tf_dot.py:8: `return tf.tensordot(x, self.k, axes=1)`" in done.stdout
    assert "cannot run on the jax backend: use keras.ops" in done.stdout


def test_a_failing_check_hides_the_kits_frames(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import keras
        from layerhub.testing import check_layer

        class Lazy(keras.layers.Layer):
            def call(self, x):
                if not hasattr(self, "k"):
                    self.k = self.add_weight(shape=(x.shape[-1],))
                return x * self.k

            def compute_output_shape(self, shape):
                return shape

        def test_lazy():
            check_layer(Lazy, {}, (2, 3), rules=[4])
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "[layerhub rule 4: weights in build()] Lazy" in output
    for kit_source in ("def check_layer(", "def check(case", "def doing(", "_CHECKS[rule]"):
        assert kit_source not in output


# -- consequences name the real cause ------------------------------------------------------------


def test_an_array_in_the_config_is_the_cause_of_rule_2_not_the_registration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import layerhub

    # What the fresh interpreter meets, taken from a real load and predict: the class is
    # registered in this process, and predicting still fails, so registering cannot be the fix.
    inputs = keras.Input((3,))
    path = layerhub.save_model(keras.Model(inputs, ArrayInConfig()(inputs)), tmp_path / "a.keras")
    loaded = layerhub.load_model(path)  # the layer is rebuilt; its table is now a dict
    with pytest.raises(TypeError, match="not 'dict'") as real:
        loaded(np.ones((2, 3), "float32"))
    child_line = f"{type(real.value).__name__}: {str(real.value).splitlines()[0]}"

    def fails(*args: Any, **kwargs: Any) -> None:
        raise _fresh_failure(child_line)

    monkeypatch.setattr(roundtrip, "assert_roundtrip", fails)
    error = broken_rules(ArrayInConfig, {}, (2, 3), rules=[1, 2], skip=())
    assert error.causes == [1]
    assert error.consequences == {2: 1}
    assert "(a consequence of rule 1: config round trip)" in error.failures[2]
    assert "fix rule 1 first" in error.failures[2]
    # Rule 2 alone names the config too, and says registration is not the fix.
    error = broken_rules(ArrayInConfig, {}, (2, 3), rules=[2], skip=())
    message = error.failures[2]
    assert "the cause is the config, not the registration" in message
    assert "holds a numpy.ndarray under 'table'" in message
    fix = message.partition("Fix:")[2]
    assert "convert 'table' with .tolist()" in fix
    assert "registering the class does not fix this" in fix
    assert "register_keras_serializable" not in message


def test_a_plain_config_keeps_the_round_trips_own_report() -> None:
    case = types.SimpleNamespace(cls=Doubles, registry=Registry([]), new_layer=lambda: Doubles())
    broken = roundtrip._explained(case, _fresh_failure("ValueError: odd"))  # type: ignore[arg-type]
    assert broken.cause is None
    assert broken.fix == "the usual fix"


# -- rule 8: a mask dropped by compute_mask returning None ---------------------------------------


@register
class DropsMask(_Elementwise):
    """Keeps the steps, claims masking support, and returns no mask."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs: Any) -> Any:
        return inputs * 2.0

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return None


@register
class ZeroesMaskedSteps(DropsMask):
    """Takes the mask, zeroes the masked steps and ends the masking: possibly on purpose."""

    def call(self, inputs: Any, mask: Any = None) -> Any:
        if mask is None:
            return inputs * 2.0
        return inputs * 2.0 * ops.cast(mask, inputs.dtype)[..., None]


def _mask_after(layer: keras.layers.Layer) -> Any:
    x = np.ones((2, 4, 3), "float32")
    x[0, -1] = 0.0
    out = layer(keras.layers.Masking(0.0)(x))
    return getattr(out, "_keras_mask", None)


def test_a_layer_whose_compute_mask_returns_none_while_keeping_the_steps_breaks_rule_8() -> None:
    # Keras itself: the mask Masking produced does not get past the layer, while a plain
    # supports_masking layer hands it on.
    assert _mask_after(DropsMask()) is None
    passes = keras.layers.Activation("linear")
    assert passes.supports_masking
    assert _mask_after(passes) is not None
    error = broken_rules(DropsMask, {}, (2, 4, 3), rules=[8])
    message = error.failures[8]
    assert "DropsMask sets supports_masking = True, but compute_mask returns None" in message
    assert "output 0 keeps the steps of its input (shape (2, 4, 3))" in message
    assert "the mask the layer before it produced is dropped" in message
    assert "Fix: return the mask from compute_mask (return mask)" in message


def test_a_layer_that_takes_the_mask_and_ends_it_gets_a_note() -> None:
    with pytest.warns(ConformanceNote, match="compute_mask returns None"):
        report = check_layer(ZeroesMaskedSteps, {}, (2, 4, 3), skip=NOT_A_PLUGIN, rules=[8])
    assert len(report.notes) == 1
    assert "consumes the mask on purpose" in report.notes[0]
