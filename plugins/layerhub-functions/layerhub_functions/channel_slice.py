"""channel_slice: one channel of a tensor, keeping the channel axis."""

from __future__ import annotations

import numbers
from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="layerhub_functions")
def channel_slice(x: Any, index: int, axis: int = -1) -> Any:
    """Takes channel ``index`` of ``x`` along ``axis`` and keeps that axis, with size 1.

    ``channel_slice(x, 1)`` is ``x[..., 1:2]``: for an input of shape ``(batch, 4, 2)`` it returns
    shape ``(batch, 4, 1)``, so the result can be concatenated with other channels or fed to
    layers that expect the original rank. Meant for a ``Lambda`` layer, with ``index`` (and
    ``axis``) passed through the layer's ``arguments``; being registered, such a layer saves by
    name and loads with ``safe_mode=True`` and no ``custom_objects``.

    Example:

    >>> import numpy as np
    >>> x = np.arange(8, dtype="float32").reshape(1, 4, 2)
    >>> layer = keras.layers.Lambda(channel_slice, arguments={"index": 1})
    >>> keras.ops.convert_to_numpy(layer(x))[0, :, 0].tolist()
    [1.0, 3.0, 5.0, 7.0]

    Args:
        x: A tensor of rank >= 2.
        index: The channel to take; negative values count from the end. Must be within the size
            of ``axis`` when that size is known.
        axis: The channel axis. Defaults to ``-1`` (channels last). Must not be the batch axis.

    Returns:
        A tensor with the shape of ``x`` except a size of 1 along ``axis``.
    """
    if not _is_int(index):
        raise ValueError(f"`index` must be an integer. Received: index={index!r}")
    if not _is_int(axis):
        raise ValueError(f"`axis` must be an integer. Received: axis={axis!r}")
    rank = len(x.shape)
    if not -rank <= axis < rank or axis % rank == 0:
        raise ValueError(
            f"`axis` must be a non-batch axis of the input, of rank {rank}. Received: axis={axis}"
        )
    size = x.shape[axis]
    if size is not None and not -size <= index < size:
        raise ValueError(
            f"`index` is out of range for an axis of size {size}. Received: index={index}"
        )
    # A negative index is resolved here: gathering with it is not portable across backends.
    position = index % size if size is not None else index
    return ops.take(x, [position], axis=axis)


def _is_int(value: object) -> bool:
    # bool is an int subclass, but index=True is a bug, not a channel.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
