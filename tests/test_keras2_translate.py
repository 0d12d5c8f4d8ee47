"""Keras 2 configs translated for Keras 3: nested-model node numbers, Lambda functions, dtype
policies, and the optimizer, losses and metrics of a training config.

The configs are written by hand in the form tf-keras writes them (no tf-keras needed); where a
translation only shows when Keras 3 rebuilds the model, they go into a small weightless ``.h5``.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np
import pytest

import layerhub
from layerhub._private.keras2 import translation
from layerhub._private.keras2.translation import OptimizerStateWarning

# -- helpers ---------------------------------------------------------------------------------------


def keras2_h5(path: Path, model: dict[str, Any], training: dict[str, Any] | None = None) -> Path:
    """A Keras 2 ``.h5`` file of a model without weights, laid out as tf-keras writes it."""
    with h5py.File(path, "w") as h5:
        h5.attrs["keras_version"] = "2.15.0"
        h5.attrs["backend"] = "tensorflow"
        h5.attrs["model_config"] = json.dumps(model)
        if training is not None:
            h5.attrs["training_config"] = json.dumps(training)
        weights = h5.create_group("model_weights")
        weights.attrs["layer_names"] = np.array([], dtype="S1")
    return path


def layer(class_name: str, name: str, inbound: list[Any], **config: Any) -> dict[str, Any]:
    """One layer of a Keras 2 functional config; ``inbound`` lists its calls (node lists)."""
    return {
        "class_name": class_name,
        "config": {"name": name, "trainable": True, "dtype": "float32", **config},
        "name": name,
        "inbound_nodes": inbound,
    }


def input_layer(name: str, width: int) -> dict[str, Any]:
    return layer("InputLayer", name, [], batch_input_shape=[None, width])


def call(*names_and_nodes: tuple[str, int]) -> list[list[Any]]:
    """One call of a layer on the given (layer name, node index) outputs."""
    return [[name, node, 0, {}] for name, node in names_and_nodes]


def functional(
    name: str, layers: list[dict[str, Any]], inputs: list[str], outputs: list[tuple[str, int]]
) -> dict[str, Any]:
    """A Keras 2 functional model's entry; ``outputs`` are (layer name, node index) pairs."""
    return {
        "class_name": "Functional",
        "config": {
            "name": name,
            "trainable": True,
            "layers": layers,
            "input_layers": [[input_name, 0, 0] for input_name in inputs],
            "output_layers": [[output, node, 0] for output, node in outputs],
        },
    }


def sequential(*layers: dict[str, Any]) -> dict[str, Any]:
    """A Keras 2 ``Sequential`` of ``layers`` on inputs of width 3."""
    head = {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 3]}}
    return {"class_name": "Sequential", "config": {"name": "seq", "layers": [head, *layers]}}


def inner_model() -> dict[str, Any]:
    """``relu`` as a functional model of its own, nested in the models below."""
    inner = functional(
        "inner",
        [
            input_layer("inner_in", 3),
            layer("Activation", "inner_relu", [call(("inner_in", 0))], activation="relu"),
        ],
        ["inner_in"],
        [("inner_relu", 0)],
    )
    return {**inner, "name": "inner", "inbound_nodes": [call(("x", 0))]}


def nested_and_shared() -> dict[str, Any]:
    """What tf-keras writes for, with x = Input((3,)) and shared = Activation("relu"):

    y = inner(x); t = Activation("tanh")(y); Model(x, [y, t, shared(x), shared(t)])

    Keras 2 numbered the nested model's call 1 (its own input was node 0) and the shared
    layer's calls 0 and 1.
    """
    return functional(
        "outer",
        [
            input_layer("x", 3),
            inner_model(),
            layer("Activation", "tanh", [call(("inner", 1))], activation="tanh"),
            layer("Activation", "shared", [call(("x", 0)), call(("tanh", 0))], activation="relu"),
        ],
        ["x"],
        [("inner", 1), ("tanh", 0), ("shared", 0), ("shared", 1)],
    )


def plain_functional() -> dict[str, Any]:
    """Model(x, Activation("relu")(x)): nothing Keras 3 misreads."""
    return functional(
        "plain",
        [input_layer("x", 3), layer("Activation", "relu", [call(("x", 0))], activation="relu")],
        ["x"],
        [("relu", 0)],
    )


def lambda_model(**lambda_config: Any) -> dict[str, Any]:
    return sequential({"class_name": "Lambda", "config": {"name": "lam", **lambda_config}})


def dense_with_dtype(dtype: Any) -> dict[str, Any]:
    return sequential({"class_name": "Dense", "config": {"name": "d", "units": 2, "dtype": dtype}})


def nothing_resolved(name: str) -> bool:
    return False


def translate(config: dict[str, Any], *, safe_mode: bool = True) -> dict[str, Any] | None:
    return translation.translate(config, nothing_resolved, safe_mode=safe_mode)


def references(config: dict[str, Any], layer_name: str) -> list[list[Any]]:
    """Every node list of the top-level graph (calls and outputs) pointing at ``layer_name``."""
    graph = config["config"]
    found = [ref for ref in graph["output_layers"] if ref[0] == layer_name]
    for entry in graph["layers"]:
        for node in entry["inbound_nodes"]:
            found += [ref for ref in node if ref[0] == layer_name]
    return found


# -- node numbers of nested models -----------------------------------------------------------------


def test_keras2_nested_model_and_shared_layer_rebuild_with_their_outputs(tmp_path: Path) -> None:
    path = keras2_h5(tmp_path / "nested.h5", nested_and_shared())
    model = layerhub.load_model(path, compile=False)
    x = np.array([[-1.0, 0.5, 2.0], [3.0, -2.0, 0.0]], dtype="float32")
    got = [keras.ops.convert_to_numpy(y) for y in model([x])]
    relu = np.maximum(x, 0.0)
    expected = [relu, np.tanh(relu), relu, np.maximum(np.tanh(relu), 0.0)]
    assert len(got) == len(expected)
    for y, want in zip(got, expected, strict=True):
        np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)


def test_references_to_a_nested_model_count_its_calls_from_zero() -> None:
    config = nested_and_shared()
    original = copy.deepcopy(config)
    fixed = translate(config)
    assert fixed is not None
    # Keras 3 numbers a nested model's calls from 0, as every layer's: its only call is node 0,
    # in the outputs as in the layers it feeds.
    assert [ref[1] for ref in references(fixed, "inner")] == [0, 0]
    # A shared layer's calls were numbered from 0 in Keras 2 already.
    assert [ref[1] for ref in references(fixed, "shared")] == [0, 1]
    assert config == original  # the caller's config is left as it was


def test_a_config_keras3_reads_as_it_is_is_not_rewritten() -> None:
    assert translate(plain_functional()) is None
    assert translate(dense_with_dtype("float32")) is None


def test_a_graph_model_without_a_layer_list_is_not_rewritten() -> None:
    assert translate({"class_name": "Functional", "config": {"name": "empty"}}) is None


def test_a_layer_without_a_config_is_left_for_keras_to_judge() -> None:
    config = plain_functional()
    del config["config"]["layers"][1]["config"]
    assert translate(config) is None


def test_only_graph_models_are_renumbered() -> None:
    # A plugin's own class may hold a graph-shaped config; its numbering is the plugin's.
    config = nested_and_shared()
    config["class_name"] = "Custom>Pipeline"
    assert translate(config) is None


# -- Lambda layers --------------------------------------------------------------------------------


def test_a_lambda_function_saved_by_name_becomes_a_keras3_function_reference() -> None:
    config = lambda_model(function="channel_slice", function_type="function")
    fixed = translation.translate(config, {"channel_slice"}.__contains__, safe_mode=True)
    assert fixed is not None
    lam = fixed["config"]["layers"][1]["config"]
    assert "function_type" not in lam

    def channel_slice(x: Any) -> Any:
        return x

    # Keras 3 resolves the new form from custom_objects by the name, as for any function.
    with keras.saving.custom_object_scope({"channel_slice": channel_slice}):
        assert keras.saving.deserialize_keras_object(lam["function"]) is channel_slice


def test_a_lambda_function_name_nothing_resolves_is_left_as_saved() -> None:
    config = lambda_model(function="channel_slice", function_type="function")
    assert translate(config) is None


def keras2_bytecode(function: Any) -> list[Any]:
    """A function as Keras 2 saved it in a Lambda config: [code, defaults, closure]."""
    from keras.src.utils import python_utils

    return list(python_utils.func_dump(function))


def test_a_keras2_output_shape_lambda_is_the_one_keras3_uses_without_safe_mode(
    tmp_path: Path,
) -> None:
    lam = {
        "name": "lam",
        "trainable": True,
        "dtype": "float32",
        "function": keras2_bytecode(lambda x: x),
        "function_type": "lambda",
        "module": "__main__",
        "output_shape": keras2_bytecode(lambda shape: (shape[0], 7)),
        "output_shape_type": "lambda",
        "output_shape_module": "__main__",
        "arguments": {},
    }
    model = sequential({"class_name": "Lambda", "config": lam})
    path = keras2_h5(tmp_path / "lambda.h5", model)
    loaded = layerhub.load_model(path, safe_mode=False, compile=False)
    assert loaded.layers[-1].compute_output_shape((4, 3)) == (4, 7)


def test_under_safe_mode_an_output_shape_lambda_is_not_rewritten() -> None:
    config = lambda_model(
        function="channel_slice",
        function_type="function",
        output_shape=keras2_bytecode(lambda shape: shape),
        output_shape_type="lambda",
    )
    assert translate(config, safe_mode=True) is None


def test_a_keras2_lambda_function_is_left_for_keras3_which_reads_it() -> None:
    # Keras 3's Lambda.from_config reads a Keras 2 "function_type": "lambda" function itself.
    config = lambda_model(function=keras2_bytecode(lambda x: x), function_type="lambda")
    assert translate(config, safe_mode=False) is None


# -- dtype policies -------------------------------------------------------------------------------


def test_a_keras2_policy_becomes_its_name_wherever_it_is() -> None:
    policy = {"class_name": "Policy", "config": {"name": "mixed_float16"}}
    # A dictionary holding nothing but the policy is rewritten too.
    config = {"class_name": "Custom>Cast", "config": {"dtype": policy}}
    fixed = translate(config)
    assert fixed == {"class_name": "Custom>Cast", "config": {"dtype": "mixed_float16"}}
    assert keras.DTypePolicy(fixed["config"]["dtype"]).compute_dtype == "float16"


@pytest.mark.parametrize(
    "policy",
    [{"class_name": "Policy"}, {"class_name": "Policy", "config": {"name": 16}}],
    ids=["no-config", "name-not-a-string"],
)
def test_a_policy_without_a_name_is_left_for_keras_to_judge(policy: dict[str, Any]) -> None:
    assert translate(dense_with_dtype(policy)) is None


# -- losses and metrics of a training config ------------------------------------------------------


def test_accuracy_and_crossentropy_shorthands_in_any_case_need_nothing() -> None:
    # Keras 3's compile resolves these by str(identifier).lower(), whatever their case.
    shorthands = ["acc", "ACC", "Accuracy", "ce", "CE", "Crossentropy"]
    assert translation.training_names({"metrics": shorthands, "loss": "mse"}) == set()
    assert translation.training_names({"metrics": ["acc", "my_metric"]}) == {"my_metric"}


def test_per_output_losses_are_all_looked_at() -> None:
    training = {"loss": {"boxes": "my_loss", "scores": "binary_crossentropy"}}
    assert translation.training_names(training) == {"my_loss"}


def test_a_registered_keras2_name_is_needed_whatever_its_package() -> None:
    # "Package>Name" is a user-registered object, even when the package looks like a marker.
    training = {"loss": "__main__>focal", "metrics": ["Custom>f1"]}
    assert translation.training_names(training) == {"__main__>focal", "Custom>f1"}


# -- optimizer ------------------------------------------------------------------------------------

RESTORED = (
    "layerhub: the Keras 2 optimizer was restored as {} from its saved configuration, but not "
    "its state (iterations, momentum or moment slots): training resumes from a fresh optimizer "
    "state"
)


def recovered(optimizer: Any) -> tuple[dict[str, Any] | None, list[str]]:
    training = {"loss": "mse", "optimizer_config": optimizer}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = translation.recovered_optimizer(training)
    said = [str(w.message) for w in caught if issubclass(w.category, OptimizerStateWarning)]
    return result, said


@pytest.mark.parametrize(
    ("optimizer", "restored"),
    [
        (  # tf-keras 2.x legacy optimizers, by bare class name
            {
                "class_name": "Adam",
                "config": {
                    "name": "Adam",
                    "learning_rate": 0.001,
                    "decay": 0.0,
                    "beta_1": 0.9,
                    "beta_2": 0.999,
                    "epsilon": 1e-07,
                    "amsgrad": False,
                },
            },
            "Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07)",
        ),
        (
            {
                "class_name": "RMSprop",
                "config": {
                    "name": "RMSprop",
                    "learning_rate": 0.01,
                    "decay": 0.0,
                    "rho": 0.8,
                    "momentum": 0.0,
                    "epsilon": 1e-07,
                    "centered": False,
                },
            },
            "RMSprop(learning_rate=0.01, rho=0.8, momentum=0.0, epsilon=1e-07)",
        ),
    ],
    ids=["Adam", "RMSprop"],
)
def test_a_keras2_optimizer_is_restored_with_its_settings(
    optimizer: dict[str, Any], restored: str
) -> None:
    result, said = recovered(optimizer)
    assert said == [RESTORED.format(restored)]
    assert result is not None
    assert result["loss"] == "mse"
    rebuilt = keras.optimizers.deserialize(result["optimizer_config"])
    assert type(rebuilt).__name__ == optimizer["class_name"]
    settings = rebuilt.get_config()
    for key, value in optimizer["config"].items():
        if key not in ("name", "decay"):
            assert settings[key] == pytest.approx(value), key


def test_keras_2_2_optimizer_settings_keras3_lacks_are_named_as_dropped() -> None:
    # Keras 2.2 wrote "lr"; Nadam's "schedule_decay" has no Keras 3 counterpart either.
    nadam = {
        "class_name": "Nadam",
        "config": {
            "lr": 0.002,
            "beta_1": 0.9,
            "beta_2": 0.999,
            "epsilon": 1e-07,
            "schedule_decay": 0.004,
        },
    }
    result, said = recovered(nadam)
    assert said == [
        RESTORED.format("Nadam(beta_1=0.9, beta_2=0.999, epsilon=1e-07)")
        + "; settings Keras 3 has no equivalent for were dropped: lr, schedule_decay"
    ]
    assert result is not None
    rebuilt = keras.optimizers.deserialize(result["optimizer_config"])
    assert isinstance(rebuilt, keras.optimizers.Nadam)


@pytest.mark.parametrize(
    "optimizer",
    [
        None,
        {"class_name": 3, "config": {}},
        {"class_name": "Custom>NoSuchOptimizer", "config": {}},
        {"class_name": "SGD", "config": None},
    ],
    ids=["none", "name-not-a-string", "unknown-class", "config-not-a-dict"],
)
def test_an_optimizer_keras3_has_no_class_for_is_left_alone(optimizer: Any) -> None:
    assert recovered(optimizer) == (None, [])


def test_the_optimizer_warning_points_outside_layerhub(tmp_path: Path) -> None:
    model = sequential({"class_name": "Activation", "config": {"name": "a", "activation": "relu"}})
    sgd = {
        "class_name": "Custom>SGD",
        "config": {
            "name": "SGD",
            "jit_compile": False,
            "is_legacy_optimizer": False,
            "learning_rate": 0.05,
            "momentum": 0.9,
            "nesterov": True,
        },
    }
    training = {
        "loss": "mse",
        "metrics": None,
        "weighted_metrics": None,
        "loss_weights": None,
        "optimizer_config": sgd,
    }
    path = keras2_h5(tmp_path / "m.h5", model, training)
    with pytest.warns(OptimizerStateWarning) as caught:
        loaded = layerhub.load_model(path)
    # Attributed to the code that loads the model, not to layerhub's own modules.
    package = str(Path(layerhub.__file__).parent)
    ours = [w for w in caught if w.category is OptimizerStateWarning]
    assert [w.filename.startswith(package) for w in ours] == [False]
    assert str(ours[0].message) == RESTORED.format(
        "SGD(learning_rate=0.05, momentum=0.9, nesterov=True)"
    )
    assert loaded.optimizer.get_config()["momentum"] == pytest.approx(0.9)


# -- mixed precision: tf-keras' LossScaleOptimizer -----------------------------------------------

KERAS2_ADAM = {
    "name": "Adam",
    "jit_compile": False,
    "is_legacy_optimizer": False,
    "learning_rate": 0.01,
    "beta_1": 0.8,
    "beta_2": 0.999,
    "epsilon": 1e-07,
    "amsgrad": False,
}


def loss_scaled(class_name: str, inner: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return {"class_name": class_name, "config": {"inner_optimizer": inner, **settings}}


@pytest.mark.parametrize(
    "optimizer",
    [
        # tf-keras 2.11+ in an .h5 file: the inner optimizer in Keras 3's own form.
        loss_scaled(
            "LossScaleOptimizerV3",
            {
                "module": "keras.optimizers",
                "class_name": "Adam",
                "config": KERAS2_ADAM,
                "registered_name": None,
            },
            dynamic=True,
            initial_scale=1024.0,
            dynamic_growth_steps=10,
        ),
        # A SavedModel's metadata: the inner optimizer by its registered name.
        loss_scaled(
            "LossScaleOptimizerV3",
            {"class_name": "Custom>Adam", "config": KERAS2_ADAM, "shared_object_id": 10},
            dynamic=True,
            initial_scale=1024.0,
            dynamic_growth_steps=10,
        ),
        # The wrapper of legacy optimizers, registered.
        loss_scaled(
            "Custom>LossScaleOptimizer",
            {"class_name": "Adam", "config": {**KERAS2_ADAM, "decay": 0.0}},
            dynamic=True,
            initial_scale=1024.0,
            dynamic_growth_steps=10,
        ),
        # TF 2.3 and before: a loss-scale object.
        {
            "class_name": "LossScaleOptimizer",
            "config": {
                "optimizer": {"class_name": "Adam", "config": KERAS2_ADAM},
                "loss_scale": {
                    "class_name": "DynamicLossScale",
                    "config": {
                        "initial_loss_scale": 1024.0,
                        "increment_period": 10,
                        "multiplier": 2.0,
                    },
                },
            },
        },
    ],
    ids=["v3-h5", "v3-savedmodel", "legacy", "tf2.3"],
)
def test_a_dynamic_loss_scale_optimizer_becomes_keras3s(optimizer: dict[str, Any]) -> None:
    result, said = recovered(optimizer)
    assert said == [
        RESTORED.format(
            "LossScaleOptimizer(Adam(learning_rate=0.01, beta_1=0.8, beta_2=0.999, "
            "epsilon=1e-07), initial_scale=1024.0, dynamic_growth_steps=10)"
        )
    ]
    assert result is not None
    rebuilt = keras.optimizers.deserialize(result["optimizer_config"])
    assert isinstance(rebuilt, keras.optimizers.LossScaleOptimizer)
    assert (rebuilt.initial_scale, rebuilt.dynamic_growth_steps) == (1024.0, 10)
    inner = rebuilt.inner_optimizer
    assert isinstance(inner, keras.optimizers.Adam)
    assert inner.get_config()["beta_1"] == pytest.approx(0.8)
    assert float(inner.learning_rate) == pytest.approx(0.01)


def test_a_fixed_loss_scale_becomes_the_inner_optimizers_loss_scale_factor() -> None:
    # Keras 3's LossScaleOptimizer refuses dynamic=False; a constant scale is loss_scale_factor.
    inner = {"class_name": "SGD", "config": {"name": "SGD", "learning_rate": 0.1}}
    optimizer = loss_scaled("LossScaleOptimizerV3", inner, dynamic=False, initial_scale=128.0)
    result, said = recovered(optimizer)
    assert said == [RESTORED.format("SGD(learning_rate=0.1) with a fixed loss scale of 128.0")]
    assert result is not None
    rebuilt = keras.optimizers.deserialize(result["optimizer_config"])
    # each backend has its own SGD subclass (torch's TorchSGD)
    assert isinstance(rebuilt, keras.optimizers.SGD)
    assert not isinstance(rebuilt, keras.optimizers.LossScaleOptimizer)
    assert rebuilt.loss_scale_factor == 128.0
    # The same from TF 2.3's FixedLossScale.
    old = {
        "class_name": "LossScaleOptimizer",
        "config": {
            "optimizer": inner,
            "loss_scale": {"class_name": "FixedLossScale", "config": {"loss_scale_value": 128.0}},
        },
    }
    assert recovered(old)[0] == recovered(optimizer)[0]


def test_a_dynamic_loss_scale_growing_other_than_twofold_is_named_as_dropped() -> None:
    scale = {"initial_loss_scale": 8.0, "increment_period": 5, "multiplier": 4.0}
    old = {
        "class_name": "LossScaleOptimizer",
        "config": {
            "optimizer": {"class_name": "SGD", "config": {"learning_rate": 0.1}},
            "loss_scale": {"class_name": "DynamicLossScale", "config": scale},
        },
    }
    _, said = recovered(old)
    assert said[0].endswith("; settings Keras 3 has no equivalent for were dropped: multiplier")


@pytest.mark.parametrize(
    "settings",
    [
        None,
        {"inner_optimizer": {"class_name": "Custom>NoSuchOptimizer", "config": {}}},
        {"inner_optimizer": {"class_name": "SGD", "config": {}}, "initial_scale": "big"},
    ],
    ids=["no-config", "unknown-inner", "scale-not-a-number"],
)
def test_a_loss_scale_optimizer_keras3_cannot_rebuild_is_left_alone(settings: Any) -> None:
    assert recovered({"class_name": "LossScaleOptimizerV3", "config": settings}) == (None, [])


def test_keras3s_own_loss_scale_optimizer_name_is_not_taken_for_a_plain_optimizer() -> None:
    # Only tf-keras' wrapper form (an inner optimizer) is read; a bare config is not guessed at.
    assert recovered({"class_name": "LossScaleOptimizer", "config": {"name": "x"}}) == (None, [])
