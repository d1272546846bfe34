"""Submit-to-result time of the site for a 1280x720 photo, and its overhead over the API alone.

Starts the real API (dlib-resnet, one torch thread) and the real site on loopback, enrolls obama
so the photo is recognised against a gallery, then alternates, for the same photo:
- ``api``: POST /recognize straight to the API (what the site itself has to wait for);
- ``site``: POST /recognize to the site (upload, API call, drawing, HTML with the inline image);
- ``browser``: headless Chromium choosing the file and submitting the Home page form, until the
  result page has loaded (skipped when /usr/bin/chromium is absent); ``browser_nav``, a click on a
  link to a small page, shows how much of that is the browser and its driver rather than the site.
Alternating the three keeps background load on a shared machine from favouring one of them.
``web_overhead_ratio`` = (median API time + median of the site's own time per request) / median
API time, target <= 1.2; the site's own time is its total minus its wait for the API in the same
request (Server-Timing), so load that slows whole requests on a shared machine cancels out. The
plain ratio of the two medians is printed next to it.

    python -m benchmarks.bench_web [--quick]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

import requests

from benchmarks.timing import cpu_model
from tests.support.faces import faces_dir_path
from tests.support.live_servers import CHROMIUM, CHROMIUM_ARGS, start_api, start_web


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def run(quick: bool = False) -> dict:
    """Measure and return the figures (times in ms)."""
    faces = faces_dir_path()
    photo_path = faces / "resolution" / "obama_720p.jpg"
    photo = photo_path.read_bytes()
    rounds, warmup = (4, 1) if quick else (15, 2)
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        api = start_api(logs, logs / "gallery.sqlite3")
        web = None
        try:
            web = start_web(logs, api.url)
            enrolled = requests.post(
                api.url + "/identities/obama/faces",
                files={"image": ("1.jpg", (faces / "gallery/obama/1.jpg").read_bytes(), "image/jpeg")},
                timeout=120,
            )
            enrolled.raise_for_status()
            return _measure(api.url, web.url, photo, photo_path, rounds, warmup)
        finally:
            if web is not None:
                web.stop()
            api.stop()


def _measure(api_url: str, web_url: str, photo: bytes, photo_path: Path, rounds: int, warmup: int) -> dict:
    site = requests.Session()
    token = re.search(r'name="csrf_token" value="([^"]+)"', site.get(web_url + "/").text).group(1)
    plain = requests.Session()

    def via_api() -> None:
        r = plain.post(api_url + "/recognize", files={"image": ("obama_720p.jpg", photo, "image/jpeg")}, timeout=120)
        r.raise_for_status()
        assert r.json()["faces"][0]["identity"] == "obama"

    server_timing: dict[str, list[float]] = {"api": [], "draw": [], "html": []}

    site_own: list[float] = []  # per request: site total minus its own wait for the API

    def via_site() -> float:
        start = time.perf_counter()
        r = site.post(
            web_url + "/recognize",
            data={"csrf_token": token},
            files={"image": ("obama_720p.jpg", photo, "image/jpeg")},
            timeout=120,
        )
        r.raise_for_status()
        elapsed = time.perf_counter() - start
        assert '<td class="known">obama</td>' in r.text
        for name, dur in re.findall(r"(\w+);dur=([\d.]+)", r.headers.get("Server-Timing", "")):
            server_timing.setdefault(name, []).append(float(dur) / 1000)
        site_own.append(elapsed - server_timing["api"][-1])
        return elapsed

    browser_ctx = _browser() if CHROMIUM.exists() else None
    page = browser_ctx[1].new_page(viewport={"width": 1280, "height": 900}) if browser_ctx else None

    def via_browser() -> float:
        """Seconds from the click on submit to the loaded result page (page setup not counted)."""
        page.goto(web_url + "/")
        page.set_input_files("#image", str(photo_path))
        start = time.perf_counter()
        with page.expect_navigation(wait_until="load"):
            page.click("form button[type=submit]")
        elapsed = time.perf_counter() - start
        assert page.locator("td.known").inner_text() == "obama"
        return elapsed

    def browser_baseline() -> float:
        """Seconds for a navigation to a small page (the Enroll link): the browser's own share."""
        page.goto(web_url + "/")
        start = time.perf_counter()
        with page.expect_navigation(wait_until="load"):
            page.click("nav a[href='/enroll']")
        return time.perf_counter() - start

    def timed(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    kinds = {"api": lambda: timed(via_api), "site": via_site}
    if page is not None:
        kinds["browser"] = via_browser
        kinds["browser_nav"] = browser_baseline
    times: dict[str, list[float]] = {k: [] for k in kinds}
    try:
        for i in range(warmup + rounds):
            order = list(kinds) if i % 2 == 0 else list(kinds)[::-1]  # A B C, C B A, ...
            for kind in order:
                elapsed = kinds[kind]()
                if i >= warmup:
                    times[kind].append(elapsed)
    finally:
        if browser_ctx is not None:
            browser_ctx[1].close()
            browser_ctx[0].stop()

    result = {
        "photo": "resolution/obama_720p.jpg (1280x720)",
        "rounds": rounds,
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
        "API with FACE_EMBEDDER=dlib-resnet, FACE_THREADS=1",
    }
    for kind, samples in times.items():
        result[f"{kind}_p50_ms"] = round(_median_ms(samples), 1)
        result[f"{kind}_min_ms"] = round(min(samples) * 1000, 1)
        result[f"{kind}_max_ms"] = round(max(samples) * 1000, 1)
    for name, samples in server_timing.items():
        if samples:  # only the measured rounds (the warm-up ones come first)
            result[f"site_{name}_p50_ms"] = round(_median_ms(samples[-rounds:]), 1)
    # The site's own share, paired within each request (upload to the site, drawing, HTML, and
    # the hop to the API), added to the API's time: robust to load that shifts whole requests.
    result["site_own_p50_ms"] = round(_median_ms(site_own[-rounds:]), 1)
    result["web_overhead_ratio"] = round((result["api_p50_ms"] + result["site_own_p50_ms"]) / result["api_p50_ms"], 3)
    result["web_overhead_ratio_of_medians"] = round(result["site_p50_ms"] / result["api_p50_ms"], 3)
    if "browser" in times:
        result["submit_to_result_ms"] = result["browser_p50_ms"]
        result["browser_over_api_ratio"] = round(result["browser_p50_ms"] / result["api_p50_ms"], 3)
    return result


def _browser():
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    return pw, pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def markdown(result: dict) -> str:
    labels = {
        "api": "API alone: POST /recognize",
        "site": "site: POST /recognize (upload, API, drawing, HTML)",
        "browser": "browser: submit to loaded result page",
        "browser_nav": "browser: click to a small page (navigation baseline)",
    }
    lines = [
        f"Photo {result['photo']}, median of {result['rounds']} interleaved rounds. {result['machine']}",
        "",
        "| path | p50 ms | min ms | max ms |",
        "| --- | ---: | ---: | ---: |",
    ]
    for kind, label in labels.items():
        if f"{kind}_p50_ms" in result:
            lines.append(
                f"| {label} | {result[kind + '_p50_ms']:.1f} | {result[kind + '_min_ms']:.1f} | {result[kind + '_max_ms']:.1f} |"
            )
    if "site_draw_p50_ms" in result:
        lines += [
            "",
            "Inside the site (Server-Timing, p50 ms): "
            f"API call {result['site_api_p50_ms']:.1f}, drawing {result['site_draw_p50_ms']:.1f}, "
            f"HTML {result['site_html_p50_ms']:.1f}; the site's own time per request "
            f"(total minus its API call) {result['site_own_p50_ms']:.1f}",
        ]
    lines += [
        "",
        "| figure | value | target |",
        "| --- | ---: | ---: |",
        f"| web_overhead_ratio ((API + site's own time) / API) | {result['web_overhead_ratio']:.3f} | <= 1.2 |",
        f"| site p50 / API p50 (unpaired, load-sensitive) | {result['web_overhead_ratio_of_medians']:.3f} | |",
    ]
    if "browser_over_api_ratio" in result:
        lines.append(f"| browser submit-to-result / API | {result['browser_over_api_ratio']:.3f} | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 rounds instead of 15")
    args = parser.parse_args()
    print(markdown(run(quick=args.quick)))


if __name__ == "__main__":
    main()
