"""Membership inference against language models (issue 18): text corpora and splits
(:mod:`corpus`), the blind baseline that checks a split (:mod:`blind`), the models and attacks."""
