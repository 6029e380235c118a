"""Check built HTML pages the way a reader sees them: in headless Chromium at 1280 px.

For every page of a built book: no Markdown left unrendered (pipe tables, directive fences), no
code line cut off by its column, every image loaded, every ``<audio>`` decodable and not
silent, no error or warning text in cell outputs, every internal link and anchor resolving.
A full-page screenshot of each page is saved for people to look at.

Used by ``tests/test_built_book.py`` (after ``make book``) and proven on pages with planted
defects by ``tests/test_pagecheck.py``.
"""

from __future__ import annotations

import html.parser
import shutil
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

WINDOW_WIDTH = 1280
#: A figure shown narrower than this fraction of its pixels has text too small to read (a
#: 10 pt matplotlib label at 100 dpi falls under 8 px).
MIN_SCALE = 0.6
#: Peak sample amplitude under which an audio player counts as silent.
SILENT_PEAK = 1e-4
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = "/usr/bin/chromedriver"


@dataclass(frozen=True)
class Problem:
    page: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.page}: {self.kind}: {self.detail}"


def browser_available() -> bool:
    return any(Path(p).exists() for p in CHROMIUM) and Path(CHROMEDRIVER).exists()


def _driver(user_data: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = next(p for p in CHROMIUM if Path(p).exists())
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required",
                 "--allow-file-access-from-files", f"--user-data-dir={user_data}",
                 f"--window-size={WINDOW_WIDTH},1000"):  # fmt: skip
        options.add_argument(flag)
    # an explicit driver path: Selenium Manager would otherwise try to download one
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_script_timeout(60)
    return driver


# What the page shows, measured in the browser. Returns plain data for Python to judge.
_MEASURE = r"""
const done = arguments[arguments.length - 1];
const main = document.querySelector("main") || document.body || document.documentElement;
const text = main.innerText || "";
const MIN_SCALE = arguments[0];
const result = {rawTables: [], fences: [], clipped: [], images: [], shrunk: [], reprs: [],
                outputs: [], audio: []};
for (const line of text.split("\n")) {
  if (/^\s*\|.*\|\s*$/.test(line) && /\|\s*:?-{3,}/.test(line)) result.rawTables.push(line.trim());
  if (/^\s*(```|:::)\s*\{/.test(line) || /^\s*\{(note|warning|admonition|figure)\}/.test(line))
    result.fences.push(line.trim());
}
// Characters that fit a visible code column: hidden blocks (collapsed solutions) are measured
// against it, since a reader who opens them sees them at that width.
const probe = Array.from(main.querySelectorAll("pre")).find((p) => p.offsetParent !== null);
let capacity = Infinity;
if (probe) {
  const span = document.createElement("span");
  span.textContent = "x".repeat(100);
  probe.appendChild(span);
  const charWidth = span.getBoundingClientRect().width / 100;
  span.remove();
  const style = getComputedStyle(probe);
  const inner = probe.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  capacity = Math.floor(inner / charWidth);
}
for (const pre of main.querySelectorAll("pre")) {
  const wraps = !getComputedStyle(pre).whiteSpace.startsWith("pre") ||
                getComputedStyle(pre).whiteSpace === "pre-wrap";
  if (wraps) continue;
  const lines = pre.textContent.split("\n");
  const longest = lines.reduce((a, b) => (b.length > a.length ? b : a), "");
  const visible = pre.offsetParent !== null;
  if (visible ? pre.scrollWidth > pre.clientWidth + 1 : longest.length > capacity)
    result.clipped.push(longest.trim().slice(0, 100));
}
for (const img of main.querySelectorAll("img")) {
  const src = (img.getAttribute("src") || "").slice(0, 80);
  if (!img.complete || img.naturalWidth === 0) result.images.push(src);
  else if (img.clientWidth > 0 && img.clientWidth < MIN_SCALE * img.naturalWidth)
    result.shrunk.push(`${src} shown at ${img.clientWidth} of ${img.naturalWidth} px`);
}
for (const out of main.querySelectorAll(".cell_output")) {
  const repr = out.innerText.match(/<[\w.]+( object)? at 0x[0-9a-f]+>/);
  if (repr) result.reprs.push(repr[0]);
}
for (const out of main.querySelectorAll(".output.stderr, .output.traceback, .output.error")) {
  result.outputs.push(out.innerText.trim().slice(0, 200));
}
for (const out of main.querySelectorAll(".cell_output")) {
  const t = out.innerText;
  if (/Traceback \(most recent call last\)|\b\w*(Warning|Error): /.test(t))
    result.outputs.push(t.trim().slice(0, 200));
}
const players = Array.from(main.querySelectorAll("audio"));
Promise.all(players.map(async (a) => {
  const src = a.currentSrc || a.src || (a.querySelector("source") || {}).src;
  try {
    const buffer = await (await fetch(src)).arrayBuffer();
    const audio = await new OfflineAudioContext(1, 1, 44100).decodeAudioData(buffer);
    let peak = 0;
    for (let c = 0; c < audio.numberOfChannels; c++)
      for (const v of audio.getChannelData(c)) peak = Math.max(peak, Math.abs(v));
    return {src: (src || "").slice(0, 80), peak: peak, seconds: audio.duration};
  } catch (e) {
    return {src: (src || "").slice(0, 80), error: String(e)};
  }
})).then((audio) => { result.audio = audio; done(result); });
"""


class _Links(html.parser.HTMLParser):
    """Collects ``href`` targets and element ids of one HTML file."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"])
        if tag == "a" and values.get("href"):
            self.hrefs.append(values["href"])


def _parse(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8", errors="replace"))
    return parser


#: Height of one screenshot tile: a long page is saved as several (Chromium caps a capture).
TILE_HEIGHT = 15000


def _screenshot(driver, stem: Path) -> None:
    """The whole page at 1280 px: ``<stem>.png``, or ``<stem>-1.png``, ``-2`` ... when long."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    stem.parent.mkdir(parents=True, exist_ok=True)
    driver.set_window_size(WINDOW_WIDTH, min(height, TILE_HEIGHT) + 100)
    tops = range(0, height, TILE_HEIGHT)
    for number, top in enumerate(tops, start=1):
        driver.execute_script(f"window.scrollTo(0, {top})")
        suffix = f"-{number}" if len(tops) > 1 else ""
        driver.save_screenshot(str(stem.with_name(stem.name + suffix + ".png")))


def check_links(site: Path, pages: list[Path]) -> list[Problem]:
    """Internal links: the target file exists and holds the anchor."""
    problems, parsed = [], {}
    for page in pages:
        for href in _parse(page).hrefs:
            url = urllib.parse.urlparse(href)
            if url.scheme or href.startswith("//") or href.startswith("mailto:"):
                continue  # external: not checked (the build machine may be offline)
            target = (page.parent / urllib.parse.unquote(url.path)).resolve() if url.path else page
            name = str(page.relative_to(site))
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                problems.append(Problem(name, "dead link", href))
                continue
            if url.fragment and target.suffix == ".html":
                ids = parsed.setdefault(target, _parse(target).ids)
                if urllib.parse.unquote(url.fragment) not in ids:
                    problems.append(Problem(name, "dead anchor", href))
    return problems


def check_site(
    site: Path, screenshots: Path | None = None, pages: list[Path] | None = None
) -> list[Problem]:
    """Every problem a reader would see on the pages of ``site`` (default: all ``*.html``
    except Sphinx's own search/index pages); screenshots go to ``screenshots`` when given."""
    site = Path(site).resolve()
    if pages is None:
        skip = {"search.html", "genindex.html", "py-modindex.html"}
        pages = sorted(p for p in site.rglob("*.html")
                       if p.name not in skip and "_static" not in p.parts)  # fmt: skip
    problems = check_links(site, pages)
    user_data = tempfile.mkdtemp(prefix="pagecheck-")
    driver = _driver(user_data)
    try:
        for page in pages:
            name = str(page.relative_to(site))
            driver.set_window_size(WINDOW_WIDTH, 1000)
            driver.get(page.as_uri())
            seen = driver.execute_async_script(_MEASURE, MIN_SCALE)
            problems += [Problem(name, "raw Markdown table", s) for s in seen["rawTables"]]
            problems += [Problem(name, "unrendered directive", s) for s in seen["fences"]]
            problems += [Problem(name, f"code line clipped at {WINDOW_WIDTH} px", s)
                         for s in seen["clipped"]]  # fmt: skip
            problems += [Problem(name, "image not loaded", str(s)) for s in seen["images"]]
            problems += [Problem(name, "figure shrunk (labels unreadable)", s)
                         for s in seen["shrunk"]]  # fmt: skip
            problems += [Problem(name, "object repr in output", s) for s in seen["reprs"]]
            problems += [Problem(name, "error or warning in output", s) for s in seen["outputs"]]
            for audio in seen["audio"]:
                if "error" in audio:
                    problems.append(Problem(name, "audio does not decode", audio["error"]))
                elif audio["peak"] < SILENT_PEAK:
                    problems.append(Problem(name, "silent audio", audio["src"]))
            if screenshots is not None:
                _screenshot(driver, screenshots / name.replace("/", "__").removesuffix(".html"))
    finally:
        driver.quit()
        shutil.rmtree(user_data, ignore_errors=True)
    return problems
