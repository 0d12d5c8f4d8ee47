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

At build time, constant index arrays map the stored kernel onto one of two
compute paths, whatever the storage:

- local: gather the input patches as `(P, K * C_in, batch)` and the kernel as
  `(P, filters, K * C_in)`, then one batched matmul. Its cost follows the
  number of connections, so it suits all but small layers.
- dense: the full `(in, out)` weight matrix (masked or scattered from the
  kernel) and one plain matmul, like tf-keras's implementation 2; faster for
  small layers whose connectivity is not too sparse.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

_PADDINGS = ("valid", "same")
_DATA_FORMATS = ("channels_last", "channels_first")
# The dense path is used when at least this fraction of the full (in, out)
# weight matrix is connected, and, for implementations 1 and 3 (which must
# scatter their kernel into that matrix on every step), when the matrix is
# small. Thresholds measured on CPU, TensorFlow backend, forward+backward.
_DENSE_MIN_DENSITY = 1 / 16
_DENSE_MAX_SCATTER_SIZE = 2**17


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
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values)
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
            '(as in tf-keras); use implementation=2 or 3 for padding="same". '
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
        positions: int array `(P, K)`: flat input position of tap `k` of
            output position `p` (both row-major), or -1 where the tap falls
            outside the input. With padding="same", tf-keras starts window `p`
            at `p * stride - kernel // 2` along each axis and drops the taps
            outside the input (not TF's conv padding); reading zeros there
            gives the same result.
    """

    def __init__(self, in_shape, kernel_size, strides, padding):
        self.in_shape = tuple(in_shape)
        self.kernel_size = tuple(kernel_size)
        self.strides = tuple(strides)
        self.out_shape = tuple(
            conv_output_length(n, k, padding, s)
            for n, k, s in zip(in_shape, kernel_size, strides, strict=True)
        )
        axis_positions = []
        for k, s, o in zip(kernel_size, strides, self.out_shape, strict=True):
            left = k // 2 if padding == "same" else 0
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
            return mask.reshape((1, *self.in_shape, 1, *self.out_shape))
        return mask.reshape((*self.in_shape, 1, *self.out_shape, 1))

    def connections(self, channels_in, filters):
        """Index grids `(p, f, tap, c_in)` of every connection, plus validity.

        The grids broadcast to `(P, filters, K, C_in)`: the layout of the
        kernel the local path multiplies with (one `(filters, K * C_in)`
        matrix per output position, features ordered `(tap, c_in)` like the
        gathered patches).
        """
        p = np.arange(self.num_out)[:, None, None, None]
        f = np.arange(filters)[None, :, None, None]
        tap = np.arange(self.num_taps)[None, None, :, None]
        pos = self.positions[:, None, :, None]
        c = np.arange(channels_in)[None, None, None, :]
        shape = (self.num_out, filters, self.num_taps, channels_in)
        grids = tuple(np.broadcast_to(a, shape) for a in (p, f, tap, pos, c))
        return grids, grids[3] >= 0

    def dense_indices(self, channels_in, filters, data_format):
        """Row (input) and column (output) of each connection in the dense matrix.

        Rows follow the flattened input and columns the flattened output, in
        the order of `data_format`: this is tf-keras's implementation-2 kernel
        reshaped to 2D, and the transpose of its implementation-3 sparse matrix.
        """
        (p, f, _, pos, c), valid = self.connections(channels_in, filters)
        num_in = math.prod(self.in_shape)
        if data_format == "channels_first":
            rows, cols = c * num_in + pos, f * self.num_out + p
        else:
            rows, cols = pos * channels_in + c, p * filters + f
        return rows.astype(np.int64), cols.astype(np.int64), valid

    def kernel_indices(self, implementation, channels_in, filters, data_format):
        """Flat index of each connection in the stored kernel of `implementation`.

        Taps in the padding (only with padding="same") get index 0: the local
        path multiplies them with a padded zero, so the value read there never
        contributes and gets no gradient, like tf-keras's masked-out weights.
        """
        (p, f, tap, _, c), valid = self.connections(channels_in, filters)
        if implementation == 1:
            # kernel: (P, K * C_in, filters); features (tap, c) or (c, tap).
            if data_format == "channels_first":
                feature = c * self.num_taps + tap
            else:
                feature = tap * channels_in + c
            idx = (p * (self.num_taps * channels_in) + feature) * filters + f
        elif implementation == 2:
            rows, cols, _ = self.dense_indices(channels_in, filters, data_format)
            idx = rows * (self.num_out * filters) + cols
        else:
            rows, cols, _ = self.dense_indices(channels_in, filters, data_format)
            # tf-keras orders the values by (out_idx, in_idx) = (col, row).
            keys = cols * (math.prod(self.in_shape) * channels_in) + rows
            idx = np.searchsorted(np.sort(keys[valid]), keys)
        return np.where(valid, idx, 0).astype(np.int64), valid

    def kernel_idxs(self, channels_in, filters, data_format):
        """tf-keras's implementation-3 `kernel_idxs`, as an `(nnz, 2)` array."""
        rows, cols, valid = self.dense_indices(channels_in, filters, data_format)
        pairs = np.stack([cols[valid], rows[valid]], axis=-1)
        return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]

    def nnz(self, channels_in, filters):
        return int(np.count_nonzero(self.positions >= 0)) * channels_in * filters


def _index_array(idx):
    idx = np.ascontiguousarray(idx)
    return idx.astype(np.int32 if idx.size == 0 or idx.max() < 2**31 - 1 else np.int64)


def take_with_scatter_gradient(flat, indices, size):
    """`ops.take(flat, indices)` for a 1D `flat`, differentiated by a scatter.

    The stock gradient of a gather (a segment sum) is several times slower
    than a scatter when the indices run over a large kernel in order, and the
    implementation-2 kernel is large.
    """

    @ops.custom_gradient
    def gather(flat):
        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            return ops.scatter(ops.reshape(indices, (-1, 1)), ops.reshape(upstream, (-1,)), (size,))

        return ops.take(flat, indices), grad

    return gather(flat)


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
        # A Keras 2 config of a model's first layer carries this key, which
        # Keras 3 layers reject; the model's InputLayer holds the shape anyway
        # (Keras 3's own `.h5` loader already turns it into `input_shape`).
        kwargs.pop("batch_input_shape", None)
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        name = self.__class__.__name__
        if not isinstance(filters, (int, np.integer)) or isinstance(filters, bool) or filters <= 0:
            raise ValueError(
                f"The `filters` argument of {name} must be a positive integer. "
                f"Received: filters={filters!r}"
            )
        # An integer (NumPy's included), not merely equal to one: 2.0 == 2 but is a float.
        if (
            not isinstance(implementation, (int, np.integer))
            or isinstance(implementation, bool)
            or implementation not in (1, 2, 3)
        ):
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
        self._channels_in = channels = int(channels)
        filters = self.filters

        if self.implementation == 1:
            kernel_shape = (geometry.num_out, geometry.num_taps * channels, filters)
        elif self.implementation == 2:
            if self.data_format == "channels_first":
                kernel_shape = (channels, *spatial, filters, *geometry.out_shape)
            else:
                kernel_shape = (*spatial, channels, *geometry.out_shape, filters)
        else:
            kernel_shape = (geometry.nnz(channels, filters),)
        self._plan_compute(geometry, channels)
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
                shape=(*geometry.out_shape, filters),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        self.input_spec = keras.layers.InputSpec(ndim=self.rank + 2, axes={channel_axis: channels})

    def _plan_compute(self, geometry, channels):
        """Picks the dense or local path and precomputes its constant indices.

        Small or relatively dense layers run fastest as one matmul with the
        full `(in, out)` weight matrix (tf-keras's implementation 2);
        everything else as a batched matmul of gathered patches with one small
        matrix per output position, whose cost follows the number of
        connections only.
        """
        filters = self.filters
        num_in = math.prod(geometry.in_shape) * channels
        num_out = geometry.num_out * filters
        dense_size = num_in * num_out
        connections = geometry.nnz(channels, filters)
        self._dense_path = connections >= _DENSE_MIN_DENSITY * dense_size and (
            self.implementation == 2 or dense_size <= _DENSE_MAX_SCATTER_SIZE
        )
        self._dense_mask = self._dense_scatter = self._kernel_gather = None
        self._patch_gather = self._pad_patches = None
        if self._dense_path:
            if self.implementation == 2:
                self._dense_mask = geometry.kernel_mask(self.data_format)
            else:
                kernel_idx, valid = geometry.kernel_indices(
                    self.implementation, channels, filters, self.data_format
                )
                rows, cols, _ = geometry.dense_indices(channels, filters, self.data_format)
                # Every stored value is one connection: invert the mapping so
                # the flat kernel scatters straight into the dense matrix.
                target = np.empty(connections, dtype=np.int64)
                target[kernel_idx[valid]] = (rows * num_out + cols)[valid]
                self._dense_scatter = _index_array(target[:, None])
            return
        if self.implementation != 1:
            kernel_idx, _ = geometry.kernel_indices(
                self.implementation, channels, filters, self.data_format
            )
            self._kernel_gather = _index_array(
                kernel_idx.reshape(geometry.num_out, filters, geometry.num_taps * channels)
            )
        positions = geometry.positions.reshape(-1)
        self._pad_patches = bool((positions < 0).any())
        # Taps in the padding read an extra all-zero row appended at the end.
        positions = np.where(positions < 0, math.prod(geometry.in_shape), positions)
        self._patch_gather = _index_array(positions)

    def call(self, inputs):
        outputs = self._dense_call(inputs) if self._dense_path else self._local_call(inputs)
        return self.activation(outputs)

    def _dense_call(self, inputs):
        geometry = self._geometry
        num_out = geometry.num_out * self.filters
        kernel = ops.cast(self.kernel, self.compute_dtype)
        if self.implementation == 2:
            kernel = kernel * ops.convert_to_tensor(self._dense_mask, self.compute_dtype)
        else:
            num_in = math.prod(geometry.in_shape) * self._channels_in
            kernel = ops.scatter(
                self._dense_scatter, ops.reshape(kernel, (-1,)), (num_in * num_out,)
            )
        kernel = ops.reshape(kernel, (-1, num_out))
        # Flattened in data_format order on both sides, which is the order of
        # the dense kernel's rows and columns.
        outputs = ops.matmul(ops.reshape(inputs, (-1, kernel.shape[0])), kernel)
        if self.bias is not None:
            # For channels_first tf-keras adds the bias reshaped (not
            # transposed) to (filters, *out): i.e. its flat order as is.
            outputs = outputs + ops.reshape(ops.cast(self.bias, self.compute_dtype), (-1,))
        return ops.reshape(outputs, (-1, *self.compute_output_shape(inputs.shape)[1:]))

    def _local_call(self, inputs):
        geometry = self._geometry
        channels, filters = self._channels_in, self.filters
        num_out, num_taps = geometry.num_out, geometry.num_taps
        if self._kernel_gather is not None:
            # Gather first, cast after: only a fraction of an implementation-2
            # kernel is ever read.
            kernel = take_with_scatter_gradient(
                ops.reshape(self.kernel, (-1,)), self._kernel_gather, math.prod(self.kernel.shape)
            )
        elif self.data_format == "channels_first":
            kernel = ops.reshape(self.kernel, (num_out, channels, num_taps, filters))
            kernel = ops.reshape(
                ops.transpose(kernel, (0, 3, 2, 1)), (num_out, filters, num_taps * channels)
            )
        else:
            kernel = ops.transpose(self.kernel, (0, 2, 1))
        kernel = ops.cast(kernel, self.compute_dtype)  # (P, filters, K * C_in)

        # Batch last: the gathered patches are then (P, K * C_in, batch)
        # without any transpose of the (K times larger) patch tensor.
        ndim = self.rank
        if self.data_format == "channels_last":
            perm = (*range(1, ndim + 1), ndim + 1, 0)
        else:
            perm = (*range(2, ndim + 2), 1, 0)
        x = ops.reshape(ops.transpose(inputs, perm), (math.prod(geometry.in_shape), channels, -1))
        if self._pad_patches:
            x = ops.pad(x, ((0, 1), (0, 0), (0, 0)))
        patches = ops.take(x, self._patch_gather, axis=0)
        patches = ops.reshape(patches, (num_out, num_taps * channels, -1))
        outputs = ops.matmul(kernel, patches)  # (P, filters, batch)
        if self.bias is not None:
            bias = ops.cast(self.bias, self.compute_dtype)
            if self.data_format == "channels_first":
                # tf-keras adds this bias *reshaped* (not transposed) to
                # (filters, *out); reproduce it so Keras 2 weights mean the same.
                bias = ops.transpose(ops.reshape(bias, (filters, num_out)))
            else:
                bias = ops.reshape(bias, (num_out, filters))
            outputs = outputs + ops.expand_dims(bias, -1)
        if self.data_format == "channels_first":
            outputs = ops.reshape(
                ops.transpose(outputs, (2, 1, 0)), (-1, filters, *geometry.out_shape)
            )
        else:
            outputs = ops.reshape(
                ops.transpose(outputs, (2, 0, 1)), (-1, *geometry.out_shape, filters)
            )
        return outputs

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        spatial = input_shape[1:-1] if self.data_format == "channels_last" else input_shape[2:]
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
