"""What each key of a tf-keras built-in layer config becomes in Keras 3: the data of the table.

Every key tf-keras 2.x writes for one of its own layers is either taken by the Keras 3 class of
the same name as it is, or listed here: dropped (its Keras 2 value means the one behaviour Keras
3 has, or it never had an effect), renamed, or refused with the Keras 2 feature Keras 3 lacks.
``tests/test_keras2_builtin_layers.py`` builds every public ``tf_keras.layers`` class and fails
on a key that is neither accepted by Keras 3 nor listed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final


@dataclass(frozen=True)
class Drop:
    """The key goes; ``why`` says why Keras 3 computes the same without it."""

    why: str


@dataclass(frozen=True)
class DropIf:
    """The key goes when it holds ``value``; any other value is refused (or kept, when
    ``keep_others``): ``why`` names the Keras 2 feature the other values select."""

    value: Any
    why: str
    keep_others: bool = False


@dataclass(frozen=True)
class Rename:
    """The key is Keras 3's ``to``, with the same meaning."""

    to: str


@dataclass(frozen=True)
class Refuse:
    """Any value of the key (tf-keras writes it only when the feature is used) is refused."""

    why: str


Rule = Drop | DropIf | Rename | Refuse


@dataclass(frozen=True)
class Replaced:
    """A tf-keras class Keras 3 has under another name: its config with ``set`` added."""

    class_name: str
    set: tuple[tuple[str, Any], ...] = ()


_TIME_MAJOR: Final = DropIf(
    False, "time-major inputs ([time, batch, ...]; Keras 3's are batch-major)"
)
_CONSTANTS: Final = Refuse("constants passed to the RNN cell")
_IMPLEMENTATION: Final = Drop(
    "modes 1 and 2 compute the same function, batching the matrix products differently"
)
_GROUPS: Final = DropIf(1, "grouped depthwise, separable or transposed convolutions")
_RNG: Final = Drop("Keras 3 draws from its own seed generator; streams never matched tf-keras'")
_NO_WEIGHTS: Final = Drop("the layer has no weights, so trainable has no effect")
_UNUSED_KERNEL: Final = Drop(
    "tf-keras never used it: separable convolutions have depthwise and pointwise kernels"
)
_BUILD_SHAPE: Final = Drop("a build shape; Keras 3 builds the layer when the model calls it")
_NOISE_SHAPE: Final = Drop("tf-keras derives the noise shape from the input and ignored it")
_RNNS: Final = ("LSTM", "GRU", "SimpleRNN", "RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")
_RANDOM: Final = (
    "RandomBrightness",
    "RandomContrast",
    "RandomCrop",
    "RandomFlip",
    "RandomRotation",
    "RandomTranslation",
    "RandomZoom",
)


def _rules() -> dict[str, dict[str, Rule]]:
    table: dict[str, dict[str, Rule]] = {}

    def add(classes: tuple[str, ...], key: str, rule: Rule) -> None:
        for name in classes:
            table.setdefault(name, {})[key] = rule

    add(_RNNS, "time_major", _TIME_MAJOR)
    add((*_RNNS, "Bidirectional"), "num_constants", _CONSTANTS)
    add(("LSTM", "GRU", "LSTMCell", "GRUCell"), "implementation", _IMPLEMENTATION)
    transposed = ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
    separable = ("SeparableConv1D", "SeparableConv2D")
    add((*transposed, "DepthwiseConv1D", "DepthwiseConv2D", *separable), "groups", _GROUPS)
    for key in ("kernel_initializer", "kernel_regularizer", "kernel_constraint"):
        add(separable, key, _UNUSED_KERNEL)
    for key in ("query_shape", "key_shape", "value_shape"):
        add(("MultiHeadAttention",), key, _BUILD_SHAPE)
    # Keras 3 masks a softmax by replacing the masked scores, which is tf-keras' robust masking;
    # the additive form tf-keras used otherwise differs only where every position is masked.
    add(("MultiHeadAttention",), "softmax_robust_masking", Drop("Keras 3 masks robustly"))
    add(("Softmax",), "robust_masking", Drop("Keras 3 masks robustly"))
    add(_RANDOM, "rng_type", _RNG)
    add(
        ("Discretization", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D"),
        "trainable",
        _NO_WEIGHTS,
    )
    add(("SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D"), "noise_shape", _NOISE_SHAPE)
    add(
        ("BatchNormalization", "SyncBatchNormalization"),
        "virtual_batch_size",
        Refuse("virtual (ghost) batch normalization"),
    )
    # Keras 3's legacy loader turns the string "dot" into its keras.layers.dot function, which
    # Attention then rejects; "dot" is Keras 3's default.
    add(("Attention",), "score_mode", DropIf("dot", "", keep_others=True))
    # Keras 3's Lambda keeps a saved mask as the list it reads, and would return it as the mask.
    for key in ("mask", "mask_type", "mask_module"):
        add(("Lambda",), key, Refuse("a Lambda's mask function (Keras 3 does not read one back)"))
    add(("LeakyReLU",), "alpha", Rename("negative_slope"))
    add(("ThresholdedReLU",), "theta", Rename("threshold"))
    add(
        ("Embedding",),
        "input_length",
        Drop("tf-keras made it the input shape, which the config holds as batch_input_shape"),
    )
    return table


RULES: Final[dict[str, dict[str, Rule]]] = _rules()

# tf-keras classes Keras 3 has under another name (exactly the same function).
REPLACED: Final[dict[str, Replaced]] = {
    "SyncBatchNormalization": Replaced("BatchNormalization", (("synchronized", True),)),
    # Keras 3's ReLU with a threshold is x where x > threshold, else 0: ThresholdedReLU.
    "ThresholdedReLU": Replaced("ReLU"),
}

# tf-keras layer classes Keras 3 has no class for. A plugin may provide one (the name is then
# resolved before translation and left alone); otherwise loading stops with the reason.
REMOVED: Final[dict[str, str]] = {
    "DenseFeatures": "TensorFlow feature columns",
    "RandomFourierFeatures": "random Fourier features (tf-keras experimental)",
    "RandomHeight": "random height resizing (augmentation)",
    "RandomWidth": "random width resizing (augmentation)",
    "DynamicEmbedding": "dynamic embeddings (tf-keras experimental)",
    "DynamicLookup": "dynamic lookups (tf-keras experimental)",
    "LocallyConnected1D": "locally connected layers (the plugin layerhub-locally-connected)",
    "LocallyConnected2D": "locally connected layers (the plugin layerhub-locally-connected)",
}

# Keys of a config that hold other layers' configs, which Keras 3 deserialises itself (not
# through the legacy loader that renames batch_input_shape and cleans Lambda configs).
NESTED_ONE: Final = ("layer", "backward_layer", "cell")
NESTED_MANY: Final = ("layers", "cells")
# Keras 2 Lambda keys Keras 3's legacy loader drops for a layer of a model, and not elsewhere.
LAMBDA_KERAS2_ONLY: Final = ("module", "function_type", "output_shape_type", "output_shape_module")
