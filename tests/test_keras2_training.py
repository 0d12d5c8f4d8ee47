"""Keras 2 training configurations: which names they use and which Keras resolves itself."""

from __future__ import annotations

import keras

from layerhub._private.keras2 import translation


def test_loss_aliases_are_found_in_any_shape_of_loss() -> None:
    per_output = {"loss": {"boxes": "bce", "scores": ["KLD", "categorical_crossentropy"]}}
    assert translation.loss_aliases(per_output) == {
        "KLD": keras.losses.get("KLD"),
        "bce": keras.losses.get("bce"),
    }
    assert translation.loss_aliases({"loss": "mse"}) == {"mse": keras.losses.get("mse")}
    assert translation.loss_aliases({"loss": "categorical_crossentropy"}) == {}
    assert translation.loss_aliases(None) == {}
    assert translation.loss_aliases(["mse"]) == {}


def test_training_objects_are_names_not_config_fields() -> None:
    tree = {
        "out1": "mse",
        "out2": [{"class_name": "Custom>Focal", "config": {"name": "focal", "gamma": 2}}, "mae"],
        "out3": {"nested": "KLD"},
    }
    assert sorted(translation._training_objects(tree)) == ["Custom>Focal", "KLD", "mae", "mse"]
    assert translation._training_objects(3) == []


def test_keras_resolves_losses_and_metrics_but_not_strangers() -> None:
    assert translation._keras_training_object("mse") is True
    assert translation._keras_training_object("accuracy") is True  # a metric, not a loss
    assert translation._keras_training_object("NoSuchLossAnywhere") is False
