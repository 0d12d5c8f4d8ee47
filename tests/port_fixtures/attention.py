"""Attention pooling in the style of the tf.keras add-on layers (fixture for layerhub port).

`keras` here is `tensorflow.keras`; the layer supports masking and can also return its weights.
"""

import tensorflow as tf
from tensorflow import keras
from tensorflow.keras import backend as K


class SeqWeightedAttention(keras.layers.Layer):
    """y = sum_t a_t x_t, a = softmax over the steps of tanh(x . W + b) (masked steps get 0)."""

    def __init__(self, use_bias=True, return_attention=False, **kwargs):
        super(SeqWeightedAttention, self).__init__(**kwargs)
        self.supports_masking = True
        self.use_bias = use_bias
        self.return_attention = return_attention
        self.W, self.b = None, None

    def get_config(self):
        config = {"use_bias": self.use_bias, "return_attention": self.return_attention}
        base_config = super(SeqWeightedAttention, self).get_config()
        return dict(list(base_config.items()) + list(config.items()))

    def build(self, input_shape):
        self.W = self.add_weight(shape=(int(input_shape[2]), 1),
                                 name="{}_W".format(self.name),
                                 initializer=keras.initializers.get("uniform"))
        if self.use_bias:
            self.b = self.add_weight(shape=(1,), name="{}_b".format(self.name),
                                     initializer=keras.initializers.get("zeros"))
        super(SeqWeightedAttention, self).build(input_shape)

    def call(self, x, mask=None):
        logits = K.dot(x, self.W)
        if self.use_bias:
            logits += self.b
        x_shape = K.shape(x)
        logits = K.reshape(K.tanh(logits), (x_shape[0], x_shape[1]))
        ai = K.exp(logits - K.max(logits, axis=-1, keepdims=True))
        if mask is not None:
            ai = ai * K.cast(mask, K.dtype(ai))
        att_weights = ai / (K.sum(ai, axis=1, keepdims=True) + K.epsilon())
        result = K.sum(x * K.expand_dims(att_weights), axis=1)
        if self.return_attention:
            return [result, att_weights]
        return result

    def compute_output_shape(self, input_shape):
        if self.return_attention:
            return [(input_shape[0], input_shape[2]), (input_shape[0], input_shape[1])]
        return input_shape[0], input_shape[2]

    def compute_mask(self, _, input_mask=None):
        if self.return_attention:
            return [None, None]
        return None

    @staticmethod
    def get_custom_objects():
        return {"SeqWeightedAttention": SeqWeightedAttention}
