"""Path layers: M modules of one kind, stored in one stacked tensor per parameter kind.

PathNet (Fernando et al. 2017, arXiv:1701.08734): a layer holds M small modules (linear or conv
+ ReLU); a path activates up to N of them and the layer's output is the sum (or the mean) of the
active modules' outputs (a module listed twice counts once). A path's distinct modules are
stacked and run as one matmul / conv with N·C_out output channels.

Storage: each parameter kind of a layer (weight, bias) is one ``[M, ...]`` tensor, so the whole
library is a handful of storages (one shared-memory segment each for Hogwild), but every module
is its own ``nn.Parameter`` — a view into that storage. Gradients therefore exist only for the
modules a path used, and optimisers skip the others (their ``grad`` is ``None``): forward,
backward and the optimiser step all cost O(N), not O(M). A frozen module is a parameter with
``requires_grad=False``.

New layer kinds (MoE, hyper-generated weights) subclass :class:`ModuleLayer`, register their
per-module parameters with :meth:`ModuleLayer.module_parameters` and answer the questions the
library asks of every kind (input shape, trained parameters, auxiliary loss, per-task parts).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

REDUCTIONS = ("sum", "mean")


def unique_weights(ids: torch.Tensor) -> torch.Tensor:
    """Weights that make duplicate module ids count once.

    ids: [..., N] long -> [..., N] float, 1.0 at the first occurrence of an id, 0.0 at repeats.
    """
    same = ids.unsqueeze(-1) == ids.unsqueeze(-2)  # [..., N, N]
    seen_before = torch.tril(same, diagonal=-1).any(-1)  # [..., N]
    return (~seen_before).to(torch.get_default_dtype())


def duplicate_weights(ids: torch.Tensor) -> torch.Tensor | None:
    """:func:`unique_weights` if any row of ``ids`` ([..., N]) repeats an id, else ``None``.

    The check runs in Python on the small path tensor: most paths have no duplicates, and then
    the layers skip the weighting altogether.
    """
    rows = ids.reshape(-1, ids.shape[-1]).tolist()
    if all(len(set(row)) == len(row) for row in rows):
        return None
    return unique_weights(ids)


def combine(
    outputs: torch.Tensor, weights: torch.Tensor | None, module_axis: int, reduce: str
) -> torch.Tensor:
    """Sum (or average) module outputs over ``module_axis``, duplicates counted once.

    outputs: [B, N, ...] or [P, N, ...] (module_axis 1), [P, B, N, ...] (module_axis 2) or
    [B, H, W, N, C] (module_axis 3, channels-last conv outputs); weights: ``None`` (no
    duplicates) or [N] / [P, N] from :func:`unique_weights`.
    """
    if weights is None:
        return outputs.mean(module_axis) if reduce == "mean" else outputs.sum(module_axis)
    weights = weights.to(outputs.dtype)
    if reduce == "mean":
        weights = weights / weights.sum(-1, keepdim=True)
    if module_axis == 2:
        weights = weights.unsqueeze(1)  # [P, 1, N]
    weights = weights.reshape(weights.shape + (1,) * (outputs.dim() - module_axis - 1))
    return (outputs * weights).sum(dim=module_axis)


def combine_channels_last(y: torch.Tensor, n: int, reduce: str) -> torch.Tensor:
    """Sum (or average) the N modules of a channels-last conv output.

    y: [B, N*C, H, W] in channels-last memory ([B, H, W, N*C]) -> [B, C, H, W] channels-last,
    so the next conv needs no layout change (a strided reduction with layout changes costs about
    3× more). float32 reduces over the module axis of the [B, H, W, N, C] view; bfloat16 (under
    autocast) multiplies every pixel's N*C values by N stacked C×C identities instead: its
    reductions are slow on a CPU and a small GEMM is not (PathNet's Atari path: 12 % less
    network time in bfloat16, 2 % more in float32, measured side by side).
    """
    b, channels, h, w = y.shape
    c = channels // n
    pixels = y.permute(0, 2, 3, 1)  # [B, H, W, N*C], a view
    if y.dtype not in (torch.bfloat16, torch.float16):
        return combine(pixels.view(b, h, w, n, c), None, 3, reduce).permute(0, 3, 1, 2)
    stacked = torch.eye(c, dtype=y.dtype, device=y.device).repeat(n, 1)  # [N*C, C]
    if reduce == "mean":
        stacked = stacked / n
    summed = pixels.reshape(b * h * w, channels) @ stacked  # [B*H*W, C]
    return summed.view(b, h, w, c).permute(0, 3, 1, 2)


def linear_modules(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, activation: bool, reduce: str
) -> torch.Tensor:
    """A path's N linear modules as one matmul, outputs combined.

    x: [B, in]; weight: [N, out, in]; bias: [N, out] -> [B, out]. Every linear layer kind
    (stored, generated) runs its path through here once it has its modules' weights.
    """
    n, out, inputs = weight.shape
    y = F.linear(x, weight.reshape(n * out, inputs), bias.reshape(n * out))  # [B, N*out]
    if activation:
        y = F.relu(y)
    return combine(y.view(x.shape[0], n, out), None, 1, reduce)


def linear_population(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    activation: bool,
    reduce: str,
    dedup: torch.Tensor | None,
) -> torch.Tensor:
    """P paths of N linear modules each as one batched matmul.

    x: [P, B, in] or [B, in] (shared input); weight: [P, N, out, in]; bias: [P, N, out];
    dedup: None or [P, N] (:func:`unique_weights`) -> [P, B, out].
    """
    p, n, out, inputs = weight.shape
    if x.dim() == 2:
        x = x.unsqueeze(0).expand(p, -1, -1)
    flat = weight.reshape(p, n * out, inputs)
    # Feature-major, y^T = W x^T rather than y = x W^T: the weights' gradient (grad_y^T x) comes
    # out in their own [P, N*out, in] layout (x W^T's comes out transposed, and its reshape to
    # the modules' [P*N, out, in] copies it: a third of a population training step at PathNet's
    # sizes); the output stays feature-major ([P, out, B] memory), so ReLU and the module sum
    # run on contiguous memory and the next linear layer's x^T is free.
    y = torch.baddbmm(bias.reshape(p, n * out, 1), flat, x.transpose(1, 2))  # [P, N*out, B]
    if activation:
        y = F.relu(y)
    return combine(y.view(p, n, out, x.shape[1]), dedup, 1, reduce).transpose(1, 2)


def conv_modules(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int, reduce: str
) -> torch.Tensor:
    """A path's N conv+ReLU modules as one conv with N·C_out filters, outputs combined.

    x: [B, C_in, H, W]; weight: [N, C_out, C_in, k, k]; bias: [N, C_out] -> [B, C_out, H', W']
    (channels-last in, channels-last out).
    """
    n, c = weight.shape[:2]
    y = F.relu(F.conv2d(x, weight.flatten(0, 1), bias.flatten(), stride=stride))
    b, _, h, w = y.shape  # y: [B, N*C_out, H', W']
    if y.is_contiguous() or not y.is_contiguous(memory_format=torch.channels_last):
        return combine(y.view(b, n, c, h, w), None, 1, reduce)
    return combine_channels_last(y, n, reduce)


def conv_population(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    stride: int,
    reduce: str,
    dedup: torch.Tensor | None,
) -> torch.Tensor:
    """P paths of N conv+ReLU modules each as one (grouped) conv.

    x: [P, B, C_in, H, W] or [B, C_in, H, W] (shared input); weight: [P, N, C_out, C_in, k, k];
    bias: [P, N, C_out]; dedup: None or [P, N] -> [P, B, C_out, H', W'].
    """
    p, n, c, in_channels = weight.shape[:4]
    filters, biases = weight.flatten(0, 2), bias.flatten()  # [P*N*C_out, C_in, k, k]
    if x.dim() == 4:
        # One input for every path: a plain conv with all P*N*C_out filters.
        y = F.conv2d(x, filters, biases, stride=stride)
    else:
        b = x.shape[1]
        grouped = x.transpose(0, 1).reshape(b, p * in_channels, *x.shape[-2:])
        y = F.conv2d(grouped, filters, biases, stride=stride, groups=p)
    y = F.relu(y)  # [B, P*N*C_out, H', W']
    y = y.view(y.shape[0], p, n, c, *y.shape[-2:]).transpose(0, 1)  # [P, B, N, C, H', W']
    return combine(y, dedup, 2, reduce)


def in_shared_memory(tensor: torch.Tensor) -> bool:
    """``tensor`` lives in CPU shared memory (where other processes may update it in place).
    ``Tensor.is_shared`` says True for every CUDA tensor (CUDA memory can always be shared), so it
    cannot tell a Hogwild model from one a learner owns on the GPU."""
    return tensor.device.type == "cpu" and tensor.is_shared()


@torch.no_grad()
def restack(params: list[nn.Parameter]) -> None:
    """Put one kind's M module parameters back into one [M, ...] storage, in order.

    ``.to(device)`` (and ``.double()``, ...) converts each parameter on its own, so the M views
    of one storage come back as M storages: an MoE layer's view of consecutive experts
    (``_stacked``) then falls back to copying them on every pass. The parameters keep their
    identity (``.data`` is replaced), so optimisers built before still hold them. Shared memory
    is left as it is (one segment per module, as Hogwild workers received it).
    """
    if in_shared_memory(params[0]) or len({p.untyped_storage().data_ptr() for p in params}) == 1:
        return
    storage = torch.stack([param.detach() for param in params])  # [M, ...]
    for index, param in enumerate(params):
        param.data = storage[index]


def population_dedup(
    rows: list[list[int]], dedup: torch.Tensor | None | str
) -> torch.Tensor | None:
    """``dedup`` as given, or (``"auto"``) computed from the paths' module ids ``rows``."""
    return duplicate_weights(torch.tensor(rows)) if isinstance(dedup, str) else dedup


class ModuleLayer(nn.Module):
    """Base of all path layers: M modules, per-module parameters, frozen-module mask.

    Subclasses implement ``forward(x, ids)``, ``forward_population(x, ids, dedup)`` and
    ``reset_modules(ids)`` and create their per-module parameters with
    :meth:`module_parameters`. Everything the library and the trainers need to know about a
    kind is asked of the layer here, so a new kind needs no ``isinstance`` elsewhere:

    - :attr:`flat_input`: whether it wants ``[B, features]`` (the library flattens for it);
    - :meth:`path_parameters`: what a path through it trains (its modules and any shared parts,
      such as an MoE layer's gate);
    - :meth:`forward_with_aux`: its output and an auxiliary loss (``None`` for kinds without);
    - :meth:`add_task`, :meth:`freeze`, :meth:`frozen_parameter_names`, :meth:`reset_unfrozen`:
      per-task parts, freezing and re-initialisation.
    """

    flat_input: bool = True
    """The layer takes ``[B, features]``; a conv layer takes ``[B, C, H, W]`` (False)."""

    def __init__(self, num_modules: int, reduce: str = "sum") -> None:
        super().__init__()
        if num_modules <= 0:
            raise ValueError(f"a layer needs at least one module, got {num_modules}")
        if reduce not in REDUCTIONS:
            raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
        self.num_modules = num_modules
        self.reduce = reduce
        self.parameter_kinds: list[str] = []
        # Plain lists of the same Parameter objects: indexing an nn.ParameterList costs ~7 µs,
        # a list ~0.2 µs, and a path gathers N modules per kind and layer on every forward.
        self._module_lists: dict[str, list[nn.Parameter]] = {}
        self.register_buffer("frozen", torch.zeros(num_modules, dtype=torch.bool))
        self.register_load_state_dict_post_hook(_refresh_frozen_after_load)

    def module_parameters(self, name: str, *shape: int) -> nn.ParameterList:
        """Register M parameters of ``shape`` under ``name``: views into one [M, *shape] tensor."""
        storage = torch.empty(self.num_modules, *shape)
        params = nn.ParameterList(nn.Parameter(storage[m]) for m in range(self.num_modules))
        setattr(self, name, params)
        self.parameter_kinds.append(name)
        self._module_lists[name] = list(params)
        return params

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> nn.Module:
        # .to(), .cuda(), .share_memory() ... may replace Parameter objects: refresh the lists.
        result = super()._apply(fn, recurse)
        self._module_lists = {name: list(getattr(self, name)) for name in self.parameter_kinds}
        for params in self._module_lists.values():
            restack(params)
        return result

    def stacked(self, name: str) -> torch.Tensor:
        """A detached [M, ...] copy of the parameter kind ``name`` (for inspection and tests)."""
        return torch.stack([param.detach() for param in getattr(self, name)])

    def gather(self, name: str, ids: list[int]) -> torch.Tensor:
        """The modules ``ids`` of the parameter kind ``name`` stacked: [K, ...].

        Ids may repeat (a population's paths share modules: 16 paths of 3 modules among 10).
        Each distinct module is then stacked once and indexed: the backward sums a module's
        repeats in one index_add and accumulates one gradient per module, where a stack of every
        repeat slices and accumulates each repeat on its own (8 % of the forward and backward
        of 16 paths through PathNet's three layers).
        """
        params = self._module_lists[name]
        once = list(dict.fromkeys(ids))
        if len(once) == len(ids):
            return torch.stack([params[m] for m in ids])
        stacked = torch.stack([params[m] for m in once])  # [U, ...]
        position = {m: i for i, m in enumerate(once)}
        index = torch.tensor([position[m] for m in ids], device=stacked.device)
        return stacked.index_select(0, index)

    # --- what the library asks of every kind ---------------------------------------------------

    def forward_with_aux(
        self, x: torch.Tensor, ids: torch.Tensor | list[int], *, task: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``forward(x, ids)`` and the layer's auxiliary loss (``None``: this kind has none)."""
        del task
        return self(x, ids), None

    def forward_population_with_aux(
        self,
        x: torch.Tensor,
        ids: torch.Tensor | list[list[int]],
        dedup: torch.Tensor | None | str = "auto",
        *,
        task: str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``forward_population(x, ids, dedup)`` and the auxiliary loss (``None``: none)."""
        del task
        return self.forward_population(x, ids, dedup), None

    def add_task(self, task: str) -> None:
        """Create ``task``'s own parts of this layer (none for plain module layers)."""
        del task

    def path_parameters(self, ids: list[int], task: str | None = None) -> list[nn.Parameter]:
        """The parameters a path through modules ``ids`` trains for ``task``, in a fixed order."""
        del task
        return [
            self._module_lists[kind][m] for m in sorted(set(ids)) for kind in self.parameter_kinds
        ]

    def freeze(self, ids: list[int], task: str | None = None) -> None:
        """Freeze the modules ``ids`` (and, in kinds with per-task parts, ``task``'s)."""
        del task
        self.freeze_modules(ids)

    def freeze_modules(self, module_ids: list[int]) -> None:
        """Mark ``module_ids`` frozen: no gradient reaches them from now on."""
        self.frozen[module_ids] = True
        self.refresh_frozen()

    def refresh_frozen(self) -> None:
        """Make ``requires_grad`` of every module agree with the ``frozen`` mask."""
        for m, frozen in enumerate(self.frozen.tolist()):
            for name in self.parameter_kinds:
                getattr(self, name)[m].requires_grad_(not frozen)

    def frozen_parameter_names(self) -> list[str]:
        """Names (for ``get_parameter``) of every frozen parameter of this layer."""
        frozen = [m for m, is_frozen in enumerate(self.frozen.tolist()) if is_frozen]
        return [f"{name}.{m}" for m in frozen for name in self.parameter_kinds]

    def reset_modules(self, module_ids: list[int]) -> None:
        """Re-initialise the modules ``module_ids`` in place."""
        raise NotImplementedError

    @torch.no_grad()
    def reset_unfrozen(self) -> None:
        """Re-initialise everything in this layer that is not frozen."""
        self.reset_modules([m for m, frozen in enumerate(self.frozen.tolist()) if not frozen])

    @torch.no_grad()
    def grow(self, extra: int) -> None:
        """Append ``extra`` freshly initialised modules (ids M .. M+extra-1).

        Every parameter kind moves to a new ``[M + extra, ...]`` storage holding the old values
        bit for bit; the Parameter objects are new, so optimisers must be built (or rebuilt)
        afterwards. A kind with state besides its per-module parameters and the frozen mask
        (gates, kernel caches, CPPNs) extends it in :meth:`grow_state`; a kind that has such
        state but does not override :meth:`grow_state` refuses to grow (a ValueError) rather
        than leave that state sized for the old M.
        """
        if extra <= 0:
            raise ValueError(f"a layer grows by a positive number of modules, got {extra}")
        if self._has_state_besides_modules() and type(self).grow_state is ModuleLayer.grow_state:
            kind = type(self).__name__
            raise ValueError(f"a {kind} cannot grow: it has state besides its modules")
        old = self.num_modules
        for name in self.parameter_kinds:
            params = getattr(self, name)
            storage = params[0].new_empty(old + extra, *params[0].shape)
            storage[:old] = torch.stack([p.detach() for p in params])
            grown = nn.ParameterList(nn.Parameter(storage[m]) for m in range(old + extra))
            setattr(self, name, grown)
            self._module_lists[name] = list(grown)
        self.num_modules = old + extra
        self.frozen = torch.cat([self.frozen, self.frozen.new_zeros(extra)])
        self.grow_state(old, extra)
        self.reset_modules(range(old, old + extra))
        self.refresh_frozen()

    def grow_state(self, old: int, extra: int) -> None:
        """Extend this kind's state besides its modules for the new modules ``old`` ..
        ``old + extra - 1``, keeping what the old modules see bit for bit.

        :meth:`grow` calls it after the modules' parameters and the frozen mask have grown and
        before the new modules are initialised (:meth:`reset_modules` may read this state).
        Plain kinds have nothing to extend.
        """
        del old, extra

    def _has_state_besides_modules(self) -> bool:
        per_module = {id(p) for name in self.parameter_kinds for p in getattr(self, name)}
        if any(id(p) not in per_module for p in self.parameters()):
            return True
        if any(name != "frozen" for name, _ in self.named_buffers()):
            return True
        return type(self).get_extra_state is not nn.Module.get_extra_state


def _refresh_frozen_after_load(layer: ModuleLayer, _incompatible_keys: object) -> None:
    layer.refresh_frozen()  # a top-level function (not a lambda) keeps layers picklable


def distinct(ids: torch.Tensor | list[int]) -> list[int]:
    """A path layer's module ids with repeats dropped, in first-seen order.

    A module a path lists twice counts once (as :func:`unique_weights` weighs it in the
    population forward), so the single-path forward simply runs it once: a random genome
    repeats an id in most of its layers, and the repeat would be computed only to be dropped.
    """
    return list(dict.fromkeys(ids.tolist() if isinstance(ids, torch.Tensor) else ids))


class LinearModuleLayer(ModuleLayer):
    """M linear+ReLU modules ``in_features -> out_features``; weights [out, in], biases [out]."""

    def __init__(
        self,
        num_modules: int,
        in_features: int,
        out_features: int,
        reduce: str = "sum",
        activation: bool = True,
    ) -> None:
        super().__init__(num_modules, reduce)
        if in_features <= 0 or out_features <= 0:
            raise ValueError("linear modules need positive in/out features")
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weights = self.module_parameters("weights", out_features, in_features)
        self.biases = self.module_parameters("biases", out_features)
        self.reset_modules(range(num_modules))

    @torch.no_grad()
    def reset_modules(self, module_ids) -> None:
        """nn.Linear's default initialisation, module by module."""
        bound = 1.0 / math.sqrt(self.in_features)
        for m in module_ids:
            nn.init.kaiming_uniform_(self.weights[m], a=math.sqrt(5))
            nn.init.uniform_(self.biases[m], -bound, bound)

    def forward(self, x: torch.Tensor, ids: torch.Tensor | list[int]) -> torch.Tensor:
        # x: [B, in]; ids: [N] module ids (a repeated id runs once) -> [B, out]
        ids = distinct(ids)
        weight, bias = self.gather("weights", ids), self.gather("biases", ids)
        return linear_modules(x, weight, bias, self.activation, self.reduce)

    def forward_population(
        self,
        x: torch.Tensor,
        ids: torch.Tensor | list[list[int]],
        dedup: torch.Tensor | None | str = "auto",
    ) -> torch.Tensor:
        # x: [P, B, in] or [B, in] (shared input); ids: [P, N] module ids -> [P, B, out]
        rows = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        p, n = len(rows), len(rows[0])
        flat = [m for row in rows for m in row]
        weight = self.gather("weights", flat).view(p, n, self.out_features, self.in_features)
        bias = self.gather("biases", flat).view(p, n, self.out_features)
        dedup = population_dedup(rows, dedup)
        return linear_population(x, weight, bias, self.activation, self.reduce, dedup)


class Conv2dModuleLayer(ModuleLayer):
    """M conv+ReLU modules; weights [C_out, C_in, k, k], biases [C_out]."""

    flat_input = False

    def __init__(
        self,
        num_modules: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        reduce: str = "sum",
    ) -> None:
        super().__init__(num_modules, reduce)
        if min(in_channels, out_channels, kernel_size, stride) <= 0:
            raise ValueError("conv modules need positive channels, kernel size and stride")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        k = kernel_size
        self.weights = self.module_parameters("weights", out_channels, in_channels, k, k)
        self.biases = self.module_parameters("biases", out_channels)
        self.reset_modules(range(num_modules))

    @torch.no_grad()
    def reset_modules(self, module_ids) -> None:
        """nn.Conv2d's default initialisation, module by module."""
        bound = 1.0 / math.sqrt(self.in_channels * self.kernel_size**2)
        for m in module_ids:
            nn.init.kaiming_uniform_(self.weights[m], a=math.sqrt(5))
            nn.init.uniform_(self.biases[m], -bound, bound)

    def output_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """[C_out, H', W'] of one module for an input of spatial size H x W."""
        k, s = self.kernel_size, self.stride
        return self.out_channels, (height - k) // s + 1, (width - k) // s + 1

    def forward(self, x: torch.Tensor, ids: torch.Tensor | list[int]) -> torch.Tensor:
        # x: [B, C_in, H, W]; ids: [N] module ids (a repeated id runs once) -> [B, C_out, H', W']
        ids = distinct(ids)
        weight, bias = self.gather("weights", ids), self.gather("biases", ids)
        return conv_modules(x, weight, bias, self.stride, self.reduce)

    def forward_population(
        self,
        x: torch.Tensor,
        ids: torch.Tensor | list[list[int]],
        dedup: torch.Tensor | None | str = "auto",
    ) -> torch.Tensor:
        # x: [P, B, C_in, H, W] or [B, C_in, H, W] (shared input); ids: [P, N] module ids
        # -> [P, B, C_out, H', W']
        rows = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        p, n = len(rows), len(rows[0])
        flat = [m for row in rows for m in row]
        weight = self.gather("weights", flat)  # [P*N, C_out, C_in, k, k]
        weight = weight.view(p, n, *weight.shape[1:])
        bias = self.gather("biases", flat).view(p, n, self.out_channels)
        dedup = population_dedup(rows, dedup)
        return conv_population(x, weight, bias, self.stride, self.reduce, dedup)
