"""A numeric check that a per-position layer passes the Keras mask on."""

from __future__ import annotations

from typing import Any


def assert_mask_passes_through(layer: Any, *, features: int = 6) -> None:
    """Check that ``layer`` carries an ``Embedding(mask_zero=True)`` mask to the next layer.

    The layer runs between an embedding of padded token sequences and a
    ``GlobalAveragePooling1D``, which averages only the positions the mask keeps. The pooled
    output must equal a NumPy mean over the unpadded positions of the layer's own outputs; the
    check first makes sure the padded outputs differ, so a dropped mask cannot pass.

    Args:
        layer: an unbuilt layer that maps each position of a ``(batch, steps, features)`` input
            on its own.
        features: the embedding width fed to the layer.

    Raises:
        AssertionError: the mask did not reach the pooling, or the check cannot tell.
    """
    __tracebackhide__ = True
    import keras
    import numpy as np

    tokens = np.array([[3, 1, 0, 0], [2, 4, 1, 0]])
    inputs = keras.Input((tokens.shape[1],), dtype="int32")
    embedded = keras.layers.Embedding(
        5, features, mask_zero=True, embeddings_initializer=keras.initializers.RandomNormal(seed=0)
    )(inputs)
    outputs = layer(embedded)
    pooled = keras.layers.GlobalAveragePooling1D()(outputs)
    per_position, mean = keras.Model(inputs, [outputs, pooled]).predict(tokens, verbose=0)
    keep = (tokens != 0)[..., None]
    expected = (per_position * keep).sum(axis=1) / keep.sum(axis=1)
    assert np.abs(expected - per_position.mean(axis=1)).max() > 1e-3, (
        "the padded positions' outputs equal the others' on average, so a dropped mask would "
        "pass unnoticed: use weights or inputs that tell them apart"
    )
    np.testing.assert_allclose(mean, expected, rtol=1e-5, atol=1e-6)
