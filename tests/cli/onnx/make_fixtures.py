#!/usr/bin/python3
"""Writes the ONNX models tests/cli/onnx_train.sh fine-tunes (run with Debian's python3-torch;
the test itself needs no torch), exported as a PyTorch user would: a free batch dimension
(dynamic_axes), input and output names of the user's choosing, untrained weights.

  classifier.onnx  a small CNN for Fashion-MNIST: conv, fc1, fc2; input `image`, output `scores`
  pretrained.onnx  the same body with other weights and its head named `head`, not `fc2`: what
                   --init-from takes by name into classifier.onnx (conv and fc1) and leaves

    /usr/bin/python3 tests/cli/onnx/make_fixtures.py tests/cli/onnx
"""
import pathlib, sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class Classifier(nn.Module):
    def __init__(self, head="fc2"):
        super().__init__()
        self.head_name = head
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc1 = nn.Linear(8 * 7 * 7, 32)
        setattr(self, head, nn.Linear(32, 10))

    def forward(self, image):
        h = F.max_pool2d(torch.relu(self.conv(image)), 4)
        return getattr(self, self.head_name)(torch.relu(self.fc1(h.flatten(1))))


def export(model, path):
    model.eval()
    torch.onnx.export(model, torch.randn(2, 1, 28, 28), str(path), input_names=["image"], output_names=["scores"],
                      dynamic_axes={"image": {0: "batch"}, "scores": {0: "batch"}}, opset_version=13)
    print(path.name, sum(p.numel() for p in model.parameters()), "parameters")


def main():
    out = pathlib.Path(sys.argv[1])
    torch.manual_seed(0)
    export(Classifier(), out / "classifier.onnx")
    torch.manual_seed(1)
    export(Classifier(head="head"), out / "pretrained.onnx")


if __name__ == "__main__":
    main()
