"""Hostile input by kind, across every format and every sink (issue 25).

Each kind of input is one parametrised test over every reader (``.keras`` archive, unzipped
``.keras`` directory, Keras 2 ``.h5``, Keras 2 SavedModel) and, for text, every sink (exception
message, warning, ``inspect`` table, ``inspect --json``):

- special files (a FIFO, a device, a directory, a symlink loop) in place of the model or of
  any file in it: refused in one line, and never blocking (a thread with a timeout);
- decoder garbage in each decoded member: a one-line ``LayerHubError``, never a decoder's own;
- limits measured on decoded content (decompressed members, vlen strings, sparse files);
- configs nested just under the depth limit (501 and 511 levels), including the upgrade path;
- hostile text (ESC, BEL, newline, RLO, NUL, a lone surrogate) in names the sinks print;
- path components too long for the file system.

Every reader opens files through ``untrusted.regular_file`` / ``read_bytes`` / ``open_regular``.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _hardening as H
import h5py
import numpy as np
import pytest

import layerhub
from layerhub import LayerHubError, ModelFileError
from layerhub._private.cli import command
from layerhub._private.guard import config_tree
from layerhub._private.guard.checks import MAX_CONFIG_DEPTH, MAX_MEMBER_BYTES
from layerhub._private.loading import open_model

# keras_hub: a model directory as the Hugging Face Hub cache lays it out, every file a symlink
# into a store of blobs (what ``hf://`` loads).
FORMATS = ["keras", "keras_dir", "keras_hub", "h5", "savedmodel"]
KERAS2 = {"h5", "savedmodel"}
TIMEOUT = 10.0


# -- the models, once per module --------------------------------------------------------------


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One small model in each format: a .keras archive and its directory form (a Scale and a
    Dense layer, a layerhub manifest, an asset), a Keras 2 .h5 and SavedModel (tf-keras)."""
    root = tmp_path_factory.mktemp("kinds")
    archive = layerhub.save_model(H.scale_model(), root / "model.keras")
    folder = root / "model_dir"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(folder)
        comment = zf.comment
    # The directory form has no zip comment: its manifest goes where layerhub 0.1 kept it.
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["layerhub"] = json.loads(comment[len(H.COMMENT_PREFIX) :])
    (folder / "metadata.json").write_text(json.dumps(metadata))
    (folder / "assets").mkdir(exist_ok=True)
    (folder / "assets" / "vocabulary.txt").write_text("a\nb\n")
    hub = root / "hub"
    (hub / "blobs").mkdir(parents=True)
    snapshot = hub / "snapshots" / "0123abc"
    for file in sorted(folder.rglob("*")):
        if file.is_file():
            blob = hub / "blobs" / f"blob{len(list((hub / 'blobs').iterdir()))}"
            shutil.copyfile(file, blob)
            link = snapshot / file.relative_to(folder)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))
    paths = {"keras": archive, "keras_dir": folder, "keras_hub": snapshot}
    return paths | (H.keras2_models(root) or {})


@pytest.fixture
def model(originals: dict[str, Path], tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """A fresh copy of the format named by the test's ``fmt`` parameter."""
    fmt = request.node.callspec.params["fmt"]
    if fmt not in originals:
        pytest.skip("tf-keras (a test dependency) is not installed")
    source = originals[fmt]
    if fmt == "keras_hub":  # the snapshot and its blobs, links kept
        shutil.copytree(source.parents[1], tmp_path / "hub", symlinks=True)
        return tmp_path / "hub" / source.relative_to(source.parents[1])
    target = tmp_path / source.name
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copyfile(source, target)
    return target


def load_outcome(path: Path, **kwargs: Any) -> Any:
    """What ``load_model(path)`` returns or raises, within ``TIMEOUT`` seconds."""
    try:
        fifos = [p for p in _all_paths(path) if p.is_fifo()]
    except OSError:  # a name too long to stat: there is no FIFO to unblock
        fifos = []
    return H.outcome_within(lambda: layerhub.load_model(path, **kwargs), TIMEOUT, fifos)


def _all_paths(path: Path) -> Iterator[Path]:
    yield path
    if path.is_dir() and not path.is_symlink():
        yield from path.rglob("*")


def refused_in_one_line(outcome: Any) -> str:
    """``outcome`` is a LayerHubError with a one-line, escaped message; returns the message."""
    assert isinstance(outcome, BaseException), f"loaded: {type(outcome).__name__}"
    return H.assert_one_line(outcome)


# -- editing each format's config -------------------------------------------------------------


def edit_config(path: Path, fmt: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``change`` to the model config stored in ``path`` (in place)."""
    if fmt == "keras":
        members, comment = H.read_members(path), H.read_comment(path)
        config = json.loads(members["config.json"])
        change(config)
        H.write_members(path, {**members, "config.json": H.dumps(config)}, comment)
    elif fmt in ("keras_dir", "keras_hub"):
        config = json.loads((path / "config.json").read_text())
        change(config)
        (path / "config.json").resolve().write_bytes(H.dumps(config))
    elif fmt == "h5":
        with h5py.File(path, "r+") as h5:
            config = json.loads(h5.attrs["model_config"])
            change(config)
            h5.attrs["model_config"] = H.dumps(config).decode("utf-8", "surrogatepass")
    else:
        edit_root_metadata(path, lambda root: change(root["model_config"]))


def edit_training(path: Path, fmt: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``change`` to a Keras 2 model's training config."""
    if fmt == "h5":
        with h5py.File(path, "r+") as h5:
            training = json.loads(h5.attrs["training_config"])
            change(training)
            h5.attrs["training_config"] = H.dumps(training).decode("utf-8", "surrogatepass")
    else:
        edit_root_metadata(path, lambda root: change(root["training_config"]))


def edit_manifest(path: Path, fmt: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``change`` to the layerhub manifest of a ``.keras`` archive or directory."""
    if fmt == "keras":
        members, comment = H.read_members(path), H.read_comment(path)
        manifest = json.loads(comment[len(H.COMMENT_PREFIX) :])
        change(manifest)
        H.write_members(path, members, H.COMMENT_PREFIX + H.dumps(manifest))
    else:
        metadata = json.loads((path / "metadata.json").read_text())
        change(metadata["layerhub"])
        (path / "metadata.json").resolve().write_bytes(H.dumps(metadata))


def first_dense(config: Any) -> dict[str, Any]:
    return next(n for n in config_tree.objects(config) if n["class_name"] == "Dense")


# SavedMetadata (keras_metadata.pb): repeated field 1 of nodes; a node's field 3 is its path,
# field 5 its JSON metadata. Enough protocol buffer to rewrite the root node's metadata.


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _fields(data: bytes) -> list[tuple[int, int, bytes | int]]:
    fields: list[tuple[int, int, bytes | int]] = []
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            fields.append((number, wire, value))
        elif wire == 2:
            size, at = _varint(data, at)
            fields.append((number, wire, data[at : at + size]))
            at += size
        else:
            raise ValueError(f"wire type {wire} in keras_metadata.pb")
    return fields


def _encode(fields: list[tuple[int, int, bytes | int]]) -> bytes:
    out = bytearray()
    for number, wire, value in fields:
        out += _encode_varint(number << 3 | wire)
        if isinstance(value, int):
            out += _encode_varint(value)
        else:
            out += _encode_varint(len(value)) + value
    return bytes(out)


def edit_root_metadata(directory: Path, change: Callable[[dict[str, Any]], None]) -> None:
    file = directory / "keras_metadata.pb"
    nodes = _fields(file.read_bytes())
    rebuilt = []
    for number, wire, node in nodes:
        assert isinstance(node, bytes)
        inner = _fields(node)
        if (3, 2, b"root") in inner:
            index = next(i for i, (n, _, _) in enumerate(inner) if n == 5)
            value = inner[index][2]
            assert isinstance(value, bytes)
            root = json.loads(value)
            change(root)
            inner[index] = (5, 2, H.dumps(root))
            node = _encode(inner)
        rebuilt.append((number, wire, node))
    file.write_bytes(_encode(rebuilt))


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_loads_untouched(model: Path, fmt: str) -> None:
    """The control: each pristine model loads, so every refusal below is the input's doing."""
    loaded = load_outcome(model)
    assert not isinstance(loaded, BaseException), repr(loaded)
    width = 4 if fmt in ("keras", "keras_dir", "keras_hub") else 3
    x = np.ones((1, 3, 4) if width == 4 else (1, 3), "float32")
    assert np.all(np.isfinite(loaded.predict(x, verbose=0)))


# -- 1. special files -------------------------------------------------------------------------

# (format, member): "." is the model path itself; the others are what a reader or Keras opens.
MEMBERS = [
    ("keras", "."),
    ("keras_dir", "."),
    ("keras_dir", "config.json"),
    ("keras_dir", "metadata.json"),
    ("keras_dir", "model.weights.h5"),
    ("keras_dir", "assets/vocabulary.txt"),
    ("keras_hub", "config.json"),
    ("keras_hub", "metadata.json"),
    ("keras_hub", "model.weights.h5"),
    ("keras_hub", "assets/vocabulary.txt"),
    ("h5", "."),
    ("savedmodel", "."),
    ("savedmodel", "keras_metadata.pb"),
    ("savedmodel", "variables/variables.index"),
    ("savedmodel", "variables/variables.data-00000-of-00001"),
]
SPECIAL = ["fifo", "device", "symlink-loop", "directory"]


def make_special(path: Path, kind: str) -> None:
    """Put a special file of ``kind`` where ``path`` was."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path.symlink_to("/dev/null")  # a character device; reading it returns nothing
    elif kind == "symlink-loop":
        path.symlink_to(path.name)
    else:
        path.mkdir()


def _special_cases() -> Iterator[Any]:
    for fmt, member in MEMBERS:
        for kind in SPECIAL:
            if kind == "directory" and (member == "." or member.startswith("assets/")):
                continue  # a directory is what these are, or may hold: not special
            yield pytest.param(fmt, member, kind)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
@pytest.mark.parametrize(("fmt", "member", "kind"), list(_special_cases()))
def test_special_file_is_refused_without_blocking(
    model: Path, fmt: str, member: str, kind: str
) -> None:
    target = model if member == "." else model / member
    if fmt == "keras_hub":  # the blob behind the link is what is special
        target = target.resolve()
    make_special(target, kind)
    outcome = load_outcome(model)
    message = refused_in_one_line(outcome)
    assert isinstance(outcome, ModelFileError), message
    expected = {
        "fifo": "named pipe (FIFO), not a regular file",
        "device": "character device, not a regular file",
        "symlink-loop": "symlink loop",
        "directory": "directory",
    }[kind]
    assert expected in message, message


# -- 2. decoder garbage -----------------------------------------------------------------------

GARBAGE = b"\xff\xfe\x00garbage{[\x80"


def _garbage_cases() -> Iterator[Any]:
    for fmt, member in [
        ("keras", "config.json"),
        ("keras", "metadata.json"),
        ("keras", "model.weights.h5"),
        ("keras", "truncated"),
        ("keras_dir", "config.json"),
        ("keras_dir", "metadata.json"),
        ("keras_dir", "model.weights.h5"),
        ("keras_hub", "config.json"),
        ("keras_hub", "model.weights.h5"),
        ("h5", "truncated"),
        ("h5", "model_config=float"),
        ("h5", "model_config=bytes"),
        ("h5", "training_config=bytes"),
        ("savedmodel", "keras_metadata.pb"),
        ("savedmodel", "variables/variables.index"),
        ("savedmodel", "variables/variables.data-00000-of-00001"),
        ("savedmodel", "keras_version=nul"),
        ("savedmodel", "keras_version=surrogate"),
    ]:
        yield pytest.param(fmt, member, id=f"{fmt}-{member}")


def put_garbage(path: Path, fmt: str, member: str) -> None:
    if member == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif fmt == "keras":
        members = H.read_members(path)
        H.write_members(path, {**members, member: GARBAGE}, H.read_comment(path))
    elif fmt == "h5":
        key, _, kind = member.partition("=")
        with h5py.File(path, "r+") as h5:
            del h5.attrs[key]
            h5.attrs[key] = 3.5 if kind == "float" else np.void(GARBAGE)
    elif member.startswith("keras_version="):
        value = "2.15\x00" if member.endswith("nul") else "2.15\ud800"
        edit_root_metadata(path, lambda root: root.__setitem__("keras_version", value))
    else:
        (path / member).write_bytes(GARBAGE * 4)


# Garbage a reader may also tolerate: the model loads without it.
HARMLESS = {"keras_version=nul", "keras_version=surrogate"}


@pytest.mark.parametrize(("fmt", "member"), list(_garbage_cases()))
def test_decoder_garbage_is_one_line(model: Path, fmt: str, member: str) -> None:
    put_garbage(model, fmt, member)
    outcome = load_outcome(model)
    if member in HARMLESS and not isinstance(outcome, BaseException):
        return
    refused_in_one_line(outcome)


# -- 3. limits on decoded content ------------------------------------------------------------


def _limit_cases() -> Iterator[Any]:
    yield pytest.param("keras", "config.json", id="keras-config-decompressed")
    yield pytest.param("keras", "metadata.json", id="keras-metadata-decompressed")
    yield pytest.param("keras_dir", "config.json", id="keras_dir-config")
    yield pytest.param("keras_dir", "metadata.json", id="keras_dir-metadata")
    yield pytest.param("keras_hub", "config.json", id="keras_hub-config")
    yield pytest.param("h5", "model_config", id="h5-model_config-vlen")
    yield pytest.param("h5", "training_config", id="h5-training_config-vlen")
    yield pytest.param("savedmodel", "keras_metadata.pb", id="savedmodel-metadata")


def put_over_limit(path: Path, fmt: str, member: str) -> None:
    over = MAX_MEMBER_BYTES + 1
    if fmt == "keras":
        # Valid JSON (spaces after it) that deflates to a few hundred kilobytes: only its
        # decompressed size is over the limit.
        members = H.read_members(path)
        text = members[member] + b" " * (over - len(members[member]))
        H.write_members(path, {**members, member: text}, H.read_comment(path))
        assert path.stat().st_size < MAX_MEMBER_BYTES // 10
    elif fmt == "h5":
        # A variable-length string: its storage is a few bytes, its content 64 MiB + 1.
        with h5py.File(path, "r+") as h5:
            text = h5.attrs[member]
            text = text.decode() if isinstance(text, bytes) else text
            del h5.attrs[member]
            h5.attrs.create(member, text + " " * (over - len(text)), dtype=h5py.string_dtype())
            assert h5.attrs.get_id(member).get_storage_size() < 100
    else:
        with (path / member).open("r+b") as file:  # sparse: no disk used
            file.truncate(over)


@pytest.mark.parametrize(("fmt", "member"), list(_limit_cases()))
def test_content_over_the_limit_is_refused(model: Path, fmt: str, member: str) -> None:
    put_over_limit(model, fmt, member)
    message = refused_in_one_line(load_outcome(model))
    assert str(MAX_MEMBER_BYTES) in message, message


# -- 4. depth just under the limit ----------------------------------------------------------


def nest_to(config: dict[str, Any], total: int) -> None:
    """Nest lists in the first Dense layer's config until the whole config is ``total`` deep."""
    layer = first_dense(config)["config"]
    levels = 1
    for _ in range(3):  # the first guess is off by the layer's own depth in the tree
        deep: Any = 0
        for _ in range(levels):
            deep = [deep]
        layer["deep"] = deep
        levels += total - config_tree.depth(config)
    assert config_tree.depth(config) == total


def _depth_cases() -> Iterator[Any]:
    for depth in (MAX_CONFIG_DEPTH - 11, MAX_CONFIG_DEPTH - 1):
        for fmt in FORMATS:
            for path in ("load", "inspect"):
                yield pytest.param(fmt, path, depth, id=f"{fmt}-{path}-{depth}")
        for fmt in ("keras", "keras_dir", "keras_hub"):
            yield pytest.param(fmt, "upgrade", depth, id=f"{fmt}-upgrade-{depth}")


@pytest.mark.parametrize(("fmt", "path", "depth"), list(_depth_cases()))
def test_depth_just_under_the_limit_never_overflows(
    model: Path, fmt: str, path: str, depth: int, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_config(model, fmt, lambda config: nest_to(config, depth))
    if path == "upgrade":  # the file says another version saved Scale: the upgrade pass runs
        edit_manifest(
            model,
            fmt,
            lambda m: m["objects"]["layerhub_scale>Scale"].__setitem__("version", "0.0.1"),
        )
    if path == "inspect":
        status = command.main(["inspect", str(model)])
        out, err = capsys.readouterr()
        assert status in (0, 1, 2), err
        assert "RecursionError" not in out + err
        assert "Traceback" not in err
        return
    outcome = load_outcome(model)
    if isinstance(outcome, BaseException):
        H.assert_one_line(outcome)


# -- 5. hostile text through every sink ---------------------------------------------------------


def name_layer(config: dict[str, Any], fmt: str, text: str) -> str:
    """Make the Dense layer an unknown class whose name holds ``text``; returns that name."""
    return rename_node(first_dense(config), fmt, text)


def rename_node(node: dict[str, Any], fmt: str, text: str) -> str:
    if fmt in KERAS2:
        node["class_name"] = f"Bad{text}Layer"
        return node["class_name"]
    node["module"] = "absent_pkg"
    node["class_name"] = f"Bad{text}Layer"
    node["registered_name"] = f"absent_pkg>Bad{text}Layer"
    return node["registered_name"]


TEXTS = list(H.HOSTILE_TEXT)


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_hostile_text_in_an_exception_message(model: Path, fmt: str, text: str) -> None:
    edit_config(model, fmt, lambda config: name_layer(config, fmt, H.HOSTILE_TEXT[text]))
    outcome = load_outcome(model)
    message = refused_in_one_line(outcome)
    assert isinstance(outcome, layerhub.MissingPluginError), message
    assert f"Bad{H.HOSTILE_SHOWN[text]}Layer" in message, message


def _warning_cases() -> Iterator[Any]:
    for fmt in sorted(KERAS2):
        for text in TEXTS:
            yield pytest.param(fmt, text)


@pytest.mark.parametrize(("fmt", "text"), list(_warning_cases()))
def test_hostile_text_in_a_warning(model: Path, fmt: str, text: str) -> None:
    """An optimizer setting Keras 3 lacks is named in OptimizerStateWarning, escaped.

    (The .keras readers emit no warning that quotes the file.)
    """
    hostile = H.HOSTILE_TEXT[text]
    edit_training(
        model, fmt, lambda training: training["optimizer_config"]["config"].update({hostile: 1})
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layerhub.load_model(model)
    ours = [str(w.message) for w in caught if "layerhub" in str(w.message)]
    assert ours, [str(w.message) for w in caught]
    for message in ours:
        assert H.raw_control(message) is None, repr(message)
        assert "\n" not in message, repr(message)
    assert any(H.HOSTILE_SHOWN[text] in message for message in ours), ours


@pytest.mark.parametrize("sink", ["table", "json"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_hostile_text_in_inspect_output(
    model: Path, fmt: str, sink: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every hostile name at once (one layer each) in ``inspect``'s table and its JSON."""

    def rename(config: dict[str, Any]) -> None:
        dense = first_dense(config)
        layers = next(v for v in config_tree.walk(config) if isinstance(v, list) and dense in v)
        for text in TEXTS:
            layer = json.loads(json.dumps(dense))
            layer["config"]["name"] = f"bad_{text}"
            rename_node(layer, fmt, H.HOSTILE_TEXT[text])
            layers.append(layer)

    edit_config(model, fmt, rename)
    status = command.main(["inspect", str(model), *(["--json"] if sink == "json" else [])])
    out, err = capsys.readouterr()
    assert status == 1, err
    assert H.raw_control(out) is None, repr(out)
    if sink == "json":
        report = json.loads(out)
        shown = {need["name"] for need in report["needs"]}
    else:
        lines = out.splitlines()
        shown = {line.split("  ")[0] for line in lines}
        # No name adds a line: header, table header, one row per name, then the remedies.
        assert not any(line.startswith("layerhub: ok") for line in lines), out
    for text in TEXTS:
        expected = f"Bad{H.HOSTILE_SHOWN[text]}Layer"
        if fmt not in KERAS2:
            expected = f"absent_pkg>{expected}"
        assert expected in shown, (expected, sorted(shown))


def test_a_lone_surrogate_does_not_crash_inspect_on_a_real_stdout(
    originals: dict[str, Path], tmp_path: Path
) -> None:
    import subprocess
    import sys

    path = tmp_path / "surrogate.keras"
    shutil.copyfile(originals["keras"], path)
    edit_config(path, "keras", lambda config: name_layer(config, "keras", "\ud800"))
    for extra in ([], ["--json"]):
        done = subprocess.run(
            [sys.executable, "-m", "layerhub", "inspect", str(path), *extra],
            capture_output=True,
            timeout=120,
            env={**os.environ, "PYTHONIOENCODING": "utf-8"},
            cwd=tmp_path,
        )
        out = done.stdout.decode("utf-8")  # strict: a raw surrogate could not be encoded
        assert done.returncode == 1, done.stderr.decode(errors="replace")
        if extra:
            out = "\n".join(need["name"] for need in json.loads(out)["needs"])
        assert "absent_pkg>Bad\\ud800Layer" in out, out
        assert b"Traceback" not in done.stderr, done.stderr


def _claim_cases() -> Iterator[Any]:
    for fmt in ("keras", "keras_dir", "keras_hub"):
        yield pytest.param(fmt, "json")  # the JSON report has no notes, only described claims
        for sink in ("message", "table"):  # the note under the table is resolve's too
            yield pytest.param(fmt, sink)


@pytest.mark.parametrize(("fmt", "sink"), list(_claim_cases()))
def test_a_claim_that_fails_validation_is_described_not_echoed(
    model: Path, fmt: str, sink: str, capsys: pytest.CaptureFixture[str]
) -> None:
    claim = "pip install evil-pkg"

    def absent(config: dict[str, Any]) -> None:
        for node in config_tree.objects(config):
            if node.get("registered_name") == "layerhub_scale>Scale":
                node["registered_name"] = "layerhub_absent>Foo"
                node["module"] = "layerhub_absent"

    edit_config(model, fmt, absent)
    edit_manifest(
        model,
        fmt,
        lambda m: m.__setitem__(
            "objects", {"layerhub_absent>Foo": {"distribution": claim, "version": "1.0"}}
        ),
    )
    if sink == "message":
        text = refused_in_one_line(load_outcome(model))
    else:
        command.main(["inspect", str(model), *(["--json"] if sink == "json" else [])])
        text = capsys.readouterr().out
    assert "layerhub_absent>Foo" in text, text
    assert "evil" not in text, text


# -- 6. names too long for the file system -------------------------------------------------


SUFFIX = {"keras": ".keras", "keras_dir": "", "keras_hub": "", "h5": ".h5", "savedmodel": ""}


@pytest.mark.parametrize("where", ["file-name", "directory-name"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_name_too_long_is_a_model_file_error(tmp_path: Path, fmt: str, where: str) -> None:
    long = "n" * 300
    path = tmp_path / (long + SUFFIX[fmt]) if where == "file-name" else tmp_path / long / "m.h5"
    outcome = load_outcome(path)
    message = refused_in_one_line(outcome)
    assert isinstance(outcome, ModelFileError), message
    assert "longer than the file system allows" in message, message
    inspect_error = H.outcome_within(lambda: open_model(path), TIMEOUT, [])
    assert isinstance(inspect_error, LayerHubError), inspect_error


# -- 7. child processes ------------------------------------------------------------------------


@pytest.mark.slow
def test_convert_child_ignores_modules_in_the_working_directory(
    originals: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted = tmp_path / "cwd"
    planted.mkdir()
    for module in ("json", "numpy", "keras", "layerhub"):
        (planted / f"{module}.py").write_text("raise SystemExit('imported from the cwd')")
    monkeypatch.chdir(planted)
    done = layerhub.convert(originals["keras"], tmp_path / "converted.keras")
    assert done.ok
