"""The interactive route in a real browser: JupyterLab started as a user starts it, the toy-world notebook run
through the UI (Run > Run All Cells) by a kernel whose working directory is not the repository root.

Skips when selenium (dev extra) or a Chromium/Chrome with its chromedriver is missing (.ci/run installs them).
"""

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import nbformat
import pytest

from .conftest import REPO_ROOT

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
from selenium.common.exceptions import TimeoutException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

BROWSER = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
DRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        BROWSER is None or DRIVER is None,
        reason="needs chromium, chromium-browser or google-chrome and chromedriver on PATH (Debian: chromium-driver)",
    ),
]
NOTEBOOK = "00_toyworld.ipynb"
SERVER_START_S = 60
PAGE_READY_S = 60
RUN_ALL_S = 180

# What JupyterLab renders for an exception (and for text on stderr): an output of this mime type.
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\s*[A-Za-z_][\w.]*(Error|Exception)(:|\s*$)", re.M)

# One call of the page for the whole state the waits and assertions look at.
PAGE_STATE_JS = """
const text = (e) => (e ? e.textContent.trim() : null);
const cells = Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell'));
const outputs = Array.from(document.querySelectorAll('.jp-Notebook .jp-OutputArea-output'));
return {
  prompts: cells.map((c) => text(c.querySelector('.jp-InputArea-prompt'))),
  kernel: (document.querySelector('.jp-Notebook-ExecutionIndicator') || {dataset: {}}).dataset.status || null,
  kernelName: text(document.querySelector('.jp-KernelName')),
  dialogs: Array.from(document.querySelectorAll('.jp-Dialog')).map(text),
  stderr: Array.from(document.querySelectorAll(arguments[0])).map((e) => e.textContent),
  outputs: outputs.map((e) => [e.getAttribute("data-mime-type"), e.textContent]),
  images: Array.from(document.querySelectorAll('.jp-OutputArea-output img')).map((i) => [i.complete, i.naturalWidth]),
};
"""


def sandbox(tmp_path):
    """``lab/notebooks/00_toyworld.ipynb``: a copy whose parameters cell keeps the relative smoke params path
    (the kernel starts in lab/notebooks/, not the repository root) and writes into ``tmp_path/out``."""
    notebooks = tmp_path / "lab" / "notebooks"
    notebooks.mkdir(parents=True)
    nb = nbformat.read(REPO_ROOT / "notebooks" / NOTEBOOK, as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    cell.source = f'params_file = "params/smoke/00_toyworld.yaml"\noverrides = ["output_dir={tmp_path / "out"}"]'
    nbformat.write(nb, notebooks / NOTEBOOK)
    return tmp_path / "lab", sum(c.cell_type == "code" for c in nb.cells)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path, n=4000):
    return path.read_text(errors="replace")[-n:] if path.exists() else "(no log)"


@pytest.fixture
def jupyter_lab(tmp_path):
    """``jupyter lab`` on a free port with a random token, its config, data and runtime folders in tmp_path."""
    root, n_code = sandbox(tmp_path)
    port, token = free_port(), secrets.token_hex(16)
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "IPYTHON", "XDG_"))}
    env |= {
        "HOME": str(home),
        "JUPYTER_CONFIG_DIR": str(home / "jupyter-config"),
        "JUPYTER_DATA_DIR": str(home / "jupyter-data"),
        "JUPYTER_RUNTIME_DIR": str(home / "jupyter-runtime"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    # The "Would you like to get notified about official Jupyter news?" toast, answered "no".
    settings = home / "jupyter-config/lab/user-settings/@jupyterlab/apputils-extension/notification.jupyterlab-settings"
    settings.parent.mkdir(parents=True)
    settings.write_text('{"fetchNews": "false"}')
    jupyter = os.path.join(os.path.dirname(sys.executable), "jupyter")
    cmd = [
        jupyter,
        "lab",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
        # nothing from the network: news feed, update check, PyPI extension listing
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    if os.geteuid() == 0:
        cmd.append("--allow-root")  # CI containers; a user would pass it too
    log = tmp_path / "jupyter.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer on {base} (exit code {server.poll()}):\n{log_tail(log)}")
            time.sleep(0.3)
        yield base, token, n_code, log
    finally:
        server.terminate()  # SIGTERM: the server shuts its kernels down, then exits
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={tmp_path / 'chrome-profile'}")
    # An explicit driver path: Selenium Manager never runs (it would try to download one).
    service = Service(executable_path=DRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def page_state(driver):
    return driver.execute_script(PAGE_STATE_JS, STDERR)


def report(driver, tmp_path, log, why):
    """``why`` with a screenshot path, the text of every output area and the end of the server log."""
    shot = tmp_path / "screenshot.png"
    try:
        show_first = "const e = document.querySelector(arguments[0]); if (e) e.scrollIntoView({block: 'center'});"
        driver.execute_script(show_first, STDERR)  # the first stderr/error output, pink, in the screenshot
        driver.save_screenshot(str(shot))
        state = page_state(driver)
    except WebDriverException as e:
        return f"{why}\n(browser unusable: {e.msg})\nserver log:\n{log_tail(log)}"
    outputs = "\n".join(f"--- output {i} [{mime}]\n{text}" for i, (mime, text) in enumerate(state["outputs"]))
    fields = {k: state[k] for k in ("prompts", "kernel", "kernelName", "dialogs", "images")}
    return f"{why}\nscreenshot: {shot}\npage: {fields}\noutputs:\n{outputs}\nserver log (end):\n{log_tail(log)}"


def wait_for(driver, timeout, condition, tmp_path, log, why):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.25).until(condition)
    except TimeoutException:
        pytest.fail(report(driver, tmp_path, log, f"{why} (after {timeout} s)"), pytrace=False)


def click_menu(driver, menu, item):
    """Open menubar ``menu`` and click its ``item`` (JupyterLab 4: Lumino menus)."""
    bar = driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item")
    (top,) = [e for e in bar if e.find_element(By.CSS_SELECTOR, ".lm-MenuBar-itemLabel").text == menu]
    top.click()
    xpath = f"//div[contains(@class,'lm-Menu-itemLabel') and normalize-space()='{item}']/.."
    shown = lambda d: next((e for e in d.find_elements(By.XPATH, xpath) if e.is_displayed()), None)  # noqa: E731
    WebDriverWait(driver, 10).until(shown).click()


def accept_kernel_dialog(driver):
    """Accept a "Select Kernel" dialog (its default is the notebook's kernel) if one is open."""
    for dialog in driver.find_elements(By.CSS_SELECTOR, ".jp-Dialog"):
        if "Select Kernel" in dialog.text:
            dialog.find_element(By.CSS_SELECTOR, ".jp-mod-accept").click()


def test_toyworld_notebook_runs_all_cells_in_jupyterlab_from_another_folder(jupyter_lab, browser, tmp_path):
    base, token, n_code, log = jupyter_lab
    driver = browser
    driver.get(f"{base}/lab/tree/notebooks/{NOTEBOOK}?token={token}")

    def ready(d):
        accept_kernel_dialog(d)
        s = page_state(d)
        return len(s["prompts"]) == n_code and s["kernel"] == "idle"

    wait_for(driver, PAGE_READY_S, ready, tmp_path, log, f"the notebook with {n_code} code cells and an idle kernel")

    click_menu(driver, "Run", "Run All Cells")

    def finished(d):
        accept_kernel_dialog(d)
        s = page_state(d)
        s["done"] = all(re.fullmatch(r"\[\d+\]:", p or "") for p in s["prompts"]) and s["kernel"] == "idle"
        aborted = any(TRACEBACK.search(text) for text in s["stderr"])  # an exception stops Run All: stop waiting
        return s if s["done"] or aborted else False

    state = wait_for(driver, RUN_ALL_S, finished, tmp_path, log, "every code cell executed ([n]:) and the kernel idle")

    problems = []
    if state["stderr"]:
        problems.append(f"{len(state['stderr'])} stderr/error output(s): {state['stderr']}")
    if any(TRACEBACK.search(text) for _, text in state["outputs"]):
        problems.append("a traceback or exception in the outputs")
    if not state["done"]:
        problems.append(f"Run All Cells stopped at an exception (prompts {state['prompts']})")
    else:
        if not any(complete and width > 0 for complete, width in state["images"]):
            problems.append(f"no rendered figure (images [complete, naturalWidth]: {state['images']})")
        if not (tmp_path / "out" / "toyworld" / "train.json").exists():
            problems.append(f"no {tmp_path / 'out/toyworld/train.json'} (the smoke params were not used)")
    assert not problems, report(driver, tmp_path, log, "; ".join(problems))
