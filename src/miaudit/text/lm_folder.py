"""Causal language models on disk: Hugging Face folders, safetensors only, no remote code.

A user's folder is checked before transformers reads it: ``config.json`` bounded in size
(limit ``json_bytes``) and naming a causal-LM model type transformers knows, no ``auto_map`` or
other custom-code hint (here or in ``tokenizer_config.json``) and no Python files, weights in
safetensors (a ``pytorch_model.bin``, ``*.pt`` or ``*.pkl`` is a pickle: loading one can run
code, so it is refused, never opened), and a ``tokenizer.json``. Then transformers loads it
with ``local_files_only=True``, ``trust_remote_code=False``, ``use_safetensors=True``. Every
refusal is one :class:`LMFolderError` line.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from miaudit.bounded_io import read_json, regular_file
from miaudit.errors import ConfigError, DataError
from miaudit.limits import LimitError

CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
WEIGHTS_FILES = ("model.safetensors", "model.safetensors.index.json")  # one file, or shards + index
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
# Keys through which a Hugging Face folder asks for code of its own to be run.
CUSTOM_CODE_KEYS = ("auto_map", "custom_pipelines", "trust_remote_code")


class LMFolderError(ConfigError):
    """A language-model folder that is missing, unsafe to load, or not a causal LM."""


def save_lm(model: Any, tokenizer: Any, folder: str | Path) -> Path:
    """Write ``model`` and ``tokenizer`` to ``folder`` (config.json, model.safetensors, tokenizer files)."""
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise LMFolderError(f"{out} exists and is not a folder; choose another path")
    out.mkdir(parents=True, exist_ok=True)
    # transformers 5 writes safetensors always and dropped the flag; 4.x needs it.
    flag = {"safe_serialization": True} if "safe_serialization" in inspect.signature(model.save_pretrained).parameters else {}
    with _quiet():
        model.save_pretrained(out, **flag)
    tokenizer.save_pretrained(out)
    if not (out / WEIGHTS_FILES[0]).is_file():
        raise LMFolderError(f"saving to {out} wrote no {WEIGHTS_FILES[0]}; upgrade transformers (>= 4.40)")
    return out


def load_lm(folder: str | Path) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a Hugging Face causal-LM folder, after the checks above."""
    path = Path(folder)
    if not path.is_dir():
        raise LMFolderError(f"language-model folder {path} does not exist; check the path (save one with save_lm)")
    config = _read_checked_json(path / CONFIG_FILE, "model config")
    _check_no_custom_code(path, config)
    model_type = _causal_model_type(path, config)
    _check_weights(path)
    _check_tokenizer(path)
    return _load(path, model_type, config)


def _read_checked_json(file: Path, what: str, *, required: bool = True) -> dict[str, Any] | None:
    if not file.exists() and not file.is_symlink():
        if not required:
            return None
        raise LMFolderError(f"{file} is missing; this is not a Hugging Face model folder")
    try:
        data = read_json(file, what)
    except (DataError, LimitError) as exc:
        raise LMFolderError(f"{file} is unreadable: {exc}") from None
    if not isinstance(data, dict):
        raise LMFolderError(f"{file} is not a JSON object; this is not a Hugging Face {what}")
    return data


def _check_no_custom_code(path: Path, config: dict[str, Any]) -> None:
    tokenizer_config = _read_checked_json(path / TOKENIZER_CONFIG_FILE, "tokenizer config", required=False) or {}
    for name, data in ((CONFIG_FILE, config), (TOKENIZER_CONFIG_FILE, tokenizer_config)):
        keys = [k for k in CUSTOM_CODE_KEYS if k in data]
        if keys:
            raise LMFolderError(
                f"{path / name} asks for custom code ({', '.join(keys)}); miaudit never runs a model's own code: "
                "use a model type transformers ships"
            )
    scripts = sorted(p.name for p in path.glob("*.py"))
    if scripts:
        raise LMFolderError(f"{path} holds Python files ({', '.join(scripts[:3])}): custom model code, which miaudit never runs; remove them")


def _causal_model_type(path: Path, config: dict[str, Any]) -> str:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise LMFolderError(
            f"{path / CONFIG_FILE} names model type {model_type!r}, not a causal language model this transformers knows "
            "(e.g. gpt2, llama, gpt_neox)"
        )
    return model_type


def _check_weights(path: Path) -> None:
    if any((path / name).is_file() for name in WEIGHTS_FILES):
        return
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise LMFolderError(
            f"{path} has weights only as pickle files ({', '.join(pickles[:3])}), which can run code when loaded "
            "and are never opened; convert them to model.safetensors where you trust them"
        )
    raise LMFolderError(f"{path} has no model.safetensors; save the model with safetensors weights")


def _check_tokenizer(path: Path) -> None:
    file = path / TOKENIZER_FILE
    if not file.exists() and not file.is_symlink():
        raise LMFolderError(f"{file} is missing; save the model's fast tokenizer (tokenizer.save_pretrained) next to it")
    try:
        regular_file(file, "tokenizer")
    except (DataError, LimitError) as exc:
        raise LMFolderError(f"{file} is unreadable: {exc}") from None


def _load(path: Path, model_type: str, config: dict[str, Any]) -> tuple[Any, Any]:
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    # The config is built from the bounded read above, so transformers does not read it again.
    settings = {k: v for k, v in config.items() if k != "model_type"}
    try:
        with _quiet():
            model_config = AutoConfig.for_model(model_type, **settings)
            model = AutoModelForCausalLM.from_pretrained(
                path, config=model_config, local_files_only=True, trust_remote_code=False, use_safetensors=True
            )
            tokenizer = PreTrainedTokenizerFast.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 -- transformers raises many types for a damaged folder; each is one line here
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise LMFolderError(f"{path} could not be loaded as a causal LM ({type(exc).__name__}: {first[:300]})") from None
    return model.eval(), tokenizer


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No transformers progress bars (they would clutter the CLI's output) for the span of a block."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
