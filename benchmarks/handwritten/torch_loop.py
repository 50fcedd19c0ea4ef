"""Idiomatic PyTorch fine-tuning and inference of the zoo's digits models, without the harness."""

import numpy as np
import torch
from torch import nn

from common import data, parse, report, windows

args = parse()
torch.set_num_threads(args.threads)
d, train, test = data(args.batch_size)
if args.model == "mlp":
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
else:
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                                      nn.Conv2d(32, 64, 3, 1, 1), nn.ReLU())
            self.head = nn.Linear(64, 10)

        def forward(self, x):
            return self.head(self.body(x.permute(0, 3, 1, 2)).mean((2, 3)))
    model = Net()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
x_all, y_all = torch.from_numpy(d.x_train), torch.from_numpy(d.y_train)
loss_fn = nn.CrossEntropyLoss()


def train_step(i):
    idx = torch.from_numpy(train[i % len(train)])
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x_all[idx]), y_all[idx])
    loss.backward()
    opt.step()
    return loss


x_test = torch.from_numpy(d.x_test)


@torch.inference_mode()
def infer_step(i):
    return model(x_test[torch.from_numpy(test[i % len(test)])])


model.train()
tr = windows(train_step, lambda out: out.item(), args, args.batch_size)
model.eval()
inf = windows(infer_step, lambda out: out.numpy(), args, args.batch_size)
report(tr, inf)
