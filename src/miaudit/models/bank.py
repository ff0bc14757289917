"""ModelBank: K models of one architecture trained at once, each on its own records.

Membership-inference attacks need many shadow or reference models trained like the target
(Shokri et al., "Membership Inference Attacks Against Machine Learning Models", S&P 2017;
LiRA needs dozens to hundreds). Trained one at a time, small models spend most of their time in
per-step overhead; the bank stacks their parameters and advances all of them with one
vectorised step per batch (see ``engine_base``). Each model keeps its own initial weights,
record subset and batch order, so model k is the model ``train_one`` would give for
``(x[subsets[k]], y[subsets[k]], seeds[k])``, up to float rounding (the bank sums in a
different order; tests check parameters and logits to 1e-5).

Subsets may differ in size: model k takes ``ceil(len(subsets[k]) / batch_size)`` steps per
epoch like ``train_one``, its last batch may be short, and a model that has no batch left at a
step sits that step out entirely (see ``miaudit.models.batching``). MLPs use a hand-written
batched-matmul engine (``engine_mlp``), other architectures ``torch.func.vmap``
(``engine_functional``); the architecture registry says which.

With a :class:`ModelCache`, models already on disk are loaded, only the missing ones are
trained, in chunks of at most ``max_models_per_pass``, and each chunk is saved as soon as it
finishes: an interrupted run resumes without retraining any finished chunk.

With ``recipe.standardize``, model k standardizes its inputs with the mean and std of
``x[subsets[k]]`` (its own records, never another model's): the engine standardizes each
model's batches after the gather, and the returned module is a
:class:`~miaudit.models.standardize.Standardized` wrapper around the trained network. The
cache holds the network's weights only; the statistics are recomputed from the data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext

import numpy as np
import torch
from torch import nn

# Importing the engines registers them.
import miaudit.models.engine_functional  # noqa: F401
import miaudit.models.engine_looped  # noqa: F401
import miaudit.models.engine_mlp  # noqa: F401
from miaudit.errors import CacheError, ConfigError
from miaudit.io_utils import sha256_arrays
from miaudit.models.architectures import ARCHITECTURES, ArchConfig, build_module
from miaudit.models.batching import ChunkPlan
from miaudit.models.cache import ModelCache, ModelKey
from miaudit.models.device import current_device
from miaudit.models.engine_base import ENGINES
from miaudit.models.jobs import Executor, TrainJob
from miaudit.models.inputs import as_features, as_index_array, as_labels, check_num_classes, same_length, to_tensors
from miaudit.models.progress import BankProgress, ProgressCallback, RichProgress
from miaudit.models.recipe import TrainingRecipe
from miaudit.models.seeding import check_seed
from miaudit.models.standardize import Standardized, input_stats
from miaudit.models.train import new_model

DEFAULT_MODELS_PER_PASS = 16  # Location30 MLPs: small enough to stay in cache, large enough to amortise


class ModelBank:
    """Trains (or loads) models of ``arch`` with ``recipe``.

    ``progress``: False (silent), True (a rich progress bar) or a callback receiving
    :class:`BankProgress` events. ``trained`` and ``loaded`` count the models this bank has
    actually trained and loaded from the cache, over all calls to :meth:`train`.
    """

    def __init__(
        self,
        arch: ArchConfig,
        recipe: TrainingRecipe,
        *,
        num_classes: int,
        cache: ModelCache | None = None,
        max_models_per_pass: int = DEFAULT_MODELS_PER_PASS,
        progress: bool | ProgressCallback = False,
        executor: Executor | None = None,
    ) -> None:
        if isinstance(max_models_per_pass, bool) or not isinstance(max_models_per_pass, int) or max_models_per_pass < 1:
            raise ConfigError(f"max_models_per_pass must be a positive integer, got {max_models_per_pass!r}")
        self.arch = arch.resolved()
        self.recipe = recipe
        self.num_classes = check_num_classes(num_classes)
        self.cache = cache
        self.max_models_per_pass = max_models_per_pass
        self.progress = progress
        self.executor = executor
        self.trained = 0
        self.loaded = 0

    def train(
        self,
        x: np.ndarray,
        y: np.ndarray,
        subsets: Sequence[np.ndarray],
        seeds: Sequence[int],
        *,
        data_fingerprint: str | None = None,
    ) -> list[nn.Module]:
        """One trained module (eval mode) per ``(subsets[k], seeds[k])``, in that order.

        ``x``, ``y`` are the whole data set; ``subsets[k]`` are the indices of model k's
        training records. ``data_fingerprint`` (e.g. ``Dataset.fingerprint``) identifies the
        data in cache keys; without it, it is computed from x and y.
        """
        x_np = as_features(x)
        y_np = as_labels(y, len(x_np), self.num_classes)
        same_length(subsets, seeds)
        subs = [as_index_array(s, len(x_np), f"training indices of model {i}") for i, s in enumerate(subsets)]
        seed_list = [check_seed(s) for s in seeds]
        input_shape = tuple(int(d) for d in x_np.shape[1:])
        build_module(self.arch, input_shape, self.num_classes, empty=True)  # fail early on a bad shape/option

        keys: list[ModelKey | None] = [None] * len(subs)
        if self.cache is not None:
            fingerprint = data_fingerprint if data_fingerprint is not None else sha256_arrays(x_np, y_np)
            keys = [
                ModelKey.build(
                    arch=self.arch, recipe=self.recipe, seed=seed, num_classes=self.num_classes,
                    input_shape=input_shape, data_fingerprint=fingerprint, train_indices=sub,
                )  # fmt: skip
                for sub, seed in zip(subs, seed_list, strict=True)
            ]
        stats = [input_stats(x_np, sub) for sub in subs] if self.recipe.standardize else None
        models: list[nn.Module | None] = [self._load(key, input_shape) for key in keys]
        todo = [i for i, m in enumerate(models) if m is None]
        xt, yt = to_tensors(x_np, y_np)
        chunks = [todo[i : i + self.max_models_per_pass] for i in range(0, len(todo), self.max_models_per_pass)]
        if self.executor is not None and not self.executor.in_process:
            self._train_elsewhere(x_np, y_np, subs, seed_list, chunks, keys, models, input_shape)
            return _with_stats([m for m in models if m is not None], stats)
        with self._reporter() as report:
            done = len(subs) - len(todo)
            for c, chunk in enumerate(chunks):
                on_epoch = _epoch_hook(report, c, len(chunks), len(chunk), done, len(subs), self.recipe.epochs)
                trained = self._train_chunk(
                    xt, yt, [subs[i] for i in chunk], [seed_list[i] for i in chunk], on_epoch,
                    None if stats is None else [stats[i] for i in chunk],
                )  # fmt: skip
                for i, module in zip(chunk, trained, strict=True):
                    models[i] = module
                    key = keys[i]
                    if self.cache is not None and key is not None:
                        self.cache.save(key, module.state_dict())
                self.trained += len(chunk)
                done += len(chunk)
                if report is not None:
                    report(BankProgress(c, len(chunks), self.recipe.epochs, self.recipe.epochs, len(chunk), done, len(subs), done=True))
        return _with_stats([m for m in models if m is not None], stats)

    def _train_elsewhere(
        self,
        x: np.ndarray,
        y: np.ndarray,
        subs: list[np.ndarray],
        seeds: list[int],
        chunks: list[list[int]],
        keys: list[ModelKey | None],
        models: list[nn.Module | None],
        input_shape: tuple[int, ...],
    ) -> None:
        """Each chunk as a job on the executor; weights are cached here as each job returns."""
        assert self.executor is not None
        jobs = [
            TrainJob(self.arch, self.recipe, self.num_classes, tuple(subs[i] for i in chunk), tuple(seeds[i] for i in chunk),
                     device=current_device().type)  # fmt: skip
            for chunk in chunks
        ]
        with self._reporter() as report:
            done = len(subs) - sum(len(c) for c in chunks)
            for finished, (c, states) in enumerate(self.executor.run(jobs, x, y)):
                for i, state in zip(chunks[c], states, strict=True):
                    tensors = {k: torch.from_numpy(np.array(v, copy=True)) for k, v in state.items()}  # Ray's arrays are read-only
                    module = build_module(self.arch, input_shape, self.num_classes, empty=True)
                    module.load_state_dict(tensors, strict=True)
                    models[i] = module.eval()
                    key = keys[i]
                    if self.cache is not None and key is not None:
                        self.cache.save(key, tensors)
                self.trained += len(chunks[c])
                done += len(chunks[c])
                if report is not None:
                    e = self.recipe.epochs
                    report(BankProgress(finished, len(chunks), e, e, len(chunks[c]), done, len(subs), done=True))

    def _train_chunk(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        subsets: list[np.ndarray],
        seeds: list[int],
        on_epoch: Callable[[int], None] | None,
        stats: list[tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> list[nn.Module]:
        input_shape = tuple(x.shape[1:])
        plan = ChunkPlan([torch.from_numpy(s) for s in subsets], seeds, self.recipe.batch_size)
        modules = [new_model(self.arch, input_shape, self.num_classes, seeds[i]) for i in plan.stack_order]
        engine_cls = ENGINES.get(ARCHITECTURES.get(self.arch.name).engine)
        stacked = None
        if stats is not None:  # rows in stack order, like the modules
            stacked = tuple(torch.from_numpy(np.stack([stats[i][j] for i in plan.stack_order])) for j in (0, 1))
        device = current_device()
        if device.type != "cpu" and device.type in engine_cls.devices:  # else this engine trains on the CPU
            modules, x, y = [m.to(device) for m in modules], x.to(device), y.to(device)
            stacked = None if stacked is None else (stacked[0].to(device), stacked[1].to(device))
        engine = engine_cls(self.arch, self.recipe, input_shape, self.num_classes, modules, plan, stacked)
        trained = [m.cpu() for m in engine.fit(x, y, on_epoch)]  # models leave training on the CPU
        by_position: list[nn.Module] = [nn.Module()] * len(subsets)
        for row, position in enumerate(plan.stack_order):
            by_position[position] = trained[row].eval()
        return by_position

    def _load(self, key: ModelKey | None, input_shape: tuple[int, ...]) -> nn.Module | None:
        if self.cache is None or key is None or key not in self.cache:
            return None
        state = self.cache.load(key)
        module = build_module(self.arch, input_shape, self.num_classes, empty=True)
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CacheError(
                f"cached model {self.cache.path(key)} does not fit the architecture ({exc}); delete the file and rerun"
            ) from None
        self.loaded += 1
        return module.eval()

    def _reporter(self):  # type: ignore[no-untyped-def]
        if callable(self.progress):
            return nullcontext(self.progress)
        if self.progress:
            return RichProgress(f"training {self.arch.name} models")
        return nullcontext(None)


def _with_stats(modules: list[nn.Module], stats: list[tuple[np.ndarray, np.ndarray]] | None) -> list[nn.Module]:
    """Each trained network behind its own standardization, when the recipe standardizes."""
    if stats is None:
        return modules
    return [Standardized(m, mean, std).eval() for m, (mean, std) in zip(modules, stats, strict=True)]


def _epoch_hook(
    report: ProgressCallback | None, chunk: int, chunks: int, size: int, done: int, total: int, epochs: int
) -> Callable[[int], None] | None:
    if report is None:
        return None

    def hook(epoch: int) -> None:
        report(BankProgress(chunk, chunks, epoch + 1, epochs, size, done, total))

    return hook
