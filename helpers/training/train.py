"""Train the two towers on the generated corpus with optax; evaluate on the held-out set; save.

:func:`train` returns a :class:`Run` (parameters, batch-norm state, vocabulary, config, curves,
held-out metrics); :func:`save_run` / :func:`load_run` write and read a run folder::

    DIR/report.json    loss, seed, steps, seconds, chance_r1, test metrics, curves, config
    DIR/weights.npz    every parameter and batch-norm statistic, by its Haiku path
    DIR/vocab.txt      the vocabulary (id = line number; 0 is padding)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path

import numpy as np

from helpers import words as words_lib
from helpers.training import corpus as corpus_lib
from helpers.training.settings import ModelConfig
from helpers.words import VOCABULARY

#: Bump when anything that changes a trained model changes (corpus, model, loss, loop):
#: cached trained stand-ins of other versions are retrained.
VERSION = 2


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on besides the loss and the seed."""

    # Held-out t2v R@1 (chance 1.1 %) by seed, 0-7: with the first block strided in time and 600
    # steps, 8.9, 6.7, 13.3, 11.1, 13.3, 8.9, 11.1, 11.1 % (every seed above 5x chance, 5.6 %),
    # for about the time 400 steps of the unstrided tower took, which gave 5.6, 12.2, 7.8, 8.9,
    # 7.8, 4.4, 6.7, 8.9 % (seed 5 below). Measured on 2 cores under load; float sums differ with
    # the thread count, so a seed's figure moves by a hit or two between machines.
    steps: int = 600
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 30
    num_videos: int = 120
    bag_size: int = 4
    heldout_repeats: int = 1
    brightness: float = 0.15      # augmentation: random gain / offset / noise per clip
    eval_every: int = 100
    model: ModelConfig = ModelConfig()

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["model"] = dataclasses.asdict(self.model)
        out["model"]["channels"] = list(self.model.channels)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        data = dict(data)
        model = dict(data.pop("model"))
        model["channels"] = tuple(model["channels"])
        return cls(model=ModelConfig(**model), **data)


#: The resource name the runs a notebook trains itself are labelled under (:func:`runs_label`).
RUNS = "runs trained here"


def runs_label(mode: str, setting: str) -> dict[str, str]:
    """The ``resources`` argument (for :func:`helpers.report.labelled`, :func:`helpers.plots.stamp`,
    ``retrieval.format_metrics(standin=...)``) of numbers and figures from models a notebook
    trains itself with :func:`train`.

    In tiny mode those runs stand in for the full setting's (``setting``: ``"quick"`` or
    ``"full"``), so they carry a stand-in label that says what they are; in real mode they are
    the lesson's results and carry none.
    """
    from helpers import config

    note = f"tiny stand-in: {setting} setting, a small model trained here on generated clips"
    if setting == "quick":
        note += " (runs too short to compare)"
    config.set_standin_note(RUNS, note)
    return {RUNS: mode}


def vocabulary() -> list[str]:
    """The model's words: the corpus's words plus the course's query words
    (:data:`helpers.words.VOCABULARY`, so the course's prompts tokenise); id 0 is ``<pad>``,
    which no sentence can produce."""
    words = set(VOCABULARY[1:]) | corpus_lib.corpus_words()
    return ["<pad>"] + sorted(words)


#: Sentences -> int32 ids ``[N, max_words]``, tokenised like the graph.
encode = words_lib.encode


@dataclasses.dataclass
class Run:
    loss: str
    seed: int
    config: TrainConfig
    params: dict
    state: dict
    vocab: list
    history: dict
    report: dict


def _augment(rng, clips, strength):
    """Per-clip brightness / contrast jitter and pixel noise, kept in [0, 1]."""
    n = len(clips)
    gain = 1.0 + rng.uniform(-strength, strength, (n, 1, 1, 1, 1)).astype(np.float32)
    offset = rng.uniform(-strength / 2, strength / 2, (n, 1, 1, 1, 1)).astype(np.float32)
    noise = rng.normal(0, 1, clips.shape).astype(np.float32) * \
        rng.uniform(0, strength / 3, (n, 1, 1, 1, 1)).astype(np.float32)
    return np.clip(clips * gain + offset + noise, 0.0, 1.0)


@functools.lru_cache(maxsize=16)
def _embedders(cfg: ModelConfig, vocab_size: int):
    import jax

    from helpers.training.models import make_model

    _, video_fn, text_fn = make_model(cfg, vocab_size)
    video = jax.jit(lambda p, s, x: video_fn.apply(p, s, None, x, False)[0])
    return video, jax.jit(text_fn.apply)


def embed(params, state, cfg: ModelConfig, vocab, clips=None, sentences=None, batch=128):
    """Inference (batch norm on stored statistics): ``{"video_embedding", "mixed_5c"}`` for
    ``clips`` and/or ``"text_embedding"`` for ``sentences``, as numpy arrays."""
    video, text = _embedders(cfg, len(vocab))
    out = {}
    if clips is not None:
        parts = [video(params, state, np.asarray(clips[i:i + batch], np.float32))
                 for i in range(0, len(clips), batch)]
        for key in ("video_embedding", "mixed_5c"):
            out[key] = np.concatenate([np.asarray(p[key]) for p in parts])
    if sentences is not None:
        ids = encode(list(sentences), vocab, cfg.max_words)
        out["text_embedding"] = np.asarray(text(params, None, ids))
    return out


def evaluate(params, state, cfg: ModelConfig, vocab, heldout) -> dict:
    """Held-out retrieval in both directions (R@K in percent, median rank)."""
    from helpers import retrieval

    clips, captions, _ = heldout
    emb = embed(params, state, cfg, vocab, clips, captions)
    sim = retrieval.similarity(emb["text_embedding"], emb["video_embedding"])
    return retrieval.both_directions(sim)


@functools.lru_cache(maxsize=16)
def _compiled(config: TrainConfig, vocab_size: int, named_losses: tuple):
    """``(init, optimizer, step)`` for one config, compiled once per process: runs with other
    seeds *and other losses* reuse it. ``named_losses``: ``tuple(losses.LOSSES.items())``;
    ``step(..., which)`` computes loss number ``which`` of them (one ``lax.switch`` in the
    program, so comparing three losses costs one compilation, not three)."""
    import jax
    import optax

    from helpers.training.models import make_model

    both_fn, _, _ = make_model(config.model, vocab_size)
    schedule = optax.warmup_cosine_decay_schedule(0.0, config.learning_rate, config.warmup,
                                                  max(config.steps, config.warmup + 1),
                                                  config.learning_rate * 0.05)
    optimizer = optax.chain(optax.clip_by_global_norm(5.0),
                            optax.adamw(schedule, weight_decay=config.weight_decay))
    branches = [lambda video, text, fn=fn: fn(video, text) for _, fn in named_losses]

    def objective(params, state, clips, ids, which):
        (video, text), state = both_fn.apply(params, state, None, clips, ids, True)
        return jax.lax.switch(which, branches, video["video_embedding"], text), state

    @jax.jit
    def step(params, state, opt_state, clips, ids, which):
        (value, state), grads = jax.value_and_grad(objective, has_aux=True)(
            params, state, clips, ids, which)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), state, opt_state, value

    # init stays eager (each small operation compiled on first use: 13 s once per process, vs
    # 5 s under jit): jit's initial weights differ by rounding, and that alone moved seed 2's
    # held-out t2v R@1 from 7.8 % to 4.4 % (chance 1.1 %); the seeds were verified eagerly.
    return both_fn.init, optimizer, step


def train(loss: str = "milnce", seed: int = 0, config: TrainConfig = TrainConfig(),
          corpus: corpus_lib.Corpus | None = None, heldout=None, progress: bool = False,
          log=None) -> Run:
    """Train both towers from scratch with ``loss`` (a key of :data:`losses.LOSSES`).

    ``corpus`` / ``heldout``: reuse already built ones (default: built from ``seed``).
    Returns a :class:`Run` whose ``report`` has the fields of ``report.json``.
    """
    import jax

    from helpers.training import losses

    if loss not in losses.LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(losses.LOSSES)}")
    started = time.perf_counter()
    cfg = config.model
    corpus = corpus or corpus_lib.build_corpus(seed, config.num_videos, config.bag_size,
                                               cfg.frames, cfg.size)
    heldout = heldout or corpus_lib.heldout_set(seed, config.heldout_repeats, cfg.frames,
                                                cfg.size)
    vocab = vocabulary()
    narration_ids = encode(corpus.narrations, vocab, cfg.max_words)
    bag_size = corpus.bag_size
    rng = np.random.default_rng(seed)
    b = config.batch_size
    named_losses = tuple(losses.LOSSES.items())
    init, optimizer, step = _compiled(config, len(vocab), named_losses)
    which = np.int32([name for name, _ in named_losses].index(loss))
    params, state = init(jax.random.PRNGKey(seed), corpus.clips[:2], narration_ids[:2], True)
    opt_state = optimizer.init(params)

    history = {"step": [], "loss": [], "eval_step": [], "eval_t2v_r1": []}
    order = rng.permutation(len(corpus.clips))
    cursor = 0
    for i in range(config.steps):
        if cursor + b > len(order):
            order, cursor = rng.permutation(len(corpus.clips)), 0
        batch = order[cursor:cursor + b]
        cursor += b
        clips = _augment(rng, corpus.clips[batch], config.brightness)
        ids = narration_ids[corpus.bags[batch].reshape(-1)]  # [b * K, W], bag by bag
        params, state, opt_state, value = step(params, state, opt_state, clips, ids, which)
        history["step"].append(i + 1)
        history["loss"].append(float(value))
        if config.eval_every and ((i + 1) % config.eval_every == 0 or i + 1 == config.steps):
            metrics = evaluate(params, state, cfg, vocab, heldout)
            history["eval_step"].append(i + 1)
            history["eval_t2v_r1"].append(metrics["text_to_video"]["R@1"])
            if log:
                log(f"step {i + 1}: loss {float(value):.3f}, held-out t2v R@1 "
                    f"{metrics['text_to_video']['R@1']:.1f}%")
    metrics = evaluate(params, state, cfg, vocab, heldout)
    seconds = time.perf_counter() - started
    n_test = len(heldout[1])
    report = {
        "loss": loss, "seed": seed, "steps": config.steps, "seconds": round(seconds, 2),
        "chance_r1": 100.0 / n_test, "num_test_clips": n_test,
        "num_train_clips": int(len(corpus.clips)), "bag_size": bag_size,
        "test": metrics, "version": VERSION, "config": config.to_dict(),
        "curves": history,
    }
    return Run(loss, seed, config, jax.device_get(params), jax.device_get(state), vocab,
               history, report)


# --------------------------------------------------------------------------------------------
# Run folders
# --------------------------------------------------------------------------------------------

def _flatten(tree: dict, prefix: str) -> dict:
    return {f"{prefix}:{module}:{name}": np.asarray(value)
            for module, values in tree.items() for name, value in values.items()}


def _unflatten(arrays, prefix: str) -> dict:
    out: dict = {}
    for key in arrays.files:
        kind, module, name = key.split(":")
        if kind == prefix:
            out.setdefault(module, {})[name] = np.asarray(arrays[key])
    return out


def save_run(run: Run, folder) -> Path:
    """Write ``report.json``, ``weights.npz`` and ``vocab.txt`` into ``folder``."""
    from helpers import atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic.save_npz(folder / "weights.npz", **_flatten(run.params, "params"),
                    **_flatten(run.state, "state"))
    atomic.write_bytes(folder / "vocab.txt", ("\n".join(run.vocab) + "\n").encode())
    atomic.write_bytes(folder / "report.json", (json.dumps(run.report, indent=1) + "\n").encode())
    return folder


class RunFolderError(ValueError):
    """A run folder is missing a file or holds something unreadable; the message says which."""


def load_run(folder) -> Run:
    """Read a folder written by :func:`save_run` (raises :class:`RunFolderError`)."""
    folder = Path(folder)
    for name in ("report.json", "weights.npz", "vocab.txt"):
        if not (folder / name).is_file():
            raise RunFolderError(f"{folder / name} does not exist (is {folder} a training run "
                                 f"folder written by `python -m helpers.training train`?)")
    try:
        report = json.loads((folder / "report.json").read_text())
        config = TrainConfig.from_dict(report["config"])
    except (ValueError, KeyError, TypeError) as err:
        raise RunFolderError(f"{folder / 'report.json'} is not a training report ({err})") \
            from None
    try:
        with np.load(folder / "weights.npz") as arrays:
            params, state = _unflatten(arrays, "params"), _unflatten(arrays, "state")
    except (OSError, ValueError) as err:
        raise RunFolderError(f"{folder / 'weights.npz'} cannot be read ({err})") from None
    vocab = (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    return Run(report["loss"], report["seed"], config, params, state, vocab,
               report.get("curves", {}), report)
