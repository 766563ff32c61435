"""The course notebooks: paired with py:percent twins in ``notebooks/scripts/``, committed
without outputs, and executed top to bottom under the fast preset.

Every ``notebooks/*.ipynb`` is picked up automatically. Execution uses nbclient with a kernel
spec written into a temporary folder that points at *this* interpreter (the project's
virtualenv), so a ``python3`` kernel installed elsewhere on the machine can never be used by
accident. Each notebook runs on its own: in a temporary working directory (nothing is written
into the repository), with ``EFL_PRESET=classroom_fast``, its own empty temporary folder
(``TMPDIR``), its own empty cache (``EFL_CACHE``: models trained by another notebook are
never reused here; ``EFL_WORKDIR`` unset), and a time budget for the whole notebook. After the
kernel shuts down (gracefully, as JupyterLab does), its temporary folder must be empty: no
``efl-*`` run folders, ledgers or keystores left behind.
The notebook's ``# check:`` cells (``efl_toolkit.course.check``) assert what it teaches, so a
broken claim in the library fails the run; a failure names the notebook, the failing cell and
the error. Each notebook's wall time is printed (``-s``) and recorded as a test property.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
SCRIPT_DIR = NOTEBOOK_DIR / "scripts"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
PAIRED_FORMATS = "ipynb,scripts//py:percent"
KERNEL_NAME = "efl-test-venv"
#: Seconds one notebook may take from kernel start to its last cell (fast preset, 2 cores).
NOTEBOOK_BUDGET = 240.0
#: Seconds allowed for a kernel to start.
STARTUP_TIMEOUT = 60
#: Files that belong in notebooks/ (anything else appearing there was written by a notebook).
SOURCE_SUFFIXES = (".ipynb", ".py", ".md", ".toml")


def _ids(paths):
    return [p.stem for p in paths]


def _cell_sources(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


@pytest.fixture(scope="session")
def venv_kernel(tmp_path_factory) -> Path:
    """A folder holding one kernel spec that runs ipykernel on this interpreter."""
    kernels = tmp_path_factory.mktemp("jupyter-data") / "kernels"
    spec_dir = kernels / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"efl tests ({sys.executable})", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return kernels


def kernel_environment(tmp: Path | None = None) -> dict[str, str]:
    """The kernel's environment: ours, with the fast preset forced; with ``tmp``, a private
    temporary folder and an empty cache under it (so the notebook runs on its own, and what is
    left in the folder is its own)."""
    env = {**os.environ, "EFL_PRESET": "classroom_fast",
           "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    env.pop("EFL_WORKDIR", None)
    if tmp is not None:
        (tmp / "tmp").mkdir(exist_ok=True)
        env.update(TMPDIR=str(tmp / "tmp"), EFL_CACHE=str(tmp / "cache"))
    return env


def run_notebook(path: Path, kernels: Path, workdir: Path, budget: float = NOTEBOOK_BUDGET,
                 env: dict[str, str] | None = None):
    """Executes a notebook in ``workdir`` on the kernel spec found in ``kernels`` (environment
    ``env``, default :func:`kernel_environment`); returns ``(executed notebook, seconds)``.
    The kernel is shut down gracefully (a shutdown request, as JupyterLab sends), so its exit
    handlers run.

    Raises:
        AssertionError: (via ``pytest.fail``) naming the notebook, cell and error on failure.
    """
    notebook = nbformat.read(path, as_version=4)
    deadline = time.monotonic() + budget
    current = {"index": None}

    def on_cell_start(cell, cell_index):
        current["index"] = cell_index

    # the kernel spec is looked up only in our folder: no other python3 kernel can be picked
    manager = AsyncKernelManager(kernel_name=KERNEL_NAME,
                                 kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
    client = NotebookClient(
        notebook, km=manager, kernel_name=KERNEL_NAME, startup_timeout=STARTUP_TIMEOUT,
        timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
        interrupt_on_timeout=False, allow_errors=False, record_timing=False,
        resources={"metadata": {"path": str(workdir)}}, on_cell_start=on_cell_start)
    started = time.monotonic()
    try:
        client.execute(env=env or kernel_environment())
    except CellTimeoutError:
        pytest.fail(f"{path.name}: cell #{current['index']} still running when the notebook's "
                    f"{budget:g} s budget ran out:\n{_source_head(notebook, current['index'])}",
                    pytrace=False)
    except CellExecutionError as error:
        pytest.fail(f"{path.name}: cell #{current['index']} raised {error.ename}: "
                    f"{error.evalue}\n--- cell source ---\n"
                    f"{_source_head(notebook, current['index'])}\n--- traceback ---\n{error}",
                    pytrace=False)
    finally:  # nbclient shuts down only kernels it created itself; this one is ours
        if manager.has_kernel:
            run_sync(manager.shutdown_kernel)(now=False)
    return notebook, time.monotonic() - started


def _source_head(notebook, index, lines: int = 12) -> str:
    if index is None:
        return "(before the first cell: the kernel did not start)"
    return "\n".join(notebook.cells[index].source.splitlines()[:lines])


def test_notebooks_exist_and_every_twin_is_paired():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"
    ipynb = {p.stem for p in NOTEBOOKS}
    twins = {p.stem for p in SCRIPT_DIR.glob("*.py")}
    assert twins == ipynb, (f"unpaired notebooks: .py without .ipynb {sorted(twins - ipynb)}, "
                            f".ipynb without .py {sorted(ipynb - twins)} (twins live in "
                            f"{SCRIPT_DIR.relative_to(ROOT)})")
    crowding = sorted(p.name for p in NOTEBOOK_DIR.glob("*.py"))
    assert not crowding, f"{crowding} in {NOTEBOOK_DIR.name}/: .py twins belong in scripts/"
    config = (NOTEBOOK_DIR / "jupytext.toml").read_text()
    assert f'formats = "{PAIRED_FORMATS}"' in config, "jupytext.toml must pair into scripts/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_clean_and_matches_its_twin(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name}: cell #{index} has committed outputs"
            assert cell.execution_count is None, (
                f"{path.name}: cell #{index} has an execution count (clear it before committing)")
    formats = notebook.metadata.get("jupytext", {}).get("formats")
    assert formats == PAIRED_FORMATS, (
        f"{path.name}: jupytext formats metadata is {formats!r}, expected {PAIRED_FORMATS!r}")
    assert notebook.metadata.get("kernelspec", {}).get("name") == "python3", (
        f"{path.name}: kernelspec must be python3")

    twin_path = SCRIPT_DIR / f"{path.stem}.py"
    twin = jupytext.read(twin_path)
    assert twin.metadata.get("jupytext", {}).get("formats") == PAIRED_FORMATS, (
        f"{twin_path.name}: header lacks formats: {PAIRED_FORMATS}")
    ours, theirs = _cell_sources(notebook), _cell_sources(twin)
    assert len(ours) == len(theirs), (f"{path.name} has {len(ours)} cells but its .py twin has "
                                      f"{len(theirs)}: regenerate with jupytext --to ipynb")
    for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a == b, (f"{path.name}: cell #{index} differs from the .py twin "
                        "(the .py is the source: jupytext --sync notebooks/scripts/*.py)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_tells_its_story(path):
    """Opens with what the reader will learn; ends with a summary and exercises."""
    notebook = nbformat.read(path, as_version=4)
    markdown = [c.source.lower() for c in notebook.cells if c.cell_type == "markdown"]
    assert markdown and notebook.cells[0].cell_type == "markdown", (
        f"{path.name}: must open with a markdown cell")
    assert "you will learn" in markdown[0], (
        f"{path.name}: the first cell must say what the reader will learn")
    tail = "\n".join(markdown[-2:])
    assert "## summary" in tail and "## exercises" in tail, (
        f"{path.name}: must end with a '## Summary' and '## Exercises' section")


def test_kernel_is_this_interpreter(venv_kernel, tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os, sys\nprint(sys.executable)\nprint(os.getcwd())\n"
        "print(os.environ['EFL_PRESET'])")])
    path = tmp_path / "probe.ipynb"
    nbformat.write(notebook, path)
    executed, _ = run_notebook(path, venv_kernel, tmp_path, budget=STARTUP_TIMEOUT)
    lines = executed.cells[0].outputs[0].text.split()
    assert lines == [sys.executable, str(tmp_path), "classroom_fast"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_has_check_cells(path):
    """Every notebook asserts what it teaches in at least one marked ``# check:`` cell."""
    notebook = nbformat.read(path, as_version=4)
    checks = [c for c in notebook.cells if c.cell_type == "code"
              and c.source.lstrip().startswith("# check:") and "check(" in c.source]
    assert checks, f"{path.name}: no '# check:' cell calling efl_toolkit.course.check"


def _outputs(executed, kind: str) -> list[str]:
    """Texts of every output of ``kind`` of a notebook: ``"stdout"``, or a MIME type shown with
    ``display`` (``"text/html"``: what ``course.show`` sends in a kernel)."""
    found = []
    for cell in executed.cells:
        for output in cell.get("outputs", []):
            if kind == "stdout" and output.get("name") == "stdout":
                found.append(output["text"])
            elif output.get("output_type") == "display_data" and kind in output.get("data", {}):
                found.append(output["data"][kind])
    return found


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_top_to_bottom(path, venv_kernel, tmp_path, record_property):
    before = sorted(p.name for p in NOTEBOOK_DIR.iterdir())
    workdir = tmp_path / "work"
    workdir.mkdir()
    env = kernel_environment(tmp_path)
    executed, seconds = run_notebook(path, venv_kernel, workdir, env=env)
    print(f"{path.name}: {seconds:.1f} s wall (load {os.getloadavg()[0]:.1f})")
    record_property("seconds", round(seconds, 1))
    code_cells = [c for c in executed.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code_cells), (
        f"{path.name}: not every code cell ran")
    left = sorted(os.listdir(env["TMPDIR"]))
    assert not left, f"{path.name} left {left} in its temporary folder after shutdown"
    passed = "".join(_outputs(executed, "stdout")).count("check passed: ")
    assert passed >= 1, f"{path.name}: no 'check passed:' line in the outputs"
    tables = [h for h in _outputs(executed, "text/html") if "<table" in h]
    assert tables, f"{path.name}: no table rendered as HTML (efl_toolkit.course.show)"
    # (sources other people add to the folder meanwhile are not the notebook's doing)
    written = [name for name in sorted({p.name for p in NOTEBOOK_DIR.iterdir()} - set(before))
               if not name.endswith(SOURCE_SUFFIXES)]
    assert not written, f"{path.name} wrote {written} into {NOTEBOOK_DIR}"


def test_a_failing_cell_is_named(venv_kernel, tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# probe"),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("raise ValueError('institution hospital-b has no data')"),
    ])
    path = tmp_path / "broken.ipynb"
    nbformat.write(notebook, path)
    with pytest.raises(pytest.fail.Exception) as failure:
        run_notebook(path, venv_kernel, tmp_path, budget=STARTUP_TIMEOUT)
    message = str(failure.value)
    assert "broken.ipynb: cell #2 raised ValueError" in message
    assert "hospital-b has no data" in message


def test_a_failing_check_names_its_claim(venv_kernel, tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from efl_toolkit.course import check\n"
        "check(0.02 <= 0.01, 'secure mean within the bound', '0.02 > 0.01')")])
    path = tmp_path / "claim.ipynb"
    nbformat.write(notebook, path)
    with pytest.raises(pytest.fail.Exception) as failure:
        run_notebook(path, venv_kernel, tmp_path, budget=STARTUP_TIMEOUT)
    assert ("raised CheckFailed: check failed: secure mean within the bound (0.02 > 0.01)"
            in str(failure.value))


def test_the_run_folder_goes_with_the_kernel_and_a_stray_folder_is_seen(venv_kernel, tmp_path):
    """A real kernel's course.workdir() (with a ledger-like file) is gone after the graceful
    shutdown; a folder made with tempfile.mkdtemp instead is still there for the check above to
    see."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import tempfile\nfrom efl_toolkit.course import workdir\n"
        "(workdir('ledger') / 'ledger.sqlite').write_bytes(b'x')\n"
        "stray = tempfile.mkdtemp(prefix='efl-07-')\nprint(workdir(), stray)")])
    path = tmp_path / "folders.ipynb"
    nbformat.write(notebook, path)
    env = kernel_environment(tmp_path)
    executed, _ = run_notebook(path, venv_kernel, tmp_path, budget=STARTUP_TIMEOUT, env=env)
    run, stray = executed.cells[0].outputs[0].text.split()
    assert Path(run).parent == Path(env["TMPDIR"]) and not Path(run).exists()
    assert os.listdir(env["TMPDIR"]) == [Path(stray).name]
