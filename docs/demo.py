"""The layerhub demo: one model made of plugin layers, trained, saved, and reloaded elsewhere.

An image branch (Scale -> L2Normalization -> PAM -> CAM) and a tabular branch (FMLayer ->
MyLayer) are trained for a few steps on synthetic data and saved with ``layerhub.save_model``.
A fresh interpreter that imports nothing but ``layerhub`` loads the file without
``custom_objects``, checks that its predictions match, and prints ``registry.list()``.
Run it with ``tox -e demo``; ``-v`` keeps TensorFlow's start-up log messages.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

import layerhub

RELOAD = textwrap.dedent(
    """
    import sys
    import numpy as np
    import layerhub
    from layerhub._private.cli.command import table

    path, inputs, expected = sys.argv[1:4]
    model = layerhub.load_model(path)
    data = np.load(inputs)
    predictions = model.predict([data["image"], data["table"]], verbose=0)
    difference = float(np.max(np.abs(predictions - np.load(expected))))
    print(f"reloaded in a fresh interpreter: max |difference| = {difference:.2e}")
    print()
    header = ["NAME", "REGISTERED NAME", "DISTRIBUTION", "VERSION", "STATUS"]
    rows = [
        [r.name, r.registered_name, r.distribution, r.version, r.status]
        for r in layerhub.registry.list()
    ]
    for line in table(header, rows):
        print(line)
    sys.exit(0 if difference < 1e-5 else 1)
    """
)


@contextlib.contextmanager
def _startup_noise_hidden() -> Iterator[None]:
    """Hide what is written to file descriptor 2 inside the block, unless the block fails.

    TensorFlow's C++ runtime logs its start-up notices (the absl preamble, oneDNN, CUDA) before
    it reads TF_CPP_MIN_LOG_LEVEL, straight to the descriptor, where sys.stderr cannot catch
    them. They are kept in a file and shown if the block raises, so no real error is lost.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.buffer.write(captured.read())
            sys.stderr.flush()
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _import_keras(verbose: bool) -> Any:
    if verbose:
        import keras

        return keras
    # Set before the first import of TensorFlow, the only time it reads them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _startup_noise_hidden():
        import keras

        # The first tensor initialises the devices, which logs a second round of notices.
        keras.ops.convert_to_numpy(keras.ops.zeros((1,)))
    return keras


def build() -> Any:
    import keras
    from layerhub_fm import FMLayer
    from layerhub_l2norm import L2Normalization
    from layerhub_mylayer import MyLayer
    from layerhub_pam import CAM, PAM
    from layerhub_scale import Scale

    image = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(image)
    x = Scale()(x)
    x = L2Normalization(gamma_init=10.0)(x)
    x = PAM(reduction=4)(x)
    x = CAM()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)

    table = keras.Input((12,), name="table")
    t = FMLayer(output_dim=8, factor_order=4, activation="relu")(table)
    t = MyLayer(output_dim=8)(t)

    merged = keras.layers.Concatenate()([x, t])
    output = keras.layers.Dense(1, activation="sigmoid")(merged)
    return keras.Model([image, table], output, name="layerhub_demo")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="keep TensorFlow's start-up log messages"
    )
    verbose = parser.parse_args(argv).verbose
    _import_keras(verbose)

    rng = np.random.default_rng(0)
    images = rng.normal(size=(64, 16, 16, 3)).astype("float32")
    tables = rng.normal(size=(64, 12)).astype("float32")
    labels = (images.mean(axis=(1, 2, 3)) + tables[:, 0] > 0).astype("float32")

    model = build()
    model.compile(optimizer="adam", loss="binary_crossentropy")
    history = model.fit([images, tables], labels, epochs=3, batch_size=16, verbose=0)
    losses = ", ".join(f"{loss:.4f}" for loss in history.history["loss"])
    print(f"trained {model.count_params()} parameters for 3 epochs; loss: {losses}")

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        path = layerhub.save_model(model, folder / "demo.keras")
        print(f"saved {path.name} ({path.stat().st_size / 1024:.0f} KiB) with layerhub.save_model")
        np.savez(folder / "inputs.npz", image=images[:8], table=tables[:8])
        np.save(folder / "expected.npy", model.predict([images[:8], tables[:8]], verbose=0))
        args = [str(path), str(folder / "inputs.npz"), str(folder / "expected.npy")]
        # The child writes to the same stdout: ours must come out first, even through a pipe.
        sys.stdout.flush()
        if verbose:
            return subprocess.run([sys.executable, "-c", RELOAD, *args], check=False).returncode
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        # The child's stderr holds the same start-up notices: shown only if it fails.
        child = subprocess.run(
            [sys.executable, "-c", RELOAD, *args],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            sys.stderr.write(child.stderr)
        return child.returncode


if __name__ == "__main__":
    sys.exit(main())
