"""Take the README's screenshot of the status page: the demo, left running to fill its charts, in headless Chromium.

    .venv/bin/python scripts/status-page-screenshot.py --seconds 600 --out docs/images/status-page.png

Needs the Debian packages chromium and chromium-driver, and the test extras (selenium). Nothing is
downloaded: the local chromedriver is passed explicitly and Selenium Manager runs offline.
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(base: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/-/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the demo at {base} did not become ready within {timeout}s")


def screenshot(url: str, out: Path, width: int) -> None:
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (*FLAGS, f"--user-data-dir={tempfile.mkdtemp()}", f"--window-size={width},900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path="/usr/bin/chromedriver"))
    try:
        driver.get(url)
        first = driver.execute_script("return document.body.dataset.takenAt")
        deadline = time.monotonic() + 30
        while driver.execute_script("return document.body.dataset.takenAt") == first:
            if time.monotonic() > deadline:
                raise SystemExit("the page did not refresh")
            time.sleep(0.05)
        size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(shot["data"]))
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600, help="how long the demo runs first (default 600)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--out", type=Path, default=Path("docs/images/status-page.png"))
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "exporter", "demo", "--seed", str(args.seed)]
    demo = subprocess.Popen([*command, "--web.listen-address", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL)
    try:
        wait_ready(base)
        print(f"demo at {base}; letting the charts fill for {args.seconds:g}s", flush=True)
        time.sleep(args.seconds)  # the point is to collect history, not to synchronize
        screenshot(base + "/", args.out, args.width)
        print(f"wrote {args.out}")
    finally:
        demo.terminate()
        demo.wait(20)


if __name__ == "__main__":
    main()
