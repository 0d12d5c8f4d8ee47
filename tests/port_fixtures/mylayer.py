"""The Keras 2 documentation's MyLayer, one tensor and several (fixture for layerhub port)."""

from keras import backend as K
from keras.layers import Layer


class MyLayer(Layer):
    """x . kernel"""

    def __init__(self, output_dim, **kwargs):
        self.output_dim = output_dim
        super(MyLayer, self).__init__(**kwargs)

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel",
                                      shape=(input_shape[1], self.output_dim),
                                      initializer="uniform",
                                      trainable=True)
        super(MyLayer, self).build(input_shape)  # Be sure to call this at the end

    def call(self, x):
        return K.dot(x, self.kernel)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)


class MyMultiLayer(Layer):
    """[a . kernel + b, mean(b)] from two inputs."""

    def __init__(self, output_dim, **kwargs):
        self.output_dim = output_dim
        super(MyMultiLayer, self).__init__(**kwargs)

    def build(self, input_shape):
        assert isinstance(input_shape, list)
        self.kernel = self.add_weight(name="kernel",
                                      shape=(input_shape[0][1], self.output_dim),
                                      initializer="uniform",
                                      trainable=True)
        super(MyMultiLayer, self).build(input_shape)

    def call(self, x):
        assert isinstance(x, list)
        a, b = x
        return [K.dot(a, self.kernel) + b, K.mean(b, axis=-1)]

    def compute_output_shape(self, input_shape):
        assert isinstance(input_shape, list)
        shape_a, shape_b = input_shape
        return [(shape_a[0], self.output_dim), shape_b[:-1]]

    def get_config(self):
        config = {"output_dim": self.output_dim}
        base_config = super(MyMultiLayer, self).get_config()
        return dict(list(base_config.items()) + list(config.items()))
