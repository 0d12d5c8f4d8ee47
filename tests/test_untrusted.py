"""Strings and JSON from a model file: the helpers every format's reader shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from layerhub import ModelFileError, UnsafeModelError
from layerhub._private import checks, untrusted


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
