"""Strings and JSON from a model file: the helpers every format's reader shares."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from layerhub import ModelFileError, UnsafeModelError
from layerhub._private.guard import checks, untrusted


def test_shown_is_one_bounded_line() -> None:
    assert untrusted.shown("plain") == "plain"
    assert untrusted.shown(42) == "42"
    assert untrusted.shown("a\nb\x1b[31m\u202e") == "a\\nb\\x1b[31m\\u202e"
    exact = "x" * untrusted.MAX_SHOWN
    assert untrusted.shown(exact) == exact
    assert untrusted.shown(exact + "y") == exact + "..."
    assert untrusted.shown("abcdef", 3) == "abc..."


def test_paths_are_shown_whole_up_to_400_characters() -> None:
    assert untrusted.shown_path("p" * 400) == "p" * 400
    assert untrusted.shown_path(Path("q" * 401)) == "q" * 400 + "..."
    assert untrusted.shown_path(Path("dir/new\nline.keras")) == "dir/new\\nline.keras"


def test_distribution_names_are_validated_and_bounded() -> None:
    longest = "a" * untrusted.MAX_NAME
    assert untrusted.distribution_name(longest) == longest
    assert untrusted.distribution_name(longest + "a") is None
    assert untrusted.distribution_name("LayerHub_PAM") == "layerhub-pam"
    for bad in ("bad name", "-leading", "x; rm", "", None, 3):
        assert untrusted.distribution_name(bad) is None, bad


def test_versions_are_validated_normalised_and_bounded() -> None:
    longest = "10" + ".0" * 49
    assert len(longest) == untrusted.MAX_NAME
    assert untrusted.version_string(longest) == longest
    assert untrusted.version_string(longest + "0") is None
    assert untrusted.version_string("1.0RC1") == "1.0rc1"
    for bad in ("1.0 && rm", "latest", "", None, 1.0):
        assert untrusted.version_string(bad) is None, bad


def test_requirements_are_single_shell_words() -> None:
    assert untrusted.requirement("layerhub-pam", None) == "layerhub-pam"
    assert untrusted.requirement("layerhub-pam", "1.2") == "layerhub-pam==1.2"
    assert untrusted.requirement("a b", "1") == "'a b==1'"


def test_the_plugin_convention_names_a_distribution() -> None:
    assert untrusted.conventional_distribution("layerhub_pam>PAM") == "layerhub-pam"
    assert untrusted.conventional_distribution("layerhub_x>Odd>Name") == "layerhub-x"
    assert untrusted.conventional_distribution("Custom>Scale") == "custom"
    for bad in ("pkg.sub>X", "1abc>X", "a b>X", ">X"):
        assert untrusted.conventional_distribution(bad) is None, bad


def test_json_must_be_utf8() -> None:
    text = '{"a": [1, 2]}'
    assert checks.decode_json(text.encode(), "m.keras", "config.json") == {"a": [1, 2]}
    assert checks.decode_json(text, "m.keras", "config.json") == {"a": [1, 2]}
    # json.loads alone would accept UTF-16; a Keras file is UTF-8.
    with pytest.raises(ModelFileError, match=r"^m\.keras: its config\.json is not JSON: "):
        checks.decode_json(text.encode("utf-16"), "m.keras", "config.json")


def test_json_errors_say_where_and_what() -> None:
    with pytest.raises(ModelFileError) as caught:
        checks.decode_json(b'{"a": }', "m.keras", "config.json")
    assert str(caught.value) == (
        "m.keras: its config.json is not JSON: "
        "JSONDecodeError: Expecting value: line 1 column 7 (char 6)"
    )
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(ModelFileError) as caught:
        checks.decode_json(deep, "m.keras", "metadata.json")
    assert str(caught.value) == "m.keras: its metadata.json nests too deeply to read"


def test_oversized_members_are_refused_before_reading() -> None:
    checks.check_size(Path("m.keras"), "config.json", checks.MAX_MEMBER_BYTES)
    with pytest.raises(ModelFileError) as caught:
        checks.check_size(Path("m.keras"), "config.json", checks.MAX_MEMBER_BYTES + 1)
    assert str(caught.value) == (
        f"m.keras: its config.json is {checks.MAX_MEMBER_BYTES + 1} bytes, above layerhub's "
        f"limit of {checks.MAX_MEMBER_BYTES} bytes; refusing to read it (a damaged or hostile "
        "file?)"
    )


def nested(levels: int) -> object:
    """Lists nested ``levels`` deep (a scalar is depth 0)."""
    config: object = 0
    for _ in range(levels):
        config = [config]
    return config


def test_config_depth_limit_is_inclusive() -> None:
    checks.check_config(Path("m"), nested(checks.MAX_CONFIG_DEPTH), safe_mode=True)
    with pytest.raises(ModelFileError, match=r"^m: its config nests deeper than 512 levels; "):
        checks.check_config(Path("m"), nested(checks.MAX_CONFIG_DEPTH + 1), safe_mode=True)


KERAS3_LAMBDA = {"class_name": "__lambda__", "config": {"code": "..."}}
ADVICE = (
    "if you trust the file, load it with safe_mode=False, and to avoid this in future rebuild "
    "the Lambda with a function a plugin registers and save it as .keras"
)


@pytest.mark.parametrize(
    ("config", "where", "keras2"),
    [
        (
            {"name": "lam", "function": KERAS3_LAMBDA},
            "layer 'lam' holds Python bytecode in its function",
            False,
        ),
        (
            {"name": "old", "function_type": "lambda", "mask_type": "lambda"},
            "layer 'old' holds Python bytecode in its function and mask",
            True,
        ),
        ({"layers": [KERAS3_LAMBDA]}, "a layer holds Python bytecode", False),
    ],
)
def test_bytecode_is_refused_in_safe_mode_with_the_way_out(
    config: object, where: str, keras2: bool
) -> None:
    saved = (
        "Keras 2 saved every Python function given to a Lambda layer this way, named or not"
        if keras2
        else "Keras saves Python lambdas this way"
    )
    with pytest.raises(UnsafeModelError) as caught:
        checks.check_config(Path("m.keras"), config, safe_mode=True)
    assert str(caught.value) == (
        f"m.keras: {where}, which would run as code while the model loads, so safe_mode "
        f"refuses it ({saved}); {ADVICE}"
    )
    checks.check_config(Path("m.keras"), config, safe_mode=False)


# The boundary for untrusted bytes (issue 25) --------------------------------------------------

HOSTILE = {
    "\x1b[31m": "\\x1b[31m",
    "\x07": "\\x07",
    "a\nb\r": "a\\nb\\r",
    "\u202eexe.txt": "\\u202eexe.txt",
    "\u2066x\u2069": "\\u2066x\\u2069",
    "\u200fr": "\\u200fr",
    "\x00": "\\x00",
    "\ud800": "\\ud800",
    "\x85\u2028\u2029": "\\x85\\u2028\\u2029",
    "\ufeff\u200b": "\\ufeff\\u200b",
    "\U000e0041": "\\U000e0041",  # a tag character: invisible
    "é ü 名前 🙂": "é ü 名前 🙂",  # printable text is left alone
}


@pytest.mark.parametrize(("raw", "escaped"), HOSTILE.items(), ids=[repr(k) for k in HOSTILE])
def test_shown_escapes_whatever_a_terminal_would_act_on(raw: str, escaped: str) -> None:
    assert untrusted.shown(raw) == escaped
    untrusted.shown(raw).encode("utf-8")  # never raises, even for a lone surrogate


def test_shown_never_cuts_an_escape_and_reads_only_what_it_shows() -> None:
    assert untrusted.shown("ab\x1b", 3) == "ab..."
    assert untrusted.shown("ab\x1b", 6) == "ab\\x1b"
    huge = "x" * 50_000_000
    assert untrusted.shown(huge) == "x" * untrusted.MAX_SHOWN + "..."


def test_shown_survives_a_hostile_repr() -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert untrusted.shown(Hostile()) == "<Hostile>"


@pytest.mark.parametrize(
    ("value", "description"),
    [
        ("pip install evil-pkg", "text of 20 characters"),
        ("x", "text of 1 character"),
        (b"\x00\x01", "2 bytes"),
        (3.5, "a number"),
        (True, "a boolean"),
        (None, "null"),
        ([1, 2], "a list of 2 items"),
        ({"a": 1}, "an object of 1 key"),
    ],
)
def test_described_says_what_not_which(value: object, description: str) -> None:
    assert untrusted.described(value) == description


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def _loop(tmp_path: Path) -> Path:
    path = tmp_path / "loop"
    path.symlink_to("loop")
    return path


def _directory(tmp_path: Path) -> Path:
    (tmp_path / "folder").mkdir()
    return tmp_path / "folder"


def _device(tmp_path: Path) -> Path:
    (tmp_path / "device").symlink_to("/dev/null")
    return tmp_path / "device"


def _socket(tmp_path: Path) -> Path:
    import socket

    path = tmp_path / "socket"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.close()
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_fifo, "is a named pipe (FIFO), not a regular file"),
        (_loop, "is a symlink loop"),
        (_directory, "is a directory, not a regular file"),
        (_device, "is a character device, not a regular file"),
        (_socket, "is a socket, not a regular file"),
        (lambda tmp: tmp / "absent", "does not exist"),
        (lambda tmp: tmp / ("n" * 300), "has a name longer than the file system allows"),
        (lambda tmp: Path(f"{tmp}/nul\x00byte"), "holds a NUL character"),
        (lambda tmp: tmp / "bad\ud800", "cannot be encoded for the file system"),
    ],
    ids=["fifo", "loop", "directory", "device", "socket", "missing", "long", "nul", "surrogate"],
)
@pytest.mark.parametrize("helper", ["regular_file", "read_bytes", "open_regular"])
def test_only_regular_files_are_opened(
    tmp_path: Path, make: Callable[[Path], Path], reason: str, helper: str
) -> None:
    path = make(tmp_path)
    call = {
        "regular_file": lambda: untrusted.regular_file(path, "model file"),
        "read_bytes": lambda: untrusted.read_bytes(path, 100, "model file"),
        "open_regular": lambda: untrusted.open_regular(path, "model file").close(),
    }[helper]
    with pytest.raises(ModelFileError) as caught:
        call()  # a FIFO would block here if it were opened without O_NONBLOCK
    message = str(caught.value)
    assert message.startswith("model file "), message
    assert reason in message, message
    assert message.endswith("; refusing to read it"), message


def test_regular_files_are_read_within_their_bound(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"x" * 10)
    link = tmp_path / "link"
    link.symlink_to(path.name)  # followed, as Keras follows it
    assert untrusted.regular_file(link, "model file").st_size == 10
    assert untrusted.read_bytes(link, 10, "model file") == b"x" * 10
    with untrusted.open_regular(link, "model file") as stream:
        assert stream.read() == b"x" * 10
    with pytest.raises(ModelFileError) as caught:
        untrusted.read_bytes(path, 9, "config")
    assert str(caught.value) == (
        f"config {path} is larger than layerhub's limit of 9 bytes; refusing to read it "
        "(a damaged or hostile file?)"
    )


def test_read_bytes_reads_at_most_one_byte_over_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big"
    with path.open("wb") as file:
        file.truncate(1 << 30)  # sparse
    asked: list[int] = []
    real_read = os.read

    def counting(fd: int, size: int) -> bytes:
        asked.append(size)
        return real_read(fd, size)

    monkeypatch.setattr(os, "read", counting)
    with pytest.raises(ModelFileError):
        untrusted.read_bytes(path, 1000, "model file")
    assert sum(asked) == 1001


def test_decode_json_takes_any_decoder_output() -> None:
    for value, kind in [(3.5, "a number"), (None, "null"), ([b"x"], "a list of 1 item")]:
        with pytest.raises(ModelFileError) as caught:
            checks.decode_json(value, "m.h5", "model config")
        assert str(caught.value) == f"m.h5: its model config is {kind}, not JSON text"
    assert checks.decode_json(bytearray(b"[1]"), "m", "c") == [1]
    assert checks.decode_json(memoryview(b"[2]"), "m", "c") == [2]


def test_decode_json_bounds_decoded_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checks, "MAX_MEMBER_BYTES", 10)
    assert checks.decode_json('"' + "x" * 8 + '"', "m", "c") == "x" * 8
    with pytest.raises(ModelFileError, match=r"^m: its c is 11 bytes, above layerhub's limit"):
        checks.decode_json('"' + "x" * 9 + '"', "m", "c")


def test_config_copy_is_deep_iterative_and_equal() -> None:
    from layerhub._private.guard import config_tree

    tree = {"a": [1, {"b": [2, 3]}, (4, 5)], "c": {"d": None}}
    copied = config_tree.copy(tree)
    assert copied == {"a": [1, {"b": [2, 3]}, [4, 5]], "c": {"d": None}}
    copied["a"][1]["b"].append(9)
    assert tree["a"][1]["b"] == [2, 3]
    deep = nested(100_000)
    assert config_tree.depth(config_tree.copy(deep)) == 100_000


def test_children_never_import_from_their_working_directory(tmp_path: Path) -> None:
    from layerhub.testing import run_in_fresh_interpreter

    for module in ("json", "numpy", "keras", "layerhub"):
        (tmp_path / f"{module}.py").write_text("raise SystemExit('imported from the cwd')")
    code = "import json, numpy, layerhub, os, sys; print(json.__file__); print(os.getcwd())"
    for cwd in (tmp_path, None):
        done = run_in_fresh_interpreter(code, cwd=cwd)
        module_file, where = done.stdout.split()
        assert not module_file.startswith(str(tmp_path)), module_file
        assert where == str(tmp_path) if cwd else where != os.getcwd()
