"""The report's content, computed from a run folder: a plain dict the template renders.

Nothing here formats HTML; the template (``templates/report.html.j2``) does. Every number the
report shows comes from ``results.json``, except the ROC curves and the most exposed records,
which come from ``scores.csv`` (checked to reproduce ``results.json``'s AUC of every attack), and
the empirical-epsilon section, which comes from ``privacy_audit.json`` alone.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import datetime, timezone
from typing import Any

import numpy as np

from miaudit import metrics
from miaudit.provenance import versions
from miaudit.report.figures import defenses_figure, roc_figure
from miaudit.report.inputs import ReportError, RunInputs
from miaudit.studies.plots import context_line

ROC_POINTS = 400  # vertices per plotted curve (metrics come from the full curve)
TOP_EXPOSED = 20
AUC_TOLERANCE = 1e-9


def _b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


def _tpr(entry: dict[str, Any], level: str) -> float | None:
    return entry.get("tpr_at_fpr", {}).get(level)


def strongest_attack(attacks: dict[str, dict[str, Any]]) -> str:
    """The attack with the highest AUC; ties broken by TPR at 1% FPR, then by name."""
    return max(attacks, key=lambda n: (attacks[n]["auc"], _tpr(attacks[n], "0.01") or -1.0, n))


_VERDICT_CSS = {"undetermined": "unknown", "none-detected": "clean"}  # every leak level: "leaks"


def _verdict(results: dict[str, Any]) -> dict[str, Any]:
    """The library's verdict as written in ``results.json`` (the report computes none of its own)."""
    v = results.get("verdict")
    if not isinstance(v, dict) or not isinstance(v.get("headline"), str) or not isinstance(v.get("level"), str):
        raise ReportError("results.json has no verdict; it was written by an older miaudit: rerun the audit")
    return {**v, "css": _VERDICT_CSS.get(v["level"], "leaks"), "details": [str(d) for d in v.get("details", [])]}


def _roc_curves(inputs: RunInputs) -> dict[str, dict[str, Any]]:
    curves = {}
    member = inputs.scores.is_member
    for name, entry in inputs.results["attacks"].items():
        scores = inputs.scores.by_attack[name]
        fpr, tpr, _ = metrics.roc_curve(scores, member)
        auc = metrics.auc(scores, member)
        if abs(auc - entry["auc"]) > AUC_TOLERANCE:
            raise ReportError(
                f"scores.csv gives attack {name!r} an AUC of {auc:.6f} but results.json says {entry['auc']:.6f}; "
                "the two files are from different runs"
            )
        pf, pt = metrics.downsample_roc(fpr, tpr, ROC_POINTS)
        curves[name] = {
            "auc": float(entry["auc"]),
            "fpr": [float(v) for v in pf],
            "tpr": [float(v) for v in pt],
            "fpr_floor": 1.0 / int((~member).sum()),
        }
    return curves


def _exposed(inputs: RunInputs, attack: str) -> list[dict[str, Any]]:
    """The true members with the highest scores under ``attack``: flagged first at any threshold
    (with each document's excerpt when the run is a text audit)."""
    s, m = inputs.scores.by_attack[attack], inputs.scores.is_member
    order = np.argsort(-s, kind="stable")
    nonmember = np.sort(s[~m])
    rows = []
    for rank, i in enumerate(order, start=1):
        if m[i]:
            rows.append({
                "record_index": int(inputs.scores.record_index[i]),
                "score": float(s[i]),
                "rank": rank,
                "nonmembers_above": int(len(nonmember) - np.searchsorted(nonmember, s[i], side="left")),
                "text": None if inputs.excerpts is None else inputs.excerpts.get(int(inputs.scores.record_index[i])),
            })  # fmt: skip
            if len(rows) == TOP_EXPOSED:
                break
    return rows


def _attack_rows(attacks: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for name, e in sorted(attacks.items(), key=lambda kv: -kv[1]["auc"]):
        rows.append({
            "attack": name,
            "auc": e["auc"],
            "auc_ci": e.get("auc_ci"),
            "tpr_1": _tpr(e, "0.01"),
            "tpr_01": _tpr(e, "0.001"),
            "advantage": e.get("advantage"),
            "balanced_accuracy": e.get("balanced_accuracy"),
            "threshold_source": e.get("threshold_source"),
            "queries_per_record": e.get("queries_per_record"),
        })  # fmt: skip
    return rows


def _study_entry(study: Any) -> dict[str, Any]:
    doc = study.doc
    findings = doc.get("findings", {})
    ctx = doc.get("context", {})
    return {
        "name": study.name,
        "claim": str(doc.get("claim", "")),
        "claim_holds": findings.get("claim_holds"),
        "rule": findings.get("rule"),
        "context": context_line(ctx) if isinstance(ctx, dict) else "",
        "findings_json": json.dumps(findings, indent=2, sort_keys=True),
        "png_b64": _b64(study.png) if study.png else None,
    }


def build_context(inputs: RunInputs) -> dict[str, Any]:
    """Everything the template needs, plus ``figure_data``: the numbers behind each figure.

    ``audit`` says whether the page has the audit sections (a ``results.json``); ``empirical``
    is the empirical-epsilon section (a ``privacy_audit.json``) or None."""
    empirical = None if inputs.privacy_audit is None else _empirical(inputs.privacy_audit)
    ctx = _audit_context(inputs) if inputs.results is not None else _empirical_only_context(inputs, empirical)
    ctx["empirical"] = empirical
    return ctx


def _trials_unit(mode: str) -> str:
    return "canaries" if mode == "one-run" else "runs"


def _empirical(doc: dict[str, Any]) -> dict[str, Any]:
    """The empirical-epsilon section from a checked ``privacy_audit.json``: one row per bound."""
    config, accountant = doc["config"], doc["accountant_epsilon"]
    rows = []
    for b in doc["bounds"]:
        estimate = b["kind"] == "estimate"
        confidence = b["confidence"]
        choice = b.get("choice") or {}
        rows.append({
            "method": b["method"],
            "kind": b["kind"],
            "estimate": estimate,
            "epsilon": float(b["epsilon"]),
            "confidence": None if confidence is None else float(confidence),
            "ratio": b.get("ratio_to_accountant"),
            "selection": b["selection"],
            "rule": choice.get("rule"),
            "how": choice.get("how"),
            "paper": b.get("paper") or "",
            "above_accountant": not estimate and accountant is not None and b["epsilon"] > accountant,
        })  # fmt: skip
    return {
        "rows": rows,
        "accountant_epsilon": accountant,
        "delta": doc["delta"],
        "trials": doc["trials"],
        "trials_unit": _trials_unit(config["mode"]),
        "mode": config["mode"],
        "canary_kind": config["canary_kind"],
        "attack": config["attack"],
        "dataset": config["dataset"],
        "broken": [r for r in rows if r["above_accountant"]],
        "has_estimate": any(r["estimate"] for r in rows),
        "config_json": json.dumps(config, indent=2, sort_keys=True),
    }


def _empirical_only_context(inputs: RunInputs, e: dict[str, Any]) -> dict[str, Any]:
    """The page of a ``miaudit privacy-audit`` folder: the empirical-epsilon section, its
    configuration and the versions."""
    training = "non-private" if e["accountant_epsilon"] is None else f"DP-SGD, accountant's epsilon {e['accountant_epsilon']:.3f}"
    return {
        "audit": False,
        "title": f"Empirical privacy audit: {e['dataset']} / {e['mode']}",
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "setting": f"{e['dataset']} / {e['mode']} / {e['trials']} {e['trials_unit']} ({e['canary_kind']}) / attack {e['attack']} / {training}",
        "audit_versions": (inputs.privacy_audit or {}).get("versions") or {},
        "report_versions": versions(),
        "figure_data": {},
    }


def _audit_context(inputs: RunInputs) -> dict[str, Any]:
    r = inputs.results
    assert r is not None and inputs.scores is not None
    attacks = r["attacks"]
    best = strongest_attack(attacks)
    target, dataset = r["target"], r["dataset"]
    n_members = int(inputs.scores.is_member.sum())
    n_non = len(inputs.scores.is_member) - n_members
    setting = (
        f"{dataset.get('name')} / {target.get('model')} / seed {target.get('seed')} / "
        f"threat model {r.get('threat_model')} / {n_members} members, {n_non} non-members"
    )
    curves = _roc_curves(inputs)
    # Most exposed records under the verdict's headline attack (chosen without the truth).
    headline = (r.get("verdict") or {}).get("headline_attack")
    exposed = headline if headline in attacks else best
    figure_data: dict[str, Any] = {"roc": {n: {k: c[k] for k in ("auc", "fpr", "tpr")} for n, c in curves.items()}}
    ctx: dict[str, Any] = {
        "audit": True,
        "title": f"Membership-inference audit: {dataset.get('name')} / {target.get('model')}",
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "setting": setting,
        "dataset": dataset,
        "target": target,
        "threat_model": r.get("threat_model"),
        "threat": r.get("threat"),
        "best": {"attack": best, **_attack_rows({best: attacks[best]})[0]},
        "verdict": _verdict(r),
        "warnings": [str(w) for w in r.get("warnings", [])],
        "notes": [str(n) for n in (r.get("evaluation") or {}).get("notes", [])],
        "attacks": _attack_rows(attacks),
        "skipped": r.get("skipped", {}),
        "roc_png": _b64(roc_figure(curves, "every attack; " + setting + "; one seed")),
        "exposed_attack": exposed,
        "exposed": _exposed(inputs, exposed),
        "exposed_text": inputs.excerpts is not None,
        "config_json": json.dumps(r.get("config", {}), indent=2, sort_keys=True),
        "threat_json": json.dumps(r.get("threat"), indent=2, sort_keys=True),
        "audit_versions": r.get("versions") or {"miaudit": r.get("miaudit_version")},
        "report_versions": versions(),
        "defenses": None,
        "studies": [_study_entry(s) for s in inputs.studies],
    }
    if inputs.defenses is not None:
        ctx["defenses"] = {
            "rows": inputs.defenses,
            "baseline": inputs.defenses_baseline,
            "columns": _defense_columns(inputs.defenses),
            "png_b64": _b64(inputs.defenses_png or defenses_figure(inputs.defenses, inputs.defenses_baseline, setting)),
            "source": inputs.defenses_source,
            "note": inputs.defenses_note,
            "from_defend": inputs.defenses_png is not None or inputs.defenses_source != "defenses.json",
        }
        figure_data["defenses"] = [{"name": d["name"], "test_accuracy": d["test_accuracy"], "auc": d["auc"]} for d in inputs.defenses]
    ctx["figure_data"] = figure_data
    return ctx


def _defense_columns(rows: list[dict[str, Any]]) -> list[str]:
    cols = ["name", "test_accuracy", "auc"]
    for row in rows:
        cols += [k for k, v in row.items() if k not in cols and (v is None or isinstance(v, (str, int, float)))]
    return cols


def fmt(value: Any, digits: int = 4) -> str:
    """Numbers for the page: fixed decimals; None -> 'n/m' (not measurable)."""
    if value is None:
        return "n/m"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return "n/m" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)
