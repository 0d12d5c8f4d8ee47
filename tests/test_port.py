"""``layerhub port``: Keras 2 layer modules become Keras 3 plugins that pass the kit and match
tf-keras.

The fixtures in ``tests/port_fixtures`` are Keras 2 modules in the styles real code used
(keras.engine.topology, K.variable with trainable_weights lists, tf.keras, positional
add_weight, image_dim_ordering branches, TF1 dimensions). The slow tests port each once per
session, install all the plugins into one directory, run their generated tests in one pytest
child, and compare every layer with its original under tf-keras in one parity run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("libcst")

from layerhub._private.cli import command
from layerhub._private.cli.port import (
    Ported,
    PortError,
    parse_example,
    port,
    table,
)
from layerhub._private.cli.port.rewrite import rewrite

FIXTURES = Path(__file__).parent / "port_fixtures"
ROOT = Path(__file__).parent.parent
# fixture module -> the layer classes it must port to, with no hand edits.
PORTABLE = {
    "scale.py": ["Scale"],
    "l2norm.py": ["L2Normalization"],
    "fm.py": ["FMLayer"],
    "mylayer.py": ["MyLayer", "MyMultiLayer"],
    "pam.py": ["PAM"],
    "ordering.py": ["ChannelCentre", "SoftGate", "ChannelBias"],
    "backend_zoo.py": ["BackendZoo"],
    "attention.py": ["SeqWeightedAttention"],
}


def _port(source: str, **kwargs: Any) -> str:
    return rewrite(source, "layerhub_t", **kwargs).code


# -- the rewrite, on small sources ----------------------------------------------------------------

K2 = "from keras import backend as K\nfrom keras.engine.topology import Layer\n\n\n"


@pytest.mark.parametrize(
    ("keras2", "keras3"),
    [
        ("K.sum(x, 1)", "ops.sum(x, axis=1)"),
        ("K.mean(x, axis=-1, keepdims=True)", "ops.mean(x, axis=-1, keepdims=True)"),
        ("K.max(x)", "ops.max(x)"),
        ("K.argmax(x)", "ops.argmax(x, axis=-1)"),  # Keras 3's default axis is None
        ("K.expand_dims(x)", "ops.expand_dims(x, axis=-1)"),
        ("K.permute_dimensions(x, (0, 2, 1))", "ops.transpose(x, axes=(0, 2, 1))"),
        ("K.concatenate([a, b])", "ops.concatenate([a, b], axis=-1)"),
        ("K.softmax(x)", "ops.softmax(x, axis=-1)"),
        ("K.dot(a, b)", "_keras2.dot(a, b)"),
        ("K.batch_dot(a, b, axes=[2, 2])", "_keras2.batch_dot(a, b, axes=[2, 2])"),
        ("K.l2_normalize(x, 3)", "_keras2.l2_normalize(x, axis=3)"),
        ("K.int_shape(a + b)", "tuple((a + b).shape)"),
        ("K.epsilon()", "keras.config.epsilon()"),
        ("K.cast(x, K.floatx())", "ops.cast(x, keras.config.floatx())"),
        ("K.relu(x, alpha=0.2)", "keras.activations.relu(x, negative_slope=0.2)"),
        ("K.image_dim_ordering() == 'th'", 'keras.config.image_data_format() == "channels_first"'),
        ("'tf' != K.image_dim_ordering()", 'keras.config.image_data_format() != "channels_last"'),
        ("x.get_shape().as_list()", "list(x.shape)"),
        ("input_shape[-1].value", "input_shape[-1]"),
    ],
)
def test_table_rows(keras2: str, keras3: str) -> None:
    code = _port(f"{K2}class L(Layer):\n    def call(self, x):\n        return {keras2}\n")
    assert f"return {keras3}\n" in code
    assert "PORT_TODO: tuple[str, ...] = (\n)" in code


def test_imports_become_keras3_and_comments_survive() -> None:
    source = (
        '"""Doc."""\n\n'
        "import numpy as np\n"
        "import tensorflow as tf\n"
        "from tensorflow.keras import backend as K\n"
        "from keras import initializers\n\n\n"
        "class L(tf.keras.layers.Layer):\n"
        "    def __init__(self, init='one', **kwargs):\n"
        "        super(L, self).__init__(**kwargs)  # keep me\n"
        "        self.init = initializers.get(init)\n\n"
        "    def get_output_shape_for(self, s):\n"
        "        return s\n"
    )
    code = _port(source)
    assert code.startswith(
        '"""Doc."""\n\nimport numpy as np\n\nimport keras\nfrom keras import ops\n'
    )
    assert "tensorflow" not in code  # tf was only used for tf.keras
    assert "class L(keras.layers.Layer):" in code
    assert "super().__init__(**kwargs)  # keep me" in code
    assert "self.init = keras.initializers.get(init)" in code
    assert "def compute_output_shape(self, s):" in code
    assert '@keras.saving.register_keras_serializable(package="layerhub_t")' in code
    assert '"init": keras.initializers.serialize(self.init),' in code


def test_add_weight_positional_orders() -> None:
    keras2 = _port(
        f"{K2}class L(Layer):\n    def build(self, s):\n"
        "        self.w = self.add_weight('w', (3,), 'float32', 'ones')\n"
    )
    assert "self.add_weight(name='w', shape=(3,), dtype='float32', initializer='ones')" in keras2
    keras1 = _port(
        f"{K2}class L(Layer):\n    def build(self, s):\n"
        "        self.w = self.add_weight((3,), 'ones', 'w')\n"
    )
    assert "self.add_weight(name='w', shape=(3,), initializer='ones')" in keras1
    unknown = rewrite(
        f"{K2}class L(Layer):\n    def build(self, s):\n"
        "        self.w = self.add_weight(shape, 'ones')\n",
        "p",
    )
    assert [(f.line, f.todo) for f in unknown.findings] == [(7, True)]
    assert "order is not certain" in unknown.findings[0].message


def test_incomplete_get_config_gets_the_missing_arguments() -> None:
    code = _port(
        f"{K2}class L(Layer):\n"
        "    def __init__(self, units, rate=0.5, **kwargs):\n"
        "        super(L, self).__init__(**kwargs)\n"
        "        self.units = int(units)\n"
        "        self.rate = rate\n\n"
        "    def get_config(self):\n"
        "        config = {'units': self.units}\n"
        "        base = super(L, self).get_config()\n"
        "        return dict(list(base.items()) + list(config.items()))\n"
    )
    assert '"rate": self.rate,' in code
    assert code.count('"units"') == 0  # already there, not added twice


def test_untranslatable_constructs_are_reported_by_line_and_marked() -> None:
    result = rewrite((FIXTURES / "untranslatable.py").read_text(), "p")
    todo = [(f.line, f.message.split(":")[0]) for f in result.findings if f.todo]
    assert todo == [
        (7, "NoisyBlock"),  # 'filters' stored nowhere, so get_config cannot return it
        (15, "Conv2D creates a layer inside call()"),
        (16, "K.dropout"),
        (16, "K.in_train_phase"),
    ]
    lines = result.code.splitlines()
    marked = lines.index(
        "        noisy = K.in_train_phase(K.dropout(conv, self.rate), conv, training=training)"
    )
    assert lines[marked - 1].startswith("        # TODO(port): line 16: K.in_train_phase")
    assert "line 16: K.dropout" in lines[marked - 2]
    assert "    'line 16: K.dropout: random numbers" in result.code  # in PORT_TODO


def test_tensorflow_variables_and_updates_are_reported() -> None:
    source = (
        "import tensorflow as tf\n"
        "from tensorflow.keras import backend as K\n"
        "from tensorflow.python.keras.utils import tf_utils\n\n\n"
        "class L(tf.keras.layers.Layer):\n"
        "    @tf_utils.shape_type_conversion\n"
        "    def build(self, input_shape):\n"
        "        self.v = tf.Variable(tf.zeros(input_shape[-1:]))\n"
        "        self.add_update(K.update(self.v, self.v + 1))\n\n"
        "    def call(self, x):\n"
        "        return tf.nn.relu(x) + K.arange(3) + K.one_hot(K.argmax(x), 3)\n"
    )
    result = rewrite(source, "p")
    todo = [(f.line, f.message.split(":")[0]) for f in result.findings if f.todo]
    assert todo == [(9, "tf.Variable"), (10, "K.update"), (10, "self.add_update")]
    notes = {(f.line, f.message.split(":")[0]) for f in result.findings if not f.todo}
    assert (7, "removed the decorator tf_utils.shape_type_conversion") in notes
    assert (13, "tf.nn.relu") in notes  # kept: a TensorFlow call, noted
    assert "ops.arange(3, None, 1, dtype='int32')" in result.code
    assert "ops.one_hot(ops.argmax(x, axis=-1), 3)" in result.code
    assert "import tensorflow as tf\n" in result.code  # still used by tf.nn.relu


def test_unknown_backend_function_is_not_guessed() -> None:
    result = rewrite(
        f"{K2}class L(Layer):\n    def call(self, x):\n        return K.ctc_decode(x, 3)\n", "p"
    )
    assert [f.message for f in result.findings] == [
        "K.ctc_decode: no entry in the translation table"
    ]
    assert "return K.ctc_decode(x, 3)" in result.code
    wrong = rewrite(
        f"{K2}class L(Layer):\n    def call(self, x):\n        return K.sum(x, axes=1)\n", "p"
    )
    assert "argument 'axes' is not in the Keras 2 signature" in wrong.findings[0].message


def test_class_selection_leaves_the_others_out() -> None:
    result = rewrite((FIXTURES / "mylayer.py").read_text(), "p", keep={"MyMultiLayer"})
    assert [layer.name for layer in result.layers] == ["MyMultiLayer"]
    assert "class MyLayer(" not in result.code


def test_docs_show_the_one_table() -> None:
    docs = (ROOT / "docs" / "porting.md").read_text(encoding="utf-8")
    assert table.markdown() in docs
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/porting.md" in readme


def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    text = tmp_path / "text.py"
    text.write_text("def f(:\n")
    with pytest.raises(PortError, match="is not valid Python: line 1"):
        port(text, parent=tmp_path)
    plain = tmp_path / "plain.py"
    plain.write_text("x = 1\n")
    with pytest.raises(PortError, match="defines no Keras layer class"):
        port(plain, parent=tmp_path)
    with pytest.raises(PortError, match=r"no Keras layer class Nope \(layer classes: MyLayer, "):
        port(FIXTURES / "mylayer.py", classes=["Nope"], parent=tmp_path)
    with pytest.raises(PortError, match="--example takes CLASS=JSON"):
        parse_example("MyLayer={}")
    assert parse_example('MyLayer=[{"output_dim": 2}, [[2, 3], [2, 3]]]') == (
        "MyLayer",
        ({"output_dim": 2}, [(2, 3), (2, 3)]),
    )


# -- whole plugins: the kit and tf-keras --------------------------------------------------------


@pytest.fixture(scope="module")
def ported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ported]:
    """Every fixture module ported once, with the probe finding the examples."""
    parent = tmp_path_factory.mktemp("ported")
    found = {}
    for name in [*PORTABLE, "untranslatable.py"]:
        dist = "port-" + Path(name).stem.replace("_", "-")
        found[name] = port(FIXTURES / name, parent=parent, distribution=dist)
    return found


@pytest.fixture(scope="module")
def installed(ported: dict[str, Ported], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All the ported plugins installed (as wheels would be) into one directory."""
    site = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"),
            *("--no-deps", "--no-build-isolation", "--target", str(site)),
            *(str(p.root) for p in ported.values()),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return site


@pytest.mark.slow
def test_every_fixture_ports_completely(ported: dict[str, Ported]) -> None:
    for name, classes in PORTABLE.items():
        result = ported[name]
        assert result.layers == classes, name
        assert [f for f in result.findings if f.todo] == [], name
        assert result.complete, (name, result.examples)
    assert ported["pam.py"].examples["PAM"] == ({"gamma_initializer": "ones"}, (2, 4, 4, 16))
    assert ported["fm.py"].examples["FMLayer"][1] == (2, 5)
    pyproject = (ported["mylayer.py"].root / "pyproject.toml").read_text()
    assert 'MyLayer = "layerhub_port_mylayer:MyLayer"' in pyproject
    assert 'MyMultiLayer = "layerhub_port_mylayer:MyMultiLayer"' in pyproject
    bad = ported["untranslatable.py"]
    assert not bad.complete
    assert bad.examples == {"NoisyBlock": None}


@pytest.mark.slow
def test_generated_tests_pass_the_kit_and_fail_on_todo(
    ported: dict[str, Ported], installed: Path, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(installed), os.environ.get("PYTHONPATH", "")]),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE"),
            *("-o", "addopts=", "--rootdir", str(tmp_path)),
            *(str(p.root / "tests") for p in ported.values()),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=1200,
    )
    failed = sorted(set(re.findall(r"^FAILED (\S+?)::(\w+)", result.stdout, re.MULTILINE)))
    names = [(Path(path).name, test) for path, test in failed]
    assert names == [
        ("test_noisy_block.py", "test_conformance"),
        ("test_noisy_block.py", "test_port_is_complete"),
    ], result.stdout[-6000:]
    assert "layerhub port left untranslated code" in result.stdout
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed is not None, result.stdout[-3000:]
    assert int(passed.group(1)) == 2 * 11, result.stdout[-3000:]


@pytest.mark.slow
@pytest.mark.keras2
def test_ports_match_tf_keras(
    ported: dict[str, Ported], installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from layerhub._private.cli.port.check import Item, parity, tf_keras_installed

    if not tf_keras_installed():
        pytest.skip("tf-keras is not installed")
    # The plugins installed, so the Keras 2 .h5 file of each original loads through layerhub.
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(installed), os.environ.get("PYTHONPATH", "")])
    )
    items = [
        Item(FIXTURES / name, cls, result.root, result.package, *result.examples[cls])
        for name, result in ported.items()
        if name in PORTABLE
        for cls in result.layers
    ]
    # Two broken ports of FMLayer, which the check must catch: a changed constant, and a
    # weight renamed so that it cannot be copied by name.
    fm = ported["fm.py"]
    for dist, old, new in [("fmhalf", "0.5 *", "0.25 *"), ("fmname", 'name="V"', 'name="V2"')]:
        broken = port(
            FIXTURES / "fm.py",
            parent=tmp_path,
            distribution=dist,
            examples={"FMLayer": fm.examples["FMLayer"]},
        )
        module = broken.root / broken.package / f"{broken.module}.py"
        text = module.read_text()
        assert old in text
        module.write_text(text.replace(old, new))
        items.append(
            Item(
                FIXTURES / "fm.py", "FMLayer", broken.root, broken.package, *fm.examples["FMLayer"]
            )
        )
    rows = parity(items)
    good, half, renamed = rows[:-2], rows[-2], rows[-1]
    assert [r.item.cls for r in good if not r.ok] == [], [r for r in good if not r.ok]
    assert {r.item.cls for r in good} == {c for cs in PORTABLE.values() for c in cs}
    assert dict(zip([r.item.cls for r in good], [r.weights for r in good], strict=True))[
        "Scale"
    ] == ("beta", "gamma")
    h5 = {r.item.cls: r.h5 for r in good}
    # The first-party plugins (installed here) claim the same bare names as these ports.
    for taken in ["FMLayer", "Scale", "L2Normalization", "MyLayer", "PAM"]:
        assert str(h5[taken]).startswith("skipped: another installed plugin"), h5
    # ChannelBias' weight is named after the layer in Keras 2 ("channel_bias_bias").
    loaded_ones = ["MyMultiLayer", "ChannelCentre", "SoftGate", "ChannelBias", "BackendZoo"]
    for loaded in [*loaded_ones, "SeqWeightedAttention"]:
        assert isinstance(h5[loaded], float), h5
        assert h5[loaded] <= 1e-5, h5
    assert not half.ok
    assert half.error is None
    assert half.output is not None
    assert half.output > 1e-3
    assert not renamed.ok
    assert "weights differ by name" in str(renamed.error)


@pytest.mark.slow
def test_cli_port_reports_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = str(FIXTURES / "untranslatable.py")
    status = command.main(
        [
            "port",
            source,
            "--dir",
            str(tmp_path),
            "--example",
            'NoisyBlock=[{"rate": 0.5}, [2, 4, 4, 3]]',
        ]
    )
    out = capsys.readouterr().out
    assert status == 1
    assert "report: 4 construct(s) left marked TODO(port), 0 note(s)" in out
    assert "untranslatable.py:16: TODO(port): K.dropout: random numbers" in out
    assert "NoisyBlock: init_kwargs={'rate': 0.5}, input_shape=(2, 4, 4, 3)" in out
    status = command.main(
        [
            "port",
            source,
            "--dir",
            str(tmp_path / "json"),
            "--json",
            "--example",
            'NoisyBlock={"init_kwargs": {"rate": 0.5}, "input_shape": [2, 3]}',
        ]
    )
    document = json.loads(capsys.readouterr().out)
    assert status == 1
    assert document["complete"] is False
    assert [(f["line"], f["todo"]) for f in document["findings"]] == [
        (7, True),
        (15, True),
        (16, True),
        (16, True),
    ]
    assert document["examples"] == {
        "NoisyBlock": {"init_kwargs": {"rate": 0.5}, "input_shape": [2, 3]}
    }
    args = [
        "port",
        str(FIXTURES / "mylayer.py"),
        "--dir",
        str(tmp_path),
        "--dist",
        "cli-my",
        "--class",
        "MyLayer",
        "--example",
        'MyLayer=[{"output_dim": 2}, [2, 3]]',
    ]
    from layerhub._private.cli.port.check import tf_keras_installed

    if tf_keras_installed():
        args.append("--check")
    status = command.main(args)
    out = capsys.readouterr().out
    assert status == 0, out
    assert "layer MyLayer, code in layerhub_cli_my/mylayer.py" in out
    if tf_keras_installed():
        assert re.search(
            # the Keras 2 .h5 column: a difference when the port's class loaded the file,
            # else why it was not compared
            r"MyLayer\s+\(2, 3\)\s+kernel\s+\S+\s+\S+\s+"
            r"(\d\.\d\de[+-]\d+|no plugin|name taken)\s+ok",
            out,
        ), out
    init = (tmp_path / "layerhub-cli-my" / "layerhub_cli_my" / "__init__.py").read_text()
    assert "\"MyLayer\": ({'output_dim': 2}, (2, 3))," in init
    assert "MyMultiLayer" not in init
    assert command.main(args) == 2  # the plugin's directory exists now
    assert "already exists" in capsys.readouterr().err


def test_subclasses_of_keras_layers_and_keras3_code() -> None:
    source = (
        "import keras\n"
        "from keras import ops\n"
        "from keras.layers import Dense\n\n\n"
        "@keras.saving.register_keras_serializable(package='old')\n"
        "class Half(Dense):\n"
        "    def call(self, x):\n"
        "        return ops.multiply(super(Half, self).call(x), 0.5)\n"
    )
    result = rewrite(source, "p")
    assert [layer.name for layer in result.layers] == ["Half"]
    assert [f.todo for f in result.findings] == [False]
    assert "keras.layers.Dense" in result.findings[0].message
    assert '@keras.saving.register_keras_serializable(package="p")\nclass Half(' in result.code
    assert "package='old'" not in result.code
    assert "return ops.multiply(super().call(x), 0.5)" in result.code
    assert result.code.startswith("import keras\nfrom keras import ops\n")
    assert "def compute_output_shape" not in result.code  # Dense's own is inherited
