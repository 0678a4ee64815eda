"""``mnist_native.imaging``: digit pictures of any size prepared as MNIST was made
(grayscale, inverted when dark on light, fitted into 20 x 20, centred by mass in 28 x 28)."""
import os

import numpy as np
import pytest
from PIL import Image

import mnist_native
from mnist_native.imaging import DigitImageError, image_to_input, load_image, to_mnist


def centre_of_mass(image):
    rows, cols = np.indices(image.shape)
    return (rows * image).sum() / image.sum(), (cols * image).sum() / image.sum()


def ink_box(image):
    rows = np.flatnonzero(image.any(axis=1))
    cols = np.flatnonzero(image.any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def stroke_digit(height=300, width=200, dark_on_light=True):
    """A synthetic '1'-like bar with a foot, off-centre on a big canvas."""
    img = np.zeros((height, width))
    img[40:220, 120:140] = 1.0      # the stem
    img[200:220, 90:170] = 1.0      # the foot
    return 1.0 - img if dark_on_light else img


# --------------------------------------------------------------------------------------
# synthetic images
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dark_on_light", [True, False])
def test_fitted_into_20x20_and_centred_by_mass(dark_on_light):
    x = to_mnist(stroke_digit(dark_on_light=dark_on_light))
    assert x.shape == (784,) and x.dtype == np.float32
    image = x.reshape(28, 28)
    assert 0.0 <= image.min() and image.max() <= 255 / 256 + 1e-7
    assert image.max() > 0.9
    assert max(ink_box(image > 0)) == 20      # the longer side is 20 pixels
    cy, cx = centre_of_mass(image)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    assert image[0].sum() == 0 and image[:, 0].sum() == 0  # background stays black


def test_aspect_ratio_is_kept():
    img = np.zeros((400, 400))
    img[100:300, 180:230] = 1.0  # 200 tall, 50 wide: 4 to 1
    h, w = ink_box(to_mnist(img).reshape(28, 28) > 0.05)
    assert h == 20 and 4 <= w <= 7


def test_inversion_can_be_forced():
    light_on_dark = stroke_digit(dark_on_light=False)
    auto = to_mnist(light_on_dark)
    np.testing.assert_array_equal(to_mnist(light_on_dark, invert=False), auto)
    np.testing.assert_array_equal(to_mnist(1.0 - light_on_dark, invert=True), auto)


def test_uniform_background_level_is_removed():
    gray_paper = 0.8 - 0.6 * (1.0 - stroke_digit())  # dark ink 0.2 on paper 0.8
    np.testing.assert_allclose(to_mnist(gray_paper), to_mnist(stroke_digit()), atol=1e-6)


@pytest.mark.parametrize("image", [np.zeros((30, 30)), np.full((50, 40), 0.7)])
def test_a_blank_image_is_refused(image):
    with pytest.raises(DigitImageError, match="blank"):
        to_mnist(image)


@pytest.mark.parametrize("image", [np.zeros(10), np.zeros((2, 3, 3)), np.full((5, 5), np.nan)])
def test_not_a_grayscale_image(image):
    with pytest.raises(DigitImageError):
        to_mnist(image)


def test_a_tiny_digit_is_scaled_up():
    img = np.zeros((8, 8))
    img[2:6, 3:5] = 1.0
    assert max(ink_box(to_mnist(img).reshape(28, 28) > 0.05)) >= 19


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16"])
def test_image_files_in_every_mode(tmp_path, mode):
    gray = (stroke_digit() * 255).astype(np.uint8)
    im = Image.fromarray(gray)
    if mode == "I;16":
        im = Image.fromarray(gray.astype(np.uint16) * 257)
    else:
        im = im.convert(mode)
    path = tmp_path / "digit.png"
    im.save(path)
    np.testing.assert_allclose(image_to_input(path), to_mnist(stroke_digit()), atol=0.02)


def test_transparent_background_counts_as_paper(tmp_path):
    ink = 1.0 - stroke_digit()  # 1 where the stroke is
    rgba = np.zeros(ink.shape + (4,), dtype=np.uint8)
    rgba[..., 3] = (ink * 255).astype(np.uint8)  # black ink, transparent elsewhere
    Image.fromarray(rgba, "RGBA").save(tmp_path / "pen.png")
    np.testing.assert_allclose(image_to_input(tmp_path / "pen.png"), to_mnist(stroke_digit()),
                               atol=0.02)


def test_unreadable_files_are_named_in_the_error(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(DigitImageError, match="notes.png: not an image"):
        load_image(tmp_path / "notes.png")
    with pytest.raises(DigitImageError, match="missing.png: no such file"):
        image_to_input(tmp_path / "missing.png")
    Image.new("L", (20, 20), 255).save(tmp_path / "white.png")
    with pytest.raises(DigitImageError, match="white.png: no digit found"):
        image_to_input(tmp_path / "white.png")


# --------------------------------------------------------------------------------------
# MNIST test digits rendered as pictures
# --------------------------------------------------------------------------------------

def render(digit, tmp_path, name, scale=9, offset=(37, 81), canvas=(400, 330)):
    """A 28 x 28 MNIST digit as a photo-like picture: scaled up, dark on light, RGB, off
    centre on a larger sheet, saved as PNG."""
    ink = Image.fromarray((255 - digit.reshape(28, 28) * 255).astype(np.uint8))
    big = ink.resize((28 * scale, 28 * scale), getattr(Image, "Resampling", Image).BICUBIC)
    sheet = Image.new("L", canvas, 255)
    sheet.paste(big, offset)
    path = tmp_path / name
    sheet.convert("RGB").save(path)
    return path


@pytest.fixture(scope="module")
def mnist_test_digits():
    path = os.environ.get("MNIST_NATIVE_DATA", "").strip()
    if not path:
        pytest.skip("MNIST_NATIVE_DATA is not set: point it at a folder holding the MNIST "
                    "data to run the tests on rendered MNIST digits")
    splits = mnist_native.load_mnist(path, progress=False, download=False)
    return splits


@pytest.fixture(scope="module")
def digit_model(mnist_test_digits):
    """A cross-entropy network trained briefly by mini-batch SGD (about 93 % on the test set)."""
    train = mnist_test_digits.train
    model = mnist_native.NeuralNetwork(784, 64, 10, dtype="float32", seed=0, num_threads=1)
    n = 20000
    targets = np.eye(10, dtype=np.float32)
    model.train_xe((train.images[:n], targets[train.labels[:n]]),
                   (train.images[-500:], targets[train.labels[-500:]]), iterations=2,
                   learning_rate=0.5, batch_size=32, plot=False)
    return model


def classify(model, inputs):
    model.feedforward_xe(np.asarray(inputs, dtype=np.float32))
    return np.argmax(model.o_output, axis=1)


def test_an_mnist_digit_comes_back_nearly_unchanged(mnist_test_digits):
    images = mnist_test_digits.test.images[:200]
    correlations = [np.corrcoef(to_mnist(x.reshape(28, 28)), x)[0, 1] for x in images]
    assert np.median(correlations) > 0.99


def test_rendered_mnist_digits_look_like_the_originals(mnist_test_digits, tmp_path):
    images = mnist_test_digits.test.images[:40]
    correlations = []
    for i, x in enumerate(images):
        path = render(x, tmp_path, f"{i}.png", scale=5 + i % 7, offset=(10 + 3 * i, 20))
        correlations.append(np.corrcoef(image_to_input(path), x)[0, 1])
    assert np.median(correlations) > 0.9


def test_rendered_digits_are_classified_as_the_originals(mnist_test_digits, digit_model, tmp_path):
    test = mnist_test_digits.test
    originals = classify(digit_model, test.images[:100])
    assert np.mean(originals == test.labels[:100]) > 0.85  # the model is a fair one
    inputs = [image_to_input(render(x, tmp_path, f"{i}.png", scale=4 + i % 9))
              for i, x in enumerate(test.images[:100])]
    rendered = classify(digit_model, inputs)
    assert np.mean(rendered == originals) >= 0.9
    assert np.mean(rendered == test.labels[:100]) >= 0.8
