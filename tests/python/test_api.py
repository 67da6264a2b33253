"""The package's surface: classes as names and numbers, results, progress, and every error mapped
onto the Python exception it promises, with the engine's message."""

import inspect as pyinspect
import os

import numpy as np
import pytest

import varcode
from conftest import FIXTURES, MODELS


def test_classes_as_names_and_numbers(builtin):
    assert builtin.classes("sneaker") == [7]
    assert builtin.classes(["T-shirt", "top", "tshirt", "ankle boot", np.int64(3), 5]) == [0, 0, 0, 9, 3, 5]
    assert builtin.classes("0-2,bag") == [0, 1, 2, 8]
    assert builtin.classes("all") == list(range(10))
    assert builtin.classes(4) == [4]
    a = builtin.generate(["sneaker", "bag"], seed=3)
    b = builtin.generate([7, 8], seed=3)
    assert a.classes == [7, 8]
    assert np.array_equal(a.images, b.images) and np.array_equal(a.tokens, b.tokens)


def test_result(builtin):
    r = builtin.generate([1, 2, 3], seed=None)
    assert isinstance(r.seed, int) and 0 <= r.seed < 2**64
    again = builtin.generate([1, 2, 3], seed=r.seed)
    assert np.array_equal(r.images, again.images)
    assert len(r) == 3 and r.images.flags.c_contiguous
    assert set(r.seconds) == {"drafter", "refiner", "vae", "scales"}
    pil = r.to_pil()
    assert len(pil) == 3 and pil[0].size == (32, 32) and pil[0].mode == "RGB"
    assert np.array_equal(np.asarray(pil[1]), r.images[1])
    assert "3 images 32x32" in repr(r)
    assert builtin.collaborative and builtin.draft_steps == 3 and builtin.num_classes == 10
    assert builtin.image_size == 32 and builtin.num_tokens == 130 and builtin.patch_nums == [1, 2, 3, 4, 6, 8]
    assert builtin.class_names[7] == "Sneaker" and builtin.dtype in ("f32", "bf16")
    assert builtin.default_sampling()["top_k"] == 600
    # the batch does not change the images
    assert np.array_equal(builtin.generate([1, 2, 3], seed=r.seed, batch=1).images, r.images)


def test_progress_callable_and_bar(builtin, capsys):
    events = []
    builtin.generate([0, 1], seed=1, batch=1, progress=events.append)
    assert all(isinstance(e, varcode.ProgressEvent) for e in events)
    stages = [(e.stage, e.scale, e.images_done) for e in events]
    assert stages == ([("drafter", s, 0) for s in range(3)] + [("refiner", s, 0) for s in range(3, 6)] +
                      [("vae", 0, 0)] + [("drafter", s, 1) for s in range(3)] +
                      [("refiner", s, 1) for s in range(3, 6)] + [("vae", 0, 1)])
    assert all(e.images_total == 2 for e in events)
    assert "stage='drafter'" in repr(events[0])
    builtin.generate(0, seed=1, progress=True)  # tqdm when installed, a plain line otherwise
    assert capsys.readouterr().err != ""
    with pytest.raises(ValueError, match="progress"):
        builtin.generate(0, seed=1, progress="yes")


def test_progress_callback_error_propagates_and_generator_survives(builtin):
    def boom(e):
        if e.scale == 2:
            raise ZeroDivisionError("from the callback")

    with pytest.raises(ZeroDivisionError, match="from the callback"):
        builtin.generate([0, 1], seed=5, progress=boom)
    assert builtin.generate(0, seed=5).images.shape == (1, 32, 32, 3)


def test_file_errors_are_oserror(tmp_path):
    with pytest.raises(FileNotFoundError, match="vae: no such file") as e:
        varcode.Generator(vae=tmp_path / "none.pth", model=f"{MODELS}/fashion_drafter.pth")
    assert e.value.filename == str(tmp_path / "none.pth")
    with pytest.raises(IsADirectoryError):
        varcode.Generator(vae=tmp_path, model=f"{MODELS}/fashion_drafter.pth")
    with pytest.raises(OSError, match="classes.txt"):  # not a model file
        varcode.Generator(vae=f"{MODELS}/classes.txt", model=f"{MODELS}/fashion_drafter.pth")
    with pytest.raises(OSError, match="is a VQ-VAE file, expected a VAR transformer"):
        varcode.Generator(vae=f"{MODELS}/fashion_vae.pth", model=f"{MODELS}/fashion_vae.pth")
    truncated = tmp_path / "cut.pth"
    truncated.write_bytes(open(f"{MODELS}/fashion_vae.pth", "rb").read()[:5000])
    with pytest.raises(OSError, match="cut.pth"):
        varcode.Vqvae(truncated)
    with pytest.raises(FileNotFoundError):
        varcode.inspect(tmp_path / "none.pth")
    with pytest.raises(OSError, match="classes.txt"):
        varcode.inspect(f"{MODELS}/classes.txt")
    with pytest.raises(OSError, match="refiner.pth"):
        varcode.Vqvae(f"{FIXTURES}/refiner.pth")


def test_builtin_not_found_is_oserror(monkeypatch):
    monkeypatch.setenv("VARCODE_MODELS", "/nonexistent-varcode-models")
    with pytest.raises(OSError, match="built-in Fashion-MNIST models are not found"):
        varcode.Generator.builtin()


def test_bad_arguments_are_valueerror(builtin):
    m = f"{MODELS}/fashion_drafter.pth"
    v = f"{MODELS}/fashion_vae.pth"
    r = f"{MODELS}/fashion_refiner.pth"
    bad_opens = [
        (dict(vae=v, model=m, drafter=m, refiner=r, draft_steps=3), "not both"),
        (dict(vae=v), "no model given"),
        (dict(vae=v, drafter=m, draft_steps=3), "both drafter= and refiner="),
        (dict(vae=v, drafter=m, refiner=r), "draft_steps: required"),
        (dict(vae=v, drafter=m, refiner=r, draft_steps=99), "99"),
        (dict(vae=v, model=m, dtype="f16"), "dtype"),
        (dict(vae=v, model=m, device="tpu"), "device"),
        (dict(vae=v, model=m, threads=0), "threads"),
    ]
    for kwargs, msg in bad_opens:
        with pytest.raises(ValueError, match=msg):
            varcode.Generator(**kwargs)
    bad_generates = [
        (dict(classes="bogus"), "'bogus' is not a class number"),
        (dict(classes=10), r"outside the model's classes \[0, 10\)"),
        (dict(classes=[1, "12"]), "12 is outside"),
        (dict(classes=[]), "no class given"),
        (dict(classes=[1.5]), "class numbers or names"),
        (dict(classes=0, seed=-1), "seed"),
        (dict(classes=0, top_p=2), "top_p"),
        (dict(classes=0, top_k=-1), "top_k"),
        (dict(classes=0, temperature=[1, 2]), "temperature: expected 1 or 6"),
        (dict(classes=0, temperature=0), "temperature"),
        (dict(classes=0, batch=0), "batch"),
    ]
    for kwargs, msg in bad_generates:
        with pytest.raises(ValueError, match=msg):
            builtin.generate(**kwargs)
    pic = np.zeros((32, 32, 3), np.uint8)
    bad_edits = [
        (dict(class_=1), "exactly one of mask=, box= or outpaint="),
        (dict(box=(0, 0, 8, 8), outpaint=3, class_=1), "exactly one"),
        (dict(box=(0, 0, 8, 8)), "class_= is required"),
        (dict(box=(0, 0, 8, 8), class_="0-2"), "one class"),
        (dict(box=(20, 0, 40, 10), class_=1), "not a non-empty rectangle inside the picture"),
        (dict(box=(1, 2, 3), class_=1), "four integers"),
        (dict(outpaint=16, class_=1), r"margin must be in \[1, 15\]"),
        (dict(mask=np.zeros((32, 32)), class_=1), "regenerates nothing"),
        (dict(mask=np.ones((32, 16)), class_=1), "cannot be mapped"),
        (dict(mask=np.full((32, 32), 2.0), class_=1), r"\[0, 1\]"),
        (dict(mask=np.ones(5), class_=1), "2-D"),
    ]
    for kwargs, msg in bad_edits:
        with pytest.raises(ValueError, match=msg):
            builtin.edit(pic, **kwargs)
    with pytest.raises(ValueError, match="image"):
        builtin.edit(np.zeros((4, 4), np.float32), box=(0, 0, 2, 2), class_=1)
    vae = varcode.Vqvae(f"{FIXTURES}/vae.pth")
    with pytest.raises(ValueError, match="131"):
        vae.decode(np.zeros((1, 131), np.int64))
    with pytest.raises(ValueError, match="4096"):
        vae.decode(np.full((1, 680), 4096))
    with pytest.raises(ValueError, match="tokens"):
        vae.decode(np.zeros((1, 680), np.float32))
    with pytest.raises(ValueError, match="100"):
        vae.encode(np.zeros((100, 100, 3), np.uint8), size=100)
    with pytest.raises(ValueError, match="dtype"):
        varcode.Vqvae(f"{FIXTURES}/vae.pth", dtype="f16")


def test_device(builtin):
    if not varcode._varcode.cuda_gpus() or varcode._varcode.device_name("auto") == "cpu":
        # No GPU can run the CUDA backend here: cuda says why, auto is the CPU.
        with pytest.raises(RuntimeError, match="device='cuda'"):
            varcode.Generator.builtin(device="cuda")
        with pytest.raises(RuntimeError, match="device='cuda:0'"):
            varcode.Generator(vae=f"{MODELS}/fashion_vae.pth", model=f"{MODELS}/fashion_drafter.pth", device="cuda:0")
        assert varcode._varcode.device_name("auto") == "cpu"
    with pytest.raises(ValueError, match="is not a device"):
        varcode.Generator.builtin(device="gpu")
    g = varcode.Generator.builtin(device="cpu", threads=1, dtype="f32")
    assert g.dtype == "f32"
    assert np.array_equal(g.generate(2, seed=1).tokens, varcode.Generator.builtin(dtype="f32").generate(2, seed=1).tokens)


def test_every_public_function_has_a_docstring():
    def public(obj):
        return [(n, getattr(obj, n)) for n in dir(obj) if not n.startswith("_")]

    for name in varcode.__all__:
        obj = getattr(varcode, name)
        if name == "__version__":
            continue
        assert obj.__doc__ and obj.__doc__.strip(), name
        if pyinspect.isclass(obj):
            for attr, member in public(obj):
                assert member.__doc__ and member.__doc__.strip(), f"{name}.{attr}"
    text = pyinspect.getdoc(varcode.Generator)
    for word in ("drafter", "refiner", "draft_steps", "dtype", "device", "threads", "builtin"):
        assert word in text
    sig = pyinspect.signature(varcode.Generator.generate)
    assert list(sig.parameters)[1:] == ["classes", "seed", "cfg", "top_k", "top_p", "temperature", "smooth", "batch",
                                        "progress"]
    assert list(pyinspect.signature(varcode.Generator.edit).parameters)[1:6] == ["image", "mask", "box", "outpaint",
                                                                                 "class_"]
    assert varcode.__version__ == "0.1.0"


def test_progress_without_tqdm_prints_plain_lines(builtin, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tqdm", None)  # `import tqdm` now raises ImportError
    builtin.generate(0, seed=1, progress=True)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "[generate] drafter scale 1/6 (images 0/1 done)"
    assert err[-1] == "[generate] vae: decoding images 1-1"
    assert len(err) == 7
