"""varcode: class-conditional image generation with VAR and Collaborative Decoding (CoDe).

A native CPU engine (C++) with a thin Python layer:

    import varcode
    g = varcode.Generator.builtin()                  # the shipped Fashion-MNIST pair
    r = g.generate(["sneaker", "bag", 3], seed=1)    # classes as names or numbers
    r.images                                         # numpy uint8 [B, H, W, 3]
    r.to_pil()[0].save("sneaker.png")

`Generator` opens a VQ-VAE and one VAR model (``model=``) or a CoDe drafter/refiner pair
(``drafter=``, ``refiner=``, ``draft_steps=``), from the official ``.pth`` checkpoints or
``.safetensors``. `Vqvae` encodes and decodes, `inspect` recognises a model file, `sample` writes
the ``.npz`` the OpenAI guided-diffusion evaluator reads.

Errors: bad arguments raise ValueError, missing or unreadable files OSError (FileNotFoundError
when the file is not there), anything else from the engine RuntimeError; each carries the
engine's message. Ctrl-C during a generation raises KeyboardInterrupt within a scale and leaves the
Generator usable.
"""

import errno as _errno
import json as _json
import os as _os
import secrets as _secrets
import sys as _sys
import tempfile as _tempfile
import zipfile as _zipfile

import numpy as _np

from . import _varcode

__version__ = _varcode.__version__
ProgressEvent = _varcode.ProgressEvent

__all__ = ["Generator", "GenerationResult", "Vqvae", "ProgressEvent", "inspect", "sample", "__version__"]

_PACKAGE_DIR = _os.path.dirname(_os.path.abspath(__file__))


def _check_file(path, what):
    """Raise FileNotFoundError / IsADirectoryError / PermissionError naming `what` and the path."""
    path = _os.fspath(path)
    if not isinstance(path, str):
        raise TypeError(f"{what}: expected a path (str or os.PathLike), got {type(path).__name__}")
    if path.startswith("random"):  # random weights at the official sizes (benchmarks)
        return path
    if not _os.path.exists(path):
        raise FileNotFoundError(_errno.ENOENT, f"{what}: no such file", path)
    if _os.path.isdir(path):
        raise IsADirectoryError(_errno.EISDIR, f"{what}: is a directory, expected a file", path)
    if not _os.access(path, _os.R_OK):
        raise PermissionError(_errno.EACCES, f"{what}: cannot read the file", path)
    return path


def _check_device(device):
    """'auto', 'cpu', 'cuda' or 'cuda:I' -> the device it resolves to ('cpu', 'cuda:0', ...):
    ValueError for another name, RuntimeError saying why when no GPU can run it."""
    if not isinstance(device, str):
        raise ValueError(f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:I', got {device!r}")
    return _varcode.device_name(device)


def _check_threads(threads):
    if threads is None:
        return 0
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads: expected None (all cores) or a positive integer, got {threads!r}")
    return threads


def _random_seed():
    return _secrets.randbits(64)


def _check_seed(seed):
    if seed is None:
        return _random_seed()
    if isinstance(seed, bool):
        raise ValueError(f"seed: expected an integer in [0, 2**64), got {seed!r}")
    try:
        seed = int(_index(seed))
    except TypeError:
        raise ValueError(f"seed: expected an integer in [0, 2**64), got {seed!r}") from None
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed: expected an integer in [0, 2**64), got {seed}")
    return seed


def _index(x):
    import operator

    return operator.index(x)


class _Reporter:
    """progress=True: a tqdm bar when tqdm is installed, else one plain line per step on stderr."""

    def __init__(self, total_steps, desc):
        self._bar = None
        try:
            from tqdm import tqdm

            self._bar = tqdm(total=total_steps, desc=desc, unit="step", leave=False)
        except ImportError:
            self._bar = None
        self._desc = desc

    def __call__(self, e):
        if self._bar is not None:
            self._bar.set_postfix_str(f"{e.stage} images {e.images_done}/{e.images_total}", refresh=False)
            self._bar.update(1)
        elif e.stage == "vae":
            print(f"[{self._desc}] vae: decoding images {e.images_done + 1}-{e.images_total}", file=_sys.stderr)
        else:
            print(
                f"[{self._desc}] {e.stage} scale {e.scale + 1}/{e.num_scales} "
                f"(images {e.images_done}/{e.images_total} done)",
                file=_sys.stderr,
            )

    def close(self):
        if self._bar is not None:
            self._bar.close()


def _progress_callable(progress, total_steps, desc):
    """(callable or None, closer) for progress=False / True / a callable."""
    if progress is False or progress is None:
        return None, lambda: None
    if progress is True:
        rep = _Reporter(total_steps, desc)
        return rep, rep.close
    if callable(progress):
        return progress, lambda: None
    raise ValueError(f"progress: expected True, False or a callable taking a ProgressEvent, got {progress!r}")


class GenerationResult:
    """What `Generator.generate` and `Generator.edit` return.

    Attributes:
        images:  numpy uint8 [B, H, W, 3], RGB: the very bytes `varcode generate` writes to its PNGs
                 for the same seed (x * 255 truncated).
        tokens:  numpy int64 [B, L], the multi-scale token maps, scale after scale.
        seed:    the seed used (drawn when none was given: pass it again to reproduce the images).
        classes: the class of every image, as numbers.
        seconds: seconds per stage: {"drafter", "refiner", "vae", "scales": [...]}.
    """

    def __init__(self, images, tokens, seed, classes, seconds):
        self.images = images
        self.tokens = tokens
        self.seed = seed
        self.classes = classes
        self.seconds = seconds

    def __len__(self):
        return int(self.images.shape[0])

    def to_pil(self):
        """The images as a list of PIL.Image.Image (RGB); needs Pillow (python3-pil)."""
        try:
            from PIL import Image
        except ImportError as e:
            raise ImportError("to_pil() needs Pillow (apt-get install python3-pil)") from e
        return [Image.fromarray(im, "RGB") for im in self.images]

    def __repr__(self):
        b, h, w, _ = self.images.shape
        return f"GenerationResult({b} images {h}x{w}, seed={self.seed}, classes={self.classes})"


class Generator:
    """A loaded pipeline: a VQ-VAE with one VAR model, or a CoDe drafter/refiner pair.

    Args:
        vae:         the VQ-VAE file (vae_ch160v4096z32.pth, or .safetensors).
        model:       one VAR model (original VAR), or ...
        drafter, refiner, draft_steps: ... a collaborative-decoding pair: the drafter makes the
                     first `draft_steps` scales (1 .. scales - 1), the refiner the rest.
        dtype:       "auto" (bf16 where the CPU has AVX512-BF16 or AMX, else f32), "f32" or "bf16".
        device:      "auto" (the first CUDA GPU when one can run varcode, else the CPU), "cpu",
                     "cuda" or "cuda:I"; RuntimeError saying why when no GPU can run it.
        threads:     worker threads per generation (None: all cores, or $OMP_NUM_THREADS).

    The weights are immutable once opened: share one Generator between threads; each call builds
    its own state, runs with the GIL released, and two threads generate at the same time.
    `Generator.builtin()` opens the shipped Fashion-MNIST pair.
    """

    def __init__(self, vae, model=None, drafter=None, refiner=None, draft_steps=None, dtype="auto", device="auto",
                 threads=None):
        device = _check_device(device)
        self._threads = _check_threads(threads)
        if dtype not in ("auto", "f32", "bf16"):
            raise ValueError(f"dtype: expected 'auto', 'f32' or 'bf16', got {dtype!r}")
        if vae is None:
            raise ValueError("vae: the VQ-VAE file is required")
        pair = drafter is not None or refiner is not None
        if pair and model is not None:
            raise ValueError("give either model= or drafter=/refiner=/draft_steps=, not both")
        if not pair and model is None:
            raise ValueError("no model given: model=, or drafter=, refiner= and draft_steps=")
        if pair and (drafter is None or refiner is None):
            raise ValueError("collaborative decoding needs both drafter= and refiner=")
        if pair and draft_steps is None:
            raise ValueError("draft_steps: required with a drafter/refiner pair (the drafter's scales, 1 .. scales - 1)")
        if not pair and draft_steps is not None:
            raise ValueError("draft_steps: only for a drafter/refiner pair")
        if draft_steps is not None and (isinstance(draft_steps, bool) or not isinstance(draft_steps, int)):
            raise ValueError(f"draft_steps: expected an integer, got {draft_steps!r}")
        vae = _check_file(vae, "vae")
        model = _check_file(model, "model") if model is not None else ""
        drafter = _check_file(drafter, "drafter") if drafter is not None else ""
        refiner = _check_file(refiner, "refiner") if refiner is not None else ""
        self._engine = _varcode.Engine.open(vae, model, drafter, refiner, draft_steps or 0, dtype, device)
        self._files = {"vae": vae, "model": model or None, "drafter": drafter or None, "refiner": refiner or None}

    @classmethod
    def builtin(cls, dtype="auto", device="auto", threads=None):
        """The shipped Fashion-MNIST pair (32 x 32 pictures, 10 classes; CoDe with 3 drafter scales).

        Looked for in $VARCODE_MODELS when set, else in the package (varcode/models), else beside
        the running program (<prefix>/share/varcode/models of an installed tree).
        """
        _check_device(device)
        vae, drafter, refiner, steps = _varcode.Engine.builtin_files([_os.path.join(_PACKAGE_DIR, "models")])
        return cls(vae, drafter=drafter, refiner=refiner, draft_steps=steps, dtype=dtype, device=device,
                   threads=threads)

    # ---- what the pipeline is ----
    @property
    def collaborative(self):
        """True for a drafter/refiner pair."""
        return self._engine.collaborative

    @property
    def draft_steps(self):
        """Scales the drafter makes (all of them for one VAR model)."""
        return self._engine.draft_steps

    @property
    def num_classes(self):
        """Number of classes the model knows."""
        return self._engine.num_classes

    @property
    def class_names(self):
        """The model's class names (from <model>.classes.txt or classes.txt beside it); [] if none."""
        return list(self._engine.class_names)

    @property
    def image_size(self):
        """Side of the generated pictures, in pixels."""
        return self._engine.image_size

    @property
    def patch_nums(self):
        """The scale schedule (side of every scale's token map)."""
        return list(self._engine.patch_nums)

    @property
    def num_tokens(self):
        """Tokens per image (all scales)."""
        return self._engine.total_tokens

    @property
    def dtype(self):
        """The compute dtype in use: "f32" or "bf16"."""
        return self._engine.dtype

    @property
    def files(self):
        """The model files: {"vae", "model", "drafter", "refiner"} (None where unused)."""
        return dict(self._files)

    def default_sampling(self):
        """The defaults: dict(cfg, top_k, top_p, temperature [per scale or one], smooth).

        The published FID settings, or the fields the model's sampling.json gives over them (the
        built-in models have one: models/README.md).
        """
        return self._engine.default_sampling()

    def __repr__(self):
        kind = f"CoDe draft_steps={self.draft_steps}" if self.collaborative else "VAR"
        return f"varcode.Generator({kind}, {self.num_classes} classes, {self.image_size}px, dtype={self.dtype})"

    # ---- requests ----
    def classes(self, classes):
        """Class numbers of `classes`: an int, a name, a list of ints and names, or a string as the
        command line takes it ("sneaker,0-3", "all"). Raises ValueError naming a bad item."""
        if isinstance(classes, str):
            return self._engine.parse_classes(classes)
        if isinstance(classes, bool):
            raise ValueError(f"classes: expected class numbers or names, got {classes!r}")
        try:
            return [self._one_class(_index(classes))]
        except TypeError:
            pass
        try:
            items = list(classes)
        except TypeError:
            raise ValueError(f"classes: expected class numbers or names, got {classes!r}") from None
        out = []
        for item in items:
            if isinstance(item, str):
                out.extend(self._engine.parse_classes(item))
            elif isinstance(item, bool):
                raise ValueError(f"classes: expected class numbers or names, got {item!r}")
            else:
                try:
                    out.append(self._one_class(_index(item)))
                except TypeError:
                    raise ValueError(f"classes: expected class numbers or names, got {item!r}") from None
        if not out:
            raise ValueError("classes: no class given")
        return out

    def _one_class(self, c):
        if not 0 <= c < self.num_classes:
            raise ValueError(f"classes: {c} is outside the model's classes [0, {self.num_classes})")
        return int(c)

    def _sampling(self, cfg, top_k, top_p, temperature, smooth):
        s = self._engine.default_sampling()
        if cfg is not None:
            s["cfg"] = float(cfg)
        if top_k is not None:
            if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
                raise ValueError(f"top_k: expected a non-negative integer (0 disables, 1 is greedy), got {top_k!r}")
            s["top_k"] = top_k
        if top_p is not None:
            s["top_p"] = float(top_p)
            if not 0 <= s["top_p"] <= 1:
                raise ValueError(f"top_p: expected a value in [0, 1] (0 disables), got {top_p!r}")
        if temperature is not None:
            t = [float(temperature)] if _np.isscalar(temperature) else [float(x) for x in temperature]
            if len(t) not in (1, self._engine.num_scales):
                raise ValueError(
                    f"temperature: expected 1 or {self._engine.num_scales} values (one per scale), got {len(t)}")
            if not all(x > 0 for x in t):
                raise ValueError(f"temperature: values must be > 0, got {temperature!r}")
            s["temperature"] = t
        s["smooth"] = bool(smooth)
        return s

    def generate(self, classes, seed=None, cfg=None, top_k=None, top_p=None, temperature=None, smooth=False,
                 batch=None, progress=False):
        """Generate one image per class entry, in order.

        Args:
            classes:     an int, a name ("sneaker"), or a list of ints and names; a string may also
                         be a list or a range as on the command line ("0-9", "all", "bag,3").
            seed:        every draw is a pure function of (seed, image index, scale, position), so an
                         image does not depend on the batch or the other images. None: drawn (the
                         result's `seed` says which).
            cfg, top_k, top_p, temperature, smooth: sampling; None keeps the default (default_sampling())
                         of the pipeline (VAR: cfg 1.5, top-k 900, top-p 0.96, T 1; CoDe: cfg 1.5,
                         top-k 600, top-p 0.96, T 1.1 on scales 0-6 then 1). temperature: one value
                         or one per scale. top_k=0 / top_p=0 disable a filter, top_k=1 is greedy.
            batch:       images per forward pass (None: what fits in half the free memory, at most
                         32); results do not depend on it.
            progress:    False; True for a tqdm bar (a plain line on stderr without tqdm); or a
                         callable receiving every varcode.ProgressEvent (stage, scale, num_scales,
                         images_done, images_total).

        Returns a GenerationResult (images uint8 [B, H, W, 3], tokens int64 [B, L], seed).
        Ctrl-C stops the run within a scale (KeyboardInterrupt); the Generator stays usable.
        """
        labels = self.classes(classes)
        return self._generate(labels, _check_seed(seed), [], self._sampling(cfg, top_k, top_p, temperature, smooth),
                              batch, progress)

    def _generate(self, labels, seed, indices, sampling, batch, progress):
        if batch is None:
            batch = self._engine.suggested_batch()
        elif isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch: expected None or a positive integer, got {batch!r}")
        nbatches = -(-len(labels) // batch)
        fn, close = _progress_callable(progress, nbatches * (self._engine.num_scales + 1), "generate")
        try:
            images, tokens, seconds = self._engine.generate(labels, seed, indices, sampling, batch, self._threads, fn)
        finally:
            close()
        return GenerationResult(images, tokens, seed, labels, seconds)

    def edit(self, image, mask=None, box=None, outpaint=None, class_=None, seed=None, cfg=None, top_k=None,
             top_p=None, temperature=None, smooth=False, progress=False):
        """Zero-shot inpainting, outpainting or class-conditional editing of a picture.

        Args:
            image:    a path (PNG of any size, or .npy f32 [1, 3, S, S] / [3, S, S] in [0, 1] at the
                      model's size), a numpy uint8 [H, W, 3] RGB array of any size, or a PIL image.
                      Any size is centre-cropped to a square and resized to the model's resolution.
            mask / box / outpaint: exactly one: `mask` a [H, W] array (1 or True = regenerate) of
                      the picture's size or any square size, or a mask file (PNG: non-black =
                      regenerate; .npy f32 [H, W]); `box` (x0, y0, x1, y1) in the picture's pixels to
                      regenerate; `outpaint` a border of that many pixels to regenerate.
            class_:   the class of the new content (number or name).
            seed, cfg, top_k, top_p, temperature, smooth, progress: as in generate().

        Returns a GenerationResult with one image, the same as `varcode edit` for the same inputs.
        """
        given = [x is not None for x in (mask, box, outpaint)]
        if sum(given) != 1:
            raise ValueError("edit: give exactly one of mask=, box= or outpaint=")
        if class_ is None:
            raise ValueError("edit: class_= is required (the class of the new content)")
        labels = self.classes(class_)
        if len(labels) != 1:
            raise ValueError(f"class_: expected one class, got {class_!r}")
        side = self.image_size
        picture, h, w = _picture(image, side)
        if mask is not None:
            if isinstance(mask, (str, bytes)) or hasattr(mask, "__fspath__"):
                m = _varcode.load_mask(_check_file(mask, "mask"))
            else:
                m = _np.asarray(mask)
                if m.dtype == _np.bool_:
                    m = m.astype(_np.float32)
                if m.ndim != 2:
                    raise ValueError(f"mask: expected a 2-D array [H, W] (1 = regenerate), got shape {m.shape}")
            m = _varcode.fit_edit_mask(m, h, w, side)
        elif box is not None:
            try:
                x0, y0, x1, y1 = (int(_index(v)) for v in box)
            except (TypeError, ValueError):
                raise ValueError(f"box: expected four integers (x0, y0, x1, y1), got {box!r}") from None
            m = _varcode.fit_edit_mask(_varcode.box_mask(h, w, x0, y0, x1, y1), h, w, side)
        else:
            if isinstance(outpaint, bool) or not isinstance(outpaint, int):
                raise ValueError(f"outpaint: expected a margin in pixels, got {outpaint!r}")
            m = _varcode.fit_edit_mask(_varcode.outpaint_mask(h, w, outpaint), h, w, side)
        seed = _check_seed(seed)
        sampling = self._sampling(cfg, top_k, top_p, temperature, smooth)
        fn, close = _progress_callable(progress, self._engine.num_scales + 1, "edit")
        try:
            images, tokens, seconds = self._engine.edit(picture, m, labels[0], seed, sampling, self._threads, fn)
        finally:
            close()
        return GenerationResult(images, tokens, seed, labels, seconds)


def _picture(image, side):
    """(picture f32 [3, side, side] in [0, 1], original height, original width) as `varcode edit` /
    `varcode encode` prepare a picture."""
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        return _varcode.load_picture(_check_file(image, "image"), side)
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        image = _np.asarray(image.convert("RGB"))
    a = _np.asarray(image)
    if a.dtype == _np.uint8 and a.ndim == 3 and a.shape[2] == 3:
        return _varcode.picture_from_rgb8(a, side), a.shape[0], a.shape[1]
    if a.dtype == _np.uint8 and a.ndim == 2:  # gray, replicated as a PNG reader does
        a = _np.repeat(a[:, :, None], 3, axis=2)
        return _varcode.picture_from_rgb8(a, side), a.shape[0], a.shape[1]
    raise ValueError(
        f"image: expected a path, a PIL image or a numpy uint8 array [H, W, 3] (RGB), got "
        f"{a.dtype} {tuple(a.shape)}")


class Vqvae:
    """The multi-scale VQ-VAE on its own: pictures <-> tokens.

    Vqvae(path, dtype="f32", device="auto"): dtype is the decoder's arithmetic, "f32" (matches the
    reference) or "bf16" (about twice as fast, pictures within ~1e-2); device as for Generator.
    """

    def __init__(self, path, dtype="f32", device="auto"):
        device = _check_device(device)
        self._vae = _varcode.VqvaeModel.open(_check_file(path, "vae"), dtype, device)

    @property
    def vocab(self):
        """Codebook size."""
        return self._vae.vocab

    @property
    def z_channels(self):
        """Latent channels."""
        return self._vae.z_channels

    @property
    def downsample(self):
        """Picture side / latent side."""
        return self._vae.downsample

    @property
    def can_encode(self):
        """False for a decoder-only file."""
        return self._vae.can_encode

    def decode(self, tokens):
        """tokens int [B, L] (scale after scale; L = 680 at 256 px, 2240 at 512 px) -> numpy uint8
        [B, H, W, 3], the bytes `varcode decode` writes to its PNGs."""
        t = _np.asarray(tokens)
        if t.ndim == 1:
            t = t[None, :]
        if t.ndim != 2 or not _np.issubdtype(t.dtype, _np.integer):
            raise ValueError(f"tokens: expected an integer array [B, L], got {t.dtype} {tuple(t.shape)}")
        return self._vae.decode(t.astype(_np.int64, copy=False))

    def encode(self, image, size=None):
        """A picture -> its multi-scale tokens, numpy int64 [1, L] (as `varcode encode`).

        image: a path (PNG of any size or .npy), a numpy uint8 [H, W, 3] array of any size or a PIL
        image; centre-cropped and resized to `size` pixels (None: the picture's side when it is a
        square of a known schedule, else 256).
        """
        return self.encode_with_reconstruction(image, size)[0]

    def encode_with_reconstruction(self, image, size=None):
        """(tokens int64 [1, L], reconstruction uint8 [1, H, W, 3]) of a picture, as encode()."""
        if size is None:
            size = _natural_side(image, self._vae)
        elif isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ValueError(f"size: expected a positive number of pixels, got {size!r}")
        self._vae.check_image_size(size)
        picture, _, _ = _picture(image, size)
        return self._vae.encode(picture)


def _natural_side(image, vae):
    """The picture's own side when it is square and a schedule fits it, else the 256 px schedule's."""
    try:
        if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
            return vae.image_size_for_tokens(680)
        a = _np.asarray(image.convert("RGB")) if hasattr(image, "convert") else _np.asarray(image)
        if a.ndim >= 2 and a.shape[0] == a.shape[1]:
            vae.check_image_size(int(a.shape[0]))
            return int(a.shape[0])
    except ValueError:
        pass
    return vae.image_size_for_tokens(680)


def inspect(path):
    """Recognise and validate a model file; a dict with the fields of `varcode inspect --json`
    (kind, params, dtype, and depth, width, heads, vocab, num_classes, patch_nums, shared_adaln for
    VAR; ch, ch_mult, vocab, z_channels for the VQ-VAE). OSError for a file that is not a valid model."""
    return _json.loads(_varcode.inspect_json(_check_file(path, "model")))


def sample(generator, npz, classes=None, per_class=50, seed=0, batch=None, progress=True, cfg=None, top_k=None,
           top_p=None, temperature=None, smooth=False):
    """FID sampling: `per_class` images of every class, written to `npz` in the format the OpenAI
    guided-diffusion evaluator reads (`arr_0`, uint8 [N, H, W, 3], class-major then j).

    Image j of class c draws with (seed, c * 65536 + j), as `varcode sample` does, so the array holds
    the very images `varcode sample --npz` packs for the same seed and settings. The file is
    streamed batch by batch (never the whole array in memory) and written atomically.

    Args:
        generator: a varcode.Generator.
        npz:       the output path.
        classes:   None (all classes) or classes as in Generator.generate.
        per_class: images of each class.
        seed, batch, cfg, top_k, top_p, temperature, smooth: as in Generator.generate.
        progress:  True: a tqdm bar over the images (a line per batch without tqdm); False; or a
                   callable called with (images_done, images_total) after each batch.
    Returns the path written.
    """
    labels = list(range(generator.num_classes)) if classes is None else generator.classes(classes)
    if isinstance(per_class, bool) or not isinstance(per_class, int) or not 1 <= per_class <= 65536:
        raise ValueError(f"per_class: expected an integer in [1, 65536], got {per_class!r}")
    seed = _check_seed(seed)
    sampling = generator._sampling(cfg, top_k, top_p, temperature, smooth)
    work = [(c, j) for c in labels for j in range(per_class)]
    if batch is None:
        batch = generator._engine.suggested_batch()
    side = generator.image_size
    total = len(work)
    report, close = _sample_progress(progress, total)
    npz = _os.fspath(npz)
    directory = _os.path.dirname(_os.path.abspath(npz))
    fd, tmp = _tempfile.mkstemp(prefix=".varcode-sample-", suffix=".npz", dir=directory)
    _os.close(fd)
    try:
        with _zipfile.ZipFile(tmp, "w", compression=_zipfile.ZIP_STORED, allowZip64=True) as zf:
            with zf.open("arr_0.npy", "w", force_zip64=True) as f:
                _np.lib.format.write_array_header_1_0(
                    f, {"descr": "|u1", "fortran_order": False, "shape": (total, side, side, 3)})
                for b0 in range(0, total, batch):
                    chunk = work[b0:b0 + batch]
                    r = generator._generate([c for c, _ in chunk], seed, [c * 65536 + j for c, j in chunk], sampling,
                                            len(chunk), False)
                    f.write(_np.ascontiguousarray(r.images).tobytes())
                    report(min(b0 + batch, total), total)
        _os.replace(tmp, npz)
    except BaseException:
        _os.unlink(tmp)
        raise
    finally:
        close()
    return npz


def _sample_progress(progress, total):
    if progress is False or progress is None:
        return (lambda done, total: None), (lambda: None)
    if progress is True:
        try:
            from tqdm import tqdm

            bar = tqdm(total=total, desc="sample", unit="img")
            last = [0]

            def report(done, total):
                bar.update(done - last[0])
                last[0] = done

            return report, bar.close
        except ImportError:
            return (lambda done, total: print(f"[sample] {done}/{total} images", file=_sys.stderr)), (lambda: None)
    if callable(progress):
        return progress, (lambda: None)
    raise ValueError(f"progress: expected True, False or a callable (done, total), got {progress!r}")
