#!/usr/bin/env python3
"""PyTorch definitions of catalog models (models/*.stag); prints each state_dict entry as
`name [d0, d1, ...]`, one a line, in state_dict order.

The frontend test (tests/frontend/test_pytorch_params.cpp) checks that stag gives the same
parameter names and shapes in the same order, so that a PyTorch state_dict saved as safetensors
loads into a stag model by name. BatchNorm's `num_batches_tracked` counter is left out: stag
does not keep it (it only matters for momentum=None).

Regenerate (needs python3-torch, not needed to run the tests):
    for m in mlp lenet5 resnet gpt; do /usr/bin/python3 gen_params.py $m > $m.params; done
"""
import sys

import torch.nn as nn
import torch.nn.functional as F


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 512)
        self.fc2 = nn.Linear(512, 256)
        self.fc3 = nn.Linear(256, 10)
        self.drop = nn.Dropout(0.2)

    def forward(self, x):
        h = self.drop(F.relu(self.fc1(x.flatten(1))))
        h = self.drop(F.relu(self.fc2(h)))
        return self.fc3(h)


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes))


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = nn.Sequential(BasicBlock(16, 16), BasicBlock(16, 16))
        self.layer2 = nn.Sequential(BasicBlock(16, 32, stride=2), BasicBlock(32, 32))
        self.layer3 = nn.Sequential(BasicBlock(32, 64, stride=2), BasicBlock(64, 64))
        self.fc = nn.Linear(64, 10)


class GPTMLP(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.c_fc = nn.Linear(width, 4 * width)
        self.c_proj = nn.Linear(4 * width, width)
        self.dropout = nn.Dropout(0.1)


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = GPTMLP(width)


class GPT(nn.Module):
    def __init__(self, vocab=65, context=64, width=128, layers=4, heads=4):
        super().__init__()
        self.wte = nn.Embedding(vocab, width)
        self.wpe = nn.Embedding(context, width)
        self.drop = nn.Dropout(0.1)
        self.h = nn.Sequential(*[Block(width, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(width)
        self.lm_head = nn.Linear(width, vocab, bias=False)


MODELS = {"mlp": MLP, "lenet5": LeNet5, "resnet": ResNet, "gpt": GPT}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in MODELS:
        sys.exit(f"usage: gen_params.py {{{','.join(MODELS)}}}")
    for name, tensor in MODELS[sys.argv[1]]().state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        print(name, list(tensor.shape))


if __name__ == "__main__":
    main()
