"""Benchmark 2: ``layerhub.load_model`` against ``keras.saving.load_model(custom_objects=...)``.

The model has 50 plugin layers; both loaders read the same file in turns, after a warm-up, in one
process where the plugin is already imported (so the figure is layerhub's own overhead: reading
the archive's config, finding the plugins, and the manifest). Goal: <= 1.05x.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _timing import interleaved, timed, verdict


def main(repeats: int = 15, layers: int = 50) -> None:
    import keras
    from layerhub_scale import Scale

    import layerhub

    inputs = keras.Input((16,))
    hidden = inputs
    for _ in range(layers):
        hidden = Scale(gamma_initializer="random_normal")(hidden)
    model = keras.Model(inputs, hidden)
    with tempfile.TemporaryDirectory() as scratch:
        path = layerhub.save_model(model, Path(scratch) / "deep.keras")
        custom = {"Scale": Scale}
        contenders = {
            "layerhub": timed(lambda: layerhub.load_model(path)),
            "keras": timed(lambda: keras.saving.load_model(path, custom_objects=custom)),
        }
        interleaved(contenders, 2)  # warm-up: graph tracing caches, file cache
        times = interleaved(contenders, repeats)
    ratio = times["layerhub"] / times["keras"]
    print(f"== 2. loading a model with {layers} plugin layers (median of {repeats})")
    print(f"  layerhub.load_model(path)                       {times['layerhub'] * 1e3:8.1f} ms")
    print(f"  keras.saving.load_model(path, custom_objects=…) {times['keras'] * 1e3:8.1f} ms")
    print(f"  layerhub / keras = {ratio:5.3f}x   ({verdict(ratio, 1.05)})")


if __name__ == "__main__":
    main()
