"""LiRA and RMIA against a user's own language model: ``--reference-base`` (the public model it was
fine-tuned from) and ``--pool-file`` (the attacker's own text) give K reference LMs, the base
fine-tuned on halves of the pool with the target's recipe."""

from __future__ import annotations

import json

import pytest

from miaudit.cli import main
from miaudit.text.corpus import FORTUNES_DIR

pytestmark = pytest.mark.skipif(not FORTUNES_DIR.is_dir(), reason="the Debian package fortunes is not installed (apt-get install fortunes)")


def _documents(path, docs):
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    return str(path)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A public base pre-trained on public fortunes, the target = that base fine-tuned on the members."""
    import copy

    from miaudit.text.corpus import load_corpus
    from miaudit.text.lm import build_lm, save_lm, train_lm, train_tokenizer

    root = tmp_path_factory.mktemp("own-references")
    docs = load_corpus("fortunes")[:700]
    public, members, nonmembers, pool = docs[:300], docs[300:400], docs[400:500], docs[500:600]
    tok = train_tokenizer(public, vocab_size=384, seed=0)
    base = train_lm(build_lm("tiny", len(tok), 0), tok, public, epochs=1, seed=0)
    save_lm(base, tok, root / "base")
    save_lm(train_lm(copy.deepcopy(base), tok, members, epochs=6, seed=0), tok, root / "target")
    other = train_tokenizer(docs[600:], vocab_size=300, seed=0)
    save_lm(build_lm("tiny", len(other), 0), other, root / "foreign-base")
    files = {name: _documents(root / f"{name}.jsonl", d) for name, d in (("members", members), ("nonmembers", nonmembers), ("pool", pool))}
    return root, files


def _own(root, files, *extra):
    return ["audit-text", "--model-dir", str(root / "target"), "--train", files["members"], "--test", files["nonmembers"], "--quiet", *extra]


def test_reference_base_gives_lira_and_rmia_on_a_users_model(folders, tmp_path):
    root, files = folders
    args = _own(root, files, "--reference-base", str(root / "base"), "--pool-file", files["pool"], "--references", "4", "--epochs", "6",
                "--attacks", "lira,rmia,lira-offline,rmia-offline,reference,loss", "--out", str(tmp_path / "a"))  # fmt: skip
    assert main(args) == 0
    results = json.loads((tmp_path / "a" / "results.json").read_text())
    attacks = results["attacks"]
    assert set(attacks) == {"lira", "rmia", "lira-offline", "rmia-offline", "reference", "loss"}
    assert results["verdict"]["headline_attack"] == "lira"
    # the same recipe as the target: the references calibrate each document, above the loss attack
    assert attacks["lira"]["auc"] > attacks["loss"]["auc"] + 0.02 and attacks["lira"]["auc"] > 0.85
    assert attacks["rmia"]["auc"] > attacks["loss"]["auc"]
    assert results["target"]["reference_recipe"] == {"epochs": 6, "lr": 0.001, "seed": 0}
    assert results["target"]["reference"].startswith("--reference-base fine-tuned on the whole pool")
    assert attacks["lira"]["details"]["reference_models"] == 4


def test_without_a_base_the_reference_set_attacks_are_skipped_with_the_flag_to_give(folders, tmp_path):
    root, files = folders
    assert main(_own(root, files, "--attacks", "lira,loss", "--out", str(tmp_path / "b"))) == 0
    notes = json.loads((tmp_path / "b" / "results.json").read_text())["evaluation"]["notes"]
    assert any("Skipped lira" in n and "--reference-base" in n for n in notes), notes


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--reference-base", "BASE"], "--reference-base goes with --model-dir (or --endpoint) and --pool-file"),
        (["--reference-base", "FOREIGN", "--pool-file", "POOL"], "another tokenizer"),
        (["--reference-base", "BASE", "--pool-file", "POOL", "--lr", "-1"], "lr must be a positive number"),
    ],
)
def test_bad_reference_bases_are_one_line_and_exit_2(folders, tmp_path, capsys, extra, fragment):
    root, files = folders
    names = {"BASE": str(root / "base"), "FOREIGN": str(root / "foreign-base"), "POOL": files["pool"]}
    assert main(_own(root, files, *[names.get(x, x) for x in extra], "--out", str(tmp_path / "c"))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err
