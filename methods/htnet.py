"""HTNet: a hierarchical transformer on four facial regions of the onset-to-apex flow image.

Source: Wang, Zhang, Liu, et al., "HTNet for micro-expression recognition", Neurocomputing 602:128196,
2024 (arXiv:2307.14637); the released code (wangzhifengharrison/HTNet: ``Model.py`` for the network,
``main_HTNet.py`` for the input and training), which the defaults follow. The paper reports UF1
.8603 / UAR .8475 on the MEGC 2019 composite, with each subject's best epoch chosen on that
subject's test clips (``--select-epoch both`` reproduces that selection and measures its
inflation in the same training).

Input (the ``regions`` representation, :func:`mer_bench.preprocess.htnet_regions`): four 14 x 14
crops of the 28 x 28 flow image centred on facial landmarks (left eye, right eye, left and right
mouth corner), tiled 2 x 2; the landmarks come from the dataset (``megc2019-flow`` reads
``htnet_landmarks.csv``, else HTNet's fixed fallback points). As released, the landmark's x indexes
image rows. Raw 0..255 values (``input_scale=255``), as ``cv2.imread`` gives them.

Network (``Model.py``, ``HTNet(image_size=28, patch_size=7, dim=256, heads=3, num_hierarchies=3,
block_repeats=(2, 2, 10))``):

* patch embedding: non-overlapping 7 x 7 patches (``Rearrange`` to ``(p1 p2 c)``), 1x1 conv to
  ``dim``: a 4 x 4 map;
* three hierarchies, from the finest: the map is cut into ``2**level`` x ``2**level`` blocks (4, 2,
  1 per side: single positions, 2 x 2 blocks, the whole map), each block a sequence for a
  transformer of ``block_repeats[i]`` pre-norm blocks (channel LayerNorm, multi-head
  self-attention with 1x1-conv projections and ``dim_head = dim / heads``, 1x1-conv MLP x 4 with
  GELU) with a learned positional embedding; between hierarchies "aggregate": 3x3 conv to twice
  the channels, channel LayerNorm, max-pool 3 stride 2. Widths 256, 512, 1024; heads 3, 6, 12;
* head: channel LayerNorm, global mean, ``Linear(1024, n_classes)``.

At 3 classes: 139,582,982 parameters (the released ``Model.py`` built with these arguments).
``Model.py`` also defines a ``Fusionmodel``; ``main_HTNet.py`` never uses it, and neither does this.

Training (``main_HTNet.py``): Adam lr 5e-5, batch 256, 800 epochs, cross-entropy, no shuffling
(its ``DataLoader`` has none), no augmentation; leak-free here by default (the last epoch), the
released per-subject best-on-test epoch only with ``--select-epoch best-on-test|both`` (labelled
leaky). A GPU job: about 10^5 steps of a 140 M-parameter transformer for the 68-fold LOSO.

Deviations: channels u, v, strain where HTNet's ``cv2.imread`` gives strain, v, u (for a network
trained from scratch the input channel order is a permutation of i.i.d. initial weights);
PyTorch's default initialisation, as released; every fold seeded (``seed * 1000 + fold``; the
released code does not seed).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from mer_bench.method import MethodInfo, ParameterError, register_method
from mer_bench.torch_method import TorchImageMethod

__all__ = ["HTNetModel", "HTNet"]


class _ChannelNorm(nn.Module):
    """LayerNorm over channels of ``(N, C, H, W)`` (``Model.py``'s ``LayerNorm``; biased variance)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.b = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = torch.var(x, dim=1, unbiased=False, keepdim=True)
        mean = torch.mean(x, dim=1, keepdim=True)
        return (x - mean) / (var + self.eps).sqrt() * self.g + self.b


class _PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm, self.fn = _ChannelNorm(dim), fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


def _dropout(p: float) -> nn.Module:
    """``nn.Dropout(p)``, or ``nn.Identity`` at the released ``p = 0`` (the same function; stacked
    folds then draw no masks for it)."""
    return nn.Dropout(p) if p > 0 else nn.Identity()


class _FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(dim, dim * mult, 1), nn.GELU(), _dropout(dropout),
                                 nn.Conv2d(dim * mult, dim, 1), _dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _Attention(nn.Module):
    """Multi-head self-attention over the positions of ``(N, C, H, W)`` with 1x1-conv projections."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        dim_head = dim // heads
        inner = dim_head * heads
        self.heads, self.scale = heads, dim_head ** -0.5
        self.to_qkv = nn.Conv2d(dim, inner * 3, 1, bias=False)
        self.dropout = _dropout(dropout)
        self.to_out = nn.Sequential(nn.Conv2d(inner, dim, 1), _dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from einops import rearrange

        h, w = x.shape[-2:]
        q, k, v = (rearrange(t, "b (h d) x y -> b h (x y) d", h=self.heads) for t in self.to_qkv(x).chunk(3, dim=1))
        attn = self.dropout(torch.softmax(torch.einsum("bhid,bhjd->bhij", q, k) * self.scale, dim=-1))
        out = torch.einsum("bhij,bhjd->bhid", attn, v)
        return self.to_out(rearrange(out, "b h (x y) d -> b (h d) x y", x=h, y=w))


class _Transformer(nn.Module):
    def __init__(self, dim: int, seq_len: int, depth: int, heads: int, mult: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.pos_emb = nn.Parameter(torch.randn(seq_len))
        self.layers = nn.ModuleList([nn.ModuleList([_PreNorm(dim, _Attention(dim, heads, dropout)),
                                                    _PreNorm(dim, _FeedForward(dim, mult, dropout))])
                                     for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = x + self.pos_emb[:h * w].view(1, 1, h, w)
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return x


def _aggregate(dim: int, dim_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(dim, dim_out, 3, padding=1), _ChannelNorm(dim_out), nn.MaxPool2d(3, stride=2,
                                                                                                     padding=1))


class HTNetModel(nn.Module):
    """HTNet (``Model.py``): ``(N, C, image_size, image_size)`` -> logits ``(N, num_classes)``.

    Args:
        num_classes, channels: output classes and input channels.
        image_size, patch_size: input side and patch side (28, 7: a 4 x 4 patch map).
        dim, heads: width and heads of the finest hierarchy (doubled at each coarser one).
        num_hierarchies, block_repeats: hierarchies and transformer blocks per hierarchy.
        mlp_mult, dropout: MLP expansion and dropout (released: 4, 0).

    Raises:
        ValueError: ``image_size`` not divisible by ``patch_size``, or a patch map that the
            hierarchies cannot cut into blocks.
    """

    def __init__(self, num_classes: int = 3, channels: int = 3, image_size: int = 28, patch_size: int = 7,
                 dim: int = 256, heads: int = 3, num_hierarchies: int = 3, block_repeats: tuple[int, ...] = (2, 2, 10),
                 mlp_mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not divisible by patch_size {patch_size}")
        fmap = image_size // patch_size
        blocks = 2 ** (num_hierarchies - 1)
        if fmap % blocks:
            raise ValueError(f"a {fmap}x{fmap} patch map cannot be cut into {blocks}x{blocks} blocks")
        seq_len = (fmap // blocks) ** 2  # the sequence length is the same at every hierarchy
        mults = [2 ** i for i in range(num_hierarchies)]
        dims = [m * dim for m in mults]
        self.patch_size = patch_size
        self.embed = nn.Conv2d(channels * patch_size ** 2, dims[0], 1)
        repeats = (tuple(block_repeats) if isinstance(block_repeats, (tuple, list))
                   else (block_repeats,) * num_hierarchies)
        self.levels = list(reversed(range(num_hierarchies)))
        self.layers = nn.ModuleList()
        for i, level in enumerate(self.levels):
            dim_in, dim_out = dims[i], dims[min(i + 1, num_hierarchies - 1)]
            transformer = _Transformer(dim_in, seq_len, repeats[i], mults[i] * heads, mlp_mult, dropout)
            self.layers.append(nn.ModuleList([transformer, _aggregate(dim_in, dim_out) if level != 0
                                              else nn.Identity()]))
        self.head_norm = _ChannelNorm(dims[-1])
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        from einops import rearrange

        if img.ndim != 4:
            raise ValueError(f"HTNet expects (N, C, H, W) images, got shape {tuple(img.shape)}")
        p = self.patch_size
        x = self.embed(rearrange(img, "b c (h p1) (w p2) -> b (p1 p2 c) h w", p1=p, p2=p))
        for level, (transformer, aggregate) in zip(self.levels, self.layers):
            s = 2 ** level
            x = rearrange(x, "b c (b1 h) (b2 w) -> (b b1 b2) c h w", b1=s, b2=s)
            x = transformer(x)
            x = rearrange(x, "(b b1 b2) c h w -> b c (b1 h) (b2 w)", b1=s, b2=s)
            x = aggregate(x)
        return self.head(self.head_norm(x).mean(dim=(2, 3)))


@register_method("htnet")
class HTNet(TorchImageMethod):
    """HTNet as a mer-bench method; defaults are the released code's (module docstring).

    Input: the ``regions`` representation ``(N, 3, 28, 28)`` in [0, 1], times ``input_scale``.
    Hyper-parameters: ``dim``, ``heads``, ``num_hierarchies``, ``block_repeats``, ``patch_size``,
    ``epochs``, ``batch_size``, ``lr``, ``weight_decay``, ``schedule``, ``warmup``, ``flip``,
    ``input_scale``, ``standardise``, ``precision`` (``auto``: bf16 autocast on a GPU that has it),
    ``shuffle`` (default ``False``, as released). A tiny setting for tests: ``--set dim=8 --set
    block_repeats=1 --set epochs=1``.
    """

    info: ClassVar[MethodInfo] = MethodInfo(
        name="htnet",
        citation="Wang, Zhang, Liu, et al. HTNet for micro-expression recognition. Neurocomputing 602:128196, 2024. "
                 "arXiv:2307.14637 (code: wangzhifengharrison/HTNet)",
        representation="regions",
        supports_epoch_selection=True,
        practical_on_cpu=False,
        summary="HTNet (Wang et al., Neurocomputing 2024): hierarchical transformer on four landmark regions of the "
                "flow image (139,582,982 parameters; a GPU job)",
    )

    def __init__(self, dim: int = 256, heads: int = 3, num_hierarchies: int = 3,
                 block_repeats: tuple[int, ...] | int = (2, 2, 10), patch_size: int = 7, epochs: int = 800,
                 batch_size: int = 256, lr: float = 5e-5, weight_decay: float = 0.0, schedule: str = "constant",
                 warmup: int | str = 0, flip: bool = False, input_scale: float = 255.0, standardise: bool = False,
                 size: int | None = None, precision: str = "auto", shuffle: bool = False,
                 random_state: int = 0) -> None:
        self._store_params(locals())  # hyper-parameters only (scikit-learn style)

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        super().check_params(params)
        for key in ("dim", "heads", "num_hierarchies", "patch_size"):
            v = params.get(key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ParameterError(f"{key} must be a positive int, got {v!r}")
        reps = params.get("block_repeats")
        reps = (reps,) if isinstance(reps, int) else reps
        if not isinstance(reps, (tuple, list)) or not all(isinstance(r, int) and r >= 1 for r in reps) or \
                len(reps) not in (1, params.get("num_hierarchies")):
            raise ParameterError(f"block_repeats must be a positive int or one per hierarchy, got "
                                 f"{params.get('block_repeats')!r}")
        if params.get("dim") < params.get("heads"):
            raise ParameterError(f"dim {params['dim']} must be at least heads {params['heads']} "
                                 f"(dim_head = dim // heads)")

    def build_model(self, in_channels: int, num_classes: int) -> nn.Module:
        reps = self.block_repeats
        reps = (reps,) * self.num_hierarchies if isinstance(reps, int) else tuple(reps)
        reps = reps * self.num_hierarchies if len(reps) == 1 else reps
        side = int(self.input_shape_[-1]) if hasattr(self, "input_shape_") else 28
        return HTNetModel(num_classes, in_channels, side, self.patch_size, self.dim, self.heads, self.num_hierarchies,
                          reps)
