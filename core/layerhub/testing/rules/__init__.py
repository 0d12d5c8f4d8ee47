"""The conformance rules behind ``layerhub.testing.check_layer``, one module per rule.

``RULES`` numbers them; each module's ``check(case)`` raises ``Broken`` when its rule is broken.
Importing this package imports no keras; the rule modules do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

RULES: Final[Mapping[int, str]] = {
    1: "config round trip",
    2: "fresh-interpreter round trip",
    3: "output shapes",
    4: "weights in build()",
    5: "gradients",
    6: "jit_compile and mixed precision",
    7: "plugin registration",
    8: "masking",
}

# Rule number -> the module (in this package) that checks it.
MODULES: Final[Mapping[int, str]] = {
    1: "config",
    2: "roundtrip",
    3: "shapes",
    4: "build",
    5: "gradients",
    6: "compiled",
    7: "registration",
    8: "masking",
}

DEFAULT_FIX: Final[Mapping[int, str]] = {
    1: "override get_config(): config = super().get_config(); config.update({...}) with every "
    "constructor argument, serialising initializers etc. with keras.initializers.serialize",
    2: "create every weight in build() and make get_config() return every constructor argument",
    3: "make compute_output_shape(input_shape) return what call() returns (a tuple, or a list of "
    "tuples for several outputs) and never use the batch size of input_shape",
    4: "create weights in build() with self.add_weight(), sublayers in __init__() (building them "
    "in build()), never inside call()",
    5: "use every trainable weight in call() (or create it with trainable=False)",
    6: "compute in self.compute_dtype (ops.cast(weight, self.compute_dtype)) and use keras.ops "
    "only, with no Python-side logic on tensor values",
    7: "decorate the class with @keras.saving.register_keras_serializable(package=<plugin "
    "package>), return it from the layerhub_layers hook and list it in the plugin's "
    "'layerhub.layers' entry points, then reinstall the plugin",
    8: "set supports_masking = True only for a layer that keeps the steps of its input; "
    "otherwise define compute_mask(inputs, mask) returning the output's mask (or None), and "
    "take mask=None in call() to ignore the masked steps",
}
