"""Benchmark 4: saving and upgrading big models, against Keras' own calls on the same model.

- ``layerhub.save_model`` (atomic: temporary file, fsync, rename, fsync of the directory, and
  the manifest as the zip comment; the old file's page cache released first) against
  ``keras.saving.save_model``, both overwriting an existing file, with the peak extra disk each
  needed (sampled while it ran). Extra disk: at most one archive (the temporary file an atomic
  replace needs). Keras does not make its file durable, so a third contender does:
  ``keras.saving.save_model`` followed by an ``fsync`` of the file, the least any durable save
  costs. Goal: <= 1.05x of it. Against Keras alone the ``fsync`` is a cost layerhub cannot
  skip: 10% to 60% of a 10 MiB save on a shared virtual disk.
- At 10 MiB, the same saves in a tmpfs directory, where nothing waits for a disk: what
  layerhub's own code (temporary file, manifest, rename) adds to Keras' save.
- ``layerhub.load_model`` of a file whose plugin version is older, so that the plugin's
  ``layerhub_upgrade_config`` hook rewrites a config, against ``keras.saving.load_model`` of the
  same model saved with the current config. Goal: <= 1.05x: the weights are never copied.

Every figure is the median of the round-by-round ratios, with its 95% interval: the contenders
of one round run back to back, so a slow stretch of the shared disk falls on both.

Sizes: 10 MiB and 200 MiB by default; ``--full`` adds 1 GiB (needs ~6 GiB of memory and disk).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import statistics
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _timing import paired_ratio, rounds, timed, verdict

MIB = 1 << 20


def model_of(size: int, shift: type) -> object:
    """A model holding about ``size`` bytes of float32 weights, ending in a plugin layer."""
    import keras

    width = 1024
    inputs = keras.Input((width,))
    hidden = inputs
    for _ in range(max(1, size // (width * width * 4))):
        hidden = keras.layers.Dense(width)(hidden)
    return keras.Model(inputs, shift(offset=1.0)(hidden))


def peak_extra_disk(directory: Path, action: Callable[[], object]) -> int:
    """The most bytes ``directory`` held above its starting size while ``action`` ran."""

    def used() -> int:
        total = 0
        for entry in directory.iterdir():
            with contextlib.suppress(FileNotFoundError):  # renamed away meanwhile
                total += entry.stat().st_size
        return total

    start, peak, done = used(), [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.002):
            peak[0] = max(peak[0], used() - start)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        action()
    finally:
        done.set()
        sampler.join()
    return max(peak[0], used() - start)


def as_version_one(path: Path, target: Path) -> None:
    """A copy of ``path`` as plugin version 1.0 wrote it: argument "bias", manifest "1.0"."""
    with zipfile.ZipFile(path) as old, zipfile.ZipFile(target, "w") as new:
        manifest = json.loads(old.comment.partition(b":")[2])
        for entry in manifest["objects"].values():
            entry["version"] = "1.0"
        new.comment = b"layerhub-manifest:" + json.dumps(manifest).encode()
        for info in old.infolist():
            data = old.read(info)
            if info.filename == "config.json":
                data = data.replace(b'"offset": 1.0', b'"bias": 1.0')
            new.writestr(info, data)


def repeats_for(size: int) -> int:
    """More rounds for small models, whose few milliseconds are noisier."""
    return 201 if size <= 10 * MIB else 31 if size <= 200 * MIB else 7


def main(sizes: tuple[int, ...]) -> None:
    from layerhub.testing.fakes import write_upgrading_plugin

    site = Path(tempfile.mkdtemp(prefix="layerhub-bench-site-"))
    write_upgrading_plugin(site, "layerhub_benchshift")
    sys.path.insert(0, str(site))
    shift = importlib.import_module("layerhub_benchshift").Shift
    print("== 4. saving and upgrading big models (interleaved rounds, overwriting)")
    for size in sizes:
        model = model_of(size, shift)
        with tempfile.TemporaryDirectory(dir=Path.cwd()) as scratch:
            measure(model, size, Path(scratch), repeats_for(size))
        if size > 10 * MIB:
            continue
        memory = memory_directory(size)
        if memory is None:
            print(f"  {'':5s}     no tmpfs with room for four archives: no figure without a disk")
            continue
        with tempfile.TemporaryDirectory(dir=memory) as scratch:
            times = save_rounds(model, Path(scratch), repeats_for(size))
        report(f"{'':5s}     without a disk (tmpfs): what layerhub's code adds", times, "keras")


def memory_directory(size: int) -> Path | None:
    """A tmpfs directory with room for four archives of ``size``, if the machine has one."""
    shm = Path("/dev/shm")
    try:
        room = os.statvfs(shm)
        with open("/proc/mounts") as mounts:
            tmpfs = any(line.split()[1:3] == [str(shm), "tmpfs"] for line in mounts)
    except OSError:
        return None
    return shm if tmpfs and room.f_bavail * room.f_frsize > 4 * size else None


def contender_files(scratch: Path) -> tuple[Path, Path, Path]:
    """The files layerhub, Keras and Keras + fsync overwrite, each in a directory of its own."""
    a, b, c = (scratch / name / "m.keras" for name in ("a", "b", "c"))
    return a, b, c


def save_rounds(model: object, scratch: Path, repeats: int) -> dict[str, list[float]]:
    """Times of three saves overwriting their own file in ``scratch``, round by round."""
    import keras

    import layerhub

    a, b, c = contender_files(scratch)

    def keras_then_fsync() -> None:
        keras.saving.save_model(model, c)
        with c.open("rb") as stream:
            os.fsync(stream.fileno())

    for file in (a, b, c):
        file.parent.mkdir()
        keras.saving.save_model(model, file)
    return rounds(
        {
            "layerhub": timed(lambda: layerhub.save_model(model, a)),
            "keras": timed(lambda: keras.saving.save_model(model, b)),
            "keras+fsync": timed(keras_then_fsync),
        },
        repeats,
    )


def measure(model: object, size: int, scratch: Path, repeats: int) -> None:
    import keras

    import layerhub

    times = save_rounds(model, scratch, repeats)
    a, b, _ = contender_files(scratch)
    disk_ours = peak_extra_disk(a.parent, lambda: layerhub.save_model(model, a))
    disk_theirs = peak_extra_disk(b.parent, lambda: keras.saving.save_model(model, b))
    archive = a.stat().st_size
    report(f"{size // MIB:5d} MiB save", times, "keras")
    report(
        f"{'':5s}     vs keras + fsync of its file (the least a durable save costs)",
        times,
        "keras+fsync",
    )
    print(
        f"  {'':5s}     extra disk while overwriting: layerhub {disk_ours / archive:4.2f} "
        f"archives, keras {disk_theirs / archive:4.2f}"
    )
    old = scratch / "old.keras"
    as_version_one(a, old)
    loads = rounds(
        {
            "layerhub": timed(lambda: layerhub.load_model(old)),
            "keras": timed(lambda: keras.saving.load_model(b)),
        },
        repeats,
    )
    report(f"{size // MIB:5d} MiB load with an upgrade hook", loads, "keras")


def report(what: str, times: dict[str, list[float]], peer: str) -> None:
    """One line: both medians, and layerhub's time over the peer's, round by round."""
    ratio = paired_ratio(times["layerhub"], times[peer])
    print(
        f"  {what}: layerhub {statistics.median(times['layerhub']):7.3f} s, {peer} "
        f"{statistics.median(times[peer]):7.3f} s; per round {ratio} "
        f"({verdict(ratio.median, 1.05)})"
    )


if __name__ == "__main__":
    big = "--full" in sys.argv[1:]
    main((10 * MIB, 200 * MIB, 1024 * MIB) if big else (10 * MIB, 200 * MIB))
