"""Tiny synthetic data shared by the core tests (no files, no downloads)."""
import torch

from vae.data import DataSplit, ImageData


def blobs(n: int = 64, side: int = 8, channels: int = 1, classes: int = 2, seed: int = 0) -> ImageData:
    """Class-dependent bright squares on a dark background: uint8 [n, C, side, side] and labels."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = (torch.rand((n, channels, side, side), generator=g) * 40).to(torch.uint8)
    for i in range(n):
        c = int(y[i])
        r0 = (c * side // classes) % (side - 2)
        x[i, :, r0:r0 + 3, 1:side - 1] = 230
    return ImageData(x=x, y=y)


def tiny_split(n_train: int = 64, n_test: int = 32, side: int = 8, channels: int = 1, classes: int = 2) -> DataSplit:
    return DataSplit(name="blobs", source="synthetic", train=blobs(n_train, side, channels, classes, 0),
                     test=blobs(n_test, side, channels, classes, 1), class_names=[str(i) for i in range(classes)])
