"""Edges of ``layerhub.save_model``: bounded paths in its messages, the mode a new file gets, the
page cache of the file it replaces, and the manifest comment set in place."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _hardening as H
import pytest

import layerhub
from layerhub import ModelFileError
from layerhub._private import saving
from layerhub._private.formats import manifest

PROC_STATUS = Path("/proc/self/status")


def proc_tells_the_umask() -> bool:
    try:
        return "\nUmask:" in PROC_STATUS.read_text()
    except OSError:
        return False


@pytest.fixture(scope="module")
def model() -> Any:
    return H.scale_model()


@pytest.fixture
def umask_027() -> Iterator[int]:
    """The process umask set to 0o027 for the test (restored after it)."""
    previous = os.umask(0o027)
    try:
        yield 0o027
    finally:
        os.umask(previous)


def test_wrong_suffix_message_is_one_line_with_the_path_cut_at_400_characters(
    model: Any,
) -> None:
    path = "d" * 450 + "/model.h5"
    with pytest.raises(ModelFileError) as caught:
        layerhub.save_model(model, path)
    assert str(caught.value) == (
        "layerhub saves the .keras format (lower-case suffix, as Keras requires). "
        f"Received: path={path[:400] + '...'!r}"
    )


def test_an_upper_case_suffix_is_refused_with_the_short_path_whole(model: Any) -> None:
    with pytest.raises(ModelFileError) as caught:
        layerhub.save_model(model, "Model.KERAS")
    assert str(caught.value) == (
        "layerhub saves the .keras format (lower-case suffix, as Keras requires). "
        "Received: path='Model.KERAS'"
    )


@pytest.mark.skipif(not proc_tells_the_umask(), reason="needs the Umask line of /proc/self/status")
def test_a_new_file_gets_the_umask_mode_without_the_umask_being_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: Any, umask_027: int
) -> None:
    # Setting the umask to read it opens a window in which other threads create files with the
    # wrong mode; where /proc tells it, save_model must not touch it.
    calls: list[object] = []
    real_umask = os.umask

    def recording_umask(mask: int) -> int:
        calls.append(mask)
        return real_umask(mask)

    monkeypatch.setattr(os, "umask", recording_umask)
    path = layerhub.save_model(model, tmp_path / "new.keras")
    monkeypatch.undo()
    assert calls == []
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask_027 == 0o640


def test_without_proc_the_umask_is_read_by_setting_it_and_put_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: Any, umask_027: int
) -> None:
    real_read_text = Path.read_text

    def no_proc(self: Path, *args: Any, **kwargs: Any) -> str:
        if self == PROC_STATUS:
            raise FileNotFoundError(2, "No such file or directory", str(self))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", no_proc)
    path = layerhub.save_model(model, tmp_path / "new.keras")
    monkeypatch.undo()
    assert path.stat().st_mode & 0o777 == 0o640
    assert os.umask(umask_027) == umask_027  # left as it was


@pytest.mark.skipif(not hasattr(os, "POSIX_FADV_DONTNEED"), reason="no posix_fadvise here")
def test_overwriting_drops_the_page_cache_of_the_whole_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: Any
) -> None:
    import keras

    calls: list[object] = []

    def recording_fadvise(fd: int, offset: int, length: int, advice: int) -> None:
        calls.append((os.fstat(fd).st_ino, offset, length, advice))

    real_save = keras.saving.save_model

    def recording_save(*args: Any, **kwargs: Any) -> None:
        calls.append("keras saves")
        real_save(*args, **kwargs)

    monkeypatch.setattr(os, "posix_fadvise", recording_fadvise)
    monkeypatch.setattr(keras.saving, "save_model", recording_save)
    path = layerhub.save_model(model, tmp_path / "m.keras")
    assert calls == ["keras saves"]  # nothing to replace
    old = path.stat().st_ino
    calls.clear()
    layerhub.save_model(model, path)
    # Length 0 means "to the end of the file"; released before Keras allocates anything (at
    # 200 MiB, releasing beside Keras on a thread measured 10% slower).
    assert calls == [(old, 0, 0, os.POSIX_FADV_DONTNEED), "keras saves"]


def test_saving_works_where_posix_fadvise_does_not_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: Any
) -> None:
    path = layerhub.save_model(model, tmp_path / "m.keras")
    monkeypatch.delattr(os, "posix_fadvise", raising=False)  # macOS, Windows
    layerhub.save_model(model, path)
    with zipfile.ZipFile(path) as archive:
        assert archive.comment.startswith(manifest.COMMENT_PREFIX)
        assert archive.testzip() is None


def test_the_manifest_is_appended_to_what_keras_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: Any
) -> None:
    # Keras writes no zip comment: the end record is the last 22 bytes, its last field the
    # comment length. Setting the comment is that field, little-endian, then the comment.
    written: list[bytes] = []
    real_set_comment = saving._set_comment

    def snapshot(file: Path, comment: bytes) -> None:
        written.append(file.read_bytes())
        real_set_comment(file, comment)

    monkeypatch.setattr(saving, "_set_comment", snapshot)
    path = layerhub.save_model(model, tmp_path / "m.keras")
    (keras_wrote,) = written
    assert keras_wrote[-22:-18] == b"PK\x05\x06"
    assert keras_wrote[-2:] == b"\0\0"
    with zipfile.ZipFile(path) as archive:
        comment = archive.comment
        assert archive.testzip() is None
    found = manifest.from_comment(comment)
    assert found is not None
    assert set(found.objects) == {"layerhub_scale>Scale"}
    assert path.read_bytes() == keras_wrote[:-2] + len(comment).to_bytes(2, "little") + comment


def plain_zip(path: Path, comment: bytes) -> bytes:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", b"w" * 1000)
        archive.comment = comment
    return path.read_bytes()


# The last ends as an end record without a comment does: it must not be taken for one.
@pytest.mark.parametrize("earlier", [b"another tool's comment", b"two zero bytes at its end\0\0"])
def test_an_earlier_comment_is_replaced_by_exactly_the_manifest(
    tmp_path: Path, earlier: bytes
) -> None:
    path = tmp_path / "m.keras"
    plain_zip(path, earlier)
    comment = manifest.COMMENT_PREFIX + b'{"format":1,"objects":{}}'
    saving._set_comment(path, comment)
    with zipfile.ZipFile(path) as archive:
        assert archive.comment == comment
        assert archive.testzip() is None
        assert archive.read("model.weights.h5") == b"w" * 1000
    assert path.read_bytes().endswith(len(comment).to_bytes(2, "little") + comment)


def test_saving_over_a_directory_is_refused_by_name(tmp_path: Path, model: Any) -> None:
    folder = tmp_path / "m.keras"
    folder.mkdir()
    with pytest.raises(ModelFileError) as caught:
        layerhub.save_model(model, folder)
    assert str(caught.value) == f"cannot save over a directory. Received: path={str(folder)!r}"
    assert list(folder.iterdir()) == []


def test_keras_writes_a_hidden_temporary_beside_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: Any
) -> None:
    import keras

    # Beside the target, so the rename cannot cross file systems; named after it, so a leftover
    # from a crash says what it was.
    written: list[Path] = []
    real_save = keras.saving.save_model

    def recording_save(saved: Any, file: Any, *args: Any, **kwargs: Any) -> None:
        written.append(Path(file))
        real_save(saved, file, *args, **kwargs)

    monkeypatch.setattr(keras.saving, "save_model", recording_save)
    target = layerhub.save_model(model, tmp_path / "m.keras")
    (temporary,) = written
    assert temporary.parent == target.parent
    assert temporary.name.startswith(".m.keras.")
    assert temporary.name.endswith(".layerhub-tmp.keras")
    assert not temporary.exists()


def test_a_parent_that_is_a_file_is_named_with_the_os_error(tmp_path: Path, model: Any) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(ModelFileError) as caught:
        layerhub.save_model(model, blocker / "m.keras")
    message = str(caught.value)
    assert message.startswith(f"cannot write into {blocker}: ")
    assert message.partition(f"{blocker}: ")[2].startswith(
        ("FileExistsError: ", "NotADirectoryError: ")
    )
    assert "\n" not in message


def test_a_failed_rename_names_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: Any
) -> None:
    def no_rename(source: Any, target: Any) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(saving.os, "replace", no_rename)
    target = tmp_path / "m.keras"
    with pytest.raises(ModelFileError) as caught:
        layerhub.save_model(model, target)
    assert (
        str(caught.value) == f"cannot save {target}: PermissionError: [Errno 13] Permission denied"
    )
    assert list(tmp_path.iterdir()) == []
