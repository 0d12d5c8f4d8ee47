"""DANet position attention module (PAM) for Keras 3."""

from __future__ import annotations

import numbers
from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="layerhub_pam")
class PAM(keras.layers.Layer):
    """Position attention module from DANet (Fu et al., 2019).

    Every spatial position attends to every other position of the same feature
    map. For channels-last input `A` of shape `(batch, H, W, C)`, with
    `N = H * W` positions flattened:

    ```
    Q = conv1x1_q(A)          # (batch, N, C // reduction)
    K = conv1x1_k(A)          # (batch, N, C // reduction)
    V = conv1x1_v(A)          # (batch, N, C)
    S = softmax(Q @ K^T)      # (batch, N, N), softmax over the last axis
    out = gamma * (S @ V) + A # reshaped back to (batch, H, W, C)
    ```

    `gamma` is a learnable scalar that starts at zero, so the layer begins as
    the identity and learns how much attention to mix in. Note that while
    `gamma` is exactly zero the query, key and value weights receive zero
    gradient; they start learning once `gamma` has moved.

    Every position attends to all others, masked or not, so the layer does
    not take or propagate a Keras mask.

    Memory: the dense computation holds `N x N` scores per image (and a few
    more of that size for the gradient), which at 96x96 is 85M floats per
    image. With `attention_chunk_size` the same result is computed exactly,
    a block of query positions at a time: the softmax runs over keys, so each
    block of queries needs only its own `chunk x N` slice of scores. A custom
    gradient recomputes the slices in the backward pass (one block of keys at
    a time) instead of keeping them, so a training step holds one
    `chunk x N` slice per image at a time. The default, `"auto"`, uses the
    dense computation for maps of up to 4096 positions (64x64), where it is
    faster, and blocks of 1024 query positions above that, or when the
    spatial size is unknown while tracing.

    The key projection has no bias even when `use_bias=True`: a key bias adds
    `q_i . b_k` to every score of row `i`, which the softmax cancels, so it
    would be a weight that never affects the output and never gets a gradient.

    Reference: Fu et al., "Dual Attention Network for Scene Segmentation",
    CVPR 2019, https://arxiv.org/abs/1809.02983.

    Example:

    >>> import numpy as np
    >>> import keras
    >>> from layerhub_pam import PAM
    >>> x = np.random.rand(2, 8, 8, 16).astype("float32")
    >>> y = PAM(reduction=8)(x)
    >>> tuple(y.shape)
    (2, 8, 8, 16)
    >>> bool(np.allclose(keras.ops.convert_to_numpy(y), x))  # gamma starts at 0
    True

    Args:
        reduction: Positive integer. The query and key projections have
            `channels // reduction` channels. Defaults to `8`, as in DANet.
        use_bias: Boolean, whether the query and value projections have a
            bias (the key projection never has one, see above). Defaults to
            `True`.
        kernel_initializer: Initializer for the three projection kernels.
            Defaults to `"glorot_uniform"`.
        bias_initializer: Initializer for the projection biases. Defaults to
            `"zeros"`.
        kernel_regularizer: Optional regularizer for the projection kernels.
        bias_regularizer: Optional regularizer for the projection biases.
        kernel_constraint: Optional constraint for the projection kernels.
        bias_constraint: Optional constraint for the projection biases.
        gamma_initializer: Initializer for the scalar `gamma`. Defaults to
            `"zeros"`.
        gamma_regularizer: Optional regularizer for `gamma`.
        gamma_constraint: Optional constraint for `gamma`.
        attention_chunk_size: How the `N x N` attention is evaluated. `"auto"`
            (the default) picks the dense computation for maps of at most
            4096 positions and chunks of 1024 query positions above that (or
            when `height * width` is unknown while tracing). A positive
            integer always chunks, with at most that many query positions per
            chunk (`N` need not be a multiple: the chunks are evened out and
            the last one is padded, then cut off). `None` always uses the
            dense computation. Both give the same result, up to float
            rounding.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: A 4D channels-last tensor `(batch, height, width, channels)`.
            Batch, height and width may be unknown; `channels` must be known
            and at least `reduction`.

    Returns:
        A tensor with the same shape as `inputs`.
    """

    def __init__(
        self,
        reduction: int = 8,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        gamma_initializer: Any = "zeros",
        gamma_regularizer: Any = None,
        gamma_constraint: Any = None,
        attention_chunk_size: int | str | None = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (
            isinstance(reduction, bool)
            or not isinstance(reduction, numbers.Integral)
            or reduction < 1
        ):
            raise ValueError(
                f"`reduction` must be a positive integer. Received: reduction={reduction!r}"
            )
        if not isinstance(use_bias, bool):
            raise ValueError(f"`use_bias` must be a boolean. Received: use_bias={use_bias!r}")
        if not (
            attention_chunk_size is None
            or (isinstance(attention_chunk_size, str) and attention_chunk_size == "auto")
            or (
                isinstance(attention_chunk_size, numbers.Integral)
                and not isinstance(attention_chunk_size, bool)
                and attention_chunk_size >= 1
            )
        ):
            raise ValueError(
                '`attention_chunk_size` must be "auto", None or a positive integer. '
                f"Received: attention_chunk_size={attention_chunk_size!r}"
            )
        self.attention_chunk_size = (
            attention_chunk_size
            if attention_chunk_size is None or isinstance(attention_chunk_size, str)
            else int(attention_chunk_size)
        )
        self.reduction = int(reduction)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.gamma_regularizer = keras.regularizers.get(gamma_regularizer)
        self.gamma_constraint = keras.constraints.get(gamma_constraint)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        if len(input_shape) != 4:
            raise ValueError(
                "PAM expects a 4D channels-last input (batch, height, width, channels). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                "PAM needs the channel dimension (last axis) to be known. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        if channels // self.reduction < 1:
            raise ValueError(
                f"PAM with reduction={self.reduction} needs at least {self.reduction} "
                "input channels so that the query and key projections keep at least "
                f"one channel. Received: channels={channels}"
            )
        self._channels = channels
        self._key_channels = channels // self.reduction

        # Sublayers are created here, never in call(), so their weights exist
        # once, are tracked, and are restored when a saved model is loaded.
        # They share this layer's dtype policy so mixed precision applies.
        # Each projection gets an initializer of its own (index = its seed offset), so the
        # query and key kernels do not start equal.
        self.query_conv = self._projection("query_conv", self._key_channels, self.use_bias, 0)
        self.key_conv = self._projection("key_conv", self._key_channels, False, 1)
        self.value_conv = self._projection("value_conv", channels, self.use_bias, 2)
        conv_input_shape = (None, None, None, channels)
        for conv in (self.query_conv, self.key_conv, self.value_conv):
            conv.build(conv_input_shape)

        self.gamma = self.add_weight(
            name="gamma",
            shape=(1,),
            initializer=self.gamma_initializer,
            regularizer=self.gamma_regularizer,
            constraint=self.gamma_constraint,
        )
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: channels})

    def call(self, inputs: Any) -> Any:
        shape = ops.shape(inputs)
        # The 1x1 convolutions are matmuls over the flattened map, with the convolutions'
        # kernels: no reshape back to 4D and forth in between.
        height, width = inputs.shape[1], inputs.shape[2]
        positions = None if height is None or width is None else height * width
        flat = ops.reshape(inputs, (shape[0], -1 if positions is None else positions, shape[-1]))
        query, key, value = self._project(flat)

        chunk = self._chunk_for(positions)
        # Scores are sums over channels of unnormalised features and can exceed
        # the float16 range, so the scores and the softmax use float32.
        query, key = _float32(query), _float32(key)
        if chunk is None:
            out = _dense_attention(query, key, value)
        else:
            out = _chunked_attention(query, key, _float32(value), chunk)
            if self.compute_dtype != "float32":
                out = ops.cast(out, self.compute_dtype)

        gamma = ops.cast(self.gamma, self.compute_dtype)
        return gamma * ops.reshape(out, shape) + inputs

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "reduction": self.reduction,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
                "gamma_initializer": keras.initializers.serialize(self.gamma_initializer),
                "gamma_regularizer": keras.regularizers.serialize(self.gamma_regularizer),
                "gamma_constraint": keras.constraints.serialize(self.gamma_constraint),
                "attention_chunk_size": self.attention_chunk_size,
            }
        )
        return config

    def _project(self, flat: Any) -> tuple[Any, Any, Any]:
        """Query, key and value of ``flat`` (batch, N, C): the 1x1 convolutions as matmuls."""

        def project(conv: keras.layers.Conv2D) -> Any:
            kernel = ops.reshape(ops.cast(conv.kernel, self.compute_dtype), (self._channels, -1))
            out = ops.matmul(flat, kernel)
            return out + ops.cast(conv.bias, self.compute_dtype) if conv.use_bias else out

        return project(self.query_conv), project(self.key_conv), project(self.value_conv)

    def _chunk_for(self, positions: int | None) -> int | None:
        """Query positions per chunk for a map of ``positions`` (None: unknown), or None: dense."""
        if self.attention_chunk_size != "auto":
            return self.attention_chunk_size  # type: ignore[return-value]
        if positions is not None and positions <= _AUTO_DENSE_MAX_POSITIONS:
            return None
        return _AUTO_CHUNK_SIZE

    def _projection(
        self, name: str, filters: int, use_bias: bool, index: int
    ) -> keras.layers.Conv2D:
        return keras.layers.Conv2D(
            filters,
            kernel_size=1,
            use_bias=use_bias,
            kernel_initializer=_own_initializer(self.kernel_initializer, index),
            bias_initializer=_own_initializer(self.bias_initializer, index),
            kernel_regularizer=self.kernel_regularizer,
            bias_regularizer=self.bias_regularizer,
            kernel_constraint=self.kernel_constraint,
            bias_constraint=self.bias_constraint,
            dtype=self.dtype_policy,
            name=name,
        )


# attention_chunk_size="auto": dense up to this many positions (64x64), where it is faster and
# its N x N scores are at most 64 MiB per image; chunks of this many query positions above.
_AUTO_DENSE_MAX_POSITIONS = 4096
_AUTO_CHUNK_SIZE = 1024
# Not smaller on torch, though it is faster there: torch allocates every slice afresh, and
# glibc maps allocations over 32 MiB anew (a page fault per 4 KiB each time), so slices under
# that (227 positions at 96x96, batch 2) took a step from about 3 s to 1.5 s; but glibc keeps
# the freed heap, and the step's peak RSS rose by 1.3 GB instead of 0.33 GB (dense: 2.7 GB).


def _float32(x: Any) -> Any:
    return x if keras.backend.standardize_dtype(x.dtype) == "float32" else ops.cast(x, "float32")


def _chunk_plan(n: Any, chunk: int) -> tuple[Any, Any]:
    """(number of chunks, positions per chunk) covering ``n`` positions, chunks evened out.

    ``n`` is an int, or a scalar tensor when the spatial size is unknown while tracing. The
    chunks are as even as possible, so the padding is less than one position per chunk.
    """
    if isinstance(n, int):
        count = max(1, -(-n // chunk))
        return count, -(-n // count)
    n = ops.cast(n, "int32")
    count = ops.maximum((n + chunk - 1) // chunk, 1)
    return count, (n + count - 1) // count


def _split(x: Any, count: Any, size: Any) -> Any:
    """(batch, N, D) -> (count, batch, size, D), zero-padding N up to count * size."""
    n = ops.shape(x)[1]
    x = ops.pad(x, ((0, 0), (0, count * size - n), (0, 0)))
    x = ops.reshape(x, (ops.shape(x)[0], count, size, ops.shape(x)[-1]))
    return ops.transpose(x, (1, 0, 2, 3))


def _join(x: Any, n: Any) -> Any:
    """(count, batch, size, D) -> (batch, n, D): the inverse of ``_split``."""
    x = ops.transpose(x, (1, 0, 2, 3))
    shape = ops.shape(x)
    return ops.reshape(x, (shape[0], -1, shape[-1]))[:, :n]


def _dense_attention(query: Any, key: Any, value: Any) -> Any:
    """``softmax(query @ key^T) @ value``: float32 query and key, value in the compute dtype.

    The N x N attention is computed in float32 and cast to the value's dtype for the last
    matmul. The gradient is written out rather than left to autodiff: with ``A`` the attention,
    ``O`` the output and ``delta = rowsum(dO * O)``, ``dS = A * (dO V^T - delta)``. Autodiff
    of the softmax computes ``rowsum(dA * A)`` instead, the same numbers from one more pass over
    an N x N matrix; a training step is about 10% faster this way, with and without
    ``jit_compile`` (see ``benchmarks/bench_pam.py``). Only ``A`` is kept for the backward pass,
    as autodiff keeps it.
    """

    @ops.custom_gradient
    def attend(query: Any, key: Any, value: Any) -> Any:
        attention = ops.softmax(ops.matmul(query, ops.transpose(key, (0, 2, 1))), axis=-1)
        value_dtype = keras.backend.standardize_dtype(value.dtype)
        out = ops.matmul(ops.cast(attention, value_dtype), value)

        def grad(*args: Any, upstream: Any = None) -> Any:
            if upstream is None:
                (upstream,) = args
            d_out = _float32(upstream)
            delta = ops.sum(d_out * _float32(out), axis=-1, keepdims=True)
            d_attention = ops.matmul(d_out, ops.transpose(_float32(value), (0, 2, 1)))
            d_scores = attention * (d_attention - delta)
            d_query = ops.matmul(d_scores, key)
            d_key = ops.matmul(ops.transpose(d_scores, (0, 2, 1)), query)
            d_value = ops.matmul(ops.transpose(attention, (0, 2, 1)), d_out)
            return d_query, d_key, ops.cast(d_value, value_dtype)

        return out, grad

    return attend(query, key, value)


def _chunked_attention(query: Any, key: Any, value: Any, chunk: int) -> Any:
    """``softmax(query @ key^T) @ value`` for float32 (batch, N, D) inputs, in chunks.

    The forward pass takes the queries a chunk at a time (the softmax runs over keys, so each
    query chunk is exact on its own) and keeps only the output and the log-sum-exp of each
    score row. The gradient recomputes the scores a chunk of keys at a time from those, as in
    FlashAttention: with ``P = exp(S - lse)`` and ``delta = rowsum(dO * O)``,
    ``dV_j = P_j^T dO``, ``dS_j = P_j * (dO V_j^T - delta)``, ``dK_j = dS_j^T Q`` and
    ``dQ = sum_j dS_j K_j``. Only a ``chunk x N`` slice of scores per image exists at a time.

    Where the time goes (``benchmarks/bench_pam.py``): the ``chunk x N`` slices. Every
    elementwise pass over one, and on eager backends every fresh one allocated, costs about
    as much as a matmul producing it, so the loops keep those passes few:

    - every matmul is a plain ``(rows, inner) @ (inner, cols)`` on operands transposed once
      outside the loops (the key for the forward; the queries, ``dO`` and the key chunk for
      the gradient, which works on ``P_j^T`` rather than ``P_j``), so no backend transposes a
      slice or picks a slow strided kernel for it;
    - ``- lse`` and ``- delta`` ride inside the matmuls as one more contraction channel (a
      column of ones on the key and value side), instead of one elementwise pass each;
    - the forward pass uses the backend's fused softmax, and reads ``lse`` off it as
      ``max(S) - log(max(P))`` (the largest probability is ``exp(max(S) - lse)``).

    This took a TensorFlow training step at 96x96 from about 1.3x to within the faster of two
    dense peers (see the benchmark for every backend).

    The loops are ``keras.ops.scan``, which runs its steps one after another on every backend
    (TensorFlow's ``while_loop`` would otherwise overlap up to ten) and takes a chunk count
    known only at run time. Its TensorFlow version stacks outputs shaped like the carry, so
    there each step returns its carry as its output (a copy of dQ^T per chunk: small with
    TensorFlow's chunks of 1024).
    """

    @ops.custom_gradient
    def attend(query: Any, key: Any, value: Any) -> Any:
        n = ops.shape(query)[1]
        count, size = _chunk_plan(n, chunk)
        batch = ops.shape(query)[0]
        key_channels = key.shape[-1]
        key_t = ops.transpose(key, (0, 2, 1))  # (batch, D, N), once for every chunk

        def forward(carry: Any, q: Any) -> Any:
            scores = ops.matmul(q, key_t)
            weights = ops.softmax(scores, axis=-1)
            top = ops.max(scores, axis=-1, keepdims=True)
            lse = top - ops.log(ops.max(weights, axis=-1, keepdims=True))
            result = (ops.matmul(weights, value), lse)
            return result, result

        init = (
            ops.zeros((batch, size, ops.shape(value)[-1]), "float32"),
            ops.zeros((batch, size, 1), "float32"),
        )
        _, (out, lse) = ops.scan(forward, init, _split(query, count, size))
        out = _join(out, n)
        lse = _join(lse, n)

        def grad(*args: Any, upstream: Any = None) -> Any:
            if upstream is None:
                (upstream,) = args
            d_out = ops.cast(upstream, "float32")
            delta = ops.sum(d_out * out, axis=-1, keepdims=True)
            # [K_j, 1] @ [Q, -lse]^T = S_j^T - lse^T and [V_j, 1] @ [dO, -delta]^T =
            # (dO V_j^T - delta)^T: the subtractions happen inside the matmuls.
            query_t = ops.transpose(ops.concatenate([query, -lse], axis=-1), (0, 2, 1))
            d_out_t = ops.transpose(ops.concatenate([d_out, -delta], axis=-1), (0, 2, 1))
            ones = ops.ones_like(lse)
            # One sequence to scan over: Keras' TensorFlow scan cannot check the length of
            # several when it is unknown while tracing. Zero-padded rows (ones column
            # included) get P = 1 but dS = 0, so they add nothing to dQ, and their dK and dV
            # rows are cut off.
            keys = _split(ops.concatenate([key, ones, value, ones], axis=-1), count, size)

            def backward(carry: Any, kv: Any) -> Any:
                weights_t = ops.exp(ops.matmul(kv[..., : key_channels + 1], query_t))
                d_value = ops.matmul(weights_t, d_out)
                d_scores_t = weights_t * ops.matmul(kv[..., key_channels + 1 :], d_out_t)
                d_key = ops.matmul(d_scores_t, query)
                k_t = ops.transpose(kv[..., :key_channels], (0, 2, 1))
                # dQ^T accumulates as (batch, D, N): K_j^T dS_j^T is a plain matmul.
                d_query_t = carry[2] + ops.matmul(k_t, d_scores_t)
                result = (d_key, d_value, d_query_t)
                # Only TensorFlow's scan needs outputs shaped like the carry; elsewhere a
                # stacked copy of dQ^T per chunk would be memory growing as N^2 / chunk.
                return result, (result if stack_carry else result[:2])

            init = (
                ops.zeros((batch, size, key_channels), "float32"),
                ops.zeros((batch, size, ops.shape(value)[-1]), "float32"),
                ops.zeros((batch, key_channels, n), "float32"),
            )
            stack_carry = keras.backend.backend() == "tensorflow"
            (_, _, d_query_t), (d_key, d_value, *_) = ops.scan(backward, init, keys)
            return ops.transpose(d_query_t, (0, 2, 1)), _join(d_key, n), _join(d_value, n)

        return out, grad

    return attend(query, key, value)


def _own_initializer(initializer: Any, index: int) -> Any:
    """A copy of ``initializer`` for the ``index``-th projection, drawing values of its own.

    A Keras initializer returns the same values on every call (an unseeded one fixes a random
    seed when it is created), so one instance shared by the three projections would start them
    equal, and equal query and key projections make every attention map symmetric.
    """
    if not isinstance(initializer, keras.initializers.Initializer):
        return initializer
    config = initializer.get_config()
    seed = config.get("seed")
    if isinstance(seed, dict):
        # A SeedGenerator advances on every call, so sharing it already gives new values; a
        # copy rebuilt from its config would restart it and repeat them.
        return initializer
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        # Reproducible for a given seed, and different for each projection.
        config["seed"] = int(seed) + index
    # An unseeded copy picks a new seed when it is created (from Keras' seeded Python RNG, so
    # keras.utils.set_random_seed still makes it reproducible).
    return initializer.__class__.from_config(config)
