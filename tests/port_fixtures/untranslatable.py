"""A Keras 2 layer with constructs that have no certain Keras 3 translation (fixture)."""

from keras import backend as K
from keras.layers import Conv2D, Layer


class NoisyBlock(Layer):
    """Conv made in call(), dropout through the backend, and a training-phase switch."""

    def __init__(self, rate, filters=4, **kwargs):
        super(NoisyBlock, self).__init__(**kwargs)
        self.rate = rate

    def call(self, x, training=None):
        conv = Conv2D(self.filters, 1)(x)
        noisy = K.in_train_phase(K.dropout(conv, self.rate), conv, training=training)
        return noisy

    def compute_output_shape(self, input_shape):
        return input_shape[:-1] + (4,)
