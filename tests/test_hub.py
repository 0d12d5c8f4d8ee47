"""``hf://owner/repo`` locations, offline: a Hub cache prepared on disk, as huggingface_hub lays
it out; nothing here reaches the network (``HF_HUB_OFFLINE=1``)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from layerhub_scale import Scale

import layerhub
from layerhub.testing import run_in_fresh_interpreter

pytest.importorskip("huggingface_hub")

COMMIT = "0123456789abcdef0123456789abcdef01234567"

LOAD_FROM_HUB = """
    import sys
    import numpy as np
    import layerhub
    location, inputs, outputs = sys.argv[1:4]
    try:
        model = layerhub.load_model(location)
    except layerhub.LayerHubError as error:
        print(type(error).__name__, "|", error)
    else:
        np.save(outputs, model.predict(np.load(inputs), verbose=0))
        plugins = sorted(m for m in sys.modules if m.startswith("layerhub_") and "." not in m)
        print("loaded", " ".join(plugins))
"""


def publish(cache: Path, repo: str, model_file: Path, manifest: dict[str, object] | None) -> None:
    """Lay a model out in a Hub cache the way Keras uploads it: the archive's members, unzipped."""
    owner, name = repo.split("/")
    root = cache / f"models--{owner}--{name}"
    snapshot = root / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(COMMIT)
    with zipfile.ZipFile(model_file) as archive:
        for member in archive.namelist():
            (snapshot / member).write_bytes(archive.read(member))
    if manifest is not None:
        metadata = json.loads((snapshot / "metadata.json").read_text())
        metadata["layerhub"] = manifest
        (snapshot / "metadata.json").write_text(json.dumps(metadata))


@pytest.mark.slow
def test_hub_locations_load_offline_with_lazy_plugins(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    inputs = keras.Input((3,))
    model = keras.Model(inputs, Scale(gamma_initializer="random_normal")(inputs))
    saved = layerhub.save_model(model, tmp_path / "m.keras")
    publish(cache, "someone/scale", saved, manifest=None)
    absent = json.loads(
        zipfile.ZipFile(saved)
        .read("config.json")
        .decode()
        .replace("layerhub_scale>", "layerhub_gone>")
    )
    gone = tmp_path / "gone.keras"
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(gone, "w") as dst:
        for member in src.namelist():
            data = json.dumps(absent).encode() if member == "config.json" else src.read(member)
            dst.writestr(member, data)
    publish(
        cache,
        "someone/gone",
        gone,
        manifest={
            "objects": {"layerhub_gone>Scale": {"distribution": "layerhub-gone", "version": "1.0"}}
        },
    )
    x = np.random.default_rng(0).normal(size=(2, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "home")}
    args = [str(tmp_path / "x.npy"), str(tmp_path / "y.npy")]

    loaded = run_in_fresh_interpreter(LOAD_FROM_HUB, "hf://someone/scale", *args, env=env)
    assert loaded.stdout.split()[-2:] == ["loaded", "layerhub_scale"]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), model.predict(x, verbose=0), rtol=1e-6)

    missing = run_in_fresh_interpreter(LOAD_FROM_HUB, "hf://someone/gone", *args, env=env)
    assert "MissingPluginError" in missing.stdout
    assert "run: pip install layerhub-gone==1.0" in missing.stdout

    absent_repo = run_in_fresh_interpreter(LOAD_FROM_HUB, "hf://someone/nothere", *args, env=env)
    assert "ModelFileError | cannot fetch hf://someone/nothere" in absent_repo.stdout


def test_hub_locations_resolve_to_the_snapshot_huggingface_hub_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    from layerhub._private.formats.model_file import locate

    calls: list[dict[str, object]] = []

    def snapshot_download(**kwargs: object) -> str:
        calls.append(kwargs)
        if kwargs["repo_id"] == "someone/nothere":
            raise OSError("404 Client Error:\nRepository Not Found")
        (tmp_path / "config.json").write_text("{}")
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    assert locate("hf://someone/scale") == (tmp_path, "keras_dir")
    assert calls == [{"repo_id": "someone/scale", "library_name": "keras"}]
    with pytest.raises(layerhub.ModelFileError) as caught:
        locate("hf://someone/nothere")
    assert str(caught.value) == ("cannot fetch hf://someone/nothere: OSError: 404 Client Error:")
    assert isinstance(caught.value.__cause__, OSError)


def test_hub_locations_without_huggingface_hub_say_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from layerhub._private.formats.model_file import locate

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(layerhub.ModelFileError) as caught:
        locate("hf://someone/scale")
    assert str(caught.value) == (
        "loading hf://someone/scale needs huggingface_hub: pip install huggingface_hub"
    )
