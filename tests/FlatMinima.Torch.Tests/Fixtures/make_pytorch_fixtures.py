# Writes the small PyTorch-written files that PyTorchCheckpointTests reads (a few KB each): the state_dict of a
# TorchVision-style stem (conv1, bn1) with values the test recomputes, saved by torch.save, and a training checkpoint
# that wraps it ({"epoch", "state_dict" with DataParallel's "module." prefix, "optimizer" (SGD with momentum, after one
# step), "args" (an argparse.Namespace)}). Run from this folder with python3 and torch (any version that saves zip
# archives, PyTorch >= 1.6); the committed files were written by PyTorch 1.13.
import argparse
from collections import OrderedDict

import torch

stem = torch.nn.Sequential(OrderedDict(conv1=torch.nn.Conv2d(3, 4, 3, bias=False), bn1=torch.nn.BatchNorm2d(4)))
with torch.no_grad():
    stem.conv1.weight.copy_(torch.arange(108, dtype=torch.float32).reshape(4, 3, 3, 3) / 100 - 0.5)
    stem.bn1.weight.copy_(torch.tensor([1.0, 1.5, 2.0, 2.5]))
    stem.bn1.bias.copy_(torch.tensor([-0.25, 0.0, 0.25, 0.5]))
    stem.bn1.running_mean.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4]))
    stem.bn1.running_var.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    stem.bn1.num_batches_tracked.fill_(7)
torch.save(stem.state_dict(), "pytorch-stem.pth")

copy = torch.nn.Sequential(OrderedDict(conv1=torch.nn.Conv2d(3, 4, 3, bias=False), bn1=torch.nn.BatchNorm2d(4)))
copy.load_state_dict(stem.state_dict())
step = torch.optim.SGD(copy.parameters(), lr=0.1, momentum=0.9)
copy(torch.ones(1, 3, 5, 5)).sum().backward()
step.step()  # momentum buffers under integer keys in the optimizer's state
torch.save({
    "epoch": 3,
    "state_dict": OrderedDict(("module." + k, v) for k, v in stem.state_dict().items()),
    "optimizer": step.state_dict(),
    "args": argparse.Namespace(lr=0.1, arch="resnet18"),
}, "pytorch-training-checkpoint.pth")
