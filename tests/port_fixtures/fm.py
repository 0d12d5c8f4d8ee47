"""A factorization machine layer in the DeepCTR/Keras 2 manner (fixture for layerhub port)."""

from keras import activations
from keras import backend as K
from keras.layers import Layer


class FMLayer(Layer):
    """Linear part plus pairwise interactions <v_i, v_j> x_i x_j (Rendle 2010)."""

    def __init__(self, output_dim, factor_order, activation=None, **kwargs):
        super(FMLayer, self).__init__(**kwargs)
        self.output_dim = output_dim
        self.factor_order = factor_order
        self.activation = activations.get(activation)

    def build(self, input_shape):
        input_dim = input_shape[1]
        # Keras 2 positional order: name, shape.
        self.W = self.add_weight("W", (input_dim, self.output_dim),
                                 initializer="glorot_uniform", trainable=True)
        self.V = self.add_weight(name="V", shape=(input_dim, self.factor_order),
                                 initializer="glorot_uniform", trainable=True)
        self.b = self.add_weight(name="b", shape=(self.output_dim,), initializer="zeros",
                                 trainable=True)
        super(FMLayer, self).build(input_shape)

    def call(self, inputs):
        x_square = K.square(inputs)
        xv = K.square(K.dot(inputs, self.V))
        xw = K.dot(inputs, self.W)
        p = 0.5 * K.sum(xv - K.dot(x_square, K.square(self.V)), 1)
        rp = K.repeat_elements(K.reshape(p, (-1, 1)), self.output_dim, axis=-1)
        f = xw + rp + self.b
        output = K.reshape(f, (-1, self.output_dim))
        return self.activation(output)

    def compute_output_shape(self, input_shape):
        return input_shape[0], self.output_dim
