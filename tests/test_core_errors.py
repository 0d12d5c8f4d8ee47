"""layerhub._private.errors: the standard bases are API; MissingPluginError builds its message."""

from __future__ import annotations

import pytest

import layerhub
from layerhub._private.errors import (
    AmbiguousNameError,
    BrokenPluginError,
    LayerHubError,
    Missing,
    MissingPluginError,
    ModelFileError,
    PluginConflictError,
    PluginNotFoundError,
    UnsafeModelError,
)

# Users catch these standard exceptions; changing a base breaks their except clauses.
BASES = {
    PluginNotFoundError: LookupError,
    AmbiguousNameError: LookupError,
    BrokenPluginError: ImportError,
    MissingPluginError: ImportError,
    ModelFileError: ValueError,
    UnsafeModelError: ValueError,
    PluginConflictError: Exception,
    layerhub.ConversionError: ValueError,
}


@pytest.mark.parametrize(("error", "base"), BASES.items(), ids=lambda v: v.__name__)
def test_every_error_is_a_layerhub_error_with_its_standard_base(error: type, base: type) -> None:
    assert issubclass(error, LayerHubError)
    assert issubclass(error, base)
    assert getattr(layerhub, error.__name__) is error
    assert error.__name__ in layerhub.__all__


def test_every_error_class_is_covered() -> None:
    exported = {
        getattr(layerhub, n)
        for n in layerhub.__all__
        if isinstance(getattr(layerhub, n), type)
        and issubclass(getattr(layerhub, n), LayerHubError)
    }
    assert exported - {LayerHubError} <= set(BASES)


def test_plugin_conflict_is_not_a_lookup_import_or_value_error() -> None:
    assert not issubclass(PluginConflictError, (LookupError, ImportError, ValueError))


def test_ambiguous_name_lists_the_registered_names() -> None:
    error = AmbiguousNameError("Scale", ["a>Scale", "b>Scale"])
    assert error.name == "Scale"
    assert error.registered_names == ("a>Scale", "b>Scale")
    assert str(error) == (
        "'Scale' is provided by several plugins (a>Scale, b>Scale); "
        "ask for one of these registered names instead"
    )


def test_missing_defaults_are_unknown() -> None:
    missing = Missing("x")
    assert (missing.distribution, missing.version, missing.note) == (None, None, None)


def test_missing_plugin_error_names_requirements_and_pip_line() -> None:
    error = MissingPluginError(
        [
            Missing("layerhub_pam>PAM", "layerhub-pam", "1.2"),
            Missing("layerhub_fm>FM", "layerhub-fm"),
            Missing("Mine"),
        ]
    )
    assert error.names == ("Mine", "layerhub_fm>FM", "layerhub_pam>PAM")
    assert error.requirements == {"layerhub-fm": None, "layerhub-pam": "1.2"}
    assert error.pip_command == "pip install layerhub-fm layerhub-pam==1.2"
    assert str(error) == (
        "the model needs Mine, layerhub_fm>FM (layerhub-fm), layerhub_pam>PAM (layerhub-pam 1.2), "
        "which no installed layerhub plugin provides; "
        "run: pip install layerhub-fm layerhub-pam==1.2"
    )


def test_missing_plugin_error_without_distribution_has_no_pip_line_but_the_hint() -> None:
    error = MissingPluginError([Missing("Mine")], reason="unknown", hint="pass custom_objects")
    assert error.pip_command is None
    assert error.requirements == {}
    assert str(error) == "the model needs Mine, unknown; pass custom_objects"


def test_hint_is_left_out_when_every_name_has_a_distribution() -> None:
    error = MissingPluginError([Missing("p>X", "layerhub-p")], hint="pass custom_objects")
    assert "custom_objects" not in str(error)
    assert str(error).endswith("; run: pip install layerhub-p")


def test_long_lists_are_cut_after_five_names() -> None:
    error = MissingPluginError([Missing(f"N{i}", note=f"note {i}") for i in range(7)])
    message = str(error)
    assert "N0, N1, N2, N3, N4, and 2 more, which" in message
    assert "N5" not in message
    assert "note 0; note 1; note 2; note 3; note 4" in message
    assert "note 5" not in message
    assert error.names == tuple(f"N{i}" for i in range(7))


def test_five_names_are_all_listed() -> None:
    message = str(MissingPluginError([Missing(f"N{i}") for i in range(5)]))
    assert "N0, N1, N2, N3, N4, which" in message
    assert "more" not in message


def test_notes_are_cut_at_400_characters() -> None:
    exact = str(MissingPluginError([Missing("N", note="x" * 400)]))
    assert exact.endswith("; " + "x" * 400)
    long = str(MissingPluginError([Missing("N", note="x" * 401)]))
    assert long.endswith("; " + "x" * 400 + "...")


def test_names_are_escaped_in_the_message() -> None:
    error = MissingPluginError([Missing("bad\nname")])
    assert "\n" not in str(error)
    assert error.names == ("bad\nname",)


def test_one_name_twice_keeps_the_given_order_and_never_compares_distributions() -> None:
    error = MissingPluginError(
        [Missing("X", "layerhub-b"), Missing("X", None), Missing("X", "layerhub-a")]
    )
    assert error.names == ("X", "X", "X")
    assert error.pip_command == "pip install layerhub-b layerhub-a"
