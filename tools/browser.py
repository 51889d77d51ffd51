"""Every notebook run in JupyterLab, in a real headless Chromium, and checked as a learner sees it.

    python -m tools.browser [--chromium /usr/bin/chromium] [--timeout 600] [NOTEBOOK ...]

(``python3.11 dev.py test-browser`` sets up tiny mode, a fresh cache and the browser, then runs
this.) One JupyterLab server (127.0.0.1, a free port, a random token, its own config, data,
runtime, settings and workspace folders under ``build/browser/``) and one browser serve all
notebooks. Each notebook is copied to ``build/browser/lab/`` (so the run never writes into
``notebooks/``), opened, run with JupyterLab's own ``notebook:run-all-cells``, waited on until the
kernel is idle and no cell is queued or running, then checked by ``tools.browser_checks``: no
error output, every widget drawn as a widget, every figure drawn as an image. A full-length
screenshot goes to ``build/browser/NAME.png``, the executed notebook to ``build/browser/lab/``,
the snapshot the checks read to ``build/browser/NAME.json``.

Interaction: a code cell whose metadata has a ``"browser"`` list is driven after the run, step by
step, in that cell's output area::

    "metadata": {"browser": [{"type": "a dog", "into": "input", "press": "Enter"},
                             {"expect": "dog"}]}

``type``: text typed key by key into the first element matching ``into`` (CSS, default
``input, textarea``) inside the cell's outputs; ``press``: a key after typing (e.g. ``Enter``);
``expect``: text that must appear in the cell's outputs within ``timeout`` seconds (default 60).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tools import browser_checks

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
OUT = ROOT / "build" / "browser"
VIEWPORT = {"width": 1280, "height": 900}
# Chromium does not paint a page taller than this in one screenshot.
MAX_SHOT_PX = 30000

SETTINGS = {
    # Render every cell (JupyterLab 4 only renders the cells on screen by default), so that the
    # checks see all outputs and the screenshot shows the whole notebook.
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    # No news or update checks (no internet here, and no pop-up over the notebook).
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
}

# Runs in the page: the state of the current notebook, for polling and for the checks.
STATE_JS = """
() => {
  const app = window.jupyterapp;
  const panel = app.shell.currentWidget;
  if (!panel || !panel.content || !panel.sessionContext) return null;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const cells = [];
  panel.content.widgets.forEach((cell, index) => {
    if (cell.model.type !== 'code') return;
    cell.node.setAttribute('data-browser-cell', String(index));
    const outputs = cell.model.outputs.toJSON().map(o => {
      let text = '';
      if (o.output_type === 'stream') text = Array.isArray(o.text) ? o.text.join('') : o.text;
      else if (o.data && o.data['text/plain'] !== undefined) {
        const t = o.data['text/plain']; text = Array.isArray(t) ? t.join('') : t;
      }
      return {output_type: o.output_type, mimes: o.data ? Object.keys(o.data) : [],
              text: String(text).slice(0, 2000), ename: o.ename || null,
              evalue: o.evalue === undefined ? null : String(o.evalue)};
    });
    const shown = [];
    const area = cell.outputArea ? cell.outputArea.node : null;
    if (area) {
      area.querySelectorAll(':scope > .jp-OutputArea-child').forEach(child => {
        const out = child.querySelector('.jp-OutputArea-output');
        if (!out) { shown.push({mime: null, text: '', widget: false, images: [], overflow: 0}); return; }
        const widget = out.classList.contains('jupyter-widgets') ? out
                       : out.querySelector('.jupyter-widgets');
        const marked = out.hasAttribute('data-mime-type') ? out : out.querySelector('[data-mime-type]');
        const images = Array.from(out.querySelectorAll('img')).map(img => ({
          complete: img.complete, width: img.naturalWidth, height: img.naturalHeight}));
        const text = (out.innerText || '');
        shown.push({mime: marked ? marked.getAttribute('data-mime-type') : null,
                    text: text.slice(0, 2000),
                    // ipywidgets draws a failed view as an "error widget" (a red icon and
                    // "Click to show javascript error."): that is not a widget drawn.
                    widget_error: Boolean(out.querySelector('.jupyter-widgets-error-widget')
                                          || out.classList.contains('jupyter-widgets-error-widget')),
                    widget: Boolean(widget && widget.children.length
                                    && !out.querySelector('.jupyter-widgets-error-widget')
                                    && !/Error displaying widget|Loading widget/.test(text)),
                    images, overflow: Math.max(0, out.scrollWidth - out.clientWidth)});
      });
    }
    cells.push({index, source: cell.model.sharedModel.getSource(),
                execution_count: cell.model.executionCount,
                running: cell.model.executionState === 'running',
                browser: cell.model.getMetadata('browser') || null,
                outputs, shown});
  });
  return {notebook: panel.context.path, kernel: kernel ? kernel.status : 'none', cells};
}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_lab(root_dir: Path, state: Path, port: int, token: str, log) -> subprocess.Popen:
    """JupyterLab from this Python, with every per-user folder under ``state``."""
    settings = state / "settings"
    for rel, value in SETTINGS.items():
        path = settings / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    env = dict(os.environ)
    env.update({
        "JUPYTER_CONFIG_DIR": str(state / "config"),
        "JUPYTER_DATA_DIR": str(state / "data"),
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "IPYTHONDIR": str(state / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
    })
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}",
           f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={state / 'workspaces'}",
           "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=",
           "--ServerApp.terminals_enabled=False", "--LabApp.extension_manager=readonly"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # CI and containers run as root
    return subprocess.Popen(cmd, cwd=root_dir, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_for_server(url: str, token: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {proc.returncode} (see the log)")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"JupyterLab did not answer at {url} within {timeout:.0f} s")


def open_notebook(page, name: str) -> None:
    page.evaluate("""async (path) => {
      const app = window.jupyterapp;
      const panel = await app.commands.execute('docmanager:open', {path, factory: 'Notebook'});
      await panel.context.ready;
      await panel.sessionContext.ready;
      app.shell.activateById(panel.id);
    }""", name)
    page.wait_for_function("""() => {
      const p = window.jupyterapp.shell.currentWidget;
      const k = p && p.sessionContext && p.sessionContext.session && p.sessionContext.session.kernel;
      return Boolean(k && k.connectionStatus === 'connected' && k.status === 'idle');
    }""", timeout=120_000)


def run_all(page, timeout: float) -> tuple[dict, float, bool]:
    """Run All Cells; wait until idle with nothing queued (held for 2 s); return the state."""
    start = time.monotonic()
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    page.wait_for_timeout(500)
    settled_since = None
    while True:
        state = page.evaluate(STATE_JS)
        code = [c for c in state["cells"] if c["source"].strip()]
        queued = any(c["running"] for c in code)
        errored = any(o["output_type"] == "error" for c in code for o in c["outputs"])
        counted = all(c["execution_count"] is not None for c in code)
        done = state["kernel"] == "idle" and not queued and (counted or errored)
        now = time.monotonic()
        if done:
            settled_since = settled_since or now
            if now - settled_since >= 2:
                return state, now - start, False
        else:
            settled_since = None
        if now - start > timeout:
            return state, now - start, True
        page.wait_for_timeout(500)


def settle_widgets(page, limit_s: float = 15) -> None:
    """Give widget views and images a moment to finish drawing after the kernel went idle."""
    page.wait_for_function("""() => {
      const p = window.jupyterapp.shell.currentWidget;
      const node = p.content.node;
      const pending = /Loading widget\\.\\.\\./.test(node.innerText);
      const images = Array.from(node.querySelectorAll('.jp-OutputArea img')).every(i => i.complete);
      return !pending && images;
    }""", timeout=limit_s * 1000)


def interact(page, state: dict) -> list[str]:
    """Drive the cells whose metadata has ``"browser"`` steps; return the problems."""
    problems = []
    for cell in state["cells"]:
        steps = cell.get("browser")
        if not steps:
            continue
        if isinstance(steps, dict):
            steps = [steps]
        outputs = page.locator(f'[data-browser-cell="{cell["index"]}"] .jp-Cell-outputArea')
        for step in steps:
            timeout_ms = float(step.get("timeout", 60)) * 1000
            try:
                if "type" in step:
                    box = outputs.locator(step.get("into", "input, textarea")).first
                    box.click(timeout=timeout_ms)
                    box.press_sequentially(str(step["type"]), delay=20)
                    if step.get("press"):
                        box.press(step["press"])
                if "expect" in step:
                    outputs.get_by_text(str(step["expect"])).first.wait_for(timeout=timeout_ms)
            except Exception as err:  # a Playwright timeout: report it as the step that failed
                problems.append(f"cell {cell['index']}: browser step {step} failed: "
                                f"{str(err).splitlines()[0]}")
                break
    return problems


SCROLLER_JS = """
() => {
  // The notebook scrolls inside its own panel: find the element that does the scrolling.
  const panel = window.jupyterapp.shell.currentWidget;
  let best = panel.content.node, extra = -1;
  for (const el of [panel.node, ...panel.node.querySelectorAll('*')]) {
    const style = getComputedStyle(el).overflowY;
    if ((style === 'auto' || style === 'scroll') && el.scrollHeight - el.clientHeight > extra) {
      best = el; extra = el.scrollHeight - el.clientHeight;
    }
  }
  return best;
}
"""


def screenshot(page, path: Path) -> int:
    """Make the window as tall as the notebook, so one screenshot shows all of it."""
    page.evaluate("""() => {
      const notebook = window.jupyterapp.shell.currentWidget.content;
      notebook.activeCellIndex = 0;
      notebook.deselectAll();
      notebook.mode = 'command';
    }""")
    scroller = page.evaluate_handle(SCROLLER_JS)
    sizes = scroller.evaluate("(el) => ({scroll: el.scrollHeight, client: el.clientHeight, "
                              "window: window.innerHeight})")
    height = min(MAX_SHOT_PX, sizes["window"] - sizes["client"] + sizes["scroll"])
    page.set_viewport_size({"width": VIEWPORT["width"], "height": max(height, VIEWPORT["height"])})
    page.wait_for_timeout(800)
    scroller.evaluate("(el) => { el.scrollTop = 0; }")
    page.wait_for_timeout(200)
    page.screenshot(path=str(path))
    page.set_viewport_size(VIEWPORT)
    return height


def close_notebook(page) -> None:
    """Save the executed copy, shut its kernel down (memory), close the tab."""
    page.evaluate("""async () => {
      const app = window.jupyterapp;
      const panel = app.shell.currentWidget;
      await panel.context.save();
      await panel.sessionContext.shutdown();
      panel.dispose();
    }""")


def notebook_paths(names: list[str]) -> list[Path]:
    if names:
        return [Path(n) if Path(n).exists() else NOTEBOOKS / n for n in names]
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per notebook")
    parser.add_argument("--disable-extension", action="append", default=[], metavar="NAME",
                        help="start JupyterLab with this front-end extension disabled (to show "
                             "that the checks catch a missing one, e.g. "
                             "@jupyter-widgets/jupyterlab-manager)")
    parser.add_argument("notebooks", nargs="*")
    args = parser.parse_args(argv)
    if not Path(args.chromium).exists():
        print(f"error: no Chromium at {args.chromium} (Debian: apt-get install chromium)",
              file=sys.stderr)
        return 2
    paths = notebook_paths(args.notebooks)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        print(f"error: no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    shutil.rmtree(OUT, ignore_errors=True)
    lab_root, state_dir = OUT / "lab", OUT / "jupyter"
    lab_root.mkdir(parents=True)
    for path in paths:
        shutil.copy2(path, lab_root / path.name)
    if args.disable_extension:
        labconfig = state_dir / "config" / "labconfig"
        labconfig.mkdir(parents=True)
        (labconfig / "page_config.json").write_text(json.dumps(
            {"disabledExtensions": {name: True for name in args.disable_extension}}))
    port, token = free_port(), secrets.token_hex(24)
    url = f"http://127.0.0.1:{port}"
    failed = []
    started = time.monotonic()
    with open(OUT / "jupyterlab.log", "wb") as log:
        lab = start_lab(lab_root, state_dir, port, token, log)
        try:
            wait_for_server(url, token, lab)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=args.chromium, headless=True,
                    # root (CI, containers) cannot use Chromium's sandbox
                    args=["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])
                page = browser.new_page(viewport=VIEWPORT)
                console_errors = []
                page.on("pageerror", lambda err: console_errors.append(str(err)))
                page.goto(f"{url}/lab?token={token}")
                page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=120_000)
                page.evaluate("async () => { await window.jupyterapp.restored; "
                              "window.jupyterapp.shell.collapseLeft(); window.jupyterapp.shell.collapseRight(); }")
                for path in paths:
                    console_errors.clear()
                    try:
                        failed += check_one(page, path.name, args.timeout, console_errors)
                    except PlaywrightError as err:  # the page or JupyterLab did not respond
                        print(f"FAIL {path.name}: the browser step failed: "
                              f"{str(err).splitlines()[0]}", flush=True)
                        failed.append(path.name)
                        _try_close(page)
                browser.close()
        finally:
            lab.terminate()
            try:
                lab.wait(timeout=20)
            except subprocess.TimeoutExpired:
                lab.kill()
    total = time.monotonic() - started
    if failed:
        print(f"browser check FAILED for {len(set(failed))} of {len(paths)} notebooks "
              f"in {total:.0f} s: {', '.join(dict.fromkeys(failed))}", file=sys.stderr)
        return 1
    print(f"browser check: all {len(paths)} notebooks passed in JupyterLab in {total:.0f} s; "
          f"screenshots in {OUT}")
    return 0


def _try_close(page) -> None:
    """After a failed notebook: free its kernel so the next notebook starts clean."""
    from playwright.sync_api import Error as PlaywrightError

    try:
        close_notebook(page)
    except PlaywrightError as err:
        print(f"     (could not close it: {str(err).splitlines()[0]})", flush=True)


def check_one(page, name: str, timeout: float, console_errors: list[str]) -> list[str]:
    print(f"{name}: running in JupyterLab ...", flush=True)
    open_notebook(page, name)
    state, elapsed, timed_out = run_all(page, timeout)
    problems = []
    if timed_out:
        problems.append(f"still running after {timeout:.0f} s")
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        settle_widgets(page)
    except PlaywrightTimeout:
        pass  # a view still "Loading widget..." or an image not loaded fails the checks below
    problems += interact(page, state)
    state = page.evaluate(STATE_JS)
    found, warnings = browser_checks.check(state)
    problems += found
    (OUT / f"{Path(name).stem}.json").write_text(json.dumps(state, indent=1))
    height = screenshot(page, OUT / f"{Path(name).stem}.png")
    close_notebook(page)
    counts = browser_checks.summarize(state)
    status = "FAIL" if problems else "ok"
    print(f"{status:4} {name}: {counts['executed']}/{counts['code_cells']} cells run in {elapsed:.0f} s, "
          f"{counts['widgets_rendered']} widgets drawn + {counts['widgets_closed']} closed by the kernel "
          f"(of {counts['widget_outputs']}), "
          f"{counts['images_shown']}/{counts['images_expected']} figures drawn, "
          f"screenshot {height} px -> {OUT / (Path(name).stem + '.png')}", flush=True)
    for line in problems:
        print(f"     problem: {line}", flush=True)
    for line in warnings + [f"JavaScript error in the page: {e[:300]}" for e in console_errors]:
        print(f"     warning: {line}", flush=True)
    return [name] if problems else []


if __name__ == "__main__":
    sys.exit(main())
