"""The layerhub demo: one model made of plugin layers, trained, saved, and reloaded elsewhere.

An image branch (Scale -> L2Normalization -> PAM -> CAM) and a tabular branch (FMLayer ->
MyLayer) are trained for a few steps on synthetic data and saved with ``layerhub.save_model``.
A fresh interpreter that imports nothing but ``layerhub`` loads the file without
``custom_objects``, checks that its predictions match, and prints ``registry.list()``.
Run it with ``tox -e demo``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import keras
import numpy as np
from layerhub_fm import FMLayer
from layerhub_l2norm import L2Normalization
from layerhub_mylayer import MyLayer
from layerhub_pam import CAM, PAM
from layerhub_scale import Scale

import layerhub

RELOAD = textwrap.dedent(
    """
    import sys
    import numpy as np
    import layerhub

    path, inputs, expected = sys.argv[1:4]
    model = layerhub.load_model(path)
    data = np.load(inputs)
    predictions = model.predict([data["image"], data["table"]], verbose=0)
    difference = float(np.max(np.abs(predictions - np.load(expected))))
    print(f"reloaded in a fresh interpreter: max |difference| = {difference:.2e}")
    print()
    print(f"{'name':<16} {'registered name':<32} {'distribution':<28} {'version':<8} status")
    for r in layerhub.registry.list():
        print(f"{r.name:<16} {r.registered_name:<32} {r.distribution:<28} "
              f"{r.version:<8} {r.status}")
    sys.exit(0 if difference < 1e-5 else 1)
    """
)


def build() -> keras.Model:
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


def main() -> int:
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
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        args = [str(path), str(folder / "inputs.npz"), str(folder / "expected.npy")]
        return subprocess.run(
            [sys.executable, "-c", RELOAD, *args], env=env, check=False
        ).returncode


if __name__ == "__main__":
    sys.exit(main())
