"""Membership inference on text: corpora, language models, attacks."""
