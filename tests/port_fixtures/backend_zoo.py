"""One Keras 2 layer calling many backend functions, to hold each table row against tf-keras.

Fixture for layerhub port: its outputs and input gradients under tf-keras must equal the
port's under Keras 3 (the table's axis, keepdims and default-argument mapping).
"""

from keras import backend as K
from keras.layers import Layer


class BackendZoo(Layer):
    """Returns a list of tensors, each from a different backend function."""

    def __init__(self, units=3, **kwargs):
        super(BackendZoo, self).__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        # inputs (batch, steps, features)
        features = input_shape[-1]
        self.kernel = self.add_weight(name="kernel", shape=(features, self.units),
                                      initializer="glorot_uniform")
        self.cube = self.add_weight(name="cube", shape=(2, features, self.units),
                                    initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="uniform")
        super(BackendZoo, self).build(input_shape)

    def call(self, x):
        projected = K.bias_add(K.dot(x, self.kernel), self.bias)
        outputs = [
            projected,
            K.dot(x, self.cube),  # rank-3 right operand: a tensordot in Keras 2
            K.sum(x, axis=1),
            K.mean(x, -1, True),
            K.max(x, axis=[1, 2]),
            K.min(x, 1, keepdims=True),
            K.std(x, axis=-1),
            K.prod(x, axis=1),
            K.softmax(x),
            K.l2_normalize(x, axis=-1),
            K.sqrt(x),  # negative inputs: 0 in Keras 2
            K.hard_sigmoid(x),
            K.relu(x, alpha=0.1, max_value=1.5),
            K.elu(x),
            K.clip(x, -0.5, 0.5),
            K.pow(K.abs(x) + K.epsilon(), 1.5),
            K.batch_dot(x, x, axes=[2, 2]),
            K.batch_dot(projected, projected, axes=[1, 1]),
            K.batch_dot(K.batch_flatten(x), K.batch_flatten(x)),
            K.permute_dimensions(x, (0, 2, 1)),
            K.expand_dims(K.sum(x, axis=-1)),
            K.concatenate([x, K.square(x)]),
            K.reshape(x, (-1, K.int_shape(x)[1] * K.int_shape(x)[2])),
            K.repeat(K.mean(x, axis=1), 2),
            K.repeat_elements(x, 2, axis=1),
            K.tile(x, (1, 1, 2)),
            K.switch(K.greater(K.sum(x, axis=-1), 0.0), K.sum(x, axis=-1), -K.sum(x, axis=-1)),
            K.cast(K.greater(x, 0.0), K.dtype(x)) * x,
            K.stack([K.sum(x, axis=1), K.max(x, axis=1)], axis=1),
            K.tanh(x) + K.sigmoid(x) + K.softplus(x) + K.exp(-K.square(x)),
            K.log(K.square(x) + 1.0),
            K.cumsum(x, axis=1),
            K.maximum(x, K.minimum(x, 0.2)),
        ]
        return outputs

    def compute_output_shape(self, input_shape):
        batch, steps, features = input_shape
        units = self.units
        return [
            (batch, steps, units), (batch, steps, 2, units), (batch, features), (batch, steps, 1),
            (batch,), (batch, 1, features), (batch, steps), (batch, features),
            input_shape, input_shape, input_shape, input_shape, input_shape, input_shape,
            input_shape, input_shape, (batch, steps, steps), (batch, units, units), (batch, 1),
            (batch, features, steps), (batch, steps, 1), (batch, steps, 2 * features),
            (batch, steps * features), (batch, 2, features), (batch, 2 * steps, features),
            (batch, steps, 2 * features), (batch, steps), input_shape, (batch, 2, features),
            input_shape, input_shape, input_shape, input_shape,
        ]

    def get_config(self):
        config = {"units": self.units}
        base_config = super(BackendZoo, self).get_config()
        return dict(list(base_config.items()) + list(config.items()))
