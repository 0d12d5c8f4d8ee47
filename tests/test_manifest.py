"""The manifest: what a saved file says about the plugins it needs, and how it is read back."""

from __future__ import annotations

import json

import pytest

import layerhub
from layerhub._private.formats import manifest
from layerhub._private.formats.manifest import Entry, Manifest


def test_build_lists_objects_sorted_with_the_format_and_layerhub_version() -> None:
    built = manifest.build({"b>B": ("dist-b", "2"), "a>A": (None, None)})
    assert built == {
        "format": manifest.FORMAT,
        "layerhub_version": layerhub.__version__,
        "objects": {
            "a>A": {"distribution": None, "version": None},
            "b>B": {"distribution": "dist-b", "version": "2"},
        },
    }
    assert list(built["objects"]) == ["a>A", "b>B"]


def test_comments_are_compact_and_bounded_by_the_zip_format() -> None:
    small = {"objects": {"a>A": {"distribution": "a", "version": "1"}}}
    assert manifest.as_comment(small) == (
        b'layerhub-manifest:{"objects":{"a>A":{"distribution":"a","version":"1"}}}'
    )
    overhead = len(manifest.as_comment({"k": ""}) or b"")
    fits = {"k": "x" * (manifest.MAX_COMMENT - overhead)}
    assert len(manifest.as_comment(fits) or b"") == manifest.MAX_COMMENT
    assert manifest.as_comment({"k": "x" * (manifest.MAX_COMMENT - overhead + 1)}) is None


def test_comments_round_trip() -> None:
    built = manifest.build({"layerhub_x>X": ("layerhub-x", "1.0")})
    comment = manifest.as_comment(built)
    assert comment is not None
    assert manifest.from_comment(comment) == Manifest(
        layerhub.__version__, {"layerhub_x>X": Entry("layerhub-x", "1.0")}
    )


@pytest.mark.parametrize(
    "comment",
    [
        b"",
        b"some other tool's comment",
        b"layerhub-manifest:{not json",
        b"layerhub-manifest:\xff\xfe",
        b"layerhub-manifest:" + b"[" * 100_000 + b"]" * 100_000,
        b"layerhub-manifest:[1, 2]",
    ],
)
def test_comments_that_are_not_manifests_are_ignored(comment: bytes) -> None:
    assert manifest.from_comment(comment) is None


def test_parse_keeps_only_well_formed_entries() -> None:
    raw = {
        "layerhub_version": "0.1.0",
        "objects": {
            "ok>A": {"distribution": "a", "version": "1"},
            "partial>B": {"distribution": "b"},
            "bad>C": "a string",
        },
    }
    assert manifest.parse(raw) == Manifest(
        "0.1.0", {"ok>A": Entry("a", "1"), "partial>B": Entry("b", None)}
    )
    assert manifest.parse({"objects": ["ok>A"]}) == Manifest(None, {})
    assert manifest.parse(json.loads("null")) is None
