"""The inputs the checker gives a student's network: Part 1's hand-computed network, then
small random networks whose shapes and batch sizes make the catalogue's mistakes show.

Why these shapes:

* batch sizes 5, 3 and 4 (> 1, so averaging mistakes show; never 2, where dividing by the
  batch twice would equal dropping the MSE's factor 2);
* 3-4-4: W_input_to_hidden (4 x 4) and W_hidden_to_output[:-1] (4 x 4) are square, so a
  transposed product there runs and gives numbers instead of a shape error;
* 4-3-4: W_hidden_to_output (4 x 4) is square, for its transposed gradient;
* 5-7-3: nothing square, nothing symmetric;
* learning rates other than the default 5 (and different from each other), so a learning
  rate that is ignored or not passed shows.

Everything is float64 and goes in as the lab gives it: Python lists of floats.
"""
from dataclasses import dataclass

import numpy as np

from .steps import LabSteps


@dataclass
class NetworkProbe:
    """One network with its inputs, targets and learning rate (None: the default, 5.0,
    by not passing one)."""

    name: str
    x: np.ndarray
    y: np.ndarray
    w1: np.ndarray
    w2: np.ndarray
    learning_rate: float = None

    @property
    def sizes(self):
        return self.w1.shape[0] - 1, self.w1.shape[1], self.w2.shape[1]

    @property
    def rate(self):
        return 5.0 if self.learning_rate is None else self.learning_rate


def part1():
    """Part 1 of the lab: a 2-2-1 network, x = (0.8, 0.2), y = 0.4, learning rate 5."""
    return NetworkProbe(
        "Part 1's 2-2-1 network (x = (0.8, 0.2), y = 0.4, learning rate 5)",
        x=np.array([[0.8, 0.2]]), y=np.array([[0.4]]),
        w1=np.array([[0.3, -0.5], [0.8, 0.2], [0.2, -0.4]]),
        w2=np.array([[-0.6], [0.4], [0.5]]))


# (n_in, n_hidden, n_out, batch, learning rate)
RANDOM_SHAPES = ((3, 4, 4, 5, 0.7), (4, 3, 4, 3, 2.0), (5, 7, 3, 4, 1.3))


def random_networks(cross_entropy=False, seed=13):
    """Small random networks (always the same ones): inputs in [0, 1) like MNIST's pixels,
    weights ~ normal(0, 1), targets in [0, 1) for the MSE, one-hot for cross-entropy."""
    rng = np.random.default_rng(seed)
    probes = []
    for n_in, n_hidden, n_out, batch, rate in RANDOM_SHAPES:
        x = rng.uniform(0, 1, (batch, n_in))
        w1 = rng.normal(0, 1, (n_in + 1, n_hidden))
        w2 = rng.normal(0, 1, (n_hidden + 1, n_out))
        if cross_entropy:
            y = np.eye(n_out)[rng.integers(0, n_out, batch)]
        else:
            y = rng.uniform(0, 1, (batch, n_out))
        name = (f"a random {n_in}-{n_hidden}-{n_out} network, {batch} samples, learning "
                f"rate {rate:g}")
        probes.append(NetworkProbe(name, x, y, w1, w2, rate))
    return probes


def large_outputs(seed=29):
    """A 3-4-4 network whose u_output reach the thousands: a softmax that does not subtract
    each row's maximum overflows there."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (3, 3))
    w1 = rng.normal(0, 1, (4, 4))
    w2 = rng.normal(0, 1, (5, 4)) * 1000.0
    y = np.eye(4)[[0, 2, 1]]
    return NetworkProbe("a 3-4-4 network whose u_output are in the thousands", x, y, w1, w2,
                        0.5)


def forward_probes(cross_entropy):
    """The networks ``feedforward`` (Part 1 and the random ones) or ``feedforward_xe`` (the
    random ones and the large outputs) is checked on."""
    if cross_entropy:
        return random_networks(True) + [large_outputs()]
    return [part1()] + random_networks()


def backward_probes(cross_entropy):
    """The networks ``backpropagate`` (Part 1 and the random ones) or ``backpropagate_xe``
    (the random ones: a 1-output softmax is always 1, so Part 1 teaches it nothing) is
    checked on."""
    if cross_entropy:
        return random_networks(True)
    return [part1()] + random_networks()


# ------------------------------------------------------------------------------------------
# train: a scripted network whose accuracies are known per number of steps
# ------------------------------------------------------------------------------------------

@dataclass
class TrainScript:
    """Data for ``train`` and the accuracies (in %) of the weights after k steps.

    Every sample says which set it is in and its index: (1, i) for training, (2, i) for
    validation.  The scripted network (``training.py``) gets sample i right when i is below
    the count the table gives for the current number of steps, so the accuracies are
    exactly these.  They are chosen so that each way of keeping the wrong weights keeps a
    different step: the best validation accuracy is after step 2; the last step that beats
    the starting accuracy is 4; the best training accuracy is after step 5; the last is 6.
    """

    iterations: int = 6
    learning_rate: float = 0.3
    n_out: int = 4
    n_train: int = 10
    n_validation: int = 8
    # steps:                 0     1     2     3     4     5     6
    train_accuracy: tuple = (10.0, 20.0, 30.0, 40.0, 60.0, 90.0, 70.0)
    validation_accuracy: tuple = (37.5, 50.0, 87.5, 62.5, 75.0, 25.0, 12.5)

    TRAINING, VALIDATION = 1, 2

    def label(self, index):
        return index % self.n_out

    def inputs(self, which):
        n = self.n_train if which == self.TRAINING else self.n_validation
        return [[float(which), float(i)] for i in range(n)]

    def targets(self, which):
        n = self.n_train if which == self.TRAINING else self.n_validation
        return [[int(self.label(i) == c) for c in range(self.n_out)] for i in range(n)]

    def accuracy(self, which, steps):
        """% right after ``steps`` steps (0 for any step count past the table)."""
        table = self.train_accuracy if which == self.TRAINING else self.validation_accuracy
        return table[steps] if 0 <= steps < len(table) else 0.0

    def correct_count(self, which, steps):
        n = self.n_train if which == self.TRAINING else self.n_validation
        return int(round(self.accuracy(which, steps) * n / 100))


# ------------------------------------------------------------------------------------------
# predict: a network with a known count of right answers
# ------------------------------------------------------------------------------------------

@dataclass
class PredictProbe:
    name: str
    x: np.ndarray
    targets: list
    w1: np.ndarray
    w2: np.ndarray
    right: int

    @property
    def sizes(self):
        return self.w1.shape[0] - 1, self.w1.shape[1], self.w2.shape[1]


def predict_probe(right=3, n=10, seed=7):
    """A random 3-4-4 network and ``n`` samples of which exactly ``right`` have their target
    at the largest output (by a clear margin; the others at the smallest), so the count
    cannot be confused with a percentage, a fraction or the number wrong."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 1, (4, 4))
    w2 = rng.normal(0, 2, (5, 4))
    rows = []
    while len(rows) < n:
        x = rng.uniform(0, 1, (1, 3))
        out = LabSteps().feedforward(x, w1, w2)["o_output"][0]
        top = np.sort(out)
        if top[-1] - top[-2] > 1e-3 and top[1] - top[0] > 1e-3:
            rows.append((x[0], int(np.argmax(out)), int(np.argmin(out))))
    targets = [[int(c == (best if i < right else worst)) for c in range(4)]
               for i, (_, best, worst) in enumerate(rows)]
    x = np.array([r[0] for r in rows])
    return PredictProbe(f"a random 3-4-4 network, {n} samples of which {right} are right",
                        x, targets, w1, w2, right)
