"""`miaudit audit-text`: a small GPT trained here and a user's own Hugging Face folder, end to end.

Fortunes documents (the Debian package; skipped where absent), members vs non-members split
i.i.d.; every text attack, the verdict, the blind baseline's note and the report. No network:
sockets are refused for the whole of the own-model audit.
"""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest

from miaudit.cli import main
from miaudit.text.corpus import FORTUNES_DIR

pytestmark = pytest.mark.skipif(not FORTUNES_DIR.is_dir(), reason="the Debian package fortunes is not installed (apt-get install fortunes)")

SMALL = ["--members", "120", "--nonmembers", "120", "--pool", "120", "--public", "400", "--epochs", "8", "--references", "2", "--quiet"]


@pytest.fixture(scope="module")
def trained_here(tmp_path_factory):
    out = tmp_path_factory.mktemp("text") / "here"
    assert main(["audit-text", *SMALL, "--out", str(out)]) == 0
    return out


def test_a_model_trained_here_is_audited_by_every_text_attack(trained_here):
    from miaudit.text.attacks import TEXT_ATTACKS

    results = json.loads((trained_here / "results.json").read_text())
    assert results["kind"] == "text" and set(results["attacks"]) == set(TEXT_ATTACKS.names())
    assert results["verdict"]["headline_attack"] == "lira"  # first of the fixed text order that ran
    assert results["attacks"]["lira"]["auc"] > 0.8
    # a fine-tuned tiny GPT memorises its members: the reference attack separates them
    assert results["attacks"]["reference"]["auc"] > 0.8 and results["verdict"]["level"] == "high"
    assert results["target"]["perplexity_members"] < results["target"]["perplexity_nonmembers"]
    notes = results["evaluation"]["notes"]
    assert any(n.startswith("Blind baseline") and "no signal" in n for n in notes), notes
    # references = 2 is below the 4 that tuning a needs: the default, recorded and said
    offline = results["attacks"]["rmia-offline"]["details"]
    assert offline["a"] == 0.3 and offline["a_source"].startswith("default")
    assert any(n.startswith("RMIA-offline: a = 0.3, default") for n in notes), notes
    html = (trained_here / "report.html").read_text()
    assert "perplexity on members" in html and "Blind baseline" in html
    # the most exposed documents are shown as text, in record order (members first)
    lines = (trained_here / "documents.jsonl").read_text().splitlines()
    assert len(lines) == 240 and "document (first characters)" in html


def _documents(path, docs):
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    return str(path)


def test_a_users_own_model_folder_is_audited_without_network(tmp_path, monkeypatch):
    """A tiny GPT saved as a Hugging Face folder, its members and non-members as JSONL files:
    every attack but the reference one (no reference folder given: skipped with its reason),
    then with a reference folder, then with a pool file (DC-PDD, ReCaLL); any socket use fails the test."""
    from miaudit.text.corpus import load_corpus
    from miaudit.text.lm import build_lm, save_lm, train_lm, train_tokenizer

    docs = load_corpus("fortunes")[:400]
    members, nonmembers, other = docs[:100], docs[100:200], docs[200:400]
    tok = train_tokenizer(other, vocab_size=384, seed=0)
    target = train_lm(build_lm("tiny", len(tok), 0), tok, members, epochs=8, seed=0)
    reference = train_lm(build_lm("tiny", len(tok), 1), tok, other, epochs=8, seed=1)
    save_lm(target, tok, tmp_path / "model")
    save_lm(reference, tok, tmp_path / "reference")
    train, test = _documents(tmp_path / "members.jsonl", members), _documents(tmp_path / "nonmembers.jsonl", nonmembers)

    def no_network(*args, **kwargs):
        raise AssertionError("the audit tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    own = ["audit-text", "--model-dir", str(tmp_path / "model"), "--train", train, "--test", test, "--quiet"]
    assert main([*own, "--out", str(tmp_path / "a")]) == 0
    results = json.loads((tmp_path / "a" / "results.json").read_text())
    assert "reference" not in results["attacks"] and results["attacks"]["loss"]["auc"] > 0.7
    assert any("Skipped reference" in n for n in results["evaluation"]["notes"])
    assert not {"lira", "rmia"} & set(results["attacks"]) and any("Skipped lira" in n for n in results["evaluation"]["notes"])
    assert {"recall", "dc-pdd"}.isdisjoint(results["attacks"]) and any("Skipped recall" in n and "--pool-file" in n for n in results["evaluation"]["notes"])
    assert (tmp_path / "a" / "report.html").is_file()
    assert main([*own, "--reference-dir", str(tmp_path / "reference"), "--out", str(tmp_path / "b")]) == 0
    with_ref = json.loads((tmp_path / "b" / "results.json").read_text())
    assert with_ref["attacks"]["reference"]["auc"] > 0.7
    # the same model and documents give the same scores whether or not a reference is given
    a = np.genfromtxt(tmp_path / "a" / "scores.csv", delimiter=",", names=True)
    b = np.genfromtxt(tmp_path / "b" / "scores.csv", delimiter=",", names=True)
    assert np.array_equal(a["loss"], b["loss"])
    # the attacker's own non-member text (here the reference's): DC-PDD's frequencies, ReCaLL's prefix
    pool = _documents(tmp_path / "pool.jsonl", other[:60])
    assert main([*own, "--pool-file", pool, "--attacks", "recall,dc-pdd,loss", "--out", str(tmp_path / "c")]) == 0
    with_pool = json.loads((tmp_path / "c" / "results.json").read_text())
    assert set(with_pool["attacks"]) == {"recall", "dc-pdd", "loss"} and with_pool["target"]["pool"] == 60
    assert any(n.startswith("ReCaLL: prefix of 4 pool document(s)") for n in with_pool["evaluation"]["notes"])


@pytest.mark.parametrize("setup, fragment", [
    ("pickle", "pytorch_model.bin"),
    ("partial", "needs --model-dir, --train (members) and --test (non-members) together"),
    ("attack", "unknown text attack"),
    ("references", "references must be an even whole number"),
])  # fmt: skip
def test_refusals_are_one_line_and_exit_2(tmp_path, capsys, setup, fragment):
    docs = tmp_path / "d.txt"
    docs.write_text("a member document of some length\nanother document here\n")
    if setup == "pickle":
        folder = tmp_path / "m"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
        (folder / "pytorch_model.bin").write_bytes(b"not loaded")
        other = tmp_path / "n.txt"
        other.write_text("a document the model never saw\n")
        args = ["--model-dir", str(folder), "--train", str(docs), "--test", str(other)]
    elif setup == "partial":
        args = ["--model-dir", str(tmp_path)]
    elif setup == "references":
        args = ["--references", "3"]
    else:
        args = ["--attacks", "bogus", "--members", "5", "--nonmembers", "5", "--pool", "0", "--public", "20"]
    assert main(["audit-text", *args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err
