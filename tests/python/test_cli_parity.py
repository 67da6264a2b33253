"""The Python package gives what the command line gives for the same inputs, byte for byte."""

import os

import numpy as np

import varcode
from conftest import FIXTURES, MODELS, read_png, run_cli

PAIR_FLAGS = ["--vae", f"{MODELS}/fashion_vae.pth", "--drafter", f"{MODELS}/fashion_drafter.pth", "--refiner",
              f"{MODELS}/fashion_refiner.pth", "--draft-steps", "3"]


def cli_generate(tmp_path, *args):
    out = tmp_path / "cli"
    run_cli("generate", *args, "--out-dir", out, "--save-tokens", tmp_path / "tokens.npy", "--quiet")
    names = sorted(os.listdir(out))
    return np.stack([read_png(out / n) for n in names]), np.load(tmp_path / "tokens.npy")


def test_builtin_generate_equals_cli(builtin, tmp_path):
    images, tokens = cli_generate(tmp_path, "--class", "sneaker,0,bag,9", "--seed", "7")
    r = builtin.generate(["sneaker", 0, "bag", 9], seed=7)
    assert r.images.dtype == np.uint8 and r.images.shape == (4, 32, 32, 3)
    assert r.tokens.dtype == np.int64 and r.tokens.shape == (4, 130)
    assert np.array_equal(r.tokens, tokens)
    assert np.array_equal(r.images, images)  # the very bytes of the CLI's PNGs


def test_builtin_sampling_options_equal_cli(builtin, tmp_path):
    images, tokens = cli_generate(tmp_path, "--class", "1,2", "--seed", "11", "--cfg", "2.5", "--top-k", "40",
                                  "--top-p", "0.8", "--temperature", "0.9", "--smooth", "--batch", "1")
    r = builtin.generate([1, 2], seed=11, cfg=2.5, top_k=40, top_p=0.8, temperature=0.9, smooth=True, batch=1)
    assert np.array_equal(r.tokens, tokens)
    assert np.array_equal(r.images, images)


def test_explicit_pair_equals_builtin(builtin):
    g = varcode.Generator(vae=f"{MODELS}/fashion_vae.pth", drafter=f"{MODELS}/fashion_drafter.pth",
                          refiner=f"{MODELS}/fashion_refiner.pth", draft_steps=3)
    a, b = g.generate("0-3", seed=2), builtin.generate([0, 1, 2, 3], seed=2)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.tokens, b.tokens)


def test_fixture_pair_equals_cli_and_reference(tiny_pair, tmp_path):
    fx = ["--vae", f"{FIXTURES}/vae.pth", "--drafter", f"{FIXTURES}/drafter.pth", "--refiner",
          f"{FIXTURES}/refiner.pth", "--draft-steps", "4", "--dtype", "f32"]
    images, tokens = cli_generate(tmp_path, *fx, "--class", "207,980", "--seed", "3", "--cfg", "1.5", "--top-k",
                                  "1", "--top-p", "0")
    r = tiny_pair.generate([207, 980], seed=3, cfg=1.5, top_k=1, top_p=0)
    assert np.array_equal(r.tokens, tokens)
    assert np.array_equal(r.images, images)
    assert np.array_equal(r.tokens, np.load(f"{FIXTURES}/code_n4_tokens.npy"))  # the PyTorch reference's


def test_fixture_var_model_equals_cli(tmp_path):
    g = varcode.Generator(vae=f"{FIXTURES}/vae.pth", model=f"{FIXTURES}/refiner.pth", dtype="f32")
    images, tokens = cli_generate(tmp_path, "--vae", f"{FIXTURES}/vae.pth", "--model", f"{FIXTURES}/refiner.pth",
                                  "--dtype", "f32", "--class", "5", "--seed", "9")
    r = g.generate(5, seed=9)
    assert np.array_equal(r.tokens, tokens)
    assert np.array_equal(r.images, images)


def test_edit_equals_cli(builtin, tmp_path):
    pic = tmp_path / "pic.png"
    builtin.generate(3, seed=1).to_pil()[0].save(pic)
    cases = [("--box", "8,8,24,24", {"box": (8, 8, 24, 24)}), ("--outpaint", "5", {"outpaint": 5})]
    mask = np.zeros((32, 32), np.float32)
    mask[4:20, 10:30] = 1
    np.save(tmp_path / "mask.npy", mask)
    cases.append(("--mask", str(tmp_path / "mask.npy"), {"mask": mask}))
    for i, (flag, value, kwargs) in enumerate(cases):
        out = tmp_path / f"edit{i}.png"
        run_cli("edit", *PAIR_FLAGS, "--image", pic, flag, value, "--class", "sneaker", "--seed", "4", "--out", out,
                "--save-tokens", tmp_path / "t.npy", "--quiet")
        want, want_tokens = read_png(out), np.load(tmp_path / "t.npy")
        for image in (str(pic), read_png(pic)):  # a path, or the pixels as an array
            r = builtin.edit(image, class_="sneaker", seed=4, **kwargs)
            assert r.images.shape == (1, 32, 32, 3), flag
            assert np.array_equal(r.tokens, want_tokens), flag
            assert np.array_equal(r.images[0], want), flag
    r = builtin.edit(pic, mask=str(tmp_path / "mask.npy"), class_=7, seed=4)  # a mask file
    assert np.array_equal(r.images[0], want)


def test_edit_resizes_like_cli(builtin, tmp_path):
    from PIL import Image

    big = tmp_path / "big.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8), "RGB").save(big)
    out = tmp_path / "e.png"
    run_cli("edit", *PAIR_FLAGS, "--image", big, "--box", "20,10,50,40", "--class", "2", "--seed", "8", "--out", out,
            "--quiet")
    r = builtin.edit(Image.open(big), box=(20, 10, 50, 40), class_=2, seed=8)  # a PIL image
    assert np.array_equal(r.images[0], read_png(out))


def test_vqvae_decode_and_encode_equal_cli(tmp_path):
    vae = varcode.Vqvae(f"{FIXTURES}/vae.pth")
    tokens = np.load(f"{FIXTURES}/vae_encode_tokens.npy")
    run_cli("decode", "--vae", f"{FIXTURES}/vae.pth", "--tokens", f"{FIXTURES}/vae_encode_tokens.npy", "--out",
            tmp_path / "d.png")
    images = vae.decode(tokens)
    assert images.shape == (1, 256, 256, 3) and images.dtype == np.uint8
    assert np.array_equal(images[0], read_png(tmp_path / "d.png"))
    run_cli("encode", "--vae", f"{FIXTURES}/vae.pth", "--image", tmp_path / "d.png", "--save-tokens",
            tmp_path / "e.npy")
    want = np.load(tmp_path / "e.npy")
    assert np.array_equal(vae.encode(str(tmp_path / "d.png")), want)
    assert np.array_equal(vae.encode(images[0]), want)


def test_inspect_equals_cli_json():
    import json

    for f in (f"{MODELS}/fashion_drafter.pth", f"{MODELS}/fashion_vae.pth", f"{FIXTURES}/refiner.pth"):
        assert varcode.inspect(f) == json.loads(run_cli("inspect", f, "--json"))


def test_sample_npz_equals_cli(builtin, tmp_path):
    run_cli("sample", *PAIR_FLAGS, "--out-dir", tmp_path / "dir", "--classes", "2,5", "--per-class", "3", "--seed",
            "4", "--batch", "4", "--npz", tmp_path / "cli.npz", "--quiet")
    path = varcode.sample(builtin, tmp_path / "py.npz", classes=[2, 5], per_class=3, seed=4, batch=5, progress=False)
    assert path == str(tmp_path / "py.npz")
    with np.load(tmp_path / "cli.npz") as a, np.load(tmp_path / "py.npz") as b:
        assert list(b.keys()) == ["arr_0"]
        assert b["arr_0"].dtype == np.uint8 and b["arr_0"].shape == (6, 32, 32, 3)
        assert np.array_equal(a["arr_0"], b["arr_0"])
    assert [n for n in os.listdir(tmp_path) if n.startswith(".varcode-sample-")] == []
