"""The LeNet of PyTorch's 60-minute blitz tutorial ("Neural Networks"), and a
few training steps on it.

One definition for the example repository (make_repository.py, which imports
it from its own folder) and the tests' checkpoint writers
(tests/data/make_checkpoints.py, tests/client/make_client_repository.py), so
that what the tests write is the network the example serves.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), (2, 2))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def train_steps(model, optimizer, steps, batch_size):
    """`steps` optimizer steps on random 32x32 batches, so that the optimizer
    state in a training checkpoint is real. Returns the last loss (a tensor)."""
    loss = None
    for _ in range(steps):
        inputs = torch.randn(batch_size, 1, 32, 32)
        targets = torch.randint(0, 10, (batch_size,))
        loss = F.cross_entropy(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss
