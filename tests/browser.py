"""A headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe:
JSON messages ending in NUL on file descriptors 3 and 4), with the standard library only.

    with Browser(find_chromium()) as b:
      b.open("file:///tmp/report.html")
      b.evaluate("document.title"), b.errors, b.screenshot("page.png")
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> str | None:
  """$CHROMIUM, or the first of NAMES on PATH; None when there is none."""
  if os.environ.get("CHROMIUM"):
    return os.environ["CHROMIUM"]
  return next((shutil.which(n) for n in NAMES if shutil.which(n)), None)


class Browser:
  """One headless browser with one page; `errors` collects the page's console errors,
  uncaught exceptions and failed loads (Log entries of level 'error')."""

  def __init__(self, executable: str, width: int = 1280, height: int = 900, timeout: float = 60):
    self._timeout, self._id, self._buffer, self._events = timeout, 0, b"", []
    self._profile = tempfile.mkdtemp(prefix="jaxgan-chromium-")
    to_child, self._to_browser = os.pipe()
    self._from_browser, from_child = os.pipe()
    # Above 10, so that placing them on 3 and 4 in the child cannot overwrite one another.
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_child, from_child)]
    for fd in (to_child, from_child):
      os.close(fd)

    def place():
      os.dup2(high[0], 3)
      os.dup2(high[1], 4)

    self._proc = subprocess.Popen(
        [executable, "--headless=new", "--remote-debugging-pipe", "--no-sandbox",
         "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--no-default-browser-check", "--disable-extensions", "--allow-file-access-from-files",
         f"--user-data-dir={self._profile}", f"--window-size={width},{height}", "about:blank"],
        pass_fds=(3, 4), preexec_fn=place, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for fd in high:
      os.close(fd)
    try:
      target = self.call("Target.createTarget", url="about:blank")["targetId"]
      self._session = self.call("Target.attachToTarget", targetId=target,
                                flatten=True)["sessionId"]
      for domain in ("Page", "Runtime", "Log"):
        self.call(f"{domain}.enable", session=True)
      self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                deviceScaleFactor=1, mobile=False)
    except Exception:
      self.close()
      raise

  # ---- the protocol ----
  def _send(self, message: dict[str, Any]) -> None:
    os.write(self._to_browser, json.dumps(message).encode() + b"\0")

  def _receive(self, deadline: float) -> dict[str, Any]:
    while b"\0" not in self._buffer:
      if time.monotonic() > deadline:
        raise TimeoutError("no answer from the browser")
      if self._proc.poll() is not None:
        raise RuntimeError(f"the browser exited ({self._proc.returncode}): "
                           f"{self._proc.stderr.read().decode(errors='replace')[-2000:]}")
      chunk = os.read(self._from_browser, 1 << 20)
      if not chunk:
        raise RuntimeError("the browser closed its pipe")
      self._buffer += chunk
    raw, self._buffer = self._buffer.split(b"\0", 1)
    return json.loads(raw)

  def call(self, method: str, session: bool = False, **params) -> dict[str, Any]:
    """Sends one command; returns its result (events that arrive meanwhile are kept)."""
    self._id += 1
    message = {"id": self._id, "method": method, "params": params}
    if session:
      message["sessionId"] = self._session
    self._send(message)
    deadline = time.monotonic() + self._timeout
    while True:
      answer = self._receive(deadline)
      if answer.get("id") == self._id:
        if "error" in answer:
          raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})
      self._events.append(answer)

  def wait_for(self, method: str) -> dict[str, Any]:
    """The first event `method` (also one that came already)."""
    for i, event in enumerate(self._events):
      if event.get("method") == method:
        return self._events.pop(i)
    deadline = time.monotonic() + self._timeout
    while True:
      event = self._receive(deadline)
      if event.get("method") == method:
        return event
      self._events.append(event)

  # ---- the page ----
  def open(self, url: str) -> None:
    """Navigates and waits for the load event (every image decoded, every script run)."""
    self.call("Page.navigate", session=True, url=url)
    self.wait_for("Page.loadEventFired")

  def evaluate(self, expression: str) -> Any:
    """The value of a JavaScript expression in the page (its exception raised)."""
    result = self.call("Runtime.evaluate", session=True, expression=expression,
                       returnByValue=True, awaitPromise=True)
    if "exceptionDetails" in result:
      raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
    return result["result"].get("value")

  @property
  def errors(self) -> list[str]:
    """Console errors, uncaught exceptions and failed loads seen so far."""
    out = []
    for e in self._events:
      method, params = e.get("method"), e.get("params", {})
      if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        out.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                          for a in params.get("args", [])))
      elif method == "Runtime.exceptionThrown":
        out.append("exception: " + json.dumps(params.get("exceptionDetails"))[:500])
      elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
        out.append("log: " + params["entry"].get("text", ""))
    return out

  def screenshot(self, path: str | os.PathLike, full_page: bool = True) -> Path:
    """A PNG of the page (the whole page, not only the viewport, by default)."""
    params = {"format": "png"}
    if full_page:
      size = self.call("Page.getLayoutMetrics", session=True)["cssContentSize"]
      params.update(captureBeyondViewport=True, clip={
          "x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
    data = self.call("Page.captureScreenshot", session=True, **params)["data"]
    path = Path(path)
    path.write_bytes(base64.b64decode(data))
    return path

  def close(self) -> None:
    try:
      if self._proc.poll() is None:
        try:
          self._send({"id": self._id + 1, "method": "Browser.close", "params": {}})
          self._proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
          self._proc.kill()
          self._proc.wait()
    finally:
      for fd in (self._to_browser, self._from_browser):
        try:
          os.close(fd)
        except OSError:
          pass
      shutil.rmtree(self._profile, ignore_errors=True)

  def __enter__(self) -> "Browser":
    return self

  def __exit__(self, *exc) -> None:
    self.close()
