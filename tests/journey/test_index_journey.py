"""The user's journey through a package index, for real: run by ``tox -e index`` only.

The main environment ignores tests/journey. Every distribution,
the core and each plugin, is built as an sdist and a wheel (the wheel from the sdist, as an index
would rebuild it), served by a pypiserver this session starts on a free port, and installed from
there by ``pip`` in a virtual environment made with ``python -m venv``. Everything else (keras,
the backend) comes from the index pip is normally configured with, via ``--extra-index-url``.

The saving process is this test process (layerhub, layerhub-pam and layerhub-scale installed
as wheels by tox, JAX backend); the user is a fresh virtual environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.parser import HeaderParser
from html.parser import HTMLParser
from importlib import metadata
from pathlib import Path

import keras
import numpy as np
import pytest

import layerhub

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file())
PROJECTS = [ROOT, *PLUGINS]
# The user's backend, the same release as the saving process', so that predictions compare
# exactly. JAX, not TensorFlow: it installs in seconds, and the journey is about packaging.
BACKEND = ["jax==" + metadata.version("jax"), "jaxlib==" + metadata.version("jaxlib")]


def run(
    args: list[str],
    *,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """``args`` with their output captured; on failure the assertion shows it."""
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {done.returncode}\n--- stdout ---\n{done.stdout[-4000:]}"
            f"\n--- stderr ---\n{done.stderr[-4000:]}"
        )
    return done


def _build(project: Path, out: Path) -> None:
    # Without isolation: hatchling is in the test environment, and isolation would fetch it
    # eight times. The wheel is built from the sdist, so a file missing from the sdist shows.
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(project)])


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory the index serves: an sdist and a wheel of the core and of every plugin."""
    out = tmp_path_factory.mktemp("packages")
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda p: _build(p, out), PROJECTS))
    return out


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Index:
    """The local index: its URL and the log of what it served."""

    url: str
    log: Path

    def served(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@pytest.fixture(scope="session")
def index(packages: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    log = tmp_path_factory.mktemp("pypiserver") / "access.log"
    port = _free_port()
    url = f"http://127.0.0.1:{port}/simple/"
    with log.open("w") as sink:
        server = subprocess.Popen(
            # No fallback: a name the index lacks is not redirected anywhere, so every layerhub
            # distribution provably comes from this index.
            [
                sys.executable,
                "-m",
                "pypiserver",
                "run",
                "-i",
                "127.0.0.1",
                "-p",
                str(port),
                "--disable-fallback",
                "-v",
                str(packages),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"pypiserver did not start:\n{log.read_text()}") from None
                time.sleep(0.3)
        yield Index(url, log)
    finally:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(10)
        if server.poll() is None:
            server.kill()


def _pip_config(key: str) -> list[str]:
    got = run([sys.executable, "-m", "pip", "config", "get", key], check=False)
    return got.stdout.split() if got.returncode == 0 else []


def normal_indexes() -> list[str]:
    """The indexes pip is normally configured with, to be given as ``--extra-index-url``."""
    main = os.environ.get("PIP_INDEX_URL", "").split() or _pip_config("global.index-url")
    extra = os.environ.get("PIP_EXTRA_INDEX_URL", "").split() or _pip_config(
        "global.extra-index-url"
    )
    return [*(main or ["https://pypi.org/simple"]), *extra]


@dataclass
class Venv:
    """A virtual environment whose pip installs from the local index first."""

    path: Path
    env: dict[str, str]

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    def pip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([self.python, "-m", "pip", *args], env=self.env, check=check)

    def python_code(
        self, code: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run([self.python, "-c", code, *args], env=self.env, check=check)

    def shell(self, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``command`` as a user types it, with this venv activated."""
        return run(["bash", "-c", command], env=self.env, check=check)

    def installed(self) -> dict[str, str]:
        listed = self.pip("list", "--format=freeze").stdout.splitlines()
        pairs = [line.split("==", 1) for line in listed if "==" in line]
        return {_canonical(name): version for name, version in pairs}


def _canonical(name: str) -> str:
    # PEP 503: pip lists tensorflow-cpu as tensorflow_cpu
    return re.sub(r"[-_.]+", "-", name).lower()


def make_venv(where: Path, index: Index, backend: str | None) -> Venv:
    run([sys.executable, "-m", "venv", str(where)])
    env = {
        key: value
        for key, value in os.environ.items()
        # nothing of the test environment leaks in: not its packages, not its backend
        if key not in {"PYTHONPATH", "VIRTUAL_ENV", "KERAS_BACKEND", "PYTHONHOME"}
    }
    env.update(
        PATH=f"{where / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(where),
        PIP_INDEX_URL=index.url,
        PIP_EXTRA_INDEX_URL=" ".join(normal_indexes()),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        # no ~/.keras/keras.json of the machine decides the backend
        KERAS_HOME=str(where / "keras-home"),
    )
    if backend is not None:
        env["KERAS_BACKEND"] = backend
    return Venv(where, env)


@pytest.fixture(scope="session")
def user_venv(index: Index, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A fresh venv with the user's backend (JAX), then ``pip install layerhub`` alone."""
    venv = make_venv(tmp_path_factory.mktemp("user") / "venv", index, "jax")
    venv.pip("install", "-q", *BACKEND)
    venv.pip("install", "-q", "layerhub")
    return venv


# Loads a model, predicts on the saved inputs and writes the outputs; a MissingPluginError is
# printed as the user sees it (type and message) and exits 3.
_LOAD = """
import sys, numpy as np, layerhub
try:
    model = layerhub.load_model(sys.argv[1])
except layerhub.MissingPluginError as error:
    print(type(error).__name__ + ": " + str(error))
    sys.exit(3)
np.save(sys.argv[3], np.asarray(model.predict(np.load(sys.argv[2]), verbose=0)))
"""


def _saved(tmp_path: Path, name: str, *layers: keras.layers.Layer) -> tuple[Path, Path, Path]:
    """The model file, its inputs and the saving process' predictions on them."""
    keras.utils.set_random_seed(7)
    inputs = keras.Input((6, 6, 8))
    x = inputs
    for layer in layers:
        x = layer(x)
    model = keras.Model(inputs, x)
    data = np.random.default_rng(3).normal(size=(4, 6, 6, 8)).astype("float32")
    path = layerhub.save_model(model, tmp_path / name)
    np.save(tmp_path / "inputs.npy", data)
    np.save(tmp_path / "expected.npy", np.asarray(model.predict(data, verbose=0)))
    return Path(path), tmp_path / "inputs.npy", tmp_path / "expected.npy"


def _load(venv: Venv, model: Path, inputs: Path, out: Path, check: bool = True) -> str:
    done = venv.python_code(_LOAD, str(model), str(inputs), str(out), check=False)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def _pam() -> keras.layers.Layer:
    from layerhub_pam import PAM

    # gamma 1, not the identity-at-start 0, so the attention shows in the outputs
    return PAM(reduction=2, gamma_initializer="ones")


def test_the_pip_line_of_missing_plugin_error_installs_the_plugin_from_the_index(
    user_venv: Venv, index: Index, tmp_path: Path
) -> None:
    model, inputs, expected = _saved(tmp_path, "needs-pam.keras", _pam())
    # `pip install layerhub` brought the core and Keras, and no plugin
    installed = user_venv.installed()
    assert installed["layerhub"] == "0.1.0"
    assert "keras" in installed
    assert not [name for name in installed if name.startswith("layerhub-")]

    said = _load(user_venv, model, inputs, tmp_path / "got.npy", check=False)
    assert said.startswith("MissingPluginError: the model needs layerhub_pam>PAM"), said
    printed = re.search(r"run: (pip install [^;\n]+)", said)
    assert printed is not None, said
    command = printed.group(1)
    assert shlex.split(command) == ["pip", "install", "layerhub-pam==0.1.0"]

    # As printed, in the user's shell; PIP_INDEX_URL points pip at the local index.
    user_venv.shell(command)
    assert "/packages/layerhub_pam-0.1.0-py3-none-any.whl" in index.served()

    _load(user_venv, model, inputs, tmp_path / "got.npy")
    np.testing.assert_allclose(
        np.load(tmp_path / "got.npy"), np.load(expected), rtol=1e-6, atol=1e-6
    )


def test_the_output_of_layerhub_requirements_installs(
    user_venv: Venv, index: Index, tmp_path: Path
) -> None:
    from layerhub_scale import Scale

    scale = Scale(gamma_initializer="random_normal", beta_initializer="random_normal")
    model, inputs, expected = _saved(tmp_path, "two-plugins.keras", _pam(), scale)
    user_venv.pip("uninstall", "-y", "-q", "layerhub-scale", check=False)

    listed = user_venv.shell(f"layerhub requirements {shlex.quote(str(model))}").stdout
    lines = sorted(line for line in listed.splitlines() if line.strip())
    assert lines == ["layerhub-pam==0.1.0", "layerhub-scale==0.1.0"]
    (tmp_path / "requirements.txt").write_text(listed, encoding="utf-8")
    user_venv.pip("install", "-q", "-r", str(tmp_path / "requirements.txt"))
    assert "/packages/layerhub_scale-0.1.0-py3-none-any.whl" in index.served()

    _load(user_venv, model, inputs, tmp_path / "got.npy")
    np.testing.assert_allclose(
        np.load(tmp_path / "got.npy"), np.load(expected), rtol=1e-6, atol=1e-6
    )


_IMPORT = "import layerhub_pam; print(layerhub_pam.PAM.__name__)"


def test_a_plugin_installed_alone_says_how_to_get_a_backend_and_its_extra_brings_one(
    index: Index, tmp_path: Path
) -> None:
    # No backend installed and none configured: Keras' default is TensorFlow.
    venv = make_venv(tmp_path / "venv", index, backend=None)
    venv.pip("install", "-q", "layerhub-pam")
    installed = venv.installed()
    assert {"layerhub", "layerhub-pam", "keras"} <= set(installed)
    assert "tensorflow" not in installed
    assert "tensorflow-cpu" not in installed
    bare = venv.python_code(_IMPORT, check=False)
    assert bare.returncode != 0
    last = bare.stderr.strip().splitlines()[-1]
    # The user learns the missing piece is TensorFlow, the backend Keras defaults to.
    assert "tensorflow" in last, bare.stderr

    # The plugin's own extra brings that backend. Resolved, not installed: unpacking TensorFlow
    # takes most of a minute, and every other environment imports the plugins with it.
    report = tmp_path / "report.json"
    venv.pip("install", "-q", "--dry-run", "--report", str(report), "layerhub-pam[tensorflow]")
    brought = {
        _canonical(item["metadata"]["name"]) for item in json.loads(report.read_text())["install"]
    }
    assert brought & {"tensorflow", "tensorflow-cpu"}, brought


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"a": "href", "img": "src"}.get(tag)
        self.links += [value for name, value in attrs if name == wanted and value]


def _wheel_metadata(wheel: Path) -> tuple[dict[str, str], str]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        message = HeaderParser().parsestr(archive.read(name).decode("utf-8"))
    return dict(message.items()), str(message.get_payload())


def _plugin_wheels(packages: Path) -> list[Path]:
    return sorted(packages.glob("layerhub_*-py3-none-any.whl"))


def test_every_plugin_and_its_sdist_are_on_the_index(index: Index, packages: Path) -> None:
    plugins = [p.name for p in PLUGINS]
    assert len(_plugin_wheels(packages)) == len(plugins)
    assert len(list(packages.glob("*.tar.gz"))) == len(plugins) + 1
    for name in ["layerhub", *plugins]:
        with urllib.request.urlopen(f"{index.url}{name}/", timeout=10) as page:
            listing = page.read().decode()
        stem = name.replace("-", "_")
        assert f"{stem}-0.1.0-py3-none-any.whl" in listing, name
        assert f"{stem}-0.1.0.tar.gz" in listing, name


@pytest.mark.parametrize(
    "wheel_name",
    [
        "layerhub_fm",
        "layerhub_functions",
        "layerhub_l2norm",
        "layerhub_locally_connected",
        "layerhub_mylayer",
        "layerhub_pam",
        "layerhub_scale",
    ],
)
def test_a_plugins_readme_renders_on_an_index_without_relative_links(
    packages: Path, wheel_name: str
) -> None:
    from readme_renderer.markdown import render

    (wheel,) = packages.glob(f"{wheel_name}-*.whl")
    headers, description = _wheel_metadata(wheel)
    assert headers["Description-Content-Type"].startswith("text/markdown")
    html = render(description, variant="GFM")
    assert html, f"{wheel.name}: the long description does not render"
    links = _Links()
    links.feed(html)
    # On an index page a relative link points into the index, where nothing of the repo is.
    dead = [link for link in links.links if not re.match(r"(https?:|mailto:|#)", link)]
    assert dead == [], f"{wheel.name}: relative links in the README: {dead}"


def test_a_relative_link_is_caught_by_the_readme_check() -> None:
    # The check above on a README that has one: it must not pass everything.
    from readme_renderer.markdown import render

    links = _Links()
    links.feed(render("see [the docs](docs/index.md) and ![x](img.png)", variant="GFM") or "")
    assert links.links == ["docs/index.md", "img.png"]
