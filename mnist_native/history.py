"""What a training run records, iteration by iteration."""
from dataclasses import dataclass, field
from typing import List


@dataclass
class TrainingHistory:
    """Per-iteration record of one ``train``/``train_xe`` call.

    Entry ``t`` of each list describes the weights after iteration ``t + 1``: accuracies in %
    (argmax of the output against argmax of the one-hot target), the mean per-sample training
    loss, and the wall-clock seconds since training started.  ``best_iteration`` is how many
    iterations the kept (best-validation) weights had had; 0 means the starting weights were
    never beaten and were kept.  ``interrupted`` is True when a KeyboardInterrupt stopped
    training early.
    """

    loss_name: str
    initial_validation_accuracy: float
    train_accuracy: List[float] = field(default_factory=list)
    validation_accuracy: List[float] = field(default_factory=list)
    loss: List[float] = field(default_factory=list)
    seconds: List[float] = field(default_factory=list)
    best_iteration: int = 0
    best_validation_accuracy: float = 0.0
    interrupted: bool = False

    def add(self, train_accuracy, loss, validation_accuracy, seconds):
        """Append one iteration; True when its validation accuracy is the best so far."""
        self.train_accuracy.append(train_accuracy)
        self.loss.append(loss)
        self.validation_accuracy.append(validation_accuracy)
        self.seconds.append(seconds)
        if validation_accuracy > self.best_validation_accuracy:
            self.best_validation_accuracy = validation_accuracy
            self.best_iteration = self.iterations
            return True
        return False

    @property
    def iterations(self):
        """Iterations completed."""
        return len(self.validation_accuracy)

    @property
    def total_seconds(self):
        return self.seconds[-1] if self.seconds else 0.0

    def __repr__(self):
        return (
            f"TrainingHistory({self.loss_name}, iterations={self.iterations}, "
            f"best validation {self.best_validation_accuracy:.2f}% at iteration "
            f"{self.best_iteration}, {self.total_seconds:.2f} s)"
        )
