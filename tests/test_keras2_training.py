"""Keras 2 training configurations: which names they use and which Keras resolves itself."""

from __future__ import annotations

import keras

from layerhub._private import keras2


def test_loss_aliases_are_found_in_any_shape_of_loss() -> None:
    per_output = {"loss": {"boxes": "bce", "scores": ["KLD", "categorical_crossentropy"]}}
    assert keras2.loss_aliases(per_output) == {
        "KLD": keras.losses.get("KLD"),
        "bce": keras.losses.get("bce"),
    }
    assert keras2.loss_aliases({"loss": "mse"}) == {"mse": keras.losses.get("mse")}
    assert keras2.loss_aliases({"loss": "categorical_crossentropy"}) == {}
    assert keras2.loss_aliases(None) == {}
    assert keras2.loss_aliases(["mse"]) == {}


def test_training_objects_are_names_not_config_fields() -> None:
    tree = {
        "out1": "mse",
        "out2": [{"class_name": "Custom>Focal", "config": {"name": "focal", "gamma": 2}}, "mae"],
        "out3": {"nested": "KLD"},
    }
    assert sorted(keras2._training_objects(tree)) == ["Custom>Focal", "KLD", "mae", "mse"]
    assert keras2._training_objects(3) == []


def test_keras_resolves_losses_and_metrics_but_not_strangers() -> None:
    assert keras2._keras_training_object("mse") is True
    assert keras2._keras_training_object("accuracy") is True  # a metric, not a loss
    assert keras2._keras_training_object("NoSuchLossAnywhere") is False
