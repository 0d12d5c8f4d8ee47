"""Keras 2.0 layers that branch on the image dimension ordering (fixture for layerhub port)."""

from keras import backend as K
from keras import initializers, regularizers
from keras.engine.topology import Layer


class ChannelCentre(Layer):
    """Subtract each position's channel mean, then scale per channel (`scale` weight)."""

    def __init__(self, scale_initializer="ones", scale_regularizer=None, **kwargs):
        super(ChannelCentre, self).__init__(**kwargs)
        if K.image_dim_ordering() == "th":
            self.axis = 1
        else:
            self.axis = -1
        self.scale_initializer = initializers.get(scale_initializer)
        self.scale_regularizer = regularizers.get(scale_regularizer)

    def build(self, input_shape):
        channels = input_shape[self.axis].value
        self.scale = self.add_weight("scale", (channels,), initializer=self.scale_initializer,
                                     regularizer=self.scale_regularizer)
        self.built = True

    def call(self, inputs):
        centred = inputs - K.mean(inputs, axis=self.axis, keepdims=True)
        if K.image_data_format() == "channels_first":
            return centred * K.reshape(self.scale, (1, -1, 1, 1))
        return centred * self.scale

    def get_output_shape_for(self, input_shape):
        return input_shape


class SoftGate(Layer):
    """x * hard_sigmoid(x . w) + K.sqrt(|x|) over the last axis (element-wise gate)."""

    def build(self, input_shape):
        dim = input_shape[-1].value
        self.w = self.add_weight(name="w", shape=(dim, dim), initializer="glorot_uniform")
        super(SoftGate, self).build(input_shape)

    def call(self, x):
        gate = K.hard_sigmoid(K.dot(x, self.w))
        return x * gate + K.sqrt(K.abs(x) + K.epsilon())


class ChannelBias(Layer):
    """x + bias, one bias per channel, the bias a raw variable named after the layer."""

    def build(self, input_shape):
        axis = 1 if K.image_dim_ordering() == "th" else -1
        channels = input_shape[axis].value
        self.bias = K.variable([0.1 * (i + 1) for i in range(channels)],
                               name="{}_bias".format(self.name))
        self.trainable_weights = [self.bias]
        super(ChannelBias, self).build(input_shape)

    def call(self, x):
        return x + self.bias
