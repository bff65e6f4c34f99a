"""Hand trained weights on: safetensors export and loading.

File layout (``ddpm export --run RUN --out model.safetensors``):

* Tensors: the U-Net's ``state_dict()`` keys exactly as ``ddpm.nn.UNet`` names them (no
  ``unet.`` prefix), float32, EMA weights unless exported with ``--no-ema``.
* Metadata (all strings): ``format`` = ``ddpm-studio-unet``, ``layout`` = ``full``,
  ``encoder`` or ``segmenter`` (a ``ddpm finetune`` run: ``out_conv`` is its K-class 1x1 head
  and ``config`` its fine-tune config; ``ddpm.finetune.segmenter.load_segmenter`` reads it),
  ``config`` = the training config JSON (``load_config`` reads it), ``weights`` =
  ``ema`` or ``model``, ``step``, ``output_spacing`` (JSON list or ``null``), ``encoder_prefixes``
  (JSON list).

Encoder-only files (``--encoder-only``) keep just the contracting path, for initialising a
segmentation / classification encoder:

* ``time_embed.*``  timestep embedding MLP (the blocks below take its output; feed t=0 or a
  fixed t when using the encoder as a plain feature extractor)
* ``init_conv.*``   first convolution (in_channels, x2 with self-conditioning -> dim)
* ``down.{level}.{block}.res.*`` / ``down.{level}.{block}.attn.*``  residual blocks (and their
  attention) of each level, top (full resolution) to bottom
* ``downsamples.{level}.*``  the stride-2 downsampling after each level but the last
* ``mid.first.*``, ``mid.second.*``  the middle block at the lowest resolution

``load_encoder(unet, path)`` loads such a file into a UNet of the same config with strict key
and shape checks; ``load_pretrained(path)`` rebuilds the full UNet from a ``full`` file.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Union

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

from ddpm.run.atomic import atomic_write_bytes
from ddpm.run.checkpoint import load_checkpoint, resolve_checkpoint
from ddpm.run.errors import RunError

FORMAT = "ddpm-studio-unet"
ENCODER_PREFIXES = ("time_embed.", "init_conv.", "down.", "downsamples.", "mid.")


def encoder_keys(state: dict[str, Any]) -> list[str]:
    return [k for k in state if k.startswith(ENCODER_PREFIXES)]


def unet_weights(ckpt: dict[str, Any], use_ema: bool) -> dict[str, torch.Tensor]:
    """The U-Net's weights of a loaded checkpoint (EMA or raw), float32 on the CPU, keyed as
    ``ddpm.nn.UNet`` names them (no ``unet.`` prefix): what an export file holds."""
    if use_ema and not ckpt.get("ema"):
        raise RunError("the checkpoint holds no EMA weights (use_ema was off); export with --no-ema")
    full = ckpt["ema"]["model"] if use_ema else ckpt["model"]
    return {k[len("unet."):]: v.detach().float().cpu().contiguous().clone()
            for k, v in full.items() if k.startswith("unet.")}


def export_run(run_dir: Union[str, Path], out: Union[str, Path], encoder_only: bool = False,
               checkpoint: Optional[Union[str, Path]] = None, use_ema: bool = True) -> Path:
    """Write a run's (EMA) U-Net weights to ``out`` as safetensors; returns ``out``."""
    path = resolve_checkpoint(run_dir, checkpoint)
    ckpt = load_checkpoint(path)
    tensors = unet_weights(ckpt, use_ema)
    if encoder_only:
        tensors = {k: tensors[k] for k in encoder_keys(tensors)}
    finetuned = "task" in ckpt["config"]  # a `ddpm finetune` run: the segmenter, head included
    meta = {"format": FORMAT, "layout": "encoder" if encoder_only else "segmenter" if finetuned else "full",
            "config": json.dumps(ckpt["config"]), "weights": "ema" if use_ema else "model",
            "step": str(ckpt["step"]), "output_spacing": json.dumps(ckpt.get("output_spacing")),
            "encoder_prefixes": json.dumps(list(ENCODER_PREFIXES))}
    out = Path(out)
    if out.parent and not out.parent.is_dir():
        raise RunError(f"--out {out}: folder {out.parent} does not exist")
    data = st_save(tensors, metadata=meta)
    atomic_write_bytes(out, lambda fh: fh.write(data))
    return out


def read_exported(path: Union[str, Path]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of an exported file; RunError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:
        raise RunError(f"{path} is not a readable safetensors file: {exc}") from None
    if meta.get("format") != FORMAT:
        raise RunError(f"{path} was not written by `ddpm export` (metadata format={meta.get('format')!r})")
    return tensors, meta


def load_pretrained(path: Union[str, Path], map_location: Union[str, torch.device] = "cpu") -> torch.nn.Module:
    """The UNet of an exported ``full`` file, weights loaded (strict), in eval mode."""
    from ddpm.config import load_config
    from ddpm.nn import UNet

    tensors, meta = read_exported(path)
    if meta.get("layout") == "segmenter":
        raise RunError(f"{path} holds a fine-tuned segmenter; load it with ddpm.finetune.segmenter.load_segmenter")
    if meta.get("layout") != "full":
        raise RunError(f"{path} holds only the encoder; build a UNet and use load_encoder(unet, path)")
    unet = UNet.from_config(load_config(json.loads(meta["config"])))
    unet.load_state_dict(tensors, strict=True)
    return unet.to(map_location).eval()


def config_of(path: Union[str, Path]) -> Any:
    """The TrainConfig stored in an exported file."""
    from ddpm.config import load_config

    _, meta = read_exported(path)
    return load_config(json.loads(meta["config"]))


def load_encoder(unet: torch.nn.Module, path: Union[str, Path]) -> None:
    """Load an encoder-only (or full) file's encoder weights into ``unet``.

    Strict: every encoder key of ``unet`` must be in the file with the same shape, and the file
    may hold no encoder key the UNet lacks; the decoder of ``unet`` is left untouched.
    """
    tensors, _ = read_exported(path)
    own = unet.state_dict()
    want = set(encoder_keys(own))
    have = set(encoder_keys(tensors))
    missing, unexpected = sorted(want - have), sorted(have - want)
    if missing or unexpected:
        raise RunError(f"{path} does not fit this UNet's encoder: missing {missing[:5]}"
                       f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                       f"{' ...' if len(unexpected) > 5 else ''}")
    bad = [k for k in want if tuple(tensors[k].shape) != tuple(own[k].shape)]
    if bad:
        k = bad[0]
        raise RunError(f"{path}: {k} has shape {tuple(tensors[k].shape)}, the UNet expects "
                       f"{tuple(own[k].shape)} ({len(bad)} mismatched)")
    with torch.no_grad():
        for k in want:
            own[k].copy_(tensors[k])
