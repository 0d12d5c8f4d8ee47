"""One model with every first-party plugin layer, for the backend, distribution and deploy tests.

Imported by test modules and, by path, by the fresh interpreters they start (``sys.path`` gets
this directory first), so it imports nothing from the tests package.
"""

from __future__ import annotations

from typing import Any

import numpy as np

IMAGE = (6, 6, 8)
SEQUENCE = (6, 4)
TABLE = (5,)


def every_layer_model(seed: int = 0) -> Any:
    """A functional model using Scale, L2Normalization, PAM, CAM, LocallyConnected1D/2D,
    FMLayer, MyLayer, MyMultiLayer, ComplexScale and a ``Lambda(channel_slice)``.

    Three small branches (an image, a sequence, a table) are concatenated into one ``(batch, 1)``
    output. MyMultiLayer's second output is rank 1; it is reshaped to ``(batch, 1)`` so no
    rank-1 tensor reaches a loss (see the Distributed training section of the README).
    """
    import keras
    from layerhub_fm import FMLayer
    from layerhub_functions import channel_slice
    from layerhub_l2norm import L2Normalization
    from layerhub_locally_connected import LocallyConnected1D, LocallyConnected2D
    from layerhub_mylayer import ComplexScale, MyLayer, MyMultiLayer
    from layerhub_pam import CAM, PAM
    from layerhub_scale import Scale

    keras.utils.set_random_seed(seed)
    image = keras.Input(IMAGE, name="image")
    sequence = keras.Input(SEQUENCE, name="sequence")
    table = keras.Input(TABLE, name="table")

    x = Scale()(image)
    x = L2Normalization(gamma_init=5.0)(x)
    x = PAM(reduction=2, gamma_initializer="ones")(x)
    x = CAM(gamma_initializer="ones")(x)
    x = LocallyConnected2D(2, 2, strides=2, implementation=2)(x)
    image_features = keras.layers.Flatten()(x)

    s = LocallyConnected1D(3, 4)(sequence)  # (3, 3): three features for MyMultiLayer
    s = keras.layers.Lambda(channel_slice, arguments={"index": 1})(s)
    sequence_features = keras.layers.Flatten()(s)

    t = FMLayer(output_dim=3, factor_order=2)(table)
    t = MyLayer(output_dim=4)(t)
    a, b = MyMultiLayer(output_dim=3)([t, sequence_features])
    b = keras.layers.Reshape((1,))(b)
    real, imag = ComplexScale(alpha_real=0.5, alpha_imag=-1.0)(a)

    merged = keras.layers.Concatenate()([image_features, real, imag, b])
    output = keras.layers.Dense(1, name="score")(merged)
    return keras.Model([image, sequence, table], output, name="every_layer")


def every_layer_data(n: int = 8, seed: int = 1) -> tuple[list[np.ndarray[Any, Any]], Any]:
    """Inputs (image, sequence, table) and ``(n, 1)`` targets, float32."""
    rng = np.random.default_rng(seed)
    x = [rng.normal(size=(n, *shape)).astype("float32") for shape in (IMAGE, SEQUENCE, TABLE)]
    y = rng.normal(size=(n, 1)).astype("float32")
    return x, y
