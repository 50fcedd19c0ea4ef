"""Expert PyTorch (eager) fine-tuning and inference of the zoo's digits models, without the harness.

The split is staged once as torch tensors in torch's layout (NCHW images for the CNN; the MLP
flattens NHWC rows, as the canonical model does). The training images and labels of each epoch
are permuted into the host's batch order with one gather, the first time the epoch comes round
(timed where it falls), and every step takes a contiguous slice of its epoch's tensors: no
per-step index gather, no conversion. Inference slices the test images, padded as the host pads
its last batch, staged once. The model is the
zoo's architecture in plain ``nn`` layers; the optimiser ``torch.optim.Adam(lr=1e-3)``, the
formula the harness holds every framework to."""

import torch
from torch import nn

from common import BETA1, BETA2, EPS, LEARNING_RATE, Data, parse, report, windows

args = parse()
torch.set_num_threads(args.threads)
torch.manual_seed(0)
d = Data(args.batch_size, args.epochs)
B, steps = args.batch_size, d.steps_per_epoch


class CNN(nn.Module):
    """conv 16, conv 32 stride 2, conv 64 (3x3, padding 1, ReLU), global mean pool, head; NCHW."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                                  nn.Conv2d(32, 64, 3, 1, 1), nn.ReLU())
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(self.body(x).mean((2, 3)))


if args.model == "mlp":
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    layout = lambda a: torch.from_numpy(a)  # noqa: E731  NHWC rows, flattened by the model
else:
    model = CNN()
    layout = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()  # noqa: E731  NCHW
opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, betas=(BETA1, BETA2), eps=EPS)
loss_fn = nn.CrossEntropyLoss()
x_train, y_train = layout(d.x_train), torch.from_numpy(d.y_train)
epoch_index = [torch.from_numpy(idx) for idx in d.epoch_index]
x_test = layout(d.x_test)[torch.from_numpy(d.test_index)]  # the padded eval batches, contiguous
n_test_batches = len(d.test_batches)
epochs = {}  # epoch -> its images and labels in the host's batch order, contiguous


def train_step(i):
    e, j = divmod(i, steps)
    e %= len(epoch_index)
    if e not in epochs:
        epochs[e] = x_train.index_select(0, epoch_index[e]), y_train.index_select(0, epoch_index[e])
    x, y = epochs[e]
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x[j * B:(j + 1) * B]), y[j * B:(j + 1) * B])
    loss.backward()
    opt.step()
    return loss


@torch.inference_mode()
def infer_step(i):
    k = i % n_test_batches
    return model(x_test[k * B:(k + 1) * B])


model.train()
tr = windows(train_step, lambda out: out.item(), args, B)
model.eval()
inf = windows(infer_step, lambda out: out.numpy(), args, B)
report(tr, inf)
