"""The overlay behind ``zip_view.replaced``: a file, read-only below a point, checked against a
plain in-memory file doing the same operations."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layerhub._private.formats.zip_view import _Overlay

operations = st.lists(
    st.one_of(
        st.tuples(st.just("seek"), st.integers(0, 80), st.sampled_from([0, 1, 2])),
        st.tuples(st.just("read"), st.integers(-1, 40)),
        st.tuples(st.just("write"), st.binary(min_size=1, max_size=20)),
        st.tuples(st.just("truncate"), st.one_of(st.none(), st.integers(0, 90))),
    ),
    max_size=30,
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=st.binary(min_size=1, max_size=60), split=st.integers(0, 60), steps=operations)
def test_overlay_behaves_like_a_file_read_only_below_its_base(
    tmp_path: Path, content: bytes, split: int, steps: list[tuple[object, ...]]
) -> None:
    base = min(split, len(content))
    path = tmp_path / "archive"
    path.write_bytes(content)
    overlay, reference = _Overlay(path, base), io.BytesIO(content)
    try:
        for step in steps:
            kind, *args = step
            if kind == "seek":
                offset, whence = args
                origin = {0: 0, 1: reference.tell(), 2: len(reference.getvalue())}[whence]
                if origin + offset < 0:
                    continue
                assert overlay.seek(offset, whence) == reference.seek(offset, whence)
            elif kind == "read":
                (size,) = args
                assert overlay.read(size) == reference.read(size)
            elif kind == "write":
                (data,) = args
                if reference.tell() < base:
                    with pytest.raises(OSError, match="read-only"):
                        overlay.write(data)
                    continue
                assert overlay.write(data) == reference.write(data)
            else:
                (size,) = args
                if (reference.tell() if size is None else size) < base:
                    with pytest.raises(OSError, match="read-only"):
                        overlay.truncate(size)
                    continue
                end = reference.tell() if size is None else size
                assert overlay.truncate(size) == end
                grown = max(0, end - len(reference.getvalue()))
                reference.truncate(size)
                # BytesIO never grows on truncate; a file (and the overlay) fills with zeros.
                if grown:
                    position = reference.tell()
                    reference.seek(0, os.SEEK_END)
                    reference.write(bytes(grown))
                    reference.seek(position)
            assert overlay.tell() == reference.tell()
        overlay.seek(0)
        assert overlay.read() == reference.getvalue()
        assert path.read_bytes() == content  # the original file is never written
    finally:
        overlay.close()


def test_overlay_is_a_readable_writable_seekable_file(tmp_path: Path) -> None:
    path = tmp_path / "archive"
    path.write_bytes(b"0123456789")
    with _Overlay(path, 4) as overlay:
        assert (overlay.readable(), overlay.writable(), overlay.seekable()) == (True, True, True)
        assert overlay.seek(0, os.SEEK_END) == 10
        assert bytes(overlay._tail) == b"456789"
    assert overlay.closed
