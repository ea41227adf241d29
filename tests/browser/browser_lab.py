"""JupyterLab and Chromium, driven the way a learner uses the course: the browser tests (tests/browser) and the
gallery script (tests/browser/make_gallery.py) share this code.

A ``Lab`` is the course's own JupyterLab (the .venv's) on a free 127.0.0.1 port with a token, with Jupyter news
and update checks off, throw-away config, data, runtime and settings directories, and a copy of the notebooks
(so nothing the browser saves lands in the repository). ``browser_context`` starts Debian's chromium through
Playwright's ``executable_path`` (Playwright's own browser download is never used: it does not work offline).
``run_notebook`` opens a notebook, runs all its cells, and records every request, console error and output.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium"))  # Debian's; another path if it lives elsewhere
# Without the background-networking flags the closed network refuses chromium's own connections (and waits).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LAPTOP = {"width": 1366, "height": 768}  # a learner's laptop, JupyterLab's default layout (file browser open)
PROJECTOR = {"width": 1920, "height": 1080}  # a classroom's projector: figures must not be blown up there either
LOCAL = re.compile(r"^(https?|wss?)://(127\.0\.0\.1|localhost)(:\d+)?/")
NOT_LOCAL = re.compile(r"^(?!(https?|wss?)://(127\.0\.0\.1|localhost)(:\d+)?/)(https?|wss?)://")


def course_script():
    """course.py, the learner's entry point, as a module: the lab is started with its flags."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("course_script", ROOT / "course.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (Debian: apt-get install chromium; .ci/run installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is missing (python3 course.py test installs the test extras)"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Lab:
    """The course's JupyterLab, started on a free local port with a token, in throw-away directories."""

    def __init__(self, python: str = sys.executable):
        self.scratch = Path(tempfile.mkdtemp(prefix="course-browser-"))
        self.root = self.scratch / "course"
        for folder in ("notebooks", "exercises", "solutions"):
            shutil.copytree(ROOT / folder, self.root / folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        self.port, self.token = free_port(), os.urandom(16).hex()
        inherited = {name: value for name, value in os.environ.items() if name != "MPLBACKEND"}  # tests use Agg
        self.env = {**inherited, "PYTHONHASHSEED": "0",
                    **{name: str(self.scratch / folder) for name, folder in (
                        ("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                        ("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                        ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"), ("IPYTHONDIR", "ipython"))}}
        course_script().quiet_lab(Path(sys.prefix))  # what `course.py lab` does to the .venv: no news toast
        command = [python, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
                   f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
                   f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
                   *course_script().QUIET_LAB,  # no news, no update checks: what `course.py lab` passes
                   "--LabApp.expose_app_in_browser=True"]  # window.jupyterapp: the tests run its commands
        self.log = open(self.scratch / "server.log", "w")
        self.process = subprocess.Popen(command, cwd=self.root, env=self.env, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_until_up()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(self.url(f"api/{path}"), method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def wait_until_up(self, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.process.returncode}: {self.server_log()}")
            try:
                self.api("status")
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"JupyterLab did not answer within {seconds:.0f} s: {self.server_log()}")

    def server_log(self) -> str:
        self.log.flush()
        return (self.scratch / "server.log").read_text()[-3000:]

    def kernel(self, kernel_id: str):
        """A client of the kernel the browser runs, through its connection file (the browser is not involved)."""
        from jupyter_client import BlockingKernelClient

        client = BlockingKernelClient()
        client.load_connection_file(str(Path(self.env["JUPYTER_RUNTIME_DIR"]) / f"kernel-{kernel_id}.json"))
        client.start_channels()
        client.wait_for_ready(timeout=30)
        return client

    def evaluate(self, kernel_id: str, expression: str):
        """The value of a JSON-producing Python expression in the notebook's kernel, without running a cell."""
        client = self.kernel(kernel_id)
        try:
            reply = client.execute_interactive("", silent=True, store_history=False,
                                               user_expressions={"value": expression}, timeout=60)
        finally:
            client.stop_channels()
        result = reply["content"]["user_expressions"]["value"]
        if result["status"] != "ok":
            raise RuntimeError(f"{expression!r} failed in the kernel: {result.get('ename')}: {result.get('evalue')}")
        return json.loads(eval(result["data"]["text/plain"]))  # the repr of the JSON string

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


def browser_context(playwright, user_data_dir: str):
    """Debian's chromium, headless, in a fresh profile, at a laptop's size; requests off this machine are
    aborted (and recorded by each page's ``requests``)."""
    context = playwright.chromium.launch_persistent_context(
        user_data_dir, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS, viewport=LAPTOP)
    context.route(NOT_LOCAL, lambda route: route.abort())  # only non-local URLs go through Python: fast
    return context


class Learner:
    """One browser tab on the lab, opened once with a reset workspace; notebooks are opened and closed in it
    (a page load per notebook would cost JupyterLab's start-up each time). It records every request the page
    makes and every console error."""

    def __init__(self, context, lab: Lab):
        self.lab, self.page = lab, context.new_page()
        self.requests, self.console_errors = [], []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("console", lambda message: message.type == "error" and self.console_errors.append(message.text))
        self.page.on("pageerror", lambda error: self.console_errors.append(f"page error: {error}"))
        self.page.goto(lab.url(f"lab?reset&token={lab.token}"))
        self.page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget",
                                    timeout=120_000)


@dataclass
class Run:
    """What a notebook did in the browser: its page, kernel, time to Run All, and everything recorded."""
    page: object
    kernel_id: str
    seconds: float
    ran_all: bool
    requests: list = field(default_factory=list)
    console_errors: list = field(default_factory=list)
    outputs: list = field(default_factory=list)  # per cell: {"type", "grade", "text", "errors"}


def run_notebook(learner: Learner, path: str, timeout_s: float = 240) -> Run:
    """Open ``path`` (relative to the lab's root), Run All, and wait for the kernel to be idle and the widgets drawn."""
    page = learner.page
    learner.requests.clear(), learner.console_errors.clear()
    page.evaluate(f"() => {{ window.jupyterapp.commands.execute('docmanager:open', {{path: {json.dumps(path)}}}); }}")
    page.wait_for_function(f"""() => {{
        const panel = window.jupyterapp.shell.currentWidget;
        const kernel = panel && panel.sessionContext && panel.sessionContext.session &&
                       panel.sessionContext.session.kernel;
        return panel.context && panel.context.path === {json.dumps(path)} && kernel && kernel.status === 'idle';
    }}""", timeout=120_000)
    start = time.perf_counter()
    page.evaluate("""() => { window.courseRanAll = undefined;
        window.jupyterapp.commands.execute('notebook:run-all-cells').then(ok => { window.courseRanAll = ok; }); }""")
    page.wait_for_function("""() => {
        const panel = window.jupyterapp.shell.currentWidget;
        const executed = panel.content.widgets.every(cell => cell.model.type !== 'code' ||
            !cell.model.sharedModel.source.trim() || cell.model.executionCount !== null);
        return window.courseRanAll !== undefined && (executed || window.courseRanAll === false) &&
               panel.sessionContext.session.kernel.status === 'idle'; }""", timeout=timeout_s * 1000, polling=100)
    seconds = time.perf_counter() - start
    page.wait_for_function("() => !document.body.textContent.includes('Loading widget...')", timeout=30_000)
    kernel_id = page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.id")
    # textContent, not innerText: JupyterLab skips rendering cells off screen, and innerText of those is empty
    outputs = page.evaluate("""() => window.jupyterapp.shell.currentWidget.content.widgets.map(cell => ({
        type: cell.model.type,
        grade: ((cell.model.getMetadata('nbgrader') || {}).grade) === true,
        text: cell.outputArea ? cell.outputArea.node.textContent : '',
        errors: cell.model.type === 'code' ? cell.model.outputs.toJSON().filter(o => o.output_type === 'error')
                                                  .map(o => o.ename + ': ' + o.evalue) : [] }))""")
    return Run(page, kernel_id, seconds, page.evaluate("() => window.courseRanAll"), learner.requests,
               learner.console_errors, outputs)


def close(run: Run) -> None:
    """Shut the notebook's kernel down (it would hold memory and a core) and close the notebook unsaved."""
    run.page.evaluate("""async () => {
        const panel = window.jupyterapp.shell.currentWidget;
        await panel.sessionContext.shutdown();
        panel.context.model.dirty = false;  // no "save changes?" dialog: the copy is thrown away anyway
        panel.dispose();
    }""")


def widget_errors(run: Run) -> list[str]:
    text = run.page.evaluate("() => document.body.textContent")
    markers = ("Error displaying widget", "model not found", "Loading widget...", "Jupyter news")  # news: a toast
    return [marker for marker in markers if marker in text]


def non_local(run: Run) -> list[str]:
    return [url for url in run.requests if not LOCAL.match(url) and not url.startswith(("data:", "blob:"))]


# The explorers: each is an ipywidgets VBox of a row of controls above an Image (course_lib/widgets/figures.py).
EXPLORERS = ".widget-vbox:has(> .widget-hbox):has(> img.widget-image)"

MEASURE = """explorer => {
    const area = explorer.closest('.jp-OutputArea-output') || explorer.parentElement;
    const right = area.getBoundingClientRect().right;
    const img = explorer.querySelector(':scope > img.widget-image');
    const shown = img.getBoundingClientRect().width;
    return {
        tracks: [...explorer.querySelectorAll('.slider-container')].map(track => ({
            label: track.parentElement.querySelector('.widget-label').innerText,
            width: track.getBoundingClientRect().width })),
        truncated: [...explorer.querySelectorAll('.widget-label, button, select, .widget-readout')]
            .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.innerText || e.value),
        overflowing: [...explorer.querySelectorAll(':scope > .widget-hbox > *')]
            .filter(e => e.getBoundingClientRect().right > right + 1).map(e => e.innerText),
        image: {natural: img.naturalWidth, shown: shown, scale: shown / img.naturalWidth},
        height: explorer.getBoundingClientRect().height,
    };
}"""

WATCH_IMAGE = """explorer => {
    const img = explorer.querySelector(':scope > img.widget-image');
    window.courseImageChanged = null;
    if (window.courseObserver) window.courseObserver.disconnect();
    window.courseObserver = new MutationObserver(() => {
        if (window.courseImageChanged === null) window.courseImageChanged = performance.now(); });
    window.courseObserver.observe(img, {attributes: true, attributeFilter: ['src']});
    return performance.now();
}"""


def explorers(run: Run) -> list:
    return run.page.locator(EXPLORERS).all()


def measure(explorer) -> dict:
    """Widths of slider tracks, cut-off texts, controls past the output's edge, and the figure's scale."""
    explorer.scroll_into_view_if_needed()
    return explorer.evaluate(MEASURE)


def controls(explorer) -> list:
    return explorer.locator(":scope > .widget-hbox > *").all()


def use(control) -> str:
    """Change a control the way a learner does: arrow key on a slider, select on a dropdown, click on buttons."""
    handle = control.locator(".noUi-handle").first
    if handle.count():
        at_end = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
        key = "ArrowLeft" if at_end else "ArrowRight"
        handle.focus()
        handle.press(key)
        return f"{key} on slider '{label(control)}'"
    select = control.locator("select")
    if select.count():
        options = select.locator("option").all()
        current = select.evaluate("s => s.selectedIndex")
        choice = options[(current + 1) % len(options)].get_attribute("value")
        select.select_option(choice)
        return f"select on dropdown '{label(control)}'"
    buttons = control.locator("button:not(.mod-active)")
    if buttons.count():
        text = buttons.first.inner_text()
        buttons.first.click()
        return f"click on '{text}'"
    box = control.locator("input[type=checkbox]")
    if box.count():
        box.click()
        return f"click on checkbox '{label(control)}'"
    raise AssertionError(f"no way to use this control: {control.inner_html()[:200]}")


def label(control) -> str:
    """A control's description: a checkbox shows it beside the box, the others before the control."""
    for selector in (".widget-label-basic", ".widget-label"):
        labels = control.locator(selector)
        if labels.count() and labels.first.inner_text().strip("\u200b "):
            return labels.first.inner_text()
    return "?"


def latency(run: Run, explorer, control, timeout_ms: float = 15_000) -> tuple[str, float | None]:
    """Use ``control``; seconds from the input to the explorer's new image (None if the image never changed)."""
    start = explorer.evaluate(WATCH_IMAGE)
    action = use(control)
    try:
        run.page.wait_for_function("() => window.courseImageChanged !== null", timeout=timeout_ms, polling=10)
    except Exception:  # Playwright's TimeoutError: the picture did not change
        return action, None
    return action, (run.page.evaluate("() => window.courseImageChanged") - start) / 1000


STATE = ("__import__('json').dumps([{'start': box.start, 'now': {name: control.value for name, control in "
         "box.controls.items()}} for box in {id(box): box for box in list(globals().values()) if hasattr(box, "
         "'start') and hasattr(box, 'controls') and hasattr(box, 'draw')}.values()], default=list)")  # Out[n], _ too


def explorer_states(lab: Lab, run: Run) -> list[dict]:
    """Each explorer's starting state (recorded by the builder from the lesson module's defaults) and its state
    now, read in the notebook's kernel."""
    return lab.evaluate(run.kernel_id, STATE)


def save_screenshot(explorer, path: Path) -> int:
    """A screenshot of one explorer as a small PNG (a palette of 256 colours is plenty for plots); its bytes."""
    import io

    from PIL import Image

    explorer.scroll_into_view_if_needed()
    picture = Image.open(io.BytesIO(explorer.screenshot())).convert("RGB")
    picture.quantize(colors=256).save(path, optimize=True)
    return path.stat().st_size
