"""Torch architectures for targets and shadow models, built from a small hashable config.

An :class:`ArchConfig` names a registered architecture and its options. It is frozen, hashable
and JSON-able so that it can be part of a cache key. Modules return logits: the softmax is
applied by the classifier wrapper, never inside the module, so that attacks can read logits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from miaudit.errors import ConfigError
from miaudit.limits import check_at_most
from miaudit.registry import Registry


@dataclass(frozen=True)
class Activation:
    """An elementwise nonlinearity with the pieces the hand-written MLP backward needs.

    ``forward_`` applies it in place; ``backward_(grad, out)`` multiplies ``grad`` in place by
    the derivative expressed through the activation's *output* (so the input need not be kept).
    """

    module: Callable[[], nn.Module]
    forward_: Callable[[torch.Tensor], torch.Tensor]
    backward_: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _tanh_(z: torch.Tensor) -> torch.Tensor:
    # tanh(z) = 2 sigmoid(2z) - 1: PyTorch's vectorised CPU sigmoid is several times faster than
    # its tanh, and the result differs from torch.tanh by at most ~2e-7 (absolute).
    return z.mul_(2.0).sigmoid_().mul_(2.0).sub_(1.0)


# The backward helpers call the same fused ATen kernels autograd uses for these activations
# (one pass, written in place), so the bank's hand-written backward matches autograd's.
def _tanh_backward_(grad: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    return torch.ops.aten.tanh_backward.grad_input(grad, out, grad_input=grad)


def _relu_backward_(grad: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    # relu(z) > 0 exactly where z > 0, so the output serves as the mask.
    return torch.ops.aten.threshold_backward.grad_input(grad, out, 0, grad_input=grad)


def _sigmoid_backward_(grad: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    return torch.ops.aten.sigmoid_backward.grad_input(grad, out, grad_input=grad)


ACTIVATIONS: Registry[Activation] = Registry("activation")
ACTIVATIONS.add("tanh", Activation(nn.Tanh, _tanh_, _tanh_backward_))
ACTIVATIONS.add("relu", Activation(nn.ReLU, torch.Tensor.relu_, _relu_backward_))
ACTIVATIONS.add("sigmoid", Activation(nn.Sigmoid, torch.Tensor.sigmoid_, _sigmoid_backward_))


def _freeze(value: Any) -> Any:
    """Lists become tuples (hashable); everything else is kept."""
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    """Tuples become lists (what JSON round-trips to, so hashes agree after a reload)."""
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class ArchConfig:
    """A registered architecture name plus options, e.g. ``ArchConfig("mlp", {"hidden": (64,)})``.

    ``options`` may be given as a mapping or as ``(key, value)`` pairs; it is stored as a sorted
    tuple so that equal configs are equal and hash alike. Use :meth:`resolved` to fill in the
    architecture's defaults (cache keys use the resolved form, so spelling a default out
    explicitly does not change the key).
    """

    name: str
    options: tuple[tuple[str, Any], ...] | Mapping[str, Any] = ()

    def __post_init__(self) -> None:
        items = self.options.items() if isinstance(self.options, Mapping) else self.options
        frozen = tuple(sorted((str(k), _freeze(v)) for k, v in items))
        object.__setattr__(self, "options", frozen)

    @classmethod
    def of(cls, name: str, **options: Any) -> ArchConfig:
        return cls(name, options)

    def option_dict(self) -> dict[str, Any]:
        return dict(self.options)  # type: ignore[arg-type]

    def resolved(self) -> ArchConfig:
        """This config with the architecture's defaults filled in, validated."""
        spec = ARCHITECTURES.get(self.name)
        return ArchConfig(self.name, spec.resolve_options(self.option_dict()))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "options": {k: _thaw(v) for k, v in self.option_dict().items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchConfig:
        return cls(data["name"], dict(data.get("options", {})))


@dataclass(frozen=True)
class ArchSpec:
    """A registered architecture: a builder, its default options and the bank engine to use.

    ``build(input_shape, num_classes, **options)`` returns an uninitialised module (weights are
    set by :func:`init_module`). ``engine`` names an entry of ``miaudit.models.engines.ENGINES``.

    ``optional`` holds options added after models were first cached, with their defaults: they
    are accepted and validated like the others, but left out of the resolved form while they
    keep their default, so a config that does not use them (and its cache key) is unchanged.
    ``build`` must give them the same defaults as keyword arguments.
    """

    build: Callable[..., nn.Module]
    defaults: Mapping[str, Any]
    engine: str = "functional"
    description: str = ""
    validators: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)
    optional: Mapping[str, Any] = field(default_factory=dict)

    def resolve_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        known = set(self.defaults) | set(self.optional)
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(
                f"unknown architecture option(s) {', '.join(unknown)}; "
                f"known options: {', '.join(sorted(known)) or '(none)'}"
            )
        merged = {**self.defaults, **options}
        resolved: dict[str, Any] = {}
        for k, v in merged.items():
            value = _freeze(self.validators.get(k, _identity)(v))
            if k in self.optional and value == self.optional[k]:
                continue  # an optional option at its default is left out
            resolved[k] = value
        return resolved


def _identity(value: Any) -> Any:
    return value


def _positive_ints(name: str, allow_empty: bool) -> Callable[[Any], tuple[int, ...]]:
    def check(value: Any) -> tuple[int, ...]:
        if isinstance(value, int) and not isinstance(value, bool):
            value = (value,)
        ok = isinstance(value, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
        )
        if not ok or (not allow_empty and not value):
            raise ConfigError(f"option {name!r} must be a list of positive integers, got {value!r}")
        return tuple(value)

    return check


def _activation_name(value: Any) -> str:
    ACTIVATIONS.get(value)  # raises UnknownNameError listing the known activations
    return str(value)


def _initializer_name(value: Any) -> str:
    INITIALIZERS.get(value)  # raises UnknownNameError listing the known initialisations
    return str(value)


ARCHITECTURES: Registry[ArchSpec] = Registry("architecture")


def _mlp(
    input_shape: tuple[int, ...], num_classes: int, *, hidden: tuple[int, ...], activation: str, init: str = "torch"
) -> nn.Module:
    # ``init`` names the initial weights' distribution; init_module draws them, not the builder.
    act = ACTIVATIONS.get(activation)
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for h in hidden:
        layers += [nn.Linear(width, h), act.module()]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


ARCHITECTURES.add(
    "mlp",
    ArchSpec(
        build=_mlp,
        # (128,) tanh is the Location30/Purchase100 shadow model of Shokri et al. (S&P 2017);
        # Nasr et al. use (1024, 512, 256, 128).
        defaults={"hidden": (128,), "activation": "tanh"},
        engine="stacked_mlp",
        description="fully connected network on flattened input",
        validators={
            "hidden": _positive_ints("hidden", allow_empty=True),
            "activation": _activation_name,
            "init": _initializer_name,
        },
        # init: "torch" (PyTorch's default distribution) or "glorot_uniform" (Keras' default:
        # Glorot-uniform weights, zero biases; e.g. the Location30 target of Jia et al., CCS 2019).
        optional={"init": "torch"},
    ),
)


def _cnn(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    channels: tuple[int, ...],
    hidden: tuple[int, ...],
    activation: str,
) -> nn.Module:
    if len(input_shape) != 3:
        raise ConfigError(f"cnn needs images shaped (channels, height, width), got input shape {input_shape}")
    act = ACTIVATIONS.get(activation)
    in_ch, height, width = input_shape
    shrink = 2 ** len(channels)
    if height < shrink or width < shrink:
        raise ConfigError(
            f"cnn with {len(channels)} pooling blocks needs images of at least {shrink}x{shrink}, "
            f"got {height}x{width}; use fewer channels entries or the mlp"
        )
    layers: list[nn.Module] = []
    for ch in channels:
        # 3x3 'same' convolution then 2x2 max-pool: the size only shrinks in the pooling.
        layers += [nn.Conv2d(in_ch, ch, kernel_size=3, padding=1), act.module(), nn.MaxPool2d(2)]
        in_ch, height, width = ch, height // 2, width // 2
    layers.append(nn.Flatten())
    features = in_ch * height * width
    for h in hidden:
        layers += [nn.Linear(features, h), act.module()]
        features = h
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)


ARCHITECTURES.add(
    "cnn",
    ArchSpec(
        build=_cnn,
        defaults={"channels": (16, 32), "hidden": (64,), "activation": "relu"},
        engine="looped",  # faster on a CPU than vmap's grouped convolutions (engine_looped)
        description="small CNN: conv3x3+pool blocks, then a linear head (1x8x8 .. 3x32x32 images)",
        validators={
            "channels": _positive_ints("channels", allow_empty=False),
            "hidden": _positive_ints("hidden", allow_empty=True),
            "activation": _activation_name,
        },
    ),
)


class _BasicBlock(nn.Module):
    """He et al.'s basic residual block (CVPR 2016): conv3x3-BN-ReLU-conv3x3-BN plus the input
    (through a 1x1 convolution and BN when the stride or width changes), then ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))
            if stride != 1 or in_ch != out_ch
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def _resnet(input_shape: tuple[int, ...], num_classes: int, *, widths: tuple[int, ...], blocks: int) -> nn.Module:
    if len(input_shape) != 3:
        raise ConfigError(f"resnet needs images shaped (channels, height, width), got input shape {input_shape}")
    if int(blocks) < 1:
        raise ConfigError(f"resnet needs at least 1 block per stage, got blocks={blocks}")
    shrink = 2 ** len(widths)  # the last stage's maps are at least 2x2, so batch norm sees 2+ values per channel
    if input_shape[1] < shrink or input_shape[2] < shrink:
        raise ConfigError(
            f"resnet with {len(widths)} stages needs images of at least {shrink}x{shrink}, got "
            f"{input_shape[1]}x{input_shape[2]}; use fewer widths"
        )
    in_ch = input_shape[0]
    layers: list[nn.Module] = [nn.Conv2d(in_ch, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
    in_ch = widths[0]
    for stage, width in enumerate(widths):
        for b in range(int(blocks)):
            layers.append(_BasicBlock(in_ch, width, 2 if stage > 0 and b == 0 else 1))  # each later stage halves the size
            in_ch = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_ch, num_classes)]
    return nn.Sequential(*layers)


def _positive_int(name: str) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        return int(value)

    return check


ARCHITECTURES.add(
    "resnet",
    ArchSpec(
        build=_resnet,
        # CIFAR ResNet-8 shape (He et al.: 16-32-64 widths, n blocks per stage); batch norm's
        # running statistics are buffers of each model, so every model of a bank keeps its own.
        defaults={"widths": (16, 32, 64), "blocks": 1},
        engine="looped",
        description="small residual network with batch norm: a conv stem, stages of basic blocks (stride 2 between stages), global average pooling",
        validators={"widths": _positive_ints("widths", allow_empty=False), "blocks": _positive_int("blocks")},
    ),
)


def build_module(
    arch: ArchConfig, input_shape: tuple[int, ...], num_classes: int, *, empty: bool = False
) -> nn.Module:
    """A module of ``arch`` for inputs of ``input_shape`` and ``num_classes`` logits.

    Its weights are PyTorch's defaults from the global generator; ``empty=True`` skips drawing
    them (the memory is uninitialised), for callers that set every weight next, with
    :func:`init_module` or ``load_state_dict``. The parameter count is checked against the
    ``model_parameters`` limit before any weight is allocated (:func:`count_parameters`).
    """
    if num_classes < 2:
        raise ConfigError(f"num_classes must be at least 2, got {num_classes}")
    shape = tuple(int(d) for d in input_shape)
    module = _on_meta(arch, shape, num_classes)
    check_at_most("model_parameters", _numel(module), f"architecture {arch.name!r} on inputs {list(shape)}: its parameters")
    if not empty:
        return ARCHITECTURES.get(arch.name).build(shape, int(num_classes), **arch.resolved().option_dict())
    return module.to_empty(device="cpu")


def count_parameters(arch: ArchConfig, input_shape: tuple[int, ...], num_classes: int) -> int:
    """The parameters a module of ``arch`` would have, counted on torch's ``meta`` device
    (shapes only, nothing allocated), so a config asking for 10**14 weights costs nothing."""
    return _numel(_on_meta(arch, tuple(int(d) for d in input_shape), num_classes))


def _on_meta(arch: ArchConfig, shape: tuple[int, ...], num_classes: int) -> nn.Module:
    with torch.device("meta"):  # no allocation, no random draws
        return ARCHITECTURES.get(arch.name).build(shape, int(num_classes), **arch.resolved().option_dict())


def _numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters()) + sum(b.numel() for b in module.buffers())


Initializer = Callable[[nn.Module, torch.Generator], nn.Module]

INITIALIZERS: Registry[Initializer] = Registry("weight initialisation")


def _weighted_layers(module: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """(weight, bias or None) of every layer with a weight matrix/kernel, in module order."""
    layers = []
    for layer in module.modules():
        weight = getattr(layer, "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.ndim < 2:
            continue
        bias = getattr(layer, "bias", None)
        layers.append((weight, bias if isinstance(bias, torch.Tensor) else None))
    return layers


@INITIALIZERS.register("torch")
def _torch_default(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Weights and biases from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), what ``nn.Linear`` /
    ``nn.Conv2d`` draw by default."""
    with torch.no_grad():
        for weight, bias in _weighted_layers(module):
            bound = 1.0 / math.sqrt(math.prod(weight.shape[1:]))
            weight.uniform_(-bound, bound, generator=generator)
            if bias is not None:
                bias.uniform_(-bound, bound, generator=generator)
    return module


@INITIALIZERS.register("glorot_uniform")
def _glorot_uniform(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Weights from U(-a, a) with a = sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio, AISTATS
    2010; ``nn.init.xavier_uniform_``, Keras' default kernel initialiser) and zero biases."""
    with torch.no_grad():
        for weight, bias in _weighted_layers(module):
            receptive = math.prod(weight.shape[2:])
            fan_in, fan_out = weight.shape[1] * receptive, weight.shape[0] * receptive
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            weight.uniform_(-bound, bound, generator=generator)
            if bias is not None:
                bias.zero_()
    return module


def init_module(module: nn.Module, generator: torch.Generator, init: str = "torch") -> nn.Module:
    """Initialise every layer's weights from ``generator`` with the named distribution.

    ``init`` is a name in :data:`INITIALIZERS`: ``"torch"`` (PyTorch's default) or
    ``"glorot_uniform"``. Draws come from the explicit generator and in module order, so that a
    seed fixes the initial weights whatever else used the global generator. Batch-norm layers
    get their fixed starting values (no draw), so modules built ``empty`` are fully set.
    """
    module = INITIALIZERS.get(init)(module, generator)
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._NormBase):
            layer.reset_parameters()  # scale 1, shift 0, running mean 0 and variance 1: no draw
    return module


def architecture_names() -> list[str]:
    return ARCHITECTURES.names()
