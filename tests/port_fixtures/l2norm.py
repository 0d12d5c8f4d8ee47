"""SSD's L2Normalization as Keras 2.0/2.1 code had it (fixture for layerhub port)."""

import keras.backend as K
import numpy as np
from keras.engine.topology import InputSpec
from keras.engine.topology import Layer


class L2Normalization(Layer):
    """Normalise each position along the channels, then scale by a learnt gamma."""

    def __init__(self, gamma_init=20, **kwargs):
        if K.image_dim_ordering() == "tf":
            self.axis = 3
        else:
            self.axis = 1
        self.gamma_init = gamma_init
        super(L2Normalization, self).__init__(**kwargs)

    def build(self, input_shape):
        self.input_spec = [InputSpec(shape=input_shape)]
        gamma = self.gamma_init * np.ones((input_shape[self.axis],))
        self.gamma = K.variable(gamma, name="{}_gamma".format(self.name))
        self.trainable_weights = [self.gamma]
        super(L2Normalization, self).build(input_shape)

    def call(self, x, mask=None):
        output = K.l2_normalize(x, self.axis)
        return output * self.gamma
