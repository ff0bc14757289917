"""The HTML report: every figure and table checked against results.json (parsed HTML), and the
page rendered in a real headless Chromium (screenshot pixels and DOM)."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image
from report_helpers import DEFENSES, make_run, parse_report

from miaudit.cli import main
from miaudit.metrics import roc_curve
from miaudit.report.build import TOP_EXPOSED, strongest_attack


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("MIAUDIT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    try:
        yield make_run(tmp_path_factory.mktemp("report"))
    finally:
        mp.undo()


def _scores(run):
    with open(run / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    member = np.array([r["is_member"] == "1" for r in rows])
    index = np.array([int(r["record_index"]) for r in rows])
    return rows, member, index


def _png(src: str) -> Image.Image:
    assert src.startswith("data:image/png;base64,"), src[:40]
    return Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB")


def _value(cell):
    return None if cell["value"] == "null" else float(cell["value"])


def test_every_table_and_figure_matches_results_json(run_dir):
    results = json.loads((run_dir / "results.json").read_text())
    attacks = results["attacks"]
    page = parse_report(run_dir / "report.html")

    # Self-contained: every URL is a data URI or an in-page anchor; no stylesheet or script is fetched.
    assert page.urls and all(u.startswith(("data:", "#")) for u in page.urls), page.urls
    assert "link" not in page.tags and all("src" not in s["attrs"] for s in page.scripts)

    # Summary verdict: the strongest attack (highest AUC) with its AUC and TPRs, and the threat model.
    best = max(attacks, key=lambda n: attacks[n]["auc"])
    assert best == strongest_attack(attacks)
    assert page.by_id["best-attack"]["text"] == best
    assert page.by_id["best-threat"]["text"] == results["threat_model"] == "gray-box"
    assert float(page.by_id["best-auc"]["attrs"]["data-value"]) == attacks[best]["auc"]
    for key, level in (("best-tpr-1", "0.01"), ("best-tpr-01", "0.001")):
        expected = attacks[best]["tpr_at_fpr"].get(level)
        shown = page.by_id[key]["attrs"]["data-value"]
        assert (shown == "null") if expected is None else float(shown) == expected
        assert page.by_id[key]["text"] == ("n/m" if expected is None else f"{expected:.4f}")

    # Attack table: one row per attack, sorted by AUC, each number equal to results.json's.
    header, *rows = page.tables["attack-table"]
    names = [r[0]["text"] for r in rows]
    assert sorted(names) == sorted(attacks) and names == sorted(attacks, key=lambda n: -attacks[n]["auc"])
    cols = [c["text"] for c in header]
    for row in rows:
        entry = attacks[row[0]["text"]]
        assert _value(row[cols.index("AUC")]) == entry["auc"]
        assert row[cols.index("AUC")]["text"] == f"{entry['auc']:.4f}"
        assert _value(row[cols.index("TPR@1%FPR")]) == entry["tpr_at_fpr"].get("0.01")
        assert _value(row[cols.index("TPR@0.1%FPR")]) == entry["tpr_at_fpr"].get("0.001")
        assert _value(row[cols.index("advantage (upper bound)")]) == entry["advantage"]
        lo, hi = entry["auc_ci"]
        assert row[cols.index("AUC 95% CI")]["text"] == f"[{lo:.3f}, {hi:.3f}]"

    # ROC figure: one curve per attack; the plotted points are vertices of the exact ROC curve
    # recomputed from scores.csv, from (0, 0) to (1, 1), and the legend's AUC is results.json's.
    roc = page.figures["fig-roc"]
    assert sorted(roc["attrs"]["data-attacks"].split(",")) == sorted(attacks)
    data = json.loads(next(s["text"] for s in page.scripts if s["attrs"].get("id") == "figure-data"))
    rows_csv, member, _ = _scores(run_dir)
    assert sorted(data["roc"]) == sorted(attacks)
    for name, curve in data["roc"].items():
        assert curve["auc"] == attacks[name]["auc"]
        fpr, tpr, _ = roc_curve(np.array([float(r[name]) for r in rows_csv]), member)
        exact = set(zip(fpr.tolist(), tpr.tolist()))
        plotted = list(zip(curve["fpr"], curve["tpr"]))
        assert plotted[0] == (0.0, 0.0) and plotted[-1] == (1.0, 1.0)
        assert set(plotted) <= exact and len(plotted) >= min(len(exact), 50)

    # Defenses: the table and the figure hold exactly the rows of defenses.json.
    _, *drows = page.tables["defense-table"]
    assert [r[0]["text"] for r in drows] == [d["name"] for d in DEFENSES["defenses"]]  # "<" escaped, not markup
    for r, d in zip(drows, DEFENSES["defenses"]):
        assert _value(r[1]) == d["test_accuracy"] and _value(r[2]) == d["auc"]
    assert page.figures["fig-defenses"]["attrs"]["data-defenses"] == ",".join(d["name"] for d in DEFENSES["defenses"])

    # Study: the embedded image is the study's own plot.png, byte for byte.
    study_png = (run_dir / "studies" / "per-record-risk" / "plot.png").read_bytes()
    assert base64.b64decode(page.figures["fig-study-per-record-risk"]["img"][0].split(",", 1)[1]) == study_png

    # Every figure is a real, non-blank PNG.
    assert set(page.figures) == {"fig-roc", "fig-defenses", "fig-study-per-record-risk"}
    for fig in page.figures.values():
        img = _png(fig["img"][0])
        assert img.width > 300 and img.height > 200
        assert np.asarray(img).std() > 10  # drawn content, not a flat colour

    # Most exposed records: the members with the top scores of the strongest attack.
    _, *erows = page.tables["exposed-table"]
    scores = np.array([float(r[best]) for r in rows_csv])
    index = np.array([int(r["record_index"]) for r in rows_csv])
    members = np.flatnonzero(member)
    top = members[np.argsort(-scores[members], kind="stable")][:TOP_EXPOSED]
    assert [int(r[0]["text"]) for r in erows] == index[top].tolist()
    assert [_value(r[1]) for r in erows] == scores[top].tolist()

    # The exact configuration.
    assert json.loads(page.by_id["config-json"]["text"]) == results["config"]
    audit_versions = {row[0]["text"]: row[1]["text"] for row in page.tables["versions-table"][1:]}
    assert audit_versions["miaudit"] == results["versions"]["miaudit"] and audit_versions["numpy"] == results["versions"]["numpy"]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
    "--force-device-scale-factor=1", "--window-size=1280,5000",
]  # fmt: skip


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it), so the report is not rendered in a browser here")
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    def chromium(*extra, profile):
        return _chromium(run_dir / "report.html", tmp_path / profile, *extra)

    dom = chromium("--dump-dom", profile="dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = ReportDom(dom.stdout)
    assert page.loaded, "the page's load event did not run"
    # Every figure's image was decoded by the browser (naturalWidth > 0) and laid out with a size.
    assert set(page.boxes) == {"fig-roc", "fig-defenses", "fig-study-per-record-risk"}
    assert all(w > 0 for w in page.widths.values()), page.widths
    results = json.loads((run_dir / "results.json").read_text())
    assert page.table_rows["attack-table"] == len(results["attacks"]) + 1
    assert page.table_rows["exposed-table"] == TOP_EXPOSED + 1

    shot = tmp_path / "shot.png"
    proc = chromium(f"--screenshot={shot}", profile="shot")
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    checked = 0
    for fig, (left, top, width, height) in page.boxes.items():
        assert width > 300 and height > 200, (fig, width, height)
        if top + height > image.shape[0]:
            continue  # below the captured window
        region = image[top : top + height, left : left + width]
        ink = (region.sum(axis=2) < 600).mean()  # pixels clearly darker than white
        colours = len(np.unique(region.reshape(-1, 3), axis=0))
        assert ink > 0.01 and colours > 20, (fig, ink, colours)
        checked += 1
    assert checked >= 2  # the ROC figure and the defenses figure lie in the first 5000 pixels
    # Outside the figures the page is mostly white: the check above can fail.
    assert (image[:, -60:].sum(axis=2) > 740).mean() > 0.95


def _chromium(page, profile, *extra):
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


class ReportDom:
    """What the browser's DOM says after load: figure boxes and decoded widths, table row counts."""

    def __init__(self, html: str) -> None:
        from html.parser import HTMLParser

        self.loaded = False
        self.boxes: dict[str, tuple[int, int, int, int]] = {}
        self.widths: dict[str, int] = {}
        self.table_rows: dict[str, int] = {}
        self.table_boxes: dict[str, tuple[int, int, int, int]] = {}
        outer = self

        class P(HTMLParser):
            figure = table = None

            def handle_starttag(self, tag, attrs):
                a = dict(attrs)
                if tag == "body" and a.get("data-loaded") == "1":
                    outer.loaded = True
                if tag == "figure":
                    self.figure = a.get("id")
                elif tag == "img" and self.figure and "data-box" in a:
                    outer.boxes[self.figure] = tuple(int(v) for v in a["data-box"].split(","))
                    outer.widths[self.figure] = int(a["data-rendered-width"])
                elif tag == "table":
                    self.table = a.get("id")
                    outer.table_rows[self.table] = 0
                    if "data-box" in a:
                        outer.table_boxes[self.table] = tuple(int(v) for v in a["data-box"].split(","))
                elif tag == "tr" and self.table:
                    outer.table_rows[self.table] += 1

            def handle_endtag(self, tag):
                if tag == "figure":
                    self.figure = None
                elif tag == "table":
                    self.table = None

        P().feed(html)


@pytest.mark.parametrize(
    "damage, fragment",
    [
        (lambda run: (run / "results.json").write_text("{not json"), "not valid JSON"),
        (lambda run: (run / "results.json").unlink(), "no results.json"),
        (lambda run: (run / "defenses.json").write_text('[{"name": "x", "test_accuracy": "high", "auc": 0.5}]'), "test_accuracy"),
        (lambda run: (run / "studies" / "per-record-risk" / "plot.png").write_bytes(b"<script>alert(1)</script>"), "not a valid PNG"),
        (lambda run: _swap_scores(run), "different runs"),
    ],
)
def test_a_damaged_run_folder_is_one_line_and_exit_2(run_dir, tmp_path, capsys, damage, fragment):
    _check_refused(run_dir, tmp_path, capsys, damage, fragment)


def _check_refused(folder, tmp_path, capsys, damage, fragment):
    """`miaudit report` on a damaged copy of ``folder``: one line naming ``fragment``, exit 2."""
    run = tmp_path / "run"
    shutil.copytree(folder, run)
    damage(run)
    before = (run / "report.html").read_bytes()
    assert main(["report", str(run)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], lines
    assert (run / "report.html").read_bytes() == before  # the previous report is left as it was


def _swap_scores(run):
    """Reverse one attack's scores: scores.csv then disagrees with results.json."""
    rows, _, _ = _scores(run)
    name = list(rows[0])[2]
    vals = [r[name] for r in rows][::-1]
    for r, v in zip(rows, vals):
        r[name] = v
    with open(run / "scores.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


# --- The empirical-epsilon section (privacy_audit.json of `miaudit privacy-audit`) ----------------


@pytest.fixture(scope="module")
def privacy_dir(tmp_path_factory):
    """A multi-run privacy audit (24 runs, 200 base records: a few seconds), so the folder holds a
    bound (clopper-pearson) and an estimate (gdp); privacy-audit writes report.html itself."""
    out = tmp_path_factory.mktemp("privacy") / "audit"
    _privacy_audit(out, tmp_path_factory.mktemp("cache"), "--mode", "multi-run", "--runs", "24")
    return out


def _privacy_audit(out, cache, *args):
    data = os.environ.get("MIAUDIT_DATA_DIR")
    if not data or not os.path.isdir(data):
        pytest.skip("MIAUDIT_DATA_DIR is not set to the shared data folder (make test sets it)")
    mp = pytest.MonkeyPatch()
    mp.setenv("MIAUDIT_CACHE_DIR", str(cache))
    try:
        assert main(["privacy-audit", *args, "--base-records", "200", "--data-dir", data, "--quiet", "--out", str(out)]) == 0
    finally:
        mp.undo()


def _privacy(folder):
    return json.loads((folder / "privacy_audit.json").read_text())


def _check_empirical_table(page, doc):
    """Every cell of the empirical-epsilon table against privacy_audit.json."""
    header, *rows = page.tables["empirical-epsilon"]
    cols = [c["text"] for c in header]
    assert cols == ["method", "kind", "epsilon (nats)", "confidence", "accountant's epsilon", "ratio to accountant",
                    "selection", "trials", "canary kind", "attack", "mode"]  # fmt: skip
    assert len(rows) == len(doc["bounds"])
    config, accountant = doc["config"], doc["accountant_epsilon"]
    unit = "canaries" if config["mode"] == "one-run" else "runs"
    for row, b in zip(rows, doc["bounds"]):
        cell = dict(zip(cols, row))
        assert cell["method"]["text"] == b["method"]
        assert cell["kind"]["text"] == ("estimate, not a bound" if b["kind"] == "estimate" else "lower bound")
        assert _value(cell["epsilon (nats)"]) == b["epsilon"] and cell["epsilon (nats)"]["text"] == f"{b['epsilon']:.3f}"
        if b["kind"] == "estimate":  # no confidence level: privacy-audit writes null
            assert b["confidence"] is None and cell["confidence"]["text"] == "none (estimate)" and _value(cell["confidence"]) is None
        else:
            assert _value(cell["confidence"]) == b["confidence"] and cell["confidence"]["text"] == f"{b['confidence']:.3f}"
        if accountant is None:
            assert cell["accountant's epsilon"]["text"] == "non-private" and _value(cell["accountant's epsilon"]) is None
        else:
            assert _value(cell["accountant's epsilon"]) == accountant and cell["accountant's epsilon"]["text"] == f"{accountant:.3f}"
        ratio = b["ratio_to_accountant"]
        assert (cell["ratio to accountant"]["text"] == "-") if ratio is None else _value(cell["ratio to accountant"]) == ratio
        assert cell["selection"]["text"] == b["selection"]
        assert _value(cell["trials"]) == doc["trials"] and cell["trials"]["text"] == f"{doc['trials']} {unit}"
        assert (cell["canary kind"]["text"], cell["attack"]["text"], cell["mode"]["text"]) == (
            config["canary_kind"], config["attack"], config["mode"])  # fmt: skip
    assert json.loads(page.by_id["empirical-config-json"]["text"]) == config


def test_a_privacy_audit_folder_alone_is_reported(privacy_dir):
    doc = _privacy(privacy_dir)
    assert [b["kind"] for b in doc["bounds"]] == ["lower bound", "estimate"] and doc["accountant_epsilon"] is None
    page = parse_report(privacy_dir / "report.html")  # written by privacy-audit itself
    _check_empirical_table(page, doc)
    assert set(page.tables) == {"empirical-epsilon", "versions-table"}  # no audit section without results.json
    assert not page.figures and "verdict" not in page.by_id
    assert all(u.startswith(("data:", "#")) for u in page.urls)
    assert "non-private" in page.by_id["empirical-finding"]["text"]
    html = (privacy_dir / "report.html").read_text()
    assert "An <strong>estimate</strong> is not a bound" in html and "does not prove the training private" in html


def test_a_bound_above_the_accountants_epsilon_is_flagged_an_estimate_is_not(privacy_dir, tmp_path):
    """DP-SGD figures written into a copy: the gdp estimate above the accountant's epsilon is not
    flagged; a lower bound above it is (the implementation or its accounting is broken)."""
    doc = _privacy(privacy_dir)
    for accountant, bound, broken in ((1.0, 0.25, "0"), (0.5, 0.8, "1")):
        run = tmp_path / f"dp-{accountant}"
        run.mkdir()
        doc["accountant_epsilon"] = accountant
        doc["bounds"][0]["epsilon"] = bound
        for b in doc["bounds"]:
            b["ratio_to_accountant"] = b["epsilon"] / accountant
        assert doc["bounds"][1]["epsilon"] > accountant  # the estimate
        (run / "privacy_audit.json").write_text(json.dumps(doc))
        assert main(["report", str(run), "--quiet"]) == 0
        page = parse_report(run / "report.html")
        _check_empirical_table(page, doc)
        assert page.by_id["empirical-finding"]["attrs"]["data-broken"] == broken
        assert ("implementation or its accounting is broken" in page.by_id["empirical-finding"]["text"]) == (broken == "1")


def test_privacy_audit_into_an_audit_folder_reports_both(run_dir, tmp_path):
    """`privacy-audit --out` an audit's folder (one run, 200 canaries): its report.html holds the
    audit sections and the empirical-epsilon section."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    _privacy_audit(run, tmp_path / "cache", "--canaries", "200")
    page = parse_report(run / "report.html")
    doc = _privacy(run)
    assert doc["config"]["mode"] == "one-run" and [b["method"] for b in doc["bounds"]] == ["one-run", "one-run-fdp"]
    _check_empirical_table(page, doc)
    assert {"attack-table", "defense-table", "exposed-table", "empirical-epsilon"} <= set(page.tables)
    assert page.by_id["best-attack"]["text"] == strongest_attack(json.loads((run / "results.json").read_text())["attacks"])


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it), so the report is not rendered in a browser here")
def test_a_privacy_audit_report_renders_in_headless_chromium(privacy_dir, tmp_path):
    page = privacy_dir / "report.html"
    dom = _chromium(page, tmp_path / "dom", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    seen = ReportDom(dom.stdout)
    assert seen.loaded and not seen.boxes  # no figure on this page
    assert seen.table_rows["empirical-epsilon"] == len(_privacy(privacy_dir)["bounds"]) + 1
    left, top, width, height = seen.table_boxes["empirical-epsilon"]
    assert width > 600 and height > 40, seen.table_boxes
    shot = tmp_path / "shot.png"
    proc = _chromium(page, tmp_path / "shot", f"--screenshot={shot}")
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    region = np.asarray(Image.open(shot).convert("RGB")).astype(int)[top : top + height, left : left + width]
    assert (region.sum(axis=2) < 600).mean() > 0.01  # the table's text and borders are drawn


def _bounds_edit(**changes):
    def damage(run):
        doc = _privacy(run)
        doc["bounds"][0].update(changes)
        (run / "privacy_audit.json").write_text(json.dumps(doc))

    return damage


def _doc_edit(key, value):
    def damage(run):
        doc = _privacy(run)
        doc[key] = value
        (run / "privacy_audit.json").write_text(json.dumps(doc))

    return damage


def _sparse(run):
    with open(run / "privacy_audit.json", "r+b") as f:
        f.truncate(65 * 2**20)  # a huge file, refused from its size before it is read


@pytest.mark.parametrize(
    "damage, fragment",
    [
        (lambda run: (run / "privacy_audit.json").write_text("{not json"), "not valid JSON"),
        (_doc_edit("schema", "miaudit.results"), "not a miaudit privacy_audit.json"),
        (_doc_edit("schema_version", 99), "schema_version 99"),
        (_doc_edit("accountant_epsilon", "one"), "accountant_epsilon must be a finite number"),
        (_doc_edit("bounds", [{}] * 101), "list of 1 to 100 bounds"),
        (_bounds_edit(epsilon=float("inf")), "epsilon must be a finite number"),
        (_bounds_edit(kind="upper bound"), "kind must be one of"),
        (_bounds_edit(confidence=float("nan")), "confidence must be a finite number"),  # NaN only for an estimate
        (_bounds_edit(ratio_to_accountant=2.0), "ratio_to_accountant"),  # non-private: no ratio
        (_sparse, "larger than"),
        (lambda run: ((run / "privacy_audit.json").unlink(), os.mkfifo(run / "privacy_audit.json")), "not a regular file"),
    ],
)
def test_a_damaged_privacy_audit_json_is_one_line_and_exit_2(privacy_dir, tmp_path, capsys, damage, fragment):
    _check_refused(privacy_dir, tmp_path, capsys, damage, fragment)
