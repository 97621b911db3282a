"""adamtune report: a self-contained offline HTML page (checked in headless Chromium) and
Markdown with PNG files beside it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adamtune.cli import app

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("ADAMTUNE_TEST_ARTIFACTS", ROOT / "test-artifacts"))
STUDY = """\
name: full
seed: 0
data: {source: iris, batch_size: 32}
model: {arch: mlp, hidden: [16]}
train: {epochs: 3}
search:
  trials: 16
  batch: 1
  confirm: {seeds: 1}
  space:
    lr: auto
    schedule: [none, cosine]
"""
SECTIONS = [
    "Summary",
    "Winner",
    "Per stage",
    "Verification",
    "Optimisation history",
    "lr against validation loss",
    "Hyperparameter importance",
    "Learning curves",
    "LR range test",
    "Schedule comparison",
]


@pytest.fixture
def studied(write_config: Callable[..., Path], storage_url: str) -> tuple[Path, str]:
    """A study with everything a report can show: lr: auto, the schedule stage, verify."""
    path = write_config(STUDY, name="full")
    runner = CliRunner()
    for args in (["search", str(path), "-q"], ["verify", str(path), "--seeds", "2"]):
        result = runner.invoke(app, [*args, "--storage", storage_url])
        assert result.exit_code == 0, result.output
    return path, storage_url


def _report(path: Path, storage: str, out: Path, *extra: str) -> None:
    result = CliRunner().invoke(
        app, ["report", str(path), "--storage", storage, "--out", str(out), *extra]
    )
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_the_html_report_holds_every_section_and_loads_nothing(
    studied: tuple[Path, str], tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    _report(*studied, out)
    page = out.read_text()
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in page, title
    images = re.findall(r'<img [^>]*src="([^"]*)"', page)
    assert len(images) >= len(SECTIONS) - 4 and all(
        s.startswith("data:image/png;base64,") for s in images
    )
    # Nothing to fetch: no script, stylesheet, font or link to anywhere.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert "LR decay:" in page and "lr: auto: the range test set the lr range" in page


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
    "--virtual-time-budget=5000",
]
_CHECK = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  document.title = "CHECK " + JSON.stringify({
    images: images.length,
    decoded: images.filter(i => i.complete && i.naturalWidth > 0).length,
    resources: performance.getEntriesByType("resource").map(e => e.name)});
});
</script>"""


def _browse(page: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    chromium = _chromium()
    assert chromium is not None
    return subprocess.run(
        [chromium, *_FLAGS, f"--user-data-dir={tmp / 'profile'}", *extra, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _page_requests(page: Path, tmp: Path) -> list[str]:
    """URLs the page itself asked the network for, from Chromium's net log (the browser's own
    background requests carry no file:// isolation key, a page's do)."""
    log = tmp / "netlog.json"
    _browse(page, tmp, f"--log-net-log={log}", "--dump-dom")
    events = json.loads(log.read_text())["events"]
    urls = {
        e["params"]["url"]
        for e in events
        if "url" in e.get("params", {})
        and "file://" in str(e["params"].get("network_isolation_key", ""))
    }
    return sorted(u for u in urls if not u.startswith(("file:", "data:")))


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="needs chromium (.ci/run installs it)")
def test_the_report_renders_offline_in_headless_chromium(
    studied: tuple[Path, str], tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    _report(*studied, out)
    # Every image decodes, and the page's own resource timing lists nothing fetched.
    checked = tmp_path / "checked.html"
    checked.write_text(out.read_text().replace("</body>", _CHECK + "</body>"))
    dom = _browse(checked, tmp_path, "--dump-dom").stdout
    found = re.search(r"<title>CHECK (\{.*?\})</title>", dom)
    assert found, dom[:500]
    result = json.loads(found.group(1))
    assert result["images"] >= 6 and result["decoded"] == result["images"]
    assert result["resources"] == []
    # The net log sees no request from the page; it does see one from a page that makes one.
    assert _page_requests(out, tmp_path) == []
    control = tmp_path / "control.html"
    control.write_text('<html><body><img src="http://adamtune-test.invalid/x.png"></body></html>')
    assert _page_requests(control, tmp_path) == ["http://adamtune-test.invalid/x.png"]
    # The screenshot is kept as the test's artifact.
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    _browse(out, tmp_path, f"--screenshot={shot}", "--window-size=1100,4000")
    assert shot.exists() and shot.stat().st_size > 10_000


@pytest.mark.slow
def test_markdown_links_png_files_beside_it(studied: tuple[Path, str], tmp_path: Path) -> None:
    out = tmp_path / "ci" / "my summary.md"  # a folder to make, a space in the name
    _report(*studied, out)  # the format follows the suffix
    text = out.read_text()
    links = re.findall(r"!\[[^\]]*\]\(<([^>]+)>\)", text)
    assert len(links) >= 6 and all(link.startswith("my summary_files/") for link in links)
    for link in links:
        assert (out.parent / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| stage | trials |" in text and "LR decay:" in text


@pytest.mark.slow
@pytest.mark.parametrize(
    ("lr", "says"),
    [
        ("{low: 0.02, high: 0.021}", "best lr is at the top of its range: widen it"),
        ("{low: 1.0e-6, high: 2.0e-6}", "best lr lies outside its searched range"),
    ],
)
def test_a_winner_at_the_edge_of_its_range_is_warned_about(
    write_config: Callable[..., Path], storage_url: str, tmp_path: Path, lr: str, says: str
) -> None:
    # 3 epochs of iris reward a fast rate: the top of [0.02, 0.021] wins; nothing in
    # [1e-6, 2e-6] beats the default 1e-3, which is kept.
    path = write_config(
        STUDY.replace("lr: auto", f"lr: {lr}").replace("    schedule: [none, cosine]\n", ""),
        name="edge",
    )
    assert (
        CliRunner().invoke(app, ["search", str(path), "--storage", storage_url, "-q"]).exit_code
        == 0
    )
    out = tmp_path / "edge.html"
    _report(path, storage_url, out)
    assert says in out.read_text()
