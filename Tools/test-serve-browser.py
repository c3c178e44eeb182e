#!/usr/bin/env python3
"""The workbench page as a person uses it, in headless Chromium, on the tiny test model.

    python3 Tools/test-serve-browser.py PAREIDOLIA_BINARY MODEL_DIR [--embedding FILE] [--screenshot OUT.png]
    python3 Tools/test-serve-browser.py PAREIDOLIA_BINARY default --readme-shot OUT.png [--prompt P --fork P --word W --seed N]

Starts `pareidolia serve` on a free port with a fresh runs folder, opens the page in headless
Chromium and drives it over the DevTools protocol (Python's standard library only): types a
prompt and starts a run; waits for live frames and the end; scrubs to an earlier step; clicks a
word and checks its map is drawn; hovers a pixel and checks the words are ranked; starts a long
run and cancels it; drops the first run's PNG and checks its recipe fills the form; forks the first run with an edited prompt and checks the side-by-side and the
word diff; and that no script error was raised. One line on success, one line saying what failed
(exit 1) otherwise; "skipped" (exit 0) without chromium.

MODEL_DIR `default` serves the embedded demo model as `pareidolia serve` with no --model does.
--readme-shot draws the README's picture instead: on the demo model, a run of --prompt (timing its
first live frame from Start), a fork of the same seed with --fork, the word --word clicked on the
fork (its map over the picture) and a pixel hovered, then a screenshot.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

# The scenarios' shared helpers: $, sleep, and waitFor (polls a test until it holds or ms pass).
HELPERS = r"""
  const $ = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  async function waitFor(what, test, ms = 60000) {
    const end = Date.now() + ms;
    while (Date.now() < end) { if (test()) return; await sleep(50); }
    throw new Error("timed out waiting for " + what + " (status: " + $("status").textContent + ")");
  }
"""

SCENARIO = r"""
(async () => {
HELPERS
  const report = {};
  const ended = (word) => new RegExp("(^" + word + "|· " + word + ")", "i").test($("status").textContent);
  await waitFor("the socket", () => $("connection").textContent === "live");
  // Embeddings (when the server offers one): typing a trigger ticks its box, deleting it unticks it.
  if (EXPECT_EMBEDDING) {
  await waitFor("the embeddings", () => !$("embeddings").hidden);
  const box = $("embeddings").querySelector("input");
  $("prompt").value = "a photo of " + box.value; $("prompt").dispatchEvent(new Event("input"));
  if (!box.checked) throw new Error("typing " + box.value + " did not tick its box");
  $("prompt").value = "a photo"; $("prompt").dispatchEvent(new Event("input"));
  if (box.checked) throw new Error("deleting " + box.value + " did not untick its box");
  report.embedding = box.value;
  }
  // A run: type, start, watch it form.
  $("prompt").value = "a witch and her black cat";
  $("seed").value = "1887838105"; $("steps").value = "4"; $("width").value = "64"; $("height").value = "64";
  $("run-form").requestSubmit();
  await waitFor("a live frame", () => ($("frame").getAttribute("src") || "").startsWith("blob:"));
  report.liveFrame = true;
  await waitFor("the run to end", () => ended("done"));
  const first = state.selected;
  // Scrub back to step 2: the frame is that step's x̂₀.
  $("scrubber").value = "2"; $("scrubber").dispatchEvent(new Event("input"));
  await waitFor("step 2's frame", () => /steps\/1($|\?)/.test($("frame").getAttribute("src") || "") || ($("frame").getAttribute("src") || "").startsWith("blob:"));
  report.scrubbed = $("step-label").textContent;
  // Click a word: its map is drawn over the picture.
  await waitFor("the words", () => $("words").children.length > 0);
  const cat = [...$("words").children].find((b) => b.textContent === "cat");
  if (!cat) throw new Error("no 'cat' among the words: " + [...$("words").children].map((b) => b.textContent).join(" "));
  cat.click();
  const canvas = $("overlay");
  await waitFor("the map", () => canvas.width > 0 && canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data.some((v, i) => i % 4 === 3 && v > 0));
  report.map = canvas.width + "x" + canvas.height;
  // Hover a pixel: the words are ranked there.
  const box = canvas.getBoundingClientRect();
  canvas.dispatchEvent(new MouseEvent("mousemove", { clientX: box.left + box.width / 2, clientY: box.top + box.height / 2, bubbles: true }));
  await waitFor("the ranking", () => $("ranking").textContent.startsWith("At this pixel"));
  report.ranking = $("ranking").textContent;
  // A long run, cancelled.
  $("prompt").value = "a robot dancing"; $("steps").value = "150"; $("seed").value = "5";
  $("run-form").requestSubmit();
  await waitFor("the long run to start", () => !$("cancel").disabled && state.running !== null && state.running !== first);
  $("cancel").click();
  await waitFor("the cancel", () => ended("cancelled"));
  report.cancelled = true;
  // Drop the first run's PNG: its infotext fills the form.
  $("prompt").value = ""; $("seed").value = "";
  const png = await (await fetch("/api/runs/" + first + "/image.png")).blob();
  const drop = new DataTransfer();
  drop.items.add(new File([png], "witch.png", { type: "image/png" }));
  document.dispatchEvent(new DragEvent("drop", { dataTransfer: drop, bubbles: true, cancelable: true }));
  await waitFor("the dropped recipe", () => $("prompt").value === "a witch and her black cat" && $("seed").value === "1887838105");
  report.dropped = true;
  // Fork the first run: same seed, edited prompt; both shown with the word diff.
  await selectRun(first, false);
  $("fork").click();
  if ($("seed").value !== "1887838105" || $("fork-note").hidden) throw new Error("fork did not fill the form");
  $("prompt").value = "a witch and her white cat";
  $("run-form").requestSubmit();
  await waitFor("the fork to end", () => ended("done") && state.selected !== first);
  await waitFor("the side by side", () => !$("parent-box").hidden && !$("diff").hidden);
  report.diff = [...$("diff").querySelectorAll(".added, .removed")].map((s) => s.className + ":" + s.textContent).join(" ");
  // The merge panel on the first run: a verdict for witch and cat, then the remedy, beside it.
  await selectRun(first, false);
  await waitFor("the merge panel", () => !$("merge").hidden);
  $("merge-a").value = "witch"; $("merge-b").value = "cat";
  $("merge-check").click();
  await waitFor("the verdict", () => !$("remedy").hidden);
  report.verdict = $("merge-verdict").textContent;
  $("remedy").click();
  await waitFor("the remedy run", () => ended("done") && /remedy: witch \| cat apart/.test($("status").textContent) && !$("parent-box").hidden);
  report.remedy = true;
  report.errors = window.__errors;
  return JSON.stringify(report);
})()
"""


README_SCENARIO = r"""
(async () => {
HELPERS
  const ended = () => /(^done|· done)/i.test($("status").textContent);
  await waitFor("the socket", () => $("connection").textContent === "live");
  $("prompt").value = PROMPT; $("prompt").dispatchEvent(new Event("input"));
  $("seed").value = SEED;
  const started = performance.now();
  $("run-form").requestSubmit();
  await waitFor("a live frame", () => ($("frame").getAttribute("src") || "").startsWith("blob:"));
  const firstFrame = Math.round(performance.now() - started);
  await waitFor("the first run", () => ended() && state.selected !== null);
  const first = state.selected;
  $("fork").click();
  $("prompt").value = FORK; $("prompt").dispatchEvent(new Event("input"));
  $("run-form").requestSubmit();
  await waitFor("the fork", () => ended() && state.selected !== first && !$("parent-box").hidden);
  await waitFor("the words", () => [...$("words").children].some((b) => b.textContent === WORD));
  [...$("words").children].find((b) => b.textContent === WORD).click();
  const canvas = $("overlay");
  await waitFor("the map", () => canvas.width > 0 && canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data.some((v, i) => i % 4 === 3 && v > 0));
  const box = canvas.getBoundingClientRect();
  canvas.dispatchEvent(new MouseEvent("mousemove", { clientX: box.left + box.width * 0.5, clientY: box.top + box.height * 0.5, bubbles: true }));
  await waitFor("the ranking", () => $("ranking").textContent.startsWith("At this pixel"));
  await sleep(500);
  return JSON.stringify({ errors: window.__errors, ranking: $("ranking").textContent, firstFrame });
})()
"""


class DevTools:
    """A WebSocket client (RFC 6455, client side: masked frames) for Chromium's DevTools protocol."""

    def __init__(self, url: str):
        host_port, path = url[len("ws://"):].split("/", 1)
        host, port = host_port.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=120)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError("DevTools refused the socket: " + head.split(b"\r\n")[0].decode())
        self.next_id = 0

    def _recv(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise RuntimeError("DevTools closed the socket")
            out += chunk
        return out

    def _message(self) -> str:
        data = b""
        while True:
            b0, b1 = self._recv(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._recv(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._recv(8))[0]
            data += self._recv(n)
            if b0 & 0x80:
                return data.decode()

    def call(self, method: str, **params):
        self.next_id += 1
        payload = json.dumps({"id": self.next_id, "method": method, "params": params}).encode()
        mask = os.urandom(4)
        header = bytes([0x81])
        n = len(payload)
        header += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        while True:
            message = json.loads(self._message())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, seconds: float) -> None:
    end = time.time() + seconds
    while time.time() < end:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {seconds:.0f} s")


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    binary, model = sys.argv[1], sys.argv[2]
    def option(name, default=None):
        return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default
    shot, embedding, readme = option("--screenshot"), option("--embedding"), option("--readme-shot")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("serve page check skipped: chromium is not installed")
        return 0
    work = tempfile.mkdtemp()
    port, devtools_port = free_port(), free_port()
    # MODEL_DIR `default`: the embedded demo model, served as `pareidolia serve` alone serves it
    # (its sampler settings and embeddings)
    server = subprocess.Popen([binary, "serve", *(["--model", model] if model != "default" else []),
                               "--port", str(port), "--runs", os.path.join(work, "runs")]
                              + (["--embedding", embedding] if embedding else []),
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "server.log"), "w"))
    browser = None
    try:
        wait_http(f"http://127.0.0.1:{port}/api/state", 60)
        browser = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                                    "--hide-scrollbars", "--window-size=1300,900", f"--user-data-dir={os.path.join(work, 'profile')}",
                                    f"--remote-debugging-port={devtools_port}", "about:blank"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(f"http://127.0.0.1:{devtools_port}/json/version", 60)
        target = next(t for t in json.load(urllib.request.urlopen(f"http://127.0.0.1:{devtools_port}/json")) if t["type"] == "page")
        dt = DevTools(target["webSocketDebuggerUrl"])
        dt.call("Page.enable")
        # Script errors are collected from the start (before the page's own scripts run).
        dt.call("Page.addScriptToEvaluateOnNewDocument", source="window.__errors = []; window.addEventListener('error', (e) => "
                "{ if (!e.target || e.target === window) window.__errors.push(String(e.message)); }, true); "
                "window.addEventListener('unhandledrejection', (e) => window.__errors.push('rejection: ' + String(e.reason)));")
        dt.call("Page.navigate", url=f"http://127.0.0.1:{port}/")
        wait_until = time.time() + 30
        while dt.call("Runtime.evaluate", expression="document.readyState")["result"].get("value") != "complete":
            if time.time() > wait_until:
                raise RuntimeError("the page did not load")
            time.sleep(0.1)
        if readme:
            scenario = (README_SCENARIO.replace("HELPERS", HELPERS).replace("PROMPT", json.dumps(option("--prompt", "a red circle to the left of a blue square")))
                        .replace("FORK", json.dumps(option("--fork", "a red circle to the left of a yellow star")))
                        .replace("WORD", json.dumps(option("--word", "circle"))).replace("SEED", json.dumps(option("--seed", "1887838105"))))
            result = dt.call("Runtime.evaluate", expression=scenario, awaitPromise=True, returnByValue=True, timeout=240000)
            if "exceptionDetails" in result:
                raise RuntimeError("the README scenario failed: " + str(result["exceptionDetails"].get("exception", {}).get("description")).splitlines()[0])
            report = json.loads(result["result"]["value"])
            if report.get("errors"):
                raise RuntimeError("script errors on the page: " + " | ".join(report["errors"]))
            with open(readme, "wb") as f:
                f.write(base64.b64decode(dt.call("Page.captureScreenshot", format="png")["data"]))
            print(f"README screenshot written to {readme}: first live frame {report['firstFrame']} ms after Start; {report['ranking']}")
            return 0
        scenario = SCENARIO.replace("HELPERS", HELPERS).replace("EXPECT_EMBEDDING", "true" if embedding else "false")
        result = dt.call("Runtime.evaluate", expression=scenario, awaitPromise=True, returnByValue=True, timeout=240000)
        if "exceptionDetails" in result:
            detail = result["exceptionDetails"]
            raise RuntimeError("the scenario failed: " + str(detail.get("exception", {}).get("description", detail.get("text"))).splitlines()[0])
        report = json.loads(result["result"]["value"])
        if report.get("errors"):
            raise RuntimeError("script errors on the page: " + " | ".join(report["errors"]))
        if "added:white" not in report.get("diff", "") or "removed:black" not in report.get("diff", ""):
            raise RuntimeError("the fork's word diff is wrong: " + report.get("diff", ""))
        if shot:
            data = dt.call("Page.captureScreenshot", format="png")["data"]
            with open(shot, "wb") as f:
                f.write(base64.b64decode(data))
        print(f"serve page check: ok ({'embedding ' + report['embedding'] + ' ticked by its trigger, ' if embedding else ''}"
              f"live frames, scrub to {report['scrubbed']}, map {report['map']}, "
              f"ranking, cancel, dropped PNG's recipe, fork diff '{report['diff']}', merge verdict, remedy run)")
        return 0
    except Exception as e:  # one line saying what failed
        log = open(os.path.join(work, "server.log")).read().strip().splitlines()
        print(f"serve page check: {e}" + (f" (server: {log[-1][:200]})" if log else ""), file=sys.stderr)
        return 1
    finally:
        if browser:
            browser.kill()
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
