"""Ray Data scores a plugin model on two actors whose plugin came from ``layerhub.ray.runtime_env``.

The driver (this process) has no plugin installed. The runtime_env built from the saved file's
manifest installs layerhub-scale from a temporary wheel directory (``--no-index
--find-links``) into the environment Ray makes for its workers. The negative control runs in the
same environment: an actor that loads with plain ``keras.saving.load_model`` fails with "Could
not locate class". On 2 CPUs the actors take half a CPU each and the blocks come straight from
``from_numpy`` (``repartition`` with two whole-CPU actors deadlocks).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ray = pytest.importorskip("ray")

import layerhub.ray  # noqa: E402
from layerhub._private.engines import core_requirements  # noqa: E402

BLOCKS = 8


@pytest.fixture(scope="module")
def cluster(scale_model: Any, wheel_dir: Path) -> Any:
    env = layerhub.ray.runtime_env(scale_model.path, find_links=wheel_dir)
    # Ray's session, with the worker environment cloned from this one (2-3 GB), goes when the
    # tests end; a short path, for Ray's Unix sockets.
    temp_dir = tempfile.mkdtemp(prefix="lh-ray-", dir="/tmp")
    try:
        ray.init(
            num_cpus=2,
            runtime_env=env,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            _temp_dir=temp_dir,
        )
        yield env
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_runtime_env_is_the_manifest_requirements(scale_model: Any, wheel_dir: Path) -> None:
    env = layerhub.ray.runtime_env(scale_model.path, find_links=wheel_dir, env_vars={"A": "1"})
    assert env == {
        "pip": {
            "packages": [
                *core_requirements(),
                f"layerhub-scale=={scale_model.plugin_version}",
            ],
            "pip_install_options": ["--no-index", "--find-links", str(wheel_dir)],
        },
        "env_vars": {"A": "1"},
    }
    online = layerhub.ray.runtime_env(scale_model.path, index_url="https://example.org/simple")
    assert online["pip"]["pip_install_options"] == ["--index-url", "https://example.org/simple"]


def test_without_ray_the_error_names_the_extra(
    scale_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "virtualenv", None)
    with pytest.raises(layerhub.ray.EngineNotInstalledError, match=r"layerhub\[ray\]"):
        layerhub.ray.runtime_env(scale_model.path)


def test_plain_keras_actor_fails_although_the_plugin_is_installed(
    cluster: Any, scale_model: Any
) -> None:
    @ray.remote(num_cpus=0)
    def plugin_version() -> str:
        import importlib.metadata

        return importlib.metadata.version("layerhub-scale")

    # The runtime_env installed the plugin for the workers; the driver still has none.
    assert ray.get(plugin_version.remote()) == scale_model.plugin_version

    @ray.remote(num_cpus=0.5)
    class PlainKeras:
        def __init__(self, path: str) -> None:
            import keras

            self.model = keras.saving.load_model(path)

        def predict(self, x: Any) -> Any:
            return self.model.predict(x, verbose=0)

    actor = PlainKeras.remote(str(scale_model.path))
    with pytest.raises(ray.exceptions.RayActorError, match="Could not locate class 'Scale'"):
        ray.get(actor.predict.remote(scale_model.x), timeout=300)


def test_predictor_on_two_actors_matches_one_process(cluster: Any, scale_model: Any) -> None:
    from ray.data import ActorPoolStrategy, DataContext

    class Tagged(layerhub.ray.Predictor):
        """Predictor, and which process served each batch (defined here: pickled by value)."""

        def __call__(self, batch: Any) -> Any:
            out = super().__call__(batch)
            out["pid"] = np.full(len(out["predictions"]), os.getpid())
            return out

    DataContext.get_current().execution_options.preserve_order = True
    blocks = np.array_split(scale_model.x, BLOCKS)
    dataset = ray.data.from_numpy(blocks).map_batches(
        Tagged,
        fn_constructor_kwargs={"model": str(scale_model.path)},
        compute=ActorPoolStrategy(size=2, max_tasks_in_flight_per_actor=1),
        num_cpus=0.5,
        batch_size=len(blocks[0]),
    )
    rows = dataset.take_all()
    assert len(rows) == len(scale_model.x)
    np.testing.assert_array_equal(np.stack([r["data"] for r in rows]), scale_model.x)
    predictions = np.stack([r["predictions"] for r in rows])
    np.testing.assert_allclose(predictions, scale_model.y, rtol=1e-6, atol=1e-6)
    assert len({r["pid"] for r in rows}) >= 2, "both actors served batches"
    assert os.getpid() not in {r["pid"] for r in rows}
