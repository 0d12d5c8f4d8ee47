"""Shared machinery of LocallyConnected1D and LocallyConnected2D (private).

Every implementation computes the same thing: for each output position `p`,
`y[p] = patch[p] @ W[p]`, an unshared convolution. What differs between
`implementation=1`, `2` and `3` is only how the weights are *stored*, and that
storage is kept exactly as in tf-keras so that Keras 2 `.h5` weights load:

- 1: `kernel` of shape `(P, prod(kernel_size) * C_in, filters)`, the feature
  axis ordered `(*kernel, C_in)` for channels_last and `(C_in, *kernel)` for
  channels_first.
- 2: a dense, mostly masked `kernel` shaped like a fully-connected weight
  between the input and output activations (`(*in, C_in, *out, filters)` or
  `(C_in, *in, filters, *out)`).
- 3: `kernel` of shape `(nnz,)`: the non-zero values of a sparse
  `(out_size, in_size)` matrix, ordered as tf-keras's sorted
  `(out_idx, in_idx)` pairs.

At build time a constant index array maps layouts 2 and 3 onto layout 1; the
forward pass is then one gather of the kernel, `prod(kernel_size)` strided
slices of the input and one batched matmul, whatever the storage.
"""

from __future__ import annotations

import itertools
import math

import keras
import numpy as np
from keras import ops

_PADDINGS = ("valid", "same")
_DATA_FORMATS = ("channels_last", "channels_first")


def normalize_tuple(value, n, name):
    """Returns `value` as a tuple of `n` positive ints, or raises ValueError."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        values = (int(value),) * n
    else:
        try:
            values = tuple(value)
        except TypeError:
            values = None
        if (
            values is None
            or len(values) != n
            or not all(
                isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values
            )
        ):
            raise ValueError(
                f"The `{name}` argument must be an integer or a tuple of {n} integers. "
                f"Received: {name}={value!r}"
            )
        values = tuple(int(v) for v in values)
    if any(v <= 0 for v in values):
        raise ValueError(
            f"The `{name}` argument must contain only positive integers. Received: {name}={value!r}"
        )
    return values


def normalize_padding(padding, implementation, class_name):
    if not isinstance(padding, str) or padding.lower() not in _PADDINGS:
        raise ValueError(
            f'The `padding` argument must be "valid" or "same". Received: padding={padding!r}'
        )
    padding = padding.lower()
    if padding != "valid" and implementation == 1:
        raise ValueError(
            f'{class_name} only supports padding="valid" with implementation=1 '
            "(as in tf-keras); use implementation=2 or 3 for padding=\"same\". "
            f"Received: padding={padding!r}"
        )
    return padding


def normalize_data_format(data_format):
    if data_format is None:
        data_format = keras.config.image_data_format()
    if not isinstance(data_format, str) or data_format.lower() not in _DATA_FORMATS:
        raise ValueError(
            'The `data_format` argument must be "channels_last" or "channels_first". '
            f"Received: data_format={data_format!r}"
        )
    return data_format.lower()


def conv_output_length(input_length, kernel_size, padding, stride):
    """Output length along one axis, with tf-keras's rounding."""
    if input_length is None:
        return None
    length = input_length if padding == "same" else input_length - kernel_size + 1
    return (length + stride - 1) // stride


class _Geometry:
    """Static index bookkeeping for one unshared convolution.

    Attributes:
        out_shape: spatial output shape.
        pads: `(left, right)` zero padding per spatial axis. tf-keras's "same"
            centres window `p` on input `p * stride` with `kernel // 2` taps on
            the left; with the input zero padded that way, out-of-range taps
            read zeros, which is exactly tf-keras's clipped connectivity.
        positions: int array `(P, K)`: flat (unpadded) input position of tap
            `k` of output position `p`, or -1 where the tap falls in padding.
    """

    def __init__(self, in_shape, kernel_size, strides, padding):
        self.in_shape = tuple(in_shape)
        self.kernel_size = tuple(kernel_size)
        self.strides = tuple(strides)
        self.out_shape = tuple(
            conv_output_length(n, k, padding, s)
            for n, k, s in zip(in_shape, kernel_size, strides, strict=True)
        )
        self.pads = []
        axis_positions = []
        for n, k, s, o in zip(in_shape, kernel_size, strides, self.out_shape, strict=True):
            left = k // 2 if padding == "same" else 0
            right = max(0, (o - 1) * s - left + k - n)
            self.pads.append((left, right))
            # (o, k) input coordinate of each tap along this axis.
            axis_positions.append(np.arange(o)[:, None] * s - left + np.arange(k)[None, :])
        self.num_out = math.prod(self.out_shape)
        self.num_taps = math.prod(kernel_size)

        # Broadcast per-axis coordinates to (o_1, k_1, o_2, k_2, ...), then
        # reorder to (o_1, o_2, ..., k_1, k_2, ...): row-major over outputs and
        # over taps, the order tf-keras uses for both.
        ndim = len(in_shape)
        flat = np.zeros((1,) * (2 * ndim), dtype=np.int64)
        valid = np.ones((1,) * (2 * ndim), dtype=bool)
        for d, (coords, n) in enumerate(zip(axis_positions, in_shape, strict=True)):
            shape = [1] * (2 * ndim)
            shape[2 * d] = coords.shape[0]
            shape[2 * d + 1] = coords.shape[1]
            coords = coords.reshape(shape)
            flat = flat * n + coords
            valid = valid & (coords >= 0) & (coords < n)
        order = [2 * d for d in range(ndim)] + [2 * d + 1 for d in range(ndim)]
        flat = np.transpose(np.broadcast_to(flat, valid.shape), order)
        valid = np.transpose(valid, order)
        self.positions = np.where(valid, flat, -1).reshape(self.num_out, self.num_taps)

    def kernel_mask(self, data_format):
        """tf-keras's implementation-2 `kernel_mask` (float32 0/1 array)."""
        num_in = math.prod(self.in_shape)
        mask = np.zeros((num_in, self.num_out), dtype=np.float32)
        p_idx, k_idx = np.nonzero(self.positions >= 0)
        mask[self.positions[p_idx, k_idx], p_idx] = 1.0
        if data_format == "channels_first":
            return mask.reshape((1,) + self.in_shape + (1,) + self.out_shape)
        return mask.reshape(self.in_shape + (1,) + self.out_shape + (1,))

    def _connections(self, channels_in, filters, data_format):
        """Broadcast (p, tap, c_in, f) index grids, in layout-1 kernel order."""
        p = np.arange(self.num_out)[:, None, None, None]
        pos = self.positions[:, :, None, None]
        c = np.arange(channels_in)[None, None, :, None]
        f = np.arange(filters)[None, None, None, :]
        if data_format == "channels_first":
            # Layout-1 feature axis is (c_in, taps) for channels_first.
            p, pos, c, f = (np.swapaxes(a, 1, 2) for a in (p, pos, c, f))
        shape = np.broadcast_shapes(p.shape, pos.shape, c.shape, f.shape)
        return tuple(np.broadcast_to(a, shape) for a in (p, pos, c, f))

    def _sparse_indices(self, channels_in, filters, data_format):
        """Row/column of every connection in tf-keras's sparse (out, in) matrix."""
        p, pos, c, f = self._connections(channels_in, filters, data_format)
        num_in = math.prod(self.in_shape)
        if data_format == "channels_first":
            out_idx = f * self.num_out + p
            in_idx = c * num_in + pos
        else:
            out_idx = p * filters + f
            in_idx = pos * channels_in + c
        return out_idx, in_idx, pos >= 0

    def kernel_idxs(self, channels_in, filters, data_format):
        """tf-keras's implementation-3 `kernel_idxs`, as an `(nnz, 2)` array."""
        out_idx, in_idx, valid = self._sparse_indices(channels_in, filters, data_format)
        pairs = np.stack([out_idx[valid], in_idx[valid]], axis=-1)
        return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]

    def gather_indices(self, implementation, channels_in, filters, data_format):
        """Index into the flattened stored kernel for each layout-1 entry.

        Taps in the padding get index 0: the patch value they multiply is a
        padded zero, so the weight read there never contributes (and its
        gradient is zero), matching the masked-out weights of tf-keras.
        """
        p, pos, c, f = self._connections(channels_in, filters, data_format)
        valid = pos >= 0
        pos = np.where(valid, pos, 0)
        num_in = math.prod(self.in_shape)
        if implementation == 2:
            if data_format == "channels_first":
                # kernel shape: (c_in, *in, filters, *out)
                idx = ((c * num_in + pos) * filters + f) * self.num_out + p
            else:
                # kernel shape: (*in, c_in, *out, filters)
                idx = ((pos * channels_in + c) * self.num_out + p) * filters + f
        else:
            out_idx, in_idx, _ = self._sparse_indices(channels_in, filters, data_format)
            num_in_total = num_in * channels_in
            keys = out_idx.astype(np.int64) * num_in_total + in_idx
            sorted_keys = np.sort(keys[valid])
            idx = np.searchsorted(sorted_keys, keys)
        idx = np.where(valid, idx, 0)
        idx = idx.reshape(self.num_out, -1, filters)
        dtype = np.int32 if idx.size and idx.max() < 2**31 - 1 else np.int64
        return np.ascontiguousarray(idx, dtype=dtype)

    def nnz(self, channels_in, filters):
        return int(np.count_nonzero(self.positions >= 0)) * channels_in * filters


def extract_patches(inputs, geometry, channels_in, data_format):
    """Patches of `inputs` as a `(P, batch, features)` tensor.

    The feature axis is ordered like tf-keras's implementation-1 kernel:
    `(*taps, C_in)` for channels_last, `(C_in, *taps)` for channels_first.
    Putting the batch in the middle lets the matmul that follows run batched
    over output positions with no transpose of the (large) patch tensor.
    """
    ndim = len(geometry.in_shape)
    # (batch, *spatial, C) or (batch, C, *spatial) -> (*spatial, batch, C)
    if data_format == "channels_last":
        perm = tuple(range(1, ndim + 1)) + (0, ndim + 1)
    else:
        perm = tuple(range(2, ndim + 2)) + (0, 1)
    x = ops.transpose(inputs, perm)
    if any(left or right for left, right in geometry.pads):
        x = ops.pad(x, list(geometry.pads) + [(0, 0), (0, 0)])
    taps = []
    for offsets in itertools.product(*(range(k) for k in geometry.kernel_size)):
        index = tuple(
            slice(j, j + (o - 1) * s + 1, s)
            for j, o, s in zip(offsets, geometry.out_shape, geometry.strides, strict=True)
        )
        taps.append(x[index])
    # Each tap: (*out, batch, C). Stack where the feature order wants the taps.
    axis = ndim + 1 if data_format == "channels_last" else ndim + 2
    patches = ops.stack(taps, axis=axis)
    return ops.reshape(patches, (geometry.num_out, -1, geometry.num_taps * channels_in))


class BaseLocallyConnected(keras.layers.Layer):
    """Rank-agnostic body of LocallyConnected1D/2D (see those for the docs)."""

    def __init__(
        self,
        rank,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        implementation=1,
        **kwargs,
    ):
        # Keras 2 configs of a model's first layer carry this; Keras 3 layers
        # do not take it (the model's InputLayer holds the shape).
        kwargs.pop("batch_input_shape", None)
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        name = self.__class__.__name__
        if (
            not isinstance(filters, (int, np.integer))
            or isinstance(filters, bool)
            or filters <= 0
        ):
            raise ValueError(
                f"The `filters` argument of {name} must be a positive integer. "
                f"Received: filters={filters!r}"
            )
        if implementation not in (1, 2, 3) or isinstance(implementation, bool):
            raise ValueError(
                f"The `implementation` argument of {name} must be 1, 2 or 3. "
                f"Received: implementation={implementation!r}"
            )
        self.rank = rank
        self.filters = int(filters)
        self.kernel_size = normalize_tuple(kernel_size, rank, "kernel_size")
        self.strides = normalize_tuple(strides, rank, "strides")
        self.padding = normalize_padding(padding, implementation, name)
        self.data_format = normalize_data_format(data_format)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.implementation = int(implementation)
        self.input_spec = keras.layers.InputSpec(ndim=rank + 2)

    def build(self, input_shape):
        name = self.__class__.__name__
        input_shape = tuple(input_shape)
        if len(input_shape) != self.rank + 2:
            raise ValueError(
                f"{name} expects inputs of rank {self.rank + 2}. "
                f"Received: input_shape={input_shape}"
            )
        if self.data_format == "channels_last":
            spatial, channels = input_shape[1:-1], input_shape[-1]
            channel_axis = -1
        else:
            spatial, channels = input_shape[2:], input_shape[1]
            channel_axis = 1
        if channels is None or any(n is None for n in spatial):
            raise ValueError(
                f"{name} needs fully defined spatial and channel dimensions "
                f"(its weights depend on them). Received: input_shape={input_shape}"
            )
        geometry = _Geometry(spatial, self.kernel_size, self.strides, self.padding)
        if any(o <= 0 for o in geometry.out_shape):
            raise ValueError(
                f"The input of {name} is too small for kernel_size={self.kernel_size} "
                f"with padding={self.padding!r}: the output would be empty. "
                f"Received: input_shape={input_shape}"
            )
        self._geometry = geometry
        self._channels_in = int(channels)

        if self.implementation == 1:
            kernel_shape = (geometry.num_out, geometry.num_taps * channels, self.filters)
        elif self.implementation == 2:
            if self.data_format == "channels_first":
                kernel_shape = (channels, *spatial, self.filters, *geometry.out_shape)
            else:
                kernel_shape = (*spatial, channels, *geometry.out_shape, self.filters)
        else:
            kernel_shape = (geometry.nnz(channels, self.filters),)
        if self.implementation == 1:
            self._gather_indices = None
        else:
            self._gather_indices = geometry.gather_indices(
                self.implementation, channels, self.filters, self.data_format
            )
        self.kernel = self.add_weight(
            name="kernel",
            shape=kernel_shape,
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(*geometry.out_shape, self.filters),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        self.input_spec = keras.layers.InputSpec(
            ndim=self.rank + 2, axes={channel_axis: int(channels)}
        )

    def call(self, inputs):
        geometry = self._geometry
        kernel = self.kernel
        if self._gather_indices is not None:
            # Gather first, cast after: the stored kernel of implementation 2
            # is much larger than the part of it that is ever read.
            kernel = ops.take(ops.reshape(kernel, (-1,)), self._gather_indices)
        kernel = ops.cast(kernel, self.compute_dtype)
        patches = extract_patches(inputs, geometry, self._channels_in, self.data_format)
        outputs = ops.matmul(patches, kernel)  # (P, batch, filters)
        if self.bias is not None:
            bias = ops.cast(self.bias, self.compute_dtype)
            if self.data_format == "channels_first":
                # tf-keras adds this bias *reshaped* (not transposed) to
                # (filters, *out); reproduce it so Keras 2 weights mean the same.
                bias = ops.transpose(ops.reshape(bias, (self.filters, geometry.num_out)))
            else:
                bias = ops.reshape(bias, (geometry.num_out, self.filters))
            outputs = outputs + ops.expand_dims(bias, 1)
        if self.data_format == "channels_first":
            outputs = ops.transpose(outputs, (1, 2, 0))
            outputs = ops.reshape(outputs, (-1, self.filters, *geometry.out_shape))
        else:
            outputs = ops.transpose(outputs, (1, 0, 2))
            outputs = ops.reshape(outputs, (-1, *geometry.out_shape, self.filters))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if self.data_format == "channels_last":
            spatial = input_shape[1:-1]
        else:
            spatial = input_shape[2:]
        out = tuple(
            conv_output_length(n, k, self.padding, s)
            for n, k, s in zip(spatial, self.kernel_size, self.strides, strict=True)
        )
        if self.data_format == "channels_last":
            return (input_shape[0], *out, self.filters)
        return (input_shape[0], self.filters, *out)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "data_format": self.data_format,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": keras.regularizers.serialize(self.activity_regularizer),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
                "implementation": self.implementation,
            }
        )
        return config

    @property
    def kernel_mask(self):
        """The 0/1 connectivity mask of `implementation=2` (as in tf-keras)."""
        self._check_built_with(2)
        return self._geometry.kernel_mask(self.data_format)

    @property
    def kernel_idxs(self):
        """Sorted `(out_idx, in_idx)` rows of the `implementation=3` kernel values."""
        self._check_built_with(3)
        return self._geometry.kernel_idxs(self._channels_in, self.filters, self.data_format)

    def _check_built_with(self, implementation):
        if self.implementation != implementation or not self.built:
            raise AttributeError(
                f"Only a built {self.__class__.__name__} with implementation={implementation} "
                f"has this attribute. Received: implementation={self.implementation}, "
                f"built={self.built}"
            )
