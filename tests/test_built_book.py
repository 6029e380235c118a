"""The built book as a reader sees it (run by `make test` after `make book`).

Every page of ``_build/html`` goes through :func:`pagecheck.check_site` in headless Chromium;
screenshots land in ``_build/screenshots/`` for people to look at. Chapters added later are
covered automatically (every page of the build is checked).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pagecheck import browser_available, check_site

SITE = Path(__file__).resolve().parents[1] / "_build" / "html"


@pytest.mark.skipif(not browser_available(), reason="Chromium/chromedriver absent")
def test_every_page_reads_right():
    assert (SITE / "index.html").is_file(), f"{SITE}: build the book first (make book)"
    problems = check_site(SITE, SITE.parent / "screenshots")
    assert not problems, "\n".join(map(str, problems))
