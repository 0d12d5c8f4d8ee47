"""Saving with a manifest and loading without custom_objects, including every bad input."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from layerhub_scale import Scale

import layerhub
from layerhub import MissingPluginError, ModelFileError, Registry, UnsafeModelError
from layerhub._private import saving
from layerhub._private.formats import manifest
from layerhub._private.guard import config_tree
from layerhub.testing import run_in_fresh_interpreter


def scale_model() -> keras.Model:
    inputs = keras.Input((3, 4))
    hidden = Scale(gamma_initializer="random_normal", beta_initializer="random_normal")(inputs)
    inner = keras.Sequential([keras.layers.Dense(4), Scale(axis=[1, 2])], name="inner")
    return keras.Model(inputs, inner(hidden))


def run_fresh(code: str, *args: str) -> dict[str, Any]:
    """Run ``code`` in a new interpreter; it prints one JSON object as its last line."""
    out = run_in_fresh_interpreter(code, *args)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


LOAD_IN_FRESH_PROCESS = """
    import json, sys
    import numpy as np
    import layerhub
    path, inputs, outputs = sys.argv[1:4]
    before = sorted(m for m in sys.modules if m.startswith("layerhub_"))
    model = layerhub.load_model(path)
    np.save(outputs, np.asarray(model.predict(np.load(inputs), verbose=0)))
    plugins = sorted(m for m in sys.modules if m.startswith("layerhub_") and "." not in m)
    print(json.dumps({"before": before, "plugins": plugins}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("saver", ["layerhub.save_model", "model.save"])
def test_fresh_interpreter_loads_without_custom_objects(tmp_path: Path, saver: str) -> None:
    model = scale_model()
    path = tmp_path / "model.keras"
    if saver == "model.save":
        model.save(path)
    else:
        layerhub.save_model(model, path)
    x = np.random.default_rng(0).normal(size=(5, 3, 4)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    result = run_fresh(
        LOAD_IN_FRESH_PROCESS, str(path), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")
    )
    assert result["before"] == []
    assert result["plugins"] == ["layerhub_scale"]  # and no other installed plugin
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), model.predict(x, verbose=0), rtol=1e-6)


def test_save_writes_a_manifest_of_plugin_objects(tmp_path: Path) -> None:
    path = layerhub.save_model(scale_model(), tmp_path / "m.keras")
    with zipfile.ZipFile(path) as zf:
        metadata = json.loads(zf.read("metadata.json"))
        assert sorted(zf.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        comment = zf.comment
    # The manifest is the zip comment; Keras' own metadata is left as Keras wrote it.
    assert "keras_version" in metadata
    assert "layerhub" not in metadata
    assert comment.startswith(manifest.COMMENT_PREFIX)
    (record,) = layerhub.registry.list("Scale")
    assert json.loads(comment[len(manifest.COMMENT_PREFIX) :]) == {
        "format": 1,
        "layerhub_version": layerhub.__version__,
        "objects": {
            "layerhub_scale>Scale": {"distribution": "layerhub-scale", "version": record.version}
        },
    }


def test_registered_names_are_found_at_any_depth() -> None:
    config = {
        "class_name": "Functional",
        "registered_name": None,
        "config": {
            "layers": [
                {"class_name": "Scale", "registered_name": "pkg_a>Scale", "config": {}},
                {
                    "class_name": "Sequential",
                    "config": {
                        "layers": [
                            {
                                "class_name": "Dense",
                                "config": {
                                    "activation": {
                                        "class_name": "function",
                                        "config": "pkg_b>swishy",
                                        "registered_name": "function",
                                    },
                                    "kernel_initializer": {"registered_name": "pkg_c>Init"},
                                    "name": "not>a>name",
                                },
                            }
                        ]
                    },
                },
            ]
        },
    }
    assert config_tree.registered_names(config) == {"pkg_a>Scale", "pkg_b>swishy", "pkg_c>Init"}


def test_save_is_atomic_when_it_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.keras"
    layerhub.save_model(scale_model(), path)
    before = path.read_bytes()

    def fail_midway(file: Path, registry: Registry) -> None:
        file.write_bytes(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(saving, "_add_manifest", fail_midway)
    with pytest.raises(ModelFileError, match="disk full"):
        layerhub.save_model(scale_model(), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]


def rewrite(path: Path, **members: Any) -> None:
    with zipfile.ZipFile(path) as zf:
        contents = {n: zf.read(n) for n in zf.namelist()}
    for name, value in members.items():
        key = name.replace("_json", ".json")
        if value is None:
            contents.pop(key)
        else:
            contents[key] = json.dumps(value).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in contents.items():
            zf.writestr(name, data)


def test_missing_plugin_names_distribution_version_and_pip_line(tmp_path: Path) -> None:
    path = layerhub.save_model(scale_model(), tmp_path / "m.keras")
    with zipfile.ZipFile(path) as zf:
        config = json.loads(zf.read("config.json"))
        metadata = json.loads(zf.read("metadata.json"))
    text = json.dumps(config).replace("layerhub_scale>Scale", "layerhub_absent>Gone")
    # Where layerhub 0.1 wrote the manifest; still read.
    metadata["layerhub"] = {
        "objects": {"layerhub_absent>Gone": {"distribution": "layerhub-absent", "version": "2.1.0"}}
    }
    rewrite(path, config_json=json.loads(text), metadata_json=metadata)
    with pytest.raises(MissingPluginError) as caught:
        layerhub.load_model(path)
    message = str(caught.value)
    assert "layerhub_absent>Gone" in message
    assert "layerhub-absent 2.1.0" in message
    assert message.endswith("run: pip install layerhub-absent==2.1.0")
    assert "\n" not in message
    assert caught.value.pip_command == "pip install layerhub-absent==2.1.0"

    rewrite(path, metadata_json={"keras_version": keras.__version__})
    with pytest.raises(MissingPluginError, match=r"run: pip install layerhub-absent$"):
        layerhub.load_model(path)


def truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def not_a_zip(path: Path) -> None:
    path.write_text("just some text")


def no_config(path: Path) -> None:
    rewrite(path, config_json=None)


def config_not_a_model(path: Path) -> None:
    rewrite(path, config_json=[1, 2, 3])


def corrupt_weights(path: Path) -> None:
    with zipfile.ZipFile(path) as zf:
        contents = {n: zf.read(n) for n in zf.namelist()}
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in contents.items():
            zf.writestr(name, data[:100] if name.endswith(".h5") else data)


def config_with_a_bad_crc(path: Path) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(b'"class_name"')  # inside config.json, stored uncompressed
    data[at + 1] = ord("k")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (truncated, "not a .keras archive"),
        (config_with_a_bad_crc, "is corrupt: BadZipFile: Bad CRC-32 for file 'config.json'"),
        (not_a_zip, "not a .keras archive"),
        (no_config, "no config.json"),
        (config_not_a_model, "not a Keras model"),
        (corrupt_weights, "could not be rebuilt by Keras"),
    ],
)
def test_damaged_archives_raise_one_line_errors(tmp_path: Path, damage: Any, message: str) -> None:
    path = layerhub.save_model(scale_model(), tmp_path / "m.keras")
    damage(path)
    with pytest.raises(ModelFileError, match=message) as caught:
        layerhub.load_model(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("absent.keras", None, "no such model file"),
        ("folder", "dir", "is a directory"),
        ("model.txt", b"hello", "unsupported model file type"),
        ("old.h5", b"not hdf5 at all", "not an HDF5 file"),
        ("sig.h5", b"\x89HDF\r\n\x1a\n" + b"garbage" * 100, r"sig\.h5 is corrupt: OSError: "),
    ],
)
def test_bad_paths_raise_one_line_errors(
    tmp_path: Path, name: str, content: Any, message: str
) -> None:
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        layerhub.load_model(path)


def test_save_refuses_other_formats(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"Received: path='.*m\.h5'"):
        layerhub.save_model(scale_model(), tmp_path / "m.h5")


def test_python_lambda_needs_safe_mode_off(tmp_path: Path) -> None:
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 3.0)(Scale()(inputs)))
    path = layerhub.save_model(model, tmp_path / "lambda.keras")
    with pytest.raises(UnsafeModelError, match="safe_mode=False"):
        layerhub.load_model(path)
    loaded = layerhub.load_model(path, safe_mode=False)
    x = np.ones((1, 2), "float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def unzipped(path: Path, folder: Path) -> Path:
    """The archive's members as files in ``folder``: the layout of a Hub repository."""
    with zipfile.ZipFile(path) as zf:
        zf.extractall(folder)
    return folder


@pytest.mark.parametrize("form", ["archive", "directory"])
def test_plugins_upgrade_configs_saved_by_older_versions(
    tmp_path: Path, site: Path, form: str
) -> None:
    from layerhub.testing.fakes import write_upgrading_plugin

    write_upgrading_plugin(site, "layerhub_upgrading")
    registry = Registry()
    shift = registry.get("Shift")
    inputs = keras.Input((2,))
    path = layerhub.save_model(
        keras.Model(inputs, shift(offset=5.0)(inputs)), tmp_path / "s.keras", registry=registry
    )
    with zipfile.ZipFile(path) as zf:
        config = json.loads(zf.read("config.json"))
        metadata = json.loads(zf.read("metadata.json"))
        saved = manifest.from_comment(zf.comment)
    assert saved is not None
    assert saved.objects["layerhub_upgrading>Shift"].version == "2.0"
    text = json.dumps(config).replace('"offset": 5.0', '"bias": 5.0')
    # As layerhub 0.1 wrote it, in metadata.json (rewrite() drops the zip comment).
    metadata["layerhub"] = {
        "objects": {
            "layerhub_upgrading>Shift": {"distribution": "layerhub-upgrading", "version": "1.0"}
        }
    }
    rewrite(path, config_json=json.loads(text), metadata_json=metadata)
    source = path if form == "archive" else unzipped(path, tmp_path / "folder")
    loaded = layerhub.load_model(source, registry=registry)
    np.testing.assert_allclose(loaded.predict(np.zeros((1, 2), "float32"), verbose=0), [[5.0, 5.0]])
    with zipfile.ZipFile(path) as zf:  # the file itself is not modified
        assert '"bias": 5.0' in zf.read("config.json").decode()
    if form == "directory":
        assert '"bias": 5.0' in (source / "config.json").read_text()
        assert sorted(p.name for p in source.iterdir()) == [
            "config.json",
            "metadata.json",
            "model.weights.h5",
        ]


def test_unzipped_models_load_like_their_archive(tmp_path: Path) -> None:
    model = scale_model()
    path = layerhub.save_model(model, tmp_path / "m.keras")
    folder = unzipped(path, tmp_path / "folder")
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype("float32")
    loaded = layerhub.load_model(folder)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    (folder / "metadata.json").unlink()  # optional, as in Keras
    assert layerhub.load_model(folder).count_params() == model.count_params()
    (folder / "config.json").write_text("[1, 2]")
    with pytest.raises(ModelFileError, match=r"is not a Keras model: config\.json holds no"):
        layerhub.load_model(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelFileError, match=r"config\.json is not JSON"):
        layerhub.load_model(folder)
    with zipfile.ZipFile(path) as zf:
        gone = zf.read("config.json").decode().replace("layerhub_scale>", "layerhub_gone>")
    (folder / "config.json").write_text(gone)
    claim = {"objects": {"layerhub_gone>Scale": {"distribution": "layerhub-gone", "version": "1"}}}
    (folder / "metadata.json").write_text(json.dumps({"layerhub": claim}))
    with pytest.raises(MissingPluginError) as caught:
        layerhub.load_model(folder)
    assert caught.value.pip_command == "pip install layerhub-gone==1"
    (folder / "metadata.json").write_text(json.dumps([claim]))  # not an object: no manifest
    with pytest.raises(MissingPluginError) as caught:
        layerhub.load_model(folder)
    assert caught.value.pip_command == "pip install layerhub-gone"


def test_modules_named_in_a_file_are_never_imported(tmp_path: Path, site: Path) -> None:
    # Importable, but not an installed plugin: a file naming it must not get it imported.
    (site / "layerhub_sneaky.py").write_text("raise SystemExit('imported!')\n")
    (site / "sneaky_module.py").write_text("raise SystemExit('imported!')\n")
    path = layerhub.save_model(scale_model(), tmp_path / "m.keras")
    with zipfile.ZipFile(path) as zf:
        text = zf.read("config.json").decode()
    text = text.replace('"layerhub_scale>Scale"', '"layerhub_sneaky>Thing"', 1)
    text = text.replace('"module": "layerhub_scale', '"module": "sneaky_module', 1)
    assert '"module": "sneaky_module' in text
    rewrite(path, config_json=json.loads(text))
    with pytest.raises(MissingPluginError, match="layerhub_sneaky>Thing"):
        layerhub.load_model(path)
    # A name outside the plugin namespace is missing too, and its module is not imported either.
    rewrite(path, config_json=json.loads(text.replace("layerhub_sneaky>", "sneaky_module>")))
    with pytest.raises(MissingPluginError, match="sneaky_module>Thing") as caught:
        layerhub.load_model(path)
    assert caught.value.pip_command is None
    assert "custom_objects" in str(caught.value)
    assert "layerhub_sneaky" not in sys.modules
    assert "sneaky_module" not in sys.modules


def test_a_replaced_member_is_served_without_copying_the_others(tmp_path: Path) -> None:
    from layerhub._private.formats import zip_view

    path = tmp_path / "big.zip"
    weights = np.random.default_rng(0).bytes(4 << 20)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", "{}")
        zf.writestr("config.json", '{"old": true}')
        zf.writestr("model.weights.h5", weights)
        zf.comment = b"kept"
    before = path.read_bytes()
    with zip_view.replaced(path, "config.json", b'{"new": true}') as view:
        with zipfile.ZipFile(view) as zf:
            assert zf.namelist() == ["metadata.json", "model.weights.h5", "config.json"]
            assert zf.read("config.json") == b'{"new": true}'
            assert zf.read("model.weights.h5") == weights
            assert zf.comment == b"kept"
            assert zf.testzip() is None
        # Only the new member and the central directory live in memory; the rest is the file.
        assert len(view.raw._tail) < 1024  # type: ignore[attr-defined]
    assert path.read_bytes() == before


def test_saved_files_get_the_permissions_a_plain_write_gives(tmp_path: Path) -> None:
    import os

    path = layerhub.save_model(scale_model(), tmp_path / "new.keras")
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    path.chmod(0o640)
    layerhub.save_model(scale_model(), path)  # overwriting keeps the file's mode
    assert path.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("earlier", [b"", b"left by another writer"])
def test_the_manifest_comment_is_set_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, earlier: bytes
) -> None:
    path = tmp_path / "m.zip"
    weights = np.random.default_rng(1).bytes(1 << 20)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", "{}")
        zf.writestr("model.weights.h5", weights)
        zf.comment = earlier
    size, before = path.stat().st_size, path.read_bytes()
    opened: list[str] = []
    real_zipfile = zipfile.ZipFile

    def spy(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> zipfile.ZipFile:
        opened.append(mode)
        return real_zipfile(file, mode, *args, **kwargs)

    monkeypatch.setattr(saving.zipfile, "ZipFile", spy)
    comment = b"layerhub-manifest:{}"
    saving._set_comment(path, comment)
    monkeypatch.undo()
    with zipfile.ZipFile(path) as zf:
        assert zf.comment == comment
        assert zf.testzip() is None
        assert zf.read("model.weights.h5") == weights
    assert path.stat().st_size == size - len(earlier) + len(comment)
    if earlier:  # zipfile rewrites the central directory
        assert opened == ["a"]
    else:  # one write at the end: the comment's length, little-endian, then the comment
        assert opened == []
        assert path.read_bytes() == before[:-2] + len(comment).to_bytes(2, "little") + comment


def test_a_manifest_too_large_for_a_comment_goes_to_metadata_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manifest, "MAX_COMMENT", 16)
    model = scale_model()
    path = layerhub.save_model(model, tmp_path / "m.keras")
    with zipfile.ZipFile(path) as zf:
        assert zf.comment == b""
        assert zf.testzip() is None
        metadata = json.loads(zf.read("metadata.json"))
    assert "keras_version" in metadata  # Keras' own keys are kept beside the manifest
    assert set(metadata["layerhub"]["objects"]) == {"layerhub_scale>Scale"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype("float32")
    np.testing.assert_allclose(
        layerhub.load_model(path).predict(x, verbose=0), model.predict(x, verbose=0)
    )


def as_saved_by_version_one(current: Path, stale: Path) -> Path:
    """``current`` as version 1.0 of the upgrading plugin wrote it: ``bias`` for ``offset``."""
    with zipfile.ZipFile(current) as zf:
        text = zf.read("config.json").decode().replace('"offset": 3.0', '"bias": 3.0')
        metadata = json.loads(zf.read("metadata.json"))
    metadata["layerhub"] = {
        "objects": {
            "layerhub_upgrading>Shift": {"distribution": "layerhub-upgrading", "version": "1.0"}
        }
    }
    stale.write_bytes(current.read_bytes())
    rewrite(stale, config_json=json.loads(text), metadata_json=metadata)
    return stale


def test_upgrade_hooks_run_only_for_objects_saved_by_another_version(
    tmp_path: Path, site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from layerhub._private.formats import zip_view
    from layerhub.testing.fakes import write_upgrading_plugin

    write_upgrading_plugin(site, "layerhub_upgrading")
    registry = Registry()
    calls: list[tuple[str, dict[str, Any]]] = []
    registry.plugin_manager.add_hookcall_monitoring(
        lambda name, impls, kwargs: calls.append((name, kwargs)), lambda *_: None
    )
    views: list[str] = []
    real_replaced = zip_view.replaced

    def spy(path: Path, member: str, data: bytes) -> Any:
        views.append(member)
        return real_replaced(path, member, data)

    monkeypatch.setattr(zip_view, "replaced", spy)
    inputs = keras.Input((2,))
    model = keras.Model(inputs, registry.get("Shift")(offset=3.0)(inputs))
    current = layerhub.save_model(model, tmp_path / "current.keras", registry=registry)
    layerhub.load_model(current, registry=registry)
    assert [name for name, _ in calls if name == "layerhub_upgrade_config"] == []
    assert views == []
    stale = as_saved_by_version_one(current, tmp_path / "stale.keras")
    loaded = layerhub.load_model(stale, registry=registry)
    upgrades = [kwargs for name, kwargs in calls if name == "layerhub_upgrade_config"]
    assert [(k["registered_name"], k["saved_version"]) for k in upgrades] == [
        ("layerhub_upgrading>Shift", "1.0")
    ]
    assert views == ["config.json"]
    np.testing.assert_allclose(loaded.predict(np.zeros((1, 2), "float32"), verbose=0), [[3.0, 3.0]])


def test_an_upgraded_model_too_big_for_memory_has_its_weights_extracted_as_keras_does(
    tmp_path: Path, site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keras extracts weights it judges too big for memory beside the file; read on the fly
    # through the zip member instead, a 1 GiB model took minutes to load.
    from keras.src.saving import saving_lib

    from layerhub.testing.fakes import write_upgrading_plugin

    write_upgrading_plugin(site, "layerhub_upgrading")
    registry = Registry()
    inputs = keras.Input((2,))
    hidden = keras.layers.Dense(4, kernel_initializer="random_normal")(inputs)
    model = keras.Model(inputs, registry.get("Shift")(offset=3.0)(hidden))
    current = layerhub.save_model(model, tmp_path / "current.keras", registry=registry)
    stale = as_saved_by_version_one(current, tmp_path / "stale.keras")
    extracted_into: list[Path] = []
    real_temporary_directory = saving_lib.tempfile.TemporaryDirectory

    def spy(*args: Any, **kwargs: Any) -> Any:
        extracted_into.append(Path(kwargs["dir"]))
        return real_temporary_directory(*args, **kwargs)

    monkeypatch.setattr(saving_lib, "is_memory_sufficient", lambda model: False)
    monkeypatch.setattr(saving_lib.tempfile, "TemporaryDirectory", spy)
    loaded = layerhub.load_model(stale, registry=registry)
    monkeypatch.undo()
    assert extracted_into == [tmp_path]
    x = np.random.default_rng(0).normal(size=(3, 2)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_opened_directories_describe_themselves_and_bound_their_paths(tmp_path: Path) -> None:
    from layerhub._private.guard.checks import MAX_MEMBER_BYTES
    from layerhub._private.loading import open_model

    model = scale_model()
    model.compile(loss="mse")
    path = layerhub.save_model(model, tmp_path / "m.keras")
    folder = unzipped(path, tmp_path / ("d" * 200) / ("e" * 200))
    opened = open_model(folder)
    assert (opened.path, opened.description, opened.keras2) == (
        folder,
        "Keras 3 model directory",
        False,
    )
    saved = json.loads((folder / "config.json").read_text())
    assert opened.training_config == saved["compile_config"] is not None
    shown = str(folder)[:400] + "..."
    (folder / "config.json").write_text("[]")
    with pytest.raises(ModelFileError) as caught:
        open_model(folder)
    assert str(caught.value) == (
        f"{shown} is not a Keras model: config.json holds no serialised object"
    )
    (folder / "config.json").write_text("{")
    with pytest.raises(ModelFileError) as caught:
        open_model(folder)
    assert str(caught.value).startswith(f"{shown}: its config.json is not JSON: ")
    (folder / "config.json").write_text(json.dumps(saved))
    with (folder / "metadata.json").open("wb") as big:
        big.truncate(MAX_MEMBER_BYTES + 1)  # sparse: refused by its size, never read
    with pytest.raises(ModelFileError) as caught:
        open_model(folder)
    assert str(caught.value).startswith(f"{shown}: its metadata.json is {MAX_MEMBER_BYTES + 1} ")
