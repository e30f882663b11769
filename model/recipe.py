"""The training recipe: every hyper-parameter of `ggctl model train`, with its default.

The course's notebook fine-tunes VGG16 in two stages with light augmentation and leaves the
rest to the student. The defaults here are the usual modern transfer-learning recipe:

* stage 1 trains only the new head on the frozen ImageNet backbone (`head_epochs`, `head_lr`);
* stage 2 unfreezes the top `unfreeze` fraction of the backbone (batch-norm layers stay
  frozen when the weights are pretrained) and goes on at the 10x lower `fine_tune_lr`;
* each stage follows a cosine learning-rate schedule (stage 2 with an optional warm-up);
* AdamW with decoupled weight decay, label smoothing, dropout before the head;
* flips, small rotations, zooms, shifts and contrast changes as augmentation;
* class weights from the training split's counts (Food-11 is imbalanced ~6:1);
* early stopping on the validation split, keeping the best epoch's weights;
* mixed precision only when a GPU is present (`auto`).

Nothing here imports TensorFlow, so the CLI can validate flags before paying for that import.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from ggctl.app.modelmeta import RESAMPLE_NAMES
from ggctl.errors import GgctlError


class RecipeError(GgctlError):
    """A hyper-parameter is out of range, or a resumed run would change a fixed one."""


# Changing these mid-run would make the checkpoint describe another model or another
# optimizer schedule; a resumed run must keep them.
FIXED_ON_RESUME = (
    "backbone",
    "width",
    "img_size",
    "weights",
    "dropout",
    "resample",
    "head_epochs",
    "batch",
    "mixed_precision",
    "seed",
    "freeze_bn",
)

MONITORS = ("val_accuracy", "val_loss")
CACHES = ("memory", "disk", "none")


@dataclass(frozen=True)
class Recipe:
    """Hyper-parameters of one training run; `ggctl model train` has a flag for each."""

    backbone: str = "efficientnetv2-b0"
    width: float = 1.0  # width multiplier (alpha) of the MobileNets; ignored by the others
    img_size: int = 224
    weights: str = "imagenet"  # or "none": random initialisation, nothing downloaded
    # Schedule
    epochs: int = 25  # total, both stages
    head_epochs: int = 3  # stage 1: head only, backbone frozen
    batch: int = 32
    head_lr: float = 1e-3
    fine_tune_lr: float = 1e-4
    warmup_epochs: float = 0.0  # linear warm-up at the start of stage 2
    unfreeze: float = 1.0  # fraction of backbone layers trained in stage 2, from the top
    freeze_bn: str = "auto"  # auto: frozen when the weights are pretrained; "yes" / "no"
    # Momentum of batch-norm statistics where they train. Keras' ImageNet models use
    # 0.99-0.999, tuned for ~1M steps; over a few hundred steps the moving averages would
    # still describe the initial weights and validation would score noise.
    bn_momentum: float = 0.9
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    dropout: float = 0.2
    # Augmentation (training split only)
    flip: bool = True
    rotation: float = 0.05  # fraction of a full turn, +-
    zoom: float = 0.15
    translate: float = 0.1
    contrast: float = 0.2
    # Data
    class_weights: bool = True
    resample: str = "bicubic"  # must match the service: it is written into the metadata
    cache: str = "memory"
    shuffle_buffer: int = 2048
    # Early stopping and precision
    monitor: str = "val_accuracy"
    patience: int = 5
    min_delta: float = 0.0
    mixed_precision: str = "auto"  # auto: on when a GPU is present; "on" / "off"
    seed: int = 0
    # The end of the run
    export: bool = True  # ONNX export, int8 quantization and evaluation after training
    calibration_images: int = 128
    eval_threads: int = 1

    def __post_init__(self) -> None:
        from ggctl.model.backbones import BACKBONE_NAMES

        problems: list[str] = []

        def need(ok: bool, text: str) -> None:
            if not ok:
                problems.append(text)

        need(
            self.backbone in BACKBONE_NAMES,
            f"backbone {self.backbone!r} is not one of {', '.join(BACKBONE_NAMES)}",
        )
        need(0.1 <= self.width <= 2.0, "width must be in 0.1..2.0")
        need(32 <= self.img_size <= 1024, "img-size must be in 32..1024")
        need(self.weights in ("imagenet", "none"), "weights must be imagenet or none")
        need(self.epochs >= 1, "epochs must be at least 1")
        need(self.head_epochs >= 0, "head-epochs must be 0 or more")
        need(self.batch >= 1, "batch must be at least 1")
        need(self.head_lr > 0 and self.fine_tune_lr > 0, "learning rates must be positive")
        need(self.warmup_epochs >= 0, "warmup-epochs must be 0 or more")
        need(0.0 < self.unfreeze <= 1.0, "unfreeze must be a fraction in (0, 1]")
        need(self.freeze_bn in ("auto", "yes", "no"), "freeze-bn must be auto, yes or no")
        need(0 <= self.bn_momentum < 1, "bn-momentum must be in [0, 1)")
        need(self.weight_decay >= 0, "weight-decay must be 0 or more")
        need(0 <= self.label_smoothing < 1, "label-smoothing must be in [0, 1)")
        need(0 <= self.dropout < 1, "dropout must be in [0, 1)")
        for name in ("rotation", "zoom", "translate", "contrast"):
            need(0 <= getattr(self, name) < 1, f"{name} must be in [0, 1)")
        need(self.resample in RESAMPLE_NAMES, f"resample must be one of {RESAMPLE_NAMES}")
        need(self.cache in CACHES, f"cache must be one of {', '.join(CACHES)}")
        need(self.shuffle_buffer >= 1, "shuffle-buffer must be at least 1")
        need(self.monitor in MONITORS, f"monitor must be one of {', '.join(MONITORS)}")
        need(self.patience >= 1, "patience must be at least 1")
        need(
            self.mixed_precision in ("auto", "on", "off"), "mixed-precision must be auto, on or off"
        )
        need(self.calibration_images >= 1, "calibration-images must be at least 1")
        need(self.eval_threads >= 1, "eval-threads must be at least 1")
        if problems:
            raise RecipeError("bad training recipe: " + "; ".join(problems))

    @property
    def fine_tune_epochs(self) -> int:
        return max(self.epochs - self.head_epochs, 0)

    @property
    def bn_frozen(self) -> bool:
        """Whether batch-norm layers stay in inference mode when the backbone is unfrozen."""
        if self.freeze_bn == "auto":
            return self.weights == "imagenet"
        return self.freeze_bn == "yes"

    def stage_of(self, epoch: int) -> int:
        """1 (head only) or 2 (fine-tuning) for the 0-based `epoch`."""
        return 1 if epoch < self.head_epochs else 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RecipeError(f"unknown recipe keys: {', '.join(unknown)}")
        return cls(**data)

    def with_overrides(self, overrides: dict[str, Any]) -> Recipe:
        """This recipe with `overrides` applied (unknown names are an error)."""
        if not overrides:
            return self
        return Recipe.from_dict({**self.to_dict(), **overrides})

    def resume_conflicts(self, stored: Recipe) -> list[str]:
        """Fixed hyper-parameters that differ from the run's stored recipe."""
        return [
            f"{k}: run has {getattr(stored, k)!r}, asked for {getattr(self, k)!r}"
            for k in FIXED_ON_RESUME
            if getattr(self, k) != getattr(stored, k)
        ]


def read_config(run_dir: Path) -> dict[str, Any] | None:
    """The run's config.json, or None when the run directory has none yet."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RecipeError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("recipe"), dict):
        raise RecipeError(f"{path} has no recipe; is {run_dir} a `ggctl model train` run?")
    return data


def resolve_recipe(run_dir: Path, overrides: dict[str, Any]) -> tuple[Recipe, bool]:
    """The recipe for a run in `run_dir`: stored + overrides when resuming, else defaults.

    Returns (recipe, resuming). A resumed run keeps its stored values for every flag not
    given again; a flag that would change a fixed hyper-parameter is refused by name.
    """
    config = read_config(run_dir)
    if config is None:
        return Recipe.from_dict(overrides), False
    stored = Recipe.from_dict(config["recipe"])
    recipe = stored.with_overrides(overrides)
    conflicts = recipe.resume_conflicts(stored)
    if conflicts:
        raise RecipeError(
            f"{run_dir} holds a run with another recipe: " + "; ".join(conflicts),
            hint="Resume it without those flags, or pass another --out for a new run.",
        )
    return replace(recipe), True


# --- flags ----------------------------------------------------------------------------------

FLAG_HELP: dict[str, str] = {
    "backbone": "Backbone to fine-tune.",
    "width": "Width multiplier (alpha) of the MobileNets.",
    "img_size": "Input size in pixels (square).",
    "weights": "Initial weights: ImageNet (downloaded by Keras once) or none (random).",
    "epochs": "Total epochs, both stages; raise it on a finished run to train further.",
    "head_epochs": "Stage 1 epochs: the new head only, backbone frozen.",
    "batch": "Batch size.",
    "head_lr": "Peak learning rate of stage 1 (cosine schedule).",
    "fine_tune_lr": "Peak learning rate of stage 2 (cosine schedule).",
    "warmup_epochs": "Linear warm-up at the start of stage 2, in epochs.",
    "unfreeze": "Fraction of backbone layers trained in stage 2, counted from the top.",
    "freeze_bn": "Keep batch-norm layers frozen in stage 2 (auto: with ImageNet weights).",
    "bn_momentum": "Momentum of batch-norm statistics where they train.",
    "weight_decay": "AdamW decoupled weight decay (not on biases and batch-norm).",
    "label_smoothing": "Label smoothing of the cross-entropy.",
    "dropout": "Dropout before the classification head.",
    "flip": "Random horizontal flips.",
    "rotation": "Random rotation, as a fraction of a full turn.",
    "zoom": "Random zoom, as a fraction.",
    "translate": "Random shift, as a fraction of the size.",
    "contrast": "Random contrast change, as a fraction.",
    "class_weights": "Weight the loss by inverse class frequency of the training split.",
    "resample": "Resize filter; must match serving (written into the ONNX metadata).",
    "cache": "Cache decoded images in memory, on disk (in the run dir) or not at all.",
    "shuffle_buffer": "Shuffle buffer of the training split, in images.",
    "monitor": "Validation metric for the best epoch and early stopping.",
    "patience": "Stage-2 epochs without improvement before stopping early.",
    "min_delta": "Smallest change of the monitored metric that counts as improvement.",
    "mixed_precision": "float16 compute (auto: only when a GPU is present).",
    "seed": "Random seed (shuffling, augmentation, initialisation).",
    "export": "At the end: export ONNX, quantize to int8, evaluate both.",
    "calibration_images": "Training images used to calibrate int8.",
    "eval_threads": "ONNX Runtime threads for the evaluation's latency figures.",
}


def click_options() -> list[Any]:
    """One click option per recipe field, default None so a resumed run can tell what was
    given; the help shows the recipe's default."""
    import click

    from ggctl.model.backbones import BACKBONE_NAMES

    choices = {
        "backbone": BACKBONE_NAMES,
        "weights": ("imagenet", "none"),
        "freeze_bn": ("auto", "yes", "no"),
        "resample": RESAMPLE_NAMES,
        "cache": CACHES,
        "monitor": MONITORS,
        "mixed_precision": ("auto", "on", "off"),
    }
    defaults = Recipe()
    options = []
    for f in fields(Recipe):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        shown = ("on" if default else "off") if isinstance(default, bool) else default
        help_text = f"{FLAG_HELP[f.name]} [default: {shown}]"
        if isinstance(default, bool):
            decl = f"{flag}/--no-{flag[2:]}"
            options.append(click.option(decl, f.name, default=None, help=help_text))
        elif f.name in choices:
            options.append(
                click.option(
                    flag, f.name, type=click.Choice(choices[f.name]), default=None, help=help_text
                )
            )
        else:
            options.append(
                click.option(flag, f.name, type=type(default), default=None, help=help_text)
            )
    return options


def given(flags: dict[str, Any]) -> dict[str, Any]:
    """The recipe flags that were given on the command line (the others are None)."""
    names = {f.name for f in fields(Recipe)}
    return {k: v for k, v in flags.items() if k in names and v is not None}


def default_run_dir(overrides: dict[str, Any], root: Path = Path("runs")) -> Path:
    """runs/<backbone>-<img size>: the same command twice resumes the same run."""
    backbone = overrides.get("backbone", Recipe.backbone)
    size = overrides.get("img_size", Recipe.img_size)
    width = overrides.get("width")
    suffix = f"-w{width:g}" if width not in (None, 1.0) else ""
    return root / f"{backbone}{suffix}-{size}"
