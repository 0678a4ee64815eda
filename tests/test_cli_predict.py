"""``mnist-native predict IMAGE --model FILE`` on pictures rendered from MNIST test digits
(scaled up, dark ink on white paper, RGB, off centre), with models saved by ``save``."""
import re

import numpy as np
import pytest
from PIL import Image

import mnist_native
from test_cli import assert_clean_error, assert_png, run

LINE = re.compile(r"^(?P<path>.+): (?P<digit>\d) \((?P<p>\d+\.\d) %\)$")
PROB = re.compile(r"^  (?P<digit>\d) +(?P<p>\d+\.\d) %( +#*)?( +<)?$")


@pytest.fixture(scope="module")
def splits(mnist_dir):
    return mnist_native.load_mnist(mnist_dir, progress=False, download=False)


def train_model(splits, loss, path):
    targets = np.eye(10, dtype=np.float32)
    train = splits.train
    n = 20000
    model = mnist_native.NeuralNetwork(784, 64, 10, dtype="float32", seed=1, num_threads=1)
    fit = model.train_xe if loss == "xe" else model.train
    fit((train.images[:n], targets[train.labels[:n]]),
        (train.images[-500:], targets[train.labels[-500:]]), iterations=2,
        learning_rate=0.5 if loss == "xe" else 2.0, batch_size=32, plot=False)
    model.save(path)
    return model


@pytest.fixture(scope="module")
def xe_model(splits, tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "xe.npz"
    train_model(splits, "xe", path)
    return path


def render(digit, path, scale, offset):
    ink = Image.fromarray((255 - digit.reshape(28, 28) * 255).astype(np.uint8))
    big = ink.resize((28 * scale, 28 * scale), getattr(Image, "Resampling", Image).BICUBIC)
    sheet = Image.new("L", (28 * scale + 90, 28 * scale + 60), 255)
    sheet.paste(big, offset)
    sheet.convert("RGB").save(path)
    return path


def parse(stdout):
    """{path: (digit, [10 probabilities in %])} from predict's output."""
    results, current = {}, None
    for line in stdout.splitlines():
        m = LINE.match(line)
        if m:
            current = m.group("path")
            results[current] = (int(m.group("digit")), [])
            continue
        m = PROB.match(line)
        if m and current is not None:
            assert int(m.group("digit")) == len(results[current][1])
            results[current][1].append(float(m.group("p")))
    return results


def test_predict_classifies_rendered_test_digits(splits, xe_model, tmp_path):
    test = splits.test
    images = [render(test.images[i], tmp_path / f"digit{i}.png", scale=4 + i % 8,
                     offset=(5 + 7 * i, 40 - 2 * i)) for i in range(12)]
    result = run("predict", *images, "--model", xe_model, "--preview", "inputs.png",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    results = parse(result.stdout)
    assert sorted(results) == sorted(str(p) for p in images)
    correct = 0
    for i, path in enumerate(images):
        digit, probabilities = results[str(path)]
        assert len(probabilities) == 10
        assert abs(sum(probabilities) - 100) < 1.0
        assert digit == int(np.argmax(probabilities))
        correct += digit == test.labels[i]
    assert correct >= 10, result.stdout
    assert_png(tmp_path / "inputs.png", min_width=200, min_height=150)


def test_predict_agrees_with_the_model_on_the_prepared_input(splits, xe_model, tmp_path):
    from mnist_native.imaging import image_to_input

    path = render(splits.test.images[3], tmp_path / "three.jpg", scale=10, offset=(30, 20))
    result = run("predict", path, "--model", xe_model, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    digit, probabilities = parse(result.stdout)[str(path)]
    model = mnist_native.NeuralNetwork.load(xe_model)
    model.feedforward_xe(image_to_input(path)[None, :])
    np.testing.assert_allclose(probabilities, 100 * model.o_output[0], atol=0.051)


def test_predict_with_an_mse_model_scales_the_outputs_to_sum_to_one(splits, tmp_path):
    model_path = tmp_path / "mse.npz"
    train_model(splits, "mse", model_path)
    path = render(splits.test.images[0], tmp_path / "seven.png", scale=6, offset=(10, 10))
    result = run("predict", path, "--model", model_path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    digit, probabilities = parse(result.stdout)[str(path)]
    assert abs(sum(probabilities) - 100) < 1.0
    assert digit == 7


def test_predict_with_a_model_saved_by_train(tmp_path, splits):
    trained = run("train", "--n-train", "2000", "--n-validation", "200", "--iterations", "20",
                  "--hidden", "30", "--save", "m.npz", "--no-plot", "--quiet", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    path = render(splits.test.images[1], tmp_path / "two.png", scale=5, offset=(0, 0))
    result = run("predict", path, "--model", "m.npz", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert str(path) in parse(result.stdout)


def test_predict_forced_inversion(splits, xe_model, tmp_path):
    digit = splits.test.images[2].reshape(28, 28)
    Image.fromarray((digit * 255).astype(np.uint8)).resize((112, 112)).save(tmp_path / "w.png")
    light = run("predict", tmp_path / "w.png", "--model", xe_model, "--no-invert", cwd=tmp_path)
    auto = run("predict", tmp_path / "w.png", "--model", xe_model, cwd=tmp_path)
    assert light.returncode == 0 and light.stdout == auto.stdout
    assert parse(light.stdout)[str(tmp_path / "w.png")][0] == splits.test.labels[2]


@pytest.fixture
def untrained_model(tmp_path):
    """A 784-16-10 model with random weights: enough to test predict's errors without MNIST."""
    path = tmp_path / "untrained.npz"
    mnist_native.NeuralNetwork(784, 16, 10, seed=0).save(path)
    return path


def test_predict_runs_without_mnist(untrained_model, tmp_path):
    image = render(np.eye(28).ravel(), tmp_path / "stroke.png", scale=3, offset=(0, 0))
    result = run("predict", image, image, "--model", untrained_model, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    results = parse(result.stdout)
    assert list(results) == [str(image)]  # the same image twice: the same answer twice
    assert result.stdout.count(f"{image}: ") == 2
    assert abs(sum(results[str(image)][1]) - 100) < 1.0


@pytest.mark.parametrize("case", ["blank", "not-an-image", "missing", "wrong-model",
                                  "not-a-model", "preview-format"])
def test_predict_bad_input_is_one_clean_line(case, untrained_model, tmp_path):
    image = tmp_path / "digit.png"
    render(np.eye(28).ravel(), image, scale=3, offset=(0, 0))
    model = untrained_model
    extra = []
    if case == "blank":
        Image.new("L", (64, 64), 255).save(image)
        message = "no digit found"
    elif case == "not-an-image":
        image.write_text("hello")
        message = "not an image"
    elif case == "missing":
        image = tmp_path / "nowhere.png"
        message = "no such file"
    elif case == "wrong-model":
        model = tmp_path / "small.npz"
        mnist_native.NeuralNetwork(12, 5, 3, seed=0).save(model)
        message = "not an MNIST digit classifier"
    elif case == "not-a-model":
        model = image
        message = "not a model file"
    else:
        extra = ["--preview", "inputs.xyz"]
        message = "must end with one of"
    result = run("predict", image, "--model", model, *extra, cwd=tmp_path)
    assert_clean_error(result, status=1, command="predict")
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("labels, refused", [(np.arange(10), False),
                                             (np.arange(1, 11), True),
                                             (np.array([f"d{i}" for i in range(10)]), True)])
def test_predict_refuses_an_estimator_whose_classes_are_not_the_digits(labels, refused,
                                                                      tmp_path):
    """The command line names outputs 0 to 9: an estimator's file with other classes (its
    outputs are those, in their order) is refused, not read as digits."""
    pytest.importorskip("sklearn", reason="the estimator needs scikit-learn")
    from mnist_native.sklearn import NeuralNetworkClassifier

    x = np.random.default_rng(0).random((40, 784))
    est = NeuralNetworkClassifier(hidden_layer_size=8, max_iter=1, random_state=0,
                                  num_threads=1).fit(x, np.resize(labels, 40))
    est.save(tmp_path / "est.npz")
    image = render(np.eye(28).ravel(), tmp_path / "stroke.png", scale=3, offset=(0, 0))
    result = run("predict", image, "--model", tmp_path / "est.npz", cwd=tmp_path)
    if refused:
        assert_clean_error(result, status=1, command="predict")
        assert "not the digits 0 to 9" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
