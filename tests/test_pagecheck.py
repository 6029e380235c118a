"""The page checker catches each defect readers met in the rendered book (planted here)."""

from __future__ import annotations

import base64
import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
import soundfile
from pagecheck import browser_available, check_site

pytestmark = pytest.mark.skipif(not browser_available(), reason="Chromium/chromedriver absent")

PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
    )
).decode()


def _png(width: int, height: int) -> str:
    buffer = io.BytesIO()
    plt.imsave(buffer, np.zeros((height, width)), format="png")
    return base64.b64encode(buffer.getvalue()).decode()


BIG_PNG = _png(400, 20)


def _wav(samples: np.ndarray) -> str:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples.astype(np.float32), 8000, format="WAV", subtype="PCM_16")
    return base64.b64encode(buffer.getvalue()).decode()


def _page(body: str) -> str:
    return f"<html><body><main>{body}</main></body></html>"


GOOD = f"""
<h1 id="top">Fine</h1><p>A <a href="#top">link</a> and <a href="other.html#there">another</a>.</p>
<table><tr><td>a rendered</td><td>table</td></tr></table>
<pre style="width:600px;overflow:auto">short = "code"</pre>
<img src="data:image/png;base64,{PNG}">
<audio controls src="data:audio/wav;base64,{_wav(0.5 * np.sin(np.arange(8000) / 3))}"></audio>
<div class="cell_output"><pre>[1, 2, 3]</pre></div>
"""

DEFECTS = {
    "raw Markdown table": "<div class='cell_output'><p>| model | size |<br>|---|---:|</p></div>",
    "unrendered directive": "<p>```{note}</p>",
    "code line clipped": "<pre style='width:600px;overflow:auto'>" + "x = 1  # " * 40 + "</pre>",
    "image not loaded": "<img src='missing.png'>",
    "silent audio": f"<audio controls src='data:audio/wav;base64,{_wav(np.zeros(8000))}'></audio>",
    "audio does not decode": "<audio controls src='data:audio/wav;base64,AAAA'></audio>",
    "error or warning in output": "<div class='cell_output'><pre>UserWarning: careful</pre></div>",
    "dead link": "<a href='nowhere.html'>x</a>",
    "figure shrunk": f"<img style='width:100px' src='data:image/png;base64,{BIG_PNG}'>",
    "object repr in output": "<div class='cell_output'><pre>&lt;matplotlib.legend.Legend at "
    "0x7f3a2c&gt;</pre></div>",
    "dead anchor": "<a href='other.html#missing'>x</a>",
}


@pytest.fixture
def site(tmp_path):
    (tmp_path / "other.html").write_text(_page("<p id='there'>here</p>"))
    return tmp_path


def test_a_clean_page_passes(site):
    (site / "good.html").write_text(_page(GOOD))
    assert check_site(site, site / "shots") == []
    assert (site / "shots" / "good.png").stat().st_size > 0


def test_every_planted_defect_is_reported(site):
    for kind, snippet in DEFECTS.items():
        (site / f"{kind.replace(' ', '_')}.html").write_text(_page(GOOD + snippet))
    problems = check_site(site)
    for kind in DEFECTS:
        page = f"{kind.replace(' ', '_')}.html"
        found = [p for p in problems if p.page == page]
        assert found and all(kind in p.kind for p in found), (kind, found)
