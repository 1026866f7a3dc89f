"""Parameter shapes of ResNet-50 and ViT-B/16, in PyTorch layout (output channels first).

Random tensors of these shapes stand in for the models: no torchvision needed.
``output_channels_last`` gives the Keras / Flax layout of the same tensor.
"""

from __future__ import annotations

Shape = tuple[int, ...]


def resnet50_shapes(num_classes: int = 1000) -> list[Shape]:
    """torchvision's resnet50: 161 tensors, 25,557,032 parameters."""
    shapes: list[Shape] = [(64, 3, 7, 7), (64,), (64,)]
    inplanes = 64
    for planes, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for block in range(blocks):
            shapes += [(planes, inplanes, 1, 1), (planes,), (planes,)]
            shapes += [(planes, planes, 3, 3), (planes,), (planes,)]
            shapes += [(planes * 4, planes, 1, 1), (planes * 4,), (planes * 4,)]
            if block == 0:
                shapes += [(planes * 4, inplanes, 1, 1), (planes * 4,), (planes * 4,)]
            inplanes = planes * 4
    return [*shapes, (num_classes, 2048), (num_classes,)]


def vit_b16_shapes(num_classes: int = 1000) -> list[Shape]:
    """timm's vit_base_patch16_224: 152 tensors, 86,567,656 parameters."""
    dim, hidden = 768, 3072
    shapes: list[Shape] = [(1, 1, dim), (1, 197, dim), (dim, 3, 16, 16), (dim,)]
    for _ in range(12):
        shapes += [(dim,), (dim,), (3 * dim, dim), (3 * dim,), (dim, dim), (dim,)]
        shapes += [(dim,), (dim,), (hidden, dim), (hidden,), (dim, hidden), (dim,)]
    return [*shapes, (dim,), (dim,), (num_classes, dim), (num_classes,)]


MODELS = {"resnet50": resnet50_shapes, "vit_b16": vit_b16_shapes}


def output_channels_last(shape: Shape) -> Shape:
    """The same tensor in Keras / Flax layout: the output-channel axis moved last."""
    return shape if len(shape) < 2 else (*shape[1:], shape[0])
