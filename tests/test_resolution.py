"""Names resolve in Keras' own order with plugins added; what a file says is shown safely."""

from __future__ import annotations

import json
import shlex
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from layerhub_scale import Scale

import layerhub
from layerhub import MissingPluginError, ModelFileError
from layerhub._private.errors import Missing
from layerhub._private.formats import manifest
from layerhub._private.guard.untrusted import shown
from layerhub._private.loading import open_model
from layerhub._private.registry import resolve
from layerhub.testing import run_in_fresh_interpreter


class Doubler(keras.layers.Layer):
    """The user's own layer, registered by nobody."""

    def call(self, x: object) -> object:
        return 2.0 * x  # type: ignore[operator]


def user_layer_model() -> keras.Model:
    inputs = keras.Input((3,))
    return keras.Model(inputs, Doubler()(Scale()(inputs)))


def test_unregistered_user_layer_is_missing_until_passed_in_custom_objects(tmp_path: Path) -> None:
    path = layerhub.save_model(user_layer_model(), tmp_path / "m.keras")
    with pytest.raises(MissingPluginError) as caught:
        layerhub.load_model(path)
    assert caught.value.names == ("Doubler",)
    assert caught.value.pip_command is None
    assert "custom_objects" in str(caught.value)
    model = layerhub.load_model(path, custom_objects={"Doubler": Doubler})
    np.testing.assert_allclose(model.predict(np.ones((1, 3)), verbose=0), [[2.0, 2.0, 2.0]])


def test_a_scope_resolves_the_users_own_layer(tmp_path: Path) -> None:
    path = layerhub.save_model(user_layer_model(), tmp_path / "m.keras")
    with keras.saving.custom_object_scope({"Doubler": Doubler}):
        model = layerhub.load_model(path)
    assert isinstance(model.layers[-1], Doubler)


SAVE_REGISTERED = """
    import sys
    import keras
    import layerhub

    @keras.saving.register_keras_serializable(package="my_project")
    class Tripler(keras.layers.Layer):
        def call(self, x):
            return 3.0 * x

    @keras.saving.register_keras_serializable(package="my_project")
    def my_loss(y_true, y_pred):
        return keras.ops.mean(keras.ops.abs(y_true - y_pred))

    inputs = keras.Input((2,))
    model = keras.Model(inputs, Tripler()(keras.layers.Dense(2)(inputs)))
    model.compile(optimizer="sgd", loss=my_loss if sys.argv[2] == "loss" else "mse")
    layerhub.save_model(model, sys.argv[1])
    if sys.argv[3:] == ["reload"]:
        layerhub.load_model(sys.argv[1])  # in the process that registered them: loads
        print("reloaded")
"""


@pytest.mark.slow
def test_names_the_users_own_imports_registered_load_and_are_missing_elsewhere(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.keras"
    done = run_in_fresh_interpreter(SAVE_REGISTERED, str(path), "mse", "reload")
    assert done.stdout.split()[-1] == "reloaded"
    with pytest.raises(MissingPluginError, match=r"my_project>Tripler.*import the module"):
        layerhub.load_model(path)


@pytest.mark.slow
def test_compiled_keras_file_with_an_unresolved_loss_names_the_way_out(tmp_path: Path) -> None:
    path = tmp_path / "m.keras"
    run_in_fresh_interpreter(SAVE_REGISTERED, str(path), "loss")
    with pytest.raises(MissingPluginError) as caught:
        layerhub.load_model(path, custom_objects={"my_project>Tripler": Doubler})
    message = str(caught.value)
    assert caught.value.names == ("my_project>my_loss",)
    assert "compile=False" in message
    assert "custom_objects" in message
    model = layerhub.load_model(path, compile=False, custom_objects={"my_project>Tripler": Doubler})
    assert not model.compiled


HAND_IMPORTED = """
    import sys
    import layerhub_scale
    import layerhub
    assert layerhub.registry.list() == []
    model = layerhub.load_model(sys.argv[1])
    print(type(model.layers[-1]).__name__)
"""


@pytest.mark.slow
def test_hand_imported_plugins_resolve_with_autoload_disabled(tmp_path: Path) -> None:
    inputs = keras.Input((3,))
    path = layerhub.save_model(keras.Model(inputs, Scale()(inputs)), tmp_path / "m.keras")
    done = run_in_fresh_interpreter(
        HAND_IMPORTED, str(path), env={"LAYERHUB_DISABLE_AUTOLOAD": "1"}
    )
    assert done.stdout.split()[-1] == "Scale"


@pytest.mark.parametrize("name", ["S.KERAS", "S.Keras", "S.H5"])
def test_loading_and_saving_agree_on_suffix_case(tmp_path: Path, name: str) -> None:
    inputs = keras.Input((3,))
    model = keras.Model(inputs, Scale()(inputs))
    good = layerhub.save_model(model, tmp_path / "s.keras")
    odd = tmp_path / name
    odd.write_bytes(good.read_bytes())
    with pytest.raises(ModelFileError, match="lower-case"):
        layerhub.load_model(odd)
    with pytest.raises(ModelFileError, match="lower-case"):
        layerhub.save_model(model, tmp_path / "T.KERAS")


# -- what a manifest says ----------------------------------------------------------------------


def entry(distribution: object, version: object) -> manifest.Entry:
    return manifest.Entry(distribution, version)


def test_a_valid_conventional_claim_gives_a_pinned_pip_line() -> None:
    found = resolve.missing_entry("layerhub_absent>Foo", entry("layerhub-absent", "1.2.0"))
    assert found == Missing("layerhub_absent>Foo", "layerhub-absent", "1.2.0")
    error = MissingPluginError([found])
    assert error.pip_command == "pip install layerhub-absent==1.2.0"


@pytest.mark.parametrize(
    "distribution",
    [
        "layerhub-x; curl evil|sh",
        "--index-url=http://evil/ layerhub-x",
        "evil-pkg",
        "layerhub-absent\nrm -rf ~",
        7,
    ],
)
def test_a_claim_off_the_convention_is_flagged_not_offered(distribution: object) -> None:
    found = resolve.missing_entry("layerhub_absent>Foo", entry(distribution, "1.0"))
    assert found.distribution is None
    assert found.note is not None
    assert "check before installing" in found.note
    assert "the conventional distribution is layerhub-absent" in found.note
    message = str(MissingPluginError([found]))
    assert MissingPluginError([found]).pip_command is None
    assert "\n" not in message
    assert "run:" not in message


@pytest.mark.parametrize("version", ["1.0 && rm -rf ~", "1.0\nrm", ["1"], None])
def test_an_invalid_version_is_never_pinned(version: object) -> None:
    found = resolve.missing_entry("layerhub_absent>Foo", entry("layerhub-absent", version))
    error = MissingPluginError([found])
    assert error.pip_command == "pip install layerhub-absent"
    assert "&&" not in str(error)
    assert "\n" not in str(error)


def test_hand_registered_objects_get_no_pip_line() -> None:
    found = resolve.missing_entry("my_nb>Thing", entry(None, None))
    error = MissingPluginError([found], hint=resolve.HINT)
    assert error.pip_command is None
    assert "registered by hand" in str(error)
    assert "custom_objects" in str(error)


def test_pip_lines_are_shell_safe() -> None:
    error = MissingPluginError([Missing("a>B", "layerhub-a", "1!2.0+local.1")])
    assert error.pip_command is not None
    assert shlex.split(error.pip_command) == ["pip", "install", "layerhub-a==1!2.0+local.1"]


def test_shown_strings_are_one_bounded_line() -> None:
    text = shown("a\nb\rc\x1b[31md\u2028e\u202e" + "x" * 500)
    assert text.startswith("a\\nb\\rc\\x1b[31md\\u2028e\\u202e")
    assert len(text) <= 123
    assert text.isprintable()


def test_files_saved_by_layerhub_0_1_keep_their_manifest_readable(tmp_path: Path) -> None:
    # 0.1 kept the manifest in metadata.json["layerhub"]; inspect and loading still read it.
    inputs = keras.Input((3,))
    path = layerhub.save_model(keras.Model(inputs, Scale()(inputs)), tmp_path / "m.keras")
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
        saved = json.loads(zf.comment.partition(b":")[2])
    metadata = json.loads(members["metadata.json"])
    metadata["layerhub"] = saved
    members["metadata.json"] = json.dumps(metadata).encode()
    old = tmp_path / "old.keras"
    with zipfile.ZipFile(old, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    opened = open_model(old)
    assert opened.manifest is not None
    assert opened.manifest.objects["layerhub_scale>Scale"].distribution == "layerhub-scale"
    assert isinstance(layerhub.load_model(old).layers[-1], Scale)


HANDMADE = """
import keras
from layerhub import hookimpl


@keras.saving.register_keras_serializable(package="handmade")
class Halver(keras.layers.Layer):
    def call(self, x):
        return 0.5 * x


@hookimpl
def layerhub_layers():
    return [Halver]
"""

LOAD_HANDMADE = """
    import sys
    import layerhub
    if sys.argv[2] == "import":
        import handmade
    try:
        model = layerhub.load_model(sys.argv[1])
    except layerhub.MissingPluginError as error:
        print("missing", error.pip_command, str(error))
    else:
        print("loaded", type(model.layers[-1]).__name__)
"""


@pytest.mark.slow
def test_hand_registered_objects_have_no_distribution_in_the_manifest(
    tmp_path: Path, site: Path
) -> None:
    import importlib

    (site / "handmade.py").write_text(HANDMADE)
    module = importlib.import_module("handmade")
    registry = layerhub.Registry([])
    registry.register(module)
    inputs = keras.Input((2,))
    path = layerhub.save_model(
        keras.Model(inputs, module.Halver()(inputs)), tmp_path / "h.keras", registry=registry
    )
    saved = open_model(path).manifest
    assert saved is not None
    assert saved.objects["handmade>Halver"] == manifest.Entry(None, None)
    env = {"PYTHONPATH": str(site)}
    loaded = run_in_fresh_interpreter(LOAD_HANDMADE, str(path), "import", env=env)
    assert loaded.stdout.split()[:2] == ["loaded", "Halver"]
    missing = run_in_fresh_interpreter(LOAD_HANDMADE, str(path), "no-import", env=env)
    assert missing.stdout.split()[:2] == ["missing", "None"]
    assert "registered by hand" in missing.stdout


# -- what a missing name's entry says, from the file's (untrusted) manifest ------------------------


def test_missing_names_get_the_plugin_conventions_distribution() -> None:
    from layerhub._private.errors import Missing
    from layerhub._private.registry.resolve import missing_entry

    assert missing_entry("layerhub_x>Y", None) == Missing("layerhub_x>Y", "layerhub-x")
    assert missing_entry("Custom>Y", None) == Missing("Custom>Y")  # not a layerhub plugin
    assert missing_entry("layerhub_x", None) == Missing("layerhub_x")  # a bare class name


def test_a_hand_registered_entry_says_so() -> None:
    from layerhub._private.formats.manifest import Entry
    from layerhub._private.registry.resolve import missing_entry

    entry = missing_entry("mine>Twice\n", Entry(None, None))
    assert entry.distribution is None
    assert entry.note == (
        "mine>Twice\\n was registered by hand when the file was saved (no distribution provides it)"
    )


@pytest.mark.parametrize(
    ("name", "claim", "note"),
    [
        (
            "layerhub_x>Y",
            ("evil", "1.0"),
            "the file says it was saved with evil 1.0; no installed plugin provides layerhub_x, "
            "and the conventional distribution is layerhub-x",
        ),
        (
            "a>b>C",
            ("x" * 100, None),
            # valid to packaging, so shown (whole: valid names are at most 100 characters)
            f"the file says it was saved with {'x' * 100}; no installed plugin provides a, and "
            "the conventional distribution is a",
        ),
        (
            "layerhub_x>Y",
            ("pip install evil-pkg", "1.0; rm"),
            "the file says it was saved with (text of 20 characters) (text of 7 characters); no "
            "installed plugin provides layerhub_x, and the conventional distribution is "
            "layerhub-x",
        ),
        (
            "Odd name>C",
            ("odd", "2"),
            "the file says it was saved with odd 2; no installed plugin provides Odd name, and "
            "no distribution follows from its name",
        ),
    ],
)
def test_claims_that_break_the_convention_are_suspicious(
    name: str, claim: tuple[str, str | None], note: str
) -> None:
    from layerhub._private.formats.manifest import Entry
    from layerhub._private.registry.resolve import missing_entry

    entry = missing_entry(name, Entry(*claim))
    assert (entry.distribution, entry.version) == (None, None)
    assert entry.note == f"suspicious: {note}; check before installing"


def test_names_only_training_needs_get_the_compile_hint() -> None:
    from layerhub._private.registry.resolve import COMPILE_HINT, HINT, Need, missing_error

    error = missing_error([Need("Custom>loss", (), False, compile_only=True)], None)
    assert "Custom>loss, which the model's training configuration uses and nothing resolves" in (
        str(error)
    )
    assert COMPILE_HINT in str(error)
    error = missing_error(
        [
            Need("Custom>loss", (), False, compile_only=True),
            Need("Custom>Layer", (), False, compile_only=False),
        ],
        None,
    )
    assert "which neither Keras nor any installed layerhub plugin provides" in str(error)
    assert HINT in str(error)
