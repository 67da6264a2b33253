#!/usr/bin/env python3
"""The `varcode serve` web page in headless Chromium (Debian's chromium, driven over the DevTools
protocol with python3-websocket): choose a class by searching, generate with live per-scale
progress, check the images on the page are the very PNGs `varcode generate` writes, then upload a
picture, paint a mask with the mouse and inpaint it. Loopback only; every wait is bounded.

  /usr/bin/python3 tests/server/web_page_test.py --cli build/varcode [--screenshots DIR]
"""
import argparse
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket  # python3-websocket

TIMEOUT = 60.0


def fail(msg):
    raise AssertionError(msg)


class Browser:
    """One headless Chromium and a DevTools session on its page."""

    def __init__(self, tmp):
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if not exe:
            fail("chromium is not installed (apt-get install chromium; scripts/install-deps.sh does it)")
        self.profile = os.path.join(tmp, "profile")
        self.proc = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--remote-allow-origins=*",
             "--window-size=1400,1000", "--user-data-dir=" + self.profile, "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + TIMEOUT
        while not (os.path.exists(port_file) and open(port_file).read().count("\n") >= 1):
            if time.time() > deadline or self.proc.poll() is not None:
                fail("chromium did not start its DevTools endpoint")
            time.sleep(0.05)
        port = int(open(port_file).read().split("\n")[0])
        targets = json.load(urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=10))
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=TIMEOUT)
        self.next_id = 0
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    fail("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})
            if msg.get("method") == "Runtime.exceptionThrown":
                fail("page error: %s" % json.dumps(msg["params"]["exceptionDetails"])[:500])

    def js(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in r:
            fail("script failed: %s\n%s" % (expr[:200], json.dumps(r["exceptionDetails"])[:500]))
        return r["result"].get("value")

    def wait_for(self, expr, what, timeout=TIMEOUT):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = self.js(expr)
            if v:
                return v
            time.sleep(0.05)
        fail("timed out waiting for " + what + "; status: " + str(self.js("document.getElementById('status').textContent")))

    def centre(self, selector):
        box = self.js("(() => { const r = document.querySelector(%s).getBoundingClientRect();"
                      " return [r.left + r.width / 2, r.top + r.height / 2]; })()" % json.dumps(selector))
        return box

    def mouse(self, kind, x, y, buttons=1):
        self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", buttons=buttons, clickCount=1)

    def click(self, selector):
        self.js("document.querySelector(%s).scrollIntoView({block: 'center'})" % json.dumps(selector))
        x, y = self.centre(selector)
        self.mouse("mousePressed", x, y)
        self.mouse("mouseReleased", x, y, buttons=0)

    def type_into(self, selector, text):
        self.js("(() => { const e = document.querySelector(%s); e.focus(); e.value = ''; })()" % json.dumps(selector))
        self.call("Input.insertText", text=text)

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=TIMEOUT)


def start_server(cli, args):
    proc = subprocess.Popen([cli, "serve", "--port", "0"] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline()
    m = re.search(r"127\.0\.0\.1:(\d+)", line)
    if not m:
        proc.kill()
        fail("varcode serve did not start: " + line + proc.stderr.read())
    return proc, int(m.group(1))


# Page-side helpers: an <img>'s PNG bytes as base64, and where two pictures differ.
PNG_OF = """(async (sel, i) => {
  const img = document.querySelectorAll(sel)[i];
  const buf = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
  let s = ''; for (const b of buf) s += String.fromCharCode(b);
  return btoa(s);
})"""

DIFF = """(async (a, b, x0, y0, x1, y1) => {
  const load = (src) => new Promise((ok) => { const i = new Image(); i.onload = () => ok(i); i.src = src; });
  const px = (img) => { const c = document.createElement('canvas'); c.width = c.height = 32;
    const g = c.getContext('2d'); g.drawImage(img, 0, 0, 32, 32); return g.getImageData(0, 0, 32, 32).data; };
  const pa = px(await load(a)), pb = px(await load(b));
  let inside = 0, nin = 0, outside = 0, nout = 0;
  for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) {
    const k = (y * 32 + x) * 4; let d = 0;
    for (let ch = 0; ch < 3; ch++) d += Math.abs(pa[k + ch] - pb[k + ch]);
    if (x >= x0 && x < x1 && y >= y0 && y < y1) { inside += d; nin++; } else { outside += d; nout++; }
  }
  return [inside / nin, outside / nout];
})"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--screenshots", help="write the page's screenshots here")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="varcode_web_")
    server = browser = None
    try:
        # One image per batch: the job runs long enough for the page to show each scale.
        server, port = start_server(a.cli, ["--max-batch", "1", "--batch-window", "0"])
        url = "http://127.0.0.1:%d/" % port
        browser = Browser(tmp)
        browser.call("Page.navigate", url=url)
        browser.wait_for("document.querySelectorAll('#class-list li').length === 10", "the class list")
        assert "CoDe pair" in browser.js("document.getElementById('model-info').textContent")
        assert browser.js("document.querySelectorAll('#draft-steps option').length") == 5

        # Search the class list, pick by clicking.
        browser.type_into("#class-search", "sneak")
        browser.wait_for("document.querySelectorAll('#class-list li').length === 1", "the filtered list")
        assert browser.js("document.querySelector('#class-list li').textContent") == "7Sneaker"
        browser.click("#class-list li")
        assert browser.js("document.getElementById('class-chosen').textContent") == "Sneaker (7)"

        # Generate, recording every progress text the page shows.
        n, seed = 16, 21
        browser.type_into("#seed", str(seed))
        browser.type_into("#n", str(n))
        browser.js("""window.__seen = [];
          new MutationObserver(() => window.__seen.push(document.getElementById('progress-text').textContent))
            .observe(document.getElementById('progress-text'), {childList: true, characterData: true, subtree: true});""")
        browser.click("#generate")
        browser.wait_for("document.querySelectorAll('#gallery img').length === %d &&"
                         " [...document.querySelectorAll('#gallery img')].every(i => i.complete && i.naturalWidth === 32)"
                         " && document.getElementById('status').textContent.startsWith('generated')" % n,
                         "the generated images")
        seen = browser.js("window.__seen")
        scales = [s for s in seen if re.search(r"(drafter|refiner) scale [1-6]/6", s)]
        if not scales:
            fail("no per-scale progress was shown; texts: %s" % seen)
        assert browser.js("document.querySelectorAll('#progress span').length") == 6
        assert browser.js("document.querySelectorAll('#gallery a[download]').length") == n
        # What the page shows is what `varcode generate` writes.
        out_dir = os.path.join(tmp, "gen")
        subprocess.run([a.cli, "generate", "--class", "sneaker", "--per-class", str(n), "--seed", str(seed),
                        "--out-dir", out_dir, "--quiet"], check=True, timeout=TIMEOUT)
        for i in range(n):
            shown = base64.b64decode(browser.js("(%s)('#gallery img', %d)" % (PNG_OF, i)))
            want = open(os.path.join(out_dir, "%06d.png" % i), "rb").read()
            if shown != want:
                fail("image %d on the page is not the PNG `varcode generate` writes" % i)
        if a.screenshots:
            os.makedirs(a.screenshots, exist_ok=True)
            browser.screenshot(os.path.join(a.screenshots, "generate.png"))

        # Inpaint: upload a picture, paint the lower half of it, choose another class.
        doc = browser.call("DOM.getDocument")
        node = browser.call("DOM.querySelector", nodeId=doc["root"]["nodeId"], selector="#file")["nodeId"]
        browser.call("DOM.setFileInputFiles", nodeId=node, files=[os.path.join(out_dir, "000000.png")])
        browser.wait_for("document.getElementById('status').textContent.startsWith('picture loaded')", "the picture")
        browser.js("document.getElementById('mask').scrollIntoView({block: 'center'})")
        left, top = browser.js("(() => { const r = document.getElementById('mask').getBoundingClientRect();"
                               " return [r.left, r.top]; })()")
        browser.js("document.getElementById('brush').value = 48")
        # Strokes over rows 144..256 of the 256-px canvas: latent rows 4..8, picture rows 18..32.
        for y in (168, 200, 232):
            browser.mouse("mousePressed", left + 8, top + y)
            for x in range(8, 256, 24):
                browser.mouse("mouseMoved", left + x, top + y)
            browser.mouse("mouseReleased", left + 248, top + y, buttons=0)
        covered = int(browser.js("document.getElementById('mask-coverage').dataset.pixels"))
        if not 256 * 80 < covered < 256 * 140:
            fail("the painted mask covers %d pixels, expected about the lower 112 rows" % covered)
        browser.type_into("#class-search", "bag")
        browser.wait_for("document.querySelectorAll('#class-list li').length === 1", "the filtered list")
        browser.click("#class-list li")
        browser.wait_for("!document.getElementById('inpaint').disabled", "the inpaint button")
        browser.click("#inpaint")
        browser.wait_for("document.querySelectorAll('#edit-result img').length === 1 &&"
                         " document.querySelector('#edit-result img').complete &&"
                         " document.querySelector('#edit-result img').naturalWidth === 32 &&"
                         " document.getElementById('status').textContent.startsWith('inpainted')", "the inpainted image")
        inside, outside = browser.js("(%s)(document.querySelector('#gallery img').src,"
                                     " document.querySelector('#edit-result img').src, 0, 20, 32, 32)" % DIFF)
        if not inside > 2 * outside:
            fail("inpainting did not regenerate the painted area: mean change %.1f inside, %.1f outside"
                 % (inside, outside))
        if a.screenshots:
            browser.screenshot(os.path.join(a.screenshots, "inpaint.png"))
        print("web page: generated %d images equal to `varcode generate`, %d progress states shown; inpainted "
              "(mean change %.1f inside the painted area, %.1f outside)" % (n, len(scales), inside, outside))
    finally:
        if browser:
            browser.close()
        if server:
            server.send_signal(signal.SIGTERM)
            try:
                code = server.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                server.kill()
                code = "killed"
            if code != 0:
                print("varcode serve exited with %s: %s" % (code, server.stderr.read()), file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
