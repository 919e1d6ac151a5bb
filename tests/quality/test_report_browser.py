"""The HTML report is self-contained, opens in headless Chromium without console errors, and shows
its plots (checked on the screenshot's pixels)."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from larder.quality import compare, in_range, not_null, profile, render_report, validate

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed, so the report cannot be opened in a browser "
           "(install it with `apt-get install chromium`)",
)


def _frames() -> list[pd.DataFrame]:
    rng = np.random.default_rng(0)
    out = []
    for shift, nulls in ((0, 0.0), (0, 0.02), (25, 0.1)):
        n = 1500
        df = pd.DataFrame({
            "Id": np.arange(n),
            "price": rng.normal(100 + shift, 15, n),
            "rooms": rng.integers(1, 6, n),
            "zone": rng.choice(["RL", "RM", "FV", "C"], n, p=[0.5, 0.3, 0.15, 0.05] if not shift
                               else [0.25, 0.25, 0.35, 0.15]),
        })
        df.loc[rng.random(n) < nulls, "price"] = np.nan
        out.append(df)
    return out


@functools.cache
def _report_html() -> str:
    frames = _frames()
    exps = [not_null("price", max_fraction=0.05), in_range("price", min=0, max=140)]
    return render_report(
        table="main.default.houses",
        drift=compare(frames[0], frames[-1], exclude=["Id"], baseline_label="version 0",
                      current_label="version 2"),
        profiles=[(v, profile(df)) for v, df in enumerate(frames)],
        validations=[(v, validate(df, exps, keys=["Id"])) for v, df in enumerate(frames)],
        expectations=exps, policy="warn",
    )


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.refs += [v or "" for k, v in attrs if k in ("src", "href", "srcset", "data", "poster")]


def test_report_is_self_contained() -> None:
    html = _report_html()
    parser = _Refs()
    parser.feed(html)
    assert parser.refs and all(r.startswith("data:") for r in parser.refs), [r[:40] for r in parser.refs]
    assert "script" not in parser.tags and "iframe" not in parser.tags
    text_outside_data = "".join(part.split('"', 1)[-1] for part in html.split("data:"))
    assert "http://" not in text_outside_data.replace("http://www.w3.org", "")
    assert "https://" not in text_outside_data and "url(" not in text_outside_data


def _open_in_chromium(page: Path, png: Path, profile_dir: Path) -> list[str]:
    """Screenshot ``page``; return the console messages Chromium logged while loading it."""
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile_dir}", "--enable-logging=stderr", "--v=0", "--hide-scrollbars",
           "--window-size=1280,2400", f"--screenshot={png}", page.as_uri()]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the browser and the children it started
        proc.communicate()
        pytest.fail("chromium did not finish the screenshot within 120 s")
    assert proc.returncode == 0, err[-2000:]
    return [line for line in err.splitlines() if ":CONSOLE" in line]


@needs_chromium
def test_console_detection_catches_a_broken_page(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>x'
                    "<script>console.error('deliberate'); notDefinedAnywhere();</script></body></html>")
    console = _open_in_chromium(page, tmp_path / "broken.png", tmp_path / "profile")
    assert any("deliberate" in line for line in console)
    assert any("notDefinedAnywhere" in line for line in console)


@needs_chromium
def test_report_opens_in_chromium_without_errors_and_shows_plots(tmp_path: Path) -> None:
    from PIL import Image

    page = tmp_path / "report.html"
    page.write_text(_report_html(), encoding="utf-8")
    png = tmp_path / "report.png"
    console = _open_in_chromium(page, png, tmp_path / "profile")
    assert console == [], console

    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    assert img.shape[:2] == (2400, 1280)
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    # Baseline bars (#1f77b4, drawn half-transparent over white for numeric features) are blue;
    # current bars (#ff7f0e) are orange. Both must cover a real area of the page.
    blue = (b - r > 60) & (b > 150)
    orange = (r > 200) & (r - b > 120) & (g > 90) & (g < 200)
    assert blue.sum() > 5000, blue.sum()
    assert orange.sum() > 5000, orange.sum()
    # The page is not blank below the fold of the histograms: null-rate and expectation charts drew.
    lower = img[1000:]
    assert (np.abs(lower - 255).sum(axis=-1) > 60).sum() > 20000
    if os.environ.get("LARDER_KEEP_SCREENSHOT"):
        shutil.copy(png, os.environ["LARDER_KEEP_SCREENSHOT"])
