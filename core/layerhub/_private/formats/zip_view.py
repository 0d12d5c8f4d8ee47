"""A zip archive seen with one member replaced, without copying the others.

The view reads the original file up to its central directory and keeps everything after it in
memory: the replacement member and a new central directory that points at the original
members where they are. A 1 GiB archive whose config a plugin upgraded costs a few kilobytes.
"""

from __future__ import annotations

import contextlib
import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from layerhub._private.guard.untrusted import open_regular


class _Overlay(io.RawIOBase):
    """A file whose first ``base`` bytes are read from ``path`` and whose rest (at first, the
    original central directory) lives in memory, where writes go."""

    def __init__(self, path: Path, base: int, file: io.BufferedReader | None = None) -> None:
        super().__init__()
        # Keras extracts weights too big for memory into a directory beside the file it is
        # given, found by this name; with none it reads them through the zip member, seeking
        # back and forth: a 1 GiB model took minutes instead of seconds.
        self.name = str(path)
        self._file = file if file is not None else open_regular(path, "model file")
        self._base = base
        self._file.seek(base)
        self._tail = bytearray(self._file.read())
        self._position = 0

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def _size(self) -> int:
        return self._base + len(self._tail)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        origin = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._size()}
        self._position = origin[whence] + offset
        return self._position

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        if self._position < self._base:
            self._file.seek(self._position)
            done = self._file.readinto(view[: self._base - self._position]) or 0
        start = self._position + done - self._base
        if done < len(view) and start >= 0:
            chunk = self._tail[start : start + len(view) - done]
            view[done : done + len(chunk)] = chunk
            done += len(chunk)
        self._position += done
        return done

    def write(self, data: Any) -> int:
        start = self._position - self._base
        if start < 0:
            raise OSError("the original archive is read-only")
        chunk = bytes(data)
        self._tail[len(self._tail) : start] = bytes(max(0, start - len(self._tail)))
        self._tail[start : start + len(chunk)] = chunk
        self._position += len(chunk)
        return len(chunk)

    def truncate(self, size: int | None = None) -> int:
        size = self._position if size is None else size
        if size < self._base:
            raise OSError("the original archive is read-only")
        keep = size - self._base
        del self._tail[keep:]
        self._tail.extend(bytes(keep - len(self._tail)))  # as a file does, grow with zeros
        return size

    def close(self) -> None:
        self._file.close()
        super().close()


@contextlib.contextmanager
def replaced(path: Path, member: str, data: bytes) -> Iterator[io.BufferedReader]:
    """``path``'s archive as a readable file object in which ``member`` holds ``data``.

    ``path`` is opened once, through the untrusted-file boundary (a regular file or nothing).
    """
    file = open_regular(path, "model file")
    try:
        with zipfile.ZipFile(file) as archive:  # a file object passed in stays open
            start = archive.start_dir
        view = _Overlay(path, start, file)
    except BaseException:
        file.close()
        raise
    try:
        # Appending writes from the old central directory on, which lies in the overlay.
        with zipfile.ZipFile(view, "a") as archive:
            old = archive.getinfo(member)
            archive.filelist.remove(old)
            del archive.NameToInfo[member]
            new = zipfile.ZipInfo(member, date_time=old.date_time)
            new.compress_type = old.compress_type
            archive.writestr(new, data)
        view.seek(0)
        # Buffered as open() would be: large reads go straight into the caller's buffer.
        yield io.BufferedReader(view, buffer_size=1 << 20)
    finally:
        view.close()
