"""The `gan`'s discriminator, the cVAE-GAN's noise encoder and the objective both are trained with (the generator:
gan.py). Training only: none of these is part of a saved pipeline.

Discriminator.  x -> residual stride-2 blocks down to (B, C, 4, 4) -> concatenated with s tiled to 4x4 ->
conv -> one score per image: does this image look real *and* fit this sentence? With disc_attn_resolutions its
features at those sizes also attend over the caption's words (a gated WordAttention, as in the generator). In
latent mode D may judge the code grids instead (disc_reads "codes"): the generator's vectors against the VAE's
codes of the real images, on the 8x8 grid (cheaper than 64 px, and off-codebook vectors are plain to see).

Objective. The GAN's minimax game (Goodfellow et al. 2014), conditioned on the text t:

    min_G max_D  E_{x,t ~ data}[log D(x, t)] + E_{z, t}[log(1 - D(G(z, t), t))]

What is optimised here is its hinge form with DF-GAN's matching-aware terms: a real image with a mismatched
caption t' counts as fake (another item's caption; with hard_negatives also, where it has one, its own caption
with words swapped, text/negatives.py: "a white circle left of a purple diamond" for a purple diamond left of a
white circle), and the matching-aware gradient penalty (MA-GP) pushes D's surface flat around real, matching
pairs:

    L_D = E[max(0, 1 - D(x, t))] + 1/2 E[max(0, 1 + D(G(z, t), t))] + 1/2 E[max(0, 1 + D(x, t'))]
          + k E[ ||(grad_x D(x, t), grad_t D(x, t))||^p ]                      (k = 2, p = 6)
    L_G = -E[D(G(z, t), t)] + lambda_clip E[1 - cos(CLIP_image(G(z, t)), CLIP_text(t))]

The last term (GALIP's use of CLIP, here with the wordbrush CLIP) pulls each image towards its caption in the
CLIP's space. Sampling uses an exponential moving average of G's weights (kept by the training loop).

Its contrastive form (the training config's clip_objective "contrastive") is the CLIP's own InfoNCE instead: each
image must pick its caption out of the batch's captions and their swapped negatives,

    lambda_clip E[ -log softmax_j(s * cos(CLIP_image(G(z, t_i)), CLIP_text(t_j)))_i ]

(s the CLIP's learned 1/temperature; captions equal to t_i other than itself left out). The cosine never stops
pulling, and for a caption that leaves a colour open the nearest point to it is a blend of the colours it allows,
nearer than any real picture (docs/gan.md, session 24); the softmax saturates once the image is told apart from
the other captions, leaving D the say on what the words leave open. With hard_negatives the swapped captions
("a cyan square above an orange triangle" for "an orange square above a cyan triangle") are among those the
image must be further from: the binding the cosine to a near bag of words does not ask for.

cVAE-GAN (optional, latent mode: the training config's recon_weight; BicycleGAN's cVAE-GAN, Zhu et al. 2017, and
the VAE-GAN of Larsen et al. 2016). The brief's other objective joins the game: an encoder E (NoiseEncoder) reads a
real image's code grid c and its caption into q(z | c, t) = N(mu, sigma^2), and G given z ~ q must redraw c:

    L_G += lambda_rec E_q[ ||G(z, t) - c||^2 ] + lambda_KL KL(q(z | c, t) || N(0, I))

Where D's verdict is one number per image, this term says for every position of every real image which code
belongs there, so G learns what goes where from pairs rather than from D alone. Sampling still draws z from the
prior: E is for training only.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from ..clip import CLIP, MAX_LOGIT_SCALE
from .gan import GAN, GANConfig, Text, stages_from_4
from .gan_blocks import WordAttention


class DownBlock(nn.Module):
    """Residual block that halves the resolution (or, with down=False, keeps it)."""

    def __init__(self, cin: int, cout: int, down: bool = True):
        super().__init__()
        self.down = down
        self.r1 = nn.Conv2d(cin, cout, 4, stride=2, padding=1) if down else nn.Conv2d(cin, cout, 3, padding=1)
        self.r2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.r2(F.leaky_relu(self.r1(x), 0.2))
        skip = self.skip(x)
        return (F.avg_pool2d(skip, 2) if self.down else skip) + self.gamma * F.leaky_relu(h, 0.2)


def down_stack(cin: int, chs: tuple[int, ...], side: int) -> tuple[nn.Conv2d, nn.ModuleList, list[int]]:
    """The trunk that D and E share: a stem conv (cin -> chs[0]) and residual blocks down to 4x4 (the last
    halvings; any blocks before them keep the size), with each block's output side."""
    n_down = stages_from_4(side)
    n_keep = len(chs) - 1 - n_down
    blocks = nn.ModuleList(DownBlock(chs[i], chs[i + 1], down=i >= n_keep) for i in range(len(chs) - 1))
    sizes = [side // 2 ** max(0, i + 1 - n_keep) for i in range(len(chs) - 1)]
    return nn.Conv2d(cin, chs[0], 3, padding=1), blocks, sizes


def with_sentence(h: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) features + the sentence (B, E) tiled over them -> (B, C + E, h, w)."""
    return torch.cat([h, sentence[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])], dim=1)


class Discriminator(nn.Module):
    """Image (or, with disc_reads "codes", code grid) + caption -> one score each (B,). Not part of a saved
    pipeline. It reads the sentence embedding at 4x4, and with disc_attn_resolutions its features there also
    attend over the caption's words."""

    def __init__(self, cfg: GANConfig):
        super().__init__()
        chs, self.reads_codes = cfg.disc_channels, cfg.disc_reads == "codes"
        if self.reads_codes:
            cfg.check_depth()
        side = cfg.out_grid if self.reads_codes else cfg.image_size
        self.stem, self.blocks, sizes = down_stack(cfg.vae.code_dim if self.reads_codes else 3, chs, side)
        self.attn = nn.ModuleDict({str(i): WordAttention(chs[i + 1], cfg.text_dim, cfg.attn_dim)
                                   for i, size in enumerate(sizes) if size in cfg.disc_attn_resolutions})
        e = cfg.sentence_dim
        self.joint = nn.Sequential(nn.Conv2d(chs[-1] + e, chs[-1] // 2, 3, padding=1), nn.LeakyReLU(0.2),
                                   nn.Conv2d(chs[-1] // 2, 1, 4))

    @property
    def reads_words(self) -> bool:
        return len(self.attn) > 0

    def forward(self, images: torch.Tensor, text: Text) -> torch.Tensor:
        """images (B, 3, H, W) in [0, 1], or code grids (B, D, g, g) -> scores (B,)."""
        x = images if self.reads_codes else images * 2 - 1
        h = self.stem(x.contiguous(memory_format=torch.channels_last))
        for i, blk in enumerate(self.blocks):
            h = blk(h)
            if str(i) in self.attn:
                h = self.attn[str(i)](h, text.words, text.keep)
        return self.joint(with_sentence(h, text.sentence)).flatten()  # h: (B, C, 4, 4) -> (B,)


class NoiseEncoder(nn.Module):
    """The cVAE-GAN's encoder E (BicycleGAN's, Zhu et al. 2017): a real image's code grid (B, D, g, g) + its
    caption's sentence (B, E) -> the mean and log-variance (B, Z) each of q(z | x, t), the noise that G must be
    given to redraw that image under that caption. Training only, like D: not part of a saved pipeline. Reading
    the caption too lets E encode only what the words leave open (where things are, a colour left unsaid)."""

    def __init__(self, cfg: GANConfig):
        super().__init__()
        chs = cfg.disc_channels
        self.stem, self.blocks, _ = down_stack(cfg.vae.code_dim, chs, cfg.out_grid)
        self.head = nn.Sequential(nn.Conv2d(chs[-1] + cfg.sentence_dim, chs[-1], 3, padding=1),
                                  nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(chs[-1] * 16, 2 * cfg.noise_dim))

    def forward(self, codes: torch.Tensor, text: Text) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.stem(codes.contiguous(memory_format=torch.channels_last))
        for blk in self.blocks:
            h = blk(h)  # -> (B, C, 4, 4)
        mu, logvar = self.head(with_sentence(h, text.sentence)).float().chunk(2, dim=1)
        return mu, logvar.clamp(-10, 10)


def posterior_loss(redrawn: torch.Tensor, codes: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                   codebook: torch.Tensor | None = None, logits: torch.Tensor | None = None
                   ) -> dict[str, torch.Tensor]:
    """The cVAE's two terms (the brief's VAE objective) for G given E's noise: reconstruction and
    KL(q(z | x, t) || N(0, I)) in nats per image. Reconstruction: the squared distance from G's vectors
    (B, D, g, g) to the real code vectors `codes` (summed over D, mean over positions); or, given the VAE's
    `codebook` (K, D), the cross-entropy of the real code at each position under logits -||v - e_k||^2 (nats per
    position): a vector halfway between two codes costs as much as the wrong one, so a blend of two colours'
    codes is not a cheap answer as it is under the squared distance. Given the generator's own `logits` over the
    codebook (B, g*g, K) (the transformer trunk's head, of which `redrawn` is the mixture), their cross-entropy
    instead: a classifier's head, free of the codebook's geometry (its codes lie close together: under
    -||v - e_k||^2 even the exact vector of the shapes VAE's code costs 2.6 nats)."""
    if codebook is None:
        recon = (redrawn.float() - codes.float()).pow(2).sum(1).mean()
    else:
        v = redrawn.float().flatten(2).transpose(1, 2).reshape(-1, codebook.shape[1])  # (B*g*g, D)
        target = codes.float().flatten(2).transpose(1, 2).reshape(-1, codebook.shape[1])
        cb = codebook.float()
        ids = torch.cdist(target, cb).argmin(1)  # the real codes' ids (the vectors are codebook rows)
        scores = -torch.cdist(v, cb).pow(2) if logits is None else logits.float().reshape(len(ids), -1)
        recon = F.cross_entropy(scores, ids)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
    return {"recon": recon, "kl": kl}


def discriminator_loss(d: Discriminator, real: torch.Tensor, fake: torch.Tensor, text: Text,
                       gp_weight: float = 2.0, gp_power: float = 6.0,
                       swapped: tuple[torch.Tensor, Text] | None = None, next_text: Text | None = None,
                       mismatch_norm: float | None = None) -> dict[str, torch.Tensor]:
    """L_D of the top of the file: hinge on (real, matching), (fake, matching), (real, mismatched: each item with
    the next item's caption, and with `swapped` = (indices (K,), their captions with words swapped) those items
    with their swaps too), plus MA-GP on the real, matching pairs (skipped when gp_weight is 0): the gradient with
    respect to the image and to what D reads of the text (the sentence, and the words if it attends to them).
    A share of a batch split over ranks (train/runtime.py) passes `next_text`, the captions of the items after its
    first len(next_text) (the last may be the next rank's first), and `mismatch_norm`, what the mismatched pairs'
    sum is divided by (the whole batch's count of them over the number of ranks), so that the ranks' mean is the
    whole batch's loss."""
    gp_on = gp_weight > 0
    real = real.detach().requires_grad_(gp_on)
    sent = text.sentence.detach().requires_grad_(gp_on)
    words = text.words.detach().requires_grad_(gp_on and d.reads_words)
    # The penalty's pass runs in float32 even under bf16 autocast: ||grad||^6 multiplies bf16's rounding of the
    # gradient sixfold (measured on a trained D: +7% penalty, 11% off in D's gradient; float32 here is exact).
    with torch.autocast(real.device.type, enabled=False) if gp_on else nullcontext():
        d_real = d(real, Text(words, sent, text.keep)).float()
    d_fake = d(fake.detach(), text).float()
    if next_text is None:
        next_text = text.shifted()
    d_mismatch = d(real[: len(next_text.sentence)].detach(), next_text).float()  # easy: which objects, colours
    if swapped is not None:  # hard: the same words, the wrong places (which colour is whose, which way round)
        index, swaps = swapped
        d_mismatch = torch.cat([d_mismatch, d(real[index].detach(), swaps).float()])
    mismatch = (F.relu(1 + d_mismatch).mean() if mismatch_norm is None
                else F.relu(1 + d_mismatch).sum() / mismatch_norm)
    hinge = F.relu(1 - d_real).mean() + (F.relu(1 + d_fake).mean() + mismatch) / 2
    gp = hinge.new_zeros(())
    if gp_on:
        inputs = (real, sent, words) if d.reads_words else (real, sent)
        grads = torch.autograd.grad(d_real.sum(), inputs, create_graph=True)
        norm = torch.cat([g.float().flatten(1) for g in grads], dim=1).norm(2, dim=1)
        gp = gp_weight * norm.pow(gp_power).mean()
    return {"loss": hinge + gp, "hinge": hinge, "gp": gp, "d_real": d_real.mean(), "d_fake": d_fake.mean()}


def caption_contrast(captions: list[str], aim: torch.Tensor, negatives: list[str] = (),
                     negative_aim: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The candidates of the contrastive CLIP term: the batch's captions' unit vectors (B, E) then the negatives'
    (M, E), as (B + M, E), and (B, B + M) True where candidate j is the same words as caption i but not i itself
    (a repeated caption, or a swap that happens to be another item's caption), which the softmax leaves out."""
    pool = aim if negative_aim is None else torch.cat([aim, negative_aim.to(aim.dtype)])
    words = list(captions) + list(negatives)
    same = torch.tensor([[c == w for w in words] for c in captions], device=aim.device)
    same[torch.arange(len(captions)), torch.arange(len(captions))] = False
    return pool, same


def generator_loss(d: Discriminator, clip: CLIP, fake: torch.Tensor, text: Text, clip_weight: float,
                   images: torch.Tensor | None = None, aim: torch.Tensor | None = None,
                   contrast: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """L_G of the top of the file: fool D, and be near the caption in the CLIP's space. `fake` is what D judges;
    `images` what the CLIP sees, when that differs (D reading codes); `aim` the captions' unit vectors in the
    CLIP (B, E), when the generator reads them through another encoder (default: text.sentence). contrast:
    caption_contrast()'s candidates, for the contrastive form (the top of the file) instead of 1 - cosine."""
    adv = -d(fake, text).float().mean()
    images = fake if images is None else images
    aim = text.sentence if aim is None else aim
    if clip_weight == 0:
        align = adv.new_zeros(())
    elif contrast is None:
        align = (1 - (clip.encode_image(images) * aim).sum(-1)).mean()
    else:
        pool, same = contrast
        scale = clip.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()
        logits = scale * clip.encode_image(images).float() @ pool.float().T  # (B, B + M)
        logits = logits.masked_fill(same, float("-inf"))
        align = F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))
    return {"loss": adv + clip_weight * align, "adv": adv, "clip": align}


def mean_pairwise_distance(features: torch.Tensor) -> float:
    """Mean L2 distance between distinct rows of (N, F): the diversity measure of the collapse check."""
    n = len(features)
    if n < 2:
        return 0.0
    d = torch.cdist(features.double(), features.double())
    return (d.sum() / (n * (n - 1))).item()
