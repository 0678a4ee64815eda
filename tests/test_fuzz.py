"""Property tests: the native network against the NumPy reference over random shapes, values,
memory layouts and thread counts (hypothesis)."""
import contextlib
import io
import os

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in the test extra")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import mnist_native as mn  # noqa: E402
from mnist_native import reference  # noqa: E402

TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=2e-4, atol=2e-5)}
# Fixed examples in CI (a failure there is reproducible); fresh ones on developers' machines.
FUZZ = settings(max_examples=40, deadline=None, derandomize=os.environ.get("CI") == "true",
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def problems(draw):
    n_in = draw(st.integers(1, 40))
    hidden = draw(st.integers(1, 40))
    n_out = draw(st.integers(1, 12))
    batch = draw(st.integers(1, 70))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([1e-3, 1.0, 30.0]))
    density = draw(st.sampled_from([0.0, 0.2, 1.0]))
    x = rng.normal(scale=scale, size=(batch, n_in)) * (rng.random((batch, n_in)) < density)
    labels = rng.integers(0, n_out, batch)
    y = np.eye(n_out)[labels]
    layout = draw(st.sampled_from(["c", "fortran", "strided", "list", "readonly"]))
    threads = draw(st.integers(1, 3))
    return dict(shape=(n_in, hidden, n_out), dtype=dtype, x=x, y=y, layout=layout,
                threads=threads, seed=seed % 1000)


def laid_out(a, layout):
    if layout == "fortran":
        return np.asfortranarray(a)
    if layout == "strided":
        wide = np.zeros((a.shape[0], 2 * a.shape[1]))
        wide[:, ::2] = a
        return wide[:, ::2]
    if layout == "list":
        return a.tolist()
    if layout == "readonly":
        b = a.copy()
        b.flags.writeable = False
        return b
    return a


def pair(p):
    native = mn.NeuralNetwork(*p["shape"], dtype=p["dtype"], seed=p["seed"],
                              num_threads=p["threads"])
    ref = reference.NeuralNetwork(*p["shape"], dtype=p["dtype"], seed=p["seed"])
    return native, ref


def close(a, b, dtype, tol=TOL):
    np.testing.assert_allclose(a, b, **tol[dtype])


@FUZZ
@given(problems(), st.booleans())
def test_forward_and_backward_match_reference(p, xe):
    native, ref = pair(p)
    x_in, y_in = laid_out(p["x"], p["layout"]), laid_out(p["y"], p["layout"])
    for model, x, y in ((native, x_in, y_in), (ref, p["x"], p["y"])):
        (model.feedforward_xe if xe else model.feedforward)(x)
    for name in ("input", "u_hidden", "o_hidden", "u_output", "o_output"):
        close(getattr(native, name), getattr(ref, name), p["dtype"])
    native_o = native.o_output.copy()
    for model, y in ((native, y_in), (ref, p["y"])):
        (model.backpropagate_xe if xe else model.backpropagate)(y, 0.7)
    close(native.W_input_to_hidden, ref.W_input_to_hidden, p["dtype"])
    close(native.W_hidden_to_output, ref.W_hidden_to_output, p["dtype"])
    assert np.isfinite(native_o).all()


# float32 training: each weight is bounded by its own sensitivity, measured on the
# reference.  Rounding in float32 differs between native and the reference (BLAS and the
# kernels add in different orders), and a few training steps amplify it unevenly: most
# weights agree to ~1e-6, while a weight fed by a saturated unit can move by 1e-3.  So the
# reference is run again with its inputs nudged by a few ulps (NUDGES times), and in float64;
# how far each weight moves across those runs is that weight's sensitivity.  Native may
# differ from the reference by SENSITIVITY_FACTOR times that, plus TRAINED_F32_TOL.  An example whose
# reference is itself unstable (a nudge changes the iteration it keeps or an accuracy, or
# float32 loses more than ILL_CONDITIONED of the weights' scale against float64) says
# nothing about native: it is discarded with assume(), counted, and the test fails if most
# examples are discarded.
# (On 1,500 fresh examples every one passed with a factor of 1, and 1,500 more as set;
# 4 to 8 of 1,500 examples were discarded.)
NUDGES = 3
SENSITIVITY_FACTOR = 2
TRAINED_F32_TOL = dict(rtol=1e-5, atol=1e-6)
ILL_CONDITIONED = 1e-3


def _train(model, data, xe, batch_size):
    with contextlib.redirect_stdout(io.StringIO()):
        return (model.train_xe if xe else model.train)(
            data, data, iterations=2, learning_rate=0.5, plot=False, batch_size=batch_size)


def _reference_run(p, xe, batch_size, dtype, nudge=None):
    x = p["x"]
    if nudge is not None:
        noise = np.random.default_rng([p["seed"], nudge]).standard_normal(x.shape)
        x = (x * (1 + 4 * np.finfo(p["dtype"]).eps * noise)).astype(p["dtype"])
    model = reference.NeuralNetwork(*p["shape"], dtype=dtype, seed=p["seed"])
    return model, _train(model, (x, p["y"]), xe, batch_size)


WEIGHTS = ("W_input_to_hidden", "W_hidden_to_output")


def test_training_matches_reference(record_property):
    seen = {"tried": 0, "discarded": 0}

    @FUZZ
    @given(problems(), st.booleans(), st.sampled_from([None, 1, 8, 64]))
    def check(p, xe, batch_size):
        seen["tried"] += 1
        native, ref = pair(p)
        mine = _train(native, (laid_out(p["x"], p["layout"]), laid_out(p["y"], p["layout"])),
                      xe, batch_size)
        theirs = _train(ref, (p["x"], p["y"]), xe, batch_size)
        if p["dtype"] == np.float64:
            # float64: 1e-10, plus twice how far the reference moves when its inputs move by
            # a few ulps (its largest over the matrix); accuracies equal.
            other, _ = _reference_run(p, xe, batch_size, np.float64, nudge=0)
            for name in WEIGHTS:
                got, want = getattr(native, name), getattr(ref, name)
                drift = np.abs(want - getattr(other, name)).max()
                tol = TOL[np.float64]
                assert np.all(np.abs(got - want) <= 2 * drift + tol["atol"]
                              + tol["rtol"] * np.abs(want)), name
            assert mine.train_accuracy == theirs.train_accuracy
            assert mine.validation_accuracy == theirs.validation_accuracy
            return
        nudged = [_reference_run(p, xe, batch_size, np.float32, nudge=i) for i in range(NUDGES)]
        exact, _ = _reference_run(p, xe, batch_size, np.float64)
        scale = max(np.abs(getattr(exact, name)).max() for name in WEIGHTS)
        unstable = any(h.best_iteration != theirs.best_iteration
                       or h.train_accuracy != theirs.train_accuracy
                       or h.validation_accuracy != theirs.validation_accuracy
                       for _, h in nudged)
        lossy = any(np.abs(getattr(ref, name) - getattr(exact, name)).max()
                    > ILL_CONDITIONED * scale for name in WEIGHTS)
        if unstable or lossy:
            seen["discarded"] += 1
        assume(not (unstable or lossy))
        assert mine.best_iteration == theirs.best_iteration
        assert mine.train_accuracy == theirs.train_accuracy
        assert mine.validation_accuracy == theirs.validation_accuracy
        tol = TRAINED_F32_TOL
        for name in WEIGHTS:
            got, want = getattr(native, name), getattr(ref, name)
            sensitivity = np.max([np.abs(want - getattr(o, name))
                                  for o in [m for m, _ in nudged] + [exact]], axis=0)
            bound = SENSITIVITY_FACTOR * sensitivity + tol["atol"] + tol["rtol"] * np.abs(want)
            worst = np.unravel_index(np.argmax(np.abs(got - want) - bound), want.shape)
            assert np.all(np.abs(got - want) <= bound), (
                f"{name}{list(worst)}: native {got[worst]!r}, reference {want[worst]!r}, "
                f"sensitivity {sensitivity[worst]:.3g}")

    check()
    line = (f"fuzz: float32 training examples discarded as ill-conditioned: "
            f"{seen['discarded']} of {seen['tried']}")
    record_property("summary", line)
    assert seen["discarded"] <= seen["tried"] // 2, line
