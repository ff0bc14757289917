"""Membership inference on text (issue 18): documents as records, small language models, attacks.

``corpus`` (a user's documents, offline corpora, the split), ``blind`` (the blind baseline: a
check of the split, not an attack), ``stats`` (the per-token statistics every attack reads),
``lm`` and ``lm_folder`` (tokenizer, GPT-2 sizes, training, Hugging Face folders read safely),
``attacks`` (the ``TEXT_ATTACKS`` registry) and ``audit`` (``miaudit audit-text``).
"""
