"""layerhub._private.registry.records: a record's pip command, its dict form, one-line errors."""

from __future__ import annotations

import pytest

from layerhub._private.registry.records import STATUSES, LayerRecord, one_line

RECORD = LayerRecord(
    "Scale", "layerhub_scale>Scale", "layerhub_scale", "layerhub_scale", "layerhub-scale", "1.0"
)


def test_defaults() -> None:
    assert (RECORD.status, RECORD.error) == ("installed", None)
    assert STATUSES == ("installed", "loaded", "broken", "conflict", "mismatch")


def test_pip_command() -> None:
    assert RECORD.pip_command == "pip install layerhub-scale"
    assert RECORD._replace(distribution=None).pip_command is None


def test_dict_round_trip() -> None:
    data = RECORD.to_dict()
    assert data == {
        "name": "Scale",
        "registered_name": "layerhub_scale>Scale",
        "plugin": "layerhub_scale",
        "module": "layerhub_scale",
        "distribution": "layerhub-scale",
        "version": "1.0",
        "status": "installed",
        "error": None,
    }
    assert type(data) is dict
    assert LayerRecord.from_dict(data) == RECORD
    for status in STATUSES:
        assert LayerRecord.from_dict({**data, "status": status}).status == status
    partial = {k: v for k, v in data.items() if k not in ("status", "error")}
    assert LayerRecord.from_dict(partial) == RECORD


def test_from_dict_rejects_unknown_fields_and_statuses() -> None:
    with pytest.raises(ValueError, match=r"^unknown record fields: \['extra', 'more'\]$"):
        LayerRecord.from_dict({**RECORD.to_dict(), "more": 1, "extra": 2})
    with pytest.raises(ValueError, match=r"^unknown record status: 'gone'$"):
        LayerRecord.from_dict({**RECORD.to_dict(), "status": "gone"})


def test_one_line() -> None:
    assert one_line(ValueError("  first\nsecond  ")) == "ValueError: first"
    assert one_line(KeyError()) == "KeyError"
    assert one_line(RuntimeError("   ")) == "RuntimeError"
