"""A DenseNet-style Scale layer, written the Keras 2.0 way (fixture for layerhub port)."""

from keras import backend as K
from keras import initializers
from keras.engine import InputSpec, Layer


class Scale(Layer):
    """y = gamma * x + beta, one gamma and beta per channel of `axis`."""

    def __init__(self, weights=None, axis=-1, momentum=0.9, beta_init="zero", gamma_init="one",
                 **kwargs):
        self.momentum = momentum  # kept for old configs; never used
        self.axis = axis
        self.beta_init = initializers.get(beta_init)
        self.gamma_init = initializers.get(gamma_init)
        self.initial_weights = weights
        super(Scale, self).__init__(**kwargs)

    def build(self, input_shape):
        self.input_spec = [InputSpec(shape=input_shape)]
        shape = (int(input_shape[self.axis]),)
        # Keras 2.0 idiom: raw variables, registered by listing them.
        self.gamma = K.variable(self.gamma_init(shape), name="{}_gamma".format(self.name))
        self.beta = K.variable(self.beta_init(shape), name="{}_beta".format(self.name))
        self.trainable_weights = [self.gamma, self.beta]
        if self.initial_weights is not None:
            self.set_weights(self.initial_weights)

    def call(self, x, mask=None):
        ndim = len(K.int_shape(x))
        broadcast_shape = [1] * ndim
        broadcast_shape[self.axis] = K.int_shape(x)[self.axis]
        gamma = K.reshape(self.gamma, broadcast_shape)
        beta = K.reshape(self.beta, broadcast_shape)
        return gamma * x + beta

    def get_config(self):
        config = {"momentum": self.momentum, "axis": self.axis}
        base_config = super(Scale, self).get_config()
        return dict(list(base_config.items()) + list(config.items()))
