"""Neural networks of the engine: the 2D/3D denoising U-Net and its parts."""
from .unet import UNet

__all__ = ["UNet"]
