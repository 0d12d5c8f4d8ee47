"""A position attention module (DANet's PAM) in tf.keras 1.x style (fixture for layerhub port).

The 1x1 convolutions are kernels made in build(), not Conv2D layers made in call().
"""

import tensorflow as tf
from tensorflow.keras import backend as K
from tensorflow.keras import initializers


class PAM(tf.keras.layers.Layer):
    """out = gamma * attention(x) + x over the positions of a channels-last feature map."""

    def __init__(self, gamma_initializer="zeros", ratio=8, **kwargs):
        super(PAM, self).__init__(**kwargs)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.ratio = ratio

    def build(self, input_shape):
        channels = input_shape[-1]
        reduced = channels // self.ratio
        self.kernel_b = self.add_weight(name="kernel_b", shape=(channels, reduced),
                                        initializer="glorot_uniform")
        self.kernel_c = self.add_weight(name="kernel_c", shape=(channels, reduced),
                                        initializer="glorot_uniform")
        self.kernel_d = self.add_weight(name="kernel_d", shape=(channels, channels),
                                        initializer="glorot_uniform")
        self.gamma = self.add_weight(name="gamma", shape=(1,),
                                     initializer=self.gamma_initializer)
        super(PAM, self).build(input_shape)

    def call(self, x):
        _, h, w, filters = K.int_shape(x)
        reduced = filters // self.ratio
        b = K.dot(x, self.kernel_b)
        c = K.dot(x, self.kernel_c)
        d = K.dot(x, self.kernel_d)
        vec_b = K.reshape(b, (-1, h * w, reduced))
        vec_c_t = K.permute_dimensions(K.reshape(c, (-1, h * w, reduced)), (0, 2, 1))
        attention = K.softmax(K.batch_dot(vec_b, vec_c_t))
        vec_d = K.reshape(d, (-1, h * w, filters))
        out = K.reshape(K.batch_dot(attention, vec_d), (-1, h, w, filters))
        return self.gamma * out + x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super(PAM, self).get_config()
        config["ratio"] = self.ratio
        return config
