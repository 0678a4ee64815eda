"""A digit image of any size, made into an MNIST input the way MNIST itself was made.

MNIST's digits are white ink on black, each fitted (aspect ratio kept, anti-aliased) into a
20 x 20 box, then placed in a 28 x 28 field so that their centre of mass is at the centre
(row 14, column 14 in pixel indices: the measured mean over the test set).  ``to_mnist`` does
the same to a scan, a photo or a drawing:

1. grayscale in [0, 1] (transparent pixels count as white paper);
2. inverted when it is dark ink on a light background (decided from the border, or forced);
3. the background level (the border's median) subtracted, the ink scaled to a maximum of 1,
   and faint noise (below ``noise_floor`` of the maximum) set to 0;
4. cropped to the ink's bounding box, resized so its longer side is 20 pixels;
5. pasted into 28 x 28 with its centre of mass at (14, 14);
6. scaled to [0, 255/256], the range of the lab's ``mnist.pkl.gz`` (pixel / 256).

Uses Pillow, which matplotlib depends on.
"""
import numpy as np

__all__ = ["load_image", "to_mnist", "image_to_input", "DigitImageError"]

FIELD = 28       # MNIST images are FIELD x FIELD
BOX = 20         # the digit is fitted into BOX x BOX
CENTRE = 14.0    # where its centre of mass goes (pixel indices)
MAX_VALUE = 255 / 256


class DigitImageError(ValueError):
    """An image that cannot be read, or holds no digit."""


def load_image(path):
    """Read an image file (PNG, JPEG, ...) as a 2-D float array in [0, 1] (0 black, 1 white).

    Colour is turned into luminance; transparent pixels are laid on white paper.

    Raises
    ------
    DigitImageError
        The file cannot be opened or is not an image Pillow can read.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im = Image.alpha_composite(paper, rgba)
            if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                gray = np.asarray(im, dtype=np.float64)
                top = gray.max()
                return gray / top if top > 0 else gray
            gray = np.asarray(im.convert("L"), dtype=np.float64) / 255.0
    except FileNotFoundError:
        raise DigitImageError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DigitImageError(f"{path}: not an image that can be read ({exc})") from None
    return gray


def _border(image):
    """The pixels of a frame around ``image`` (about 5 % of its size, at least 1 pixel)."""
    width = max(1, min(image.shape) // 20)
    return np.concatenate([image[:width].ravel(), image[-width:].ravel(),
                           image[:, :width].ravel(), image[:, -width:].ravel()])


def _fit_box(ink):
    """``ink`` resized (Lanczos, aspect ratio kept) so that its longer side is BOX pixels."""
    from PIL import Image

    h, w = ink.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # PIL: (width, height)
    lanczos = getattr(Image, "Resampling", Image).LANCZOS
    resized = Image.fromarray(np.ascontiguousarray(ink, dtype=np.float32)).resize(size, lanczos)
    return np.clip(np.asarray(resized, dtype=np.float64), 0.0, None)


def _centre_of_mass(image):
    rows, cols = np.indices(image.shape)
    mass = image.sum()
    return (rows * image).sum() / mass, (cols * image).sum() / mass


def to_mnist(image, *, invert=None, noise_floor=0.1):
    """A digit picture as one MNIST input: a (784,) float32 array in [0, 255/256].

    Parameters
    ----------
    image : array_like, 2-D
        Grayscale values in [0, 1] (0 black), any size, e.g. from ``load_image``.  A 28 x 28
        MNIST digit comes back nearly unchanged.
    invert : bool or None
        True: the digit is dark on light, invert it; False: it is already light on dark;
        None (default): decide from the border (light border: invert).
    noise_floor : float in [0, 1)
        Ink below this fraction of the brightest ink is set to 0 (paper texture, JPEG noise).

    Raises
    ------
    DigitImageError
        ``image`` is not a 2-D array of finite values, or holds no ink at all.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or img.size == 0:
        raise DigitImageError(f"expected a 2-D grayscale image, got an array of shape {img.shape}")
    if not np.isfinite(img).all():
        raise DigitImageError("the image contains NaN or infinite values")
    if not 0.0 <= noise_floor < 1.0:
        raise ValueError(f"noise_floor must be in [0, 1), got {noise_floor}")
    if invert is None:
        invert = np.median(_border(img)) > 0.5
    if invert:
        img = 1.0 - img
    ink = np.clip(img - np.median(_border(img)), 0.0, None)
    top = ink.max()
    if top <= 1e-6:
        raise DigitImageError("no digit found: the image is blank (a single shade)")
    ink /= top
    ink[ink < noise_floor] = 0.0

    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    digit = _fit_box(ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])
    if digit.sum() <= 0:
        raise DigitImageError("no digit found: the ink vanished when fitted into 20 x 20")
    digit /= digit.max()

    h, w = digit.shape
    cy, cx = _centre_of_mass(digit)
    top_row = int(np.clip(round(CENTRE - cy), 0, FIELD - h))
    left_col = int(np.clip(round(CENTRE - cx), 0, FIELD - w))
    field = np.zeros((FIELD, FIELD))
    field[top_row:top_row + h, left_col:left_col + w] = digit
    return (np.clip(field, 0.0, 1.0) * MAX_VALUE).astype(np.float32).ravel()


def image_to_input(path, *, invert=None):
    """``to_mnist(load_image(path))``: an image file as one MNIST input, (784,) float32."""
    try:
        return to_mnist(load_image(path), invert=invert)
    except DigitImageError as exc:
        message = str(exc)
        if message.startswith(str(path)):
            raise
        raise DigitImageError(f"{path}: {message}") from None
