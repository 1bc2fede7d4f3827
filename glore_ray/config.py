"""Configuration: frozen dataclasses per stage, loaded from YAML with dotted overrides.

    cfg = load_config("configs/tiny.yaml", ["student.ei.k=16", "training.student.lr_max=1e-3"])

Every field says what it is. Unknown keys, wrong types and bad values raise ``ConfigError``
naming the key and the file (or ``<override>``) it came from. Sections are grouped by stage and,
inside a stage, by Ray role (``rollout``: generator actors; ``training``: Ray Train workers).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from glore_ray.config_parse import ConfigError, build_dataclass, set_dotted
from glore_ray.config_serve import ServeConfig, ServeDeploymentConfig
from glore_ray.tasks.tiny_world import TinyWorldConfig

# --------------------------------------------------------------------------------------------
# Sections


@dataclass(frozen=True)
class RunConfig:
    run_dir: str = "runs/tiny"  # every stage writes under <run_dir>/<stage>/
    seed: int = 0  # root seed; rollout seeds derive from (question id, prefix, sample, round)
    ray_address: str | None = None  # None: connect to RAY_ADDRESS if set, else start local Ray
    num_cpus: int | None = None  # for a local Ray instance; None lets Ray count


@dataclass(frozen=True)
class DataConfig:
    task: str = "tiny"  # tiny | gsm8k | svamp
    source: str | None = None  # local jsonl/json/parquet path or HF dataset id; None: the default
    n_train: int | None = None  # cap on train questions (None: all); the tiny world generates this many
    n_test: int | None = None  # cap on test questions
    tiny_world: TinyWorldConfig = field(default_factory=TinyWorldConfig)

    def __post_init__(self):
        if self.task not in ("tiny", "gsm8k", "svamp"):
            raise ValueError(f"task must be tiny, gsm8k or svamp, got {self.task!r}")
        for name in ("n_train", "n_test"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")


@dataclass(frozen=True)
class ModelConfig:
    """Where the base model comes from: a HF checkpoint path/id, or "tiny" (built from scratch)."""

    base: str = "tiny"
    n_layer: int = 4  # tiny model shape (Llama-style)
    d_model: int = 128
    n_head: int = 4
    d_ff: int = 384
    max_len: int = 256  # context length of the tiny model
    dtype: str = "float32"  # float32 | bfloat16 | float16 (bf16 on GPUs at real scale)

    def __post_init__(self):
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"dtype must be float32, bfloat16 or float16, got {self.dtype!r}")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})")


@dataclass(frozen=True)
class RolloutConfig:
    """The generator actor pool (Ray role: rollout actors)."""

    backend: str = "hf"  # hf (transformers, any device) | vllm (GPU extra, or vLLM's CPU build)
    num_actors: int = 1  # actor pool size
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0  # 1 per vLLM actor (x tensor_parallel) at real scale
    tensor_parallel: int = 1  # vLLM tensor parallel size
    batch_size: int = 64  # prompts per actor call
    shard_rows: int = 256  # rows per output Parquet shard (the unit of resume)
    max_new_tokens: int = 96
    temperature: float = 1.0
    top_p: float = 1.0
    gpu_memory_utilization: float = 0.85  # vLLM on a GPU: the share of its memory for weights and KV cache
    cpu_kvcache_gib: int = 1  # vLLM's CPU build: KV cache size (VLLM_CPU_KVCACHE_SPACE, unless set)
    prefix_caching: bool = True  # vLLM: K samples of a prompt, and SORM prefixes, share one prefill
    device: str = "auto"  # hf backend: torch device of each actor (auto: cuda when visible, else cpu)
    dtype: str | None = None  # hf/vllm weights dtype (None: the checkpoint's own); bfloat16 on GPUs at scale
    max_attempts: int = 3  # sampler passes over missing shards before giving up (actor deaths, lost tasks)

    def __post_init__(self):
        if self.backend not in ("hf", "vllm"):
            raise ValueError(f"backend must be hf or vllm, got {self.backend!r}")
        if self.num_actors < 1 or self.batch_size < 1 or self.shard_rows < 1:
            raise ValueError("num_actors, batch_size and shard_rows must be >= 1")
        if not 0 < self.top_p <= 1 or self.temperature < 0:
            raise ValueError("need 0 < top_p <= 1 and temperature >= 0")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")


@dataclass(frozen=True)
class TrainConfig:
    """One fine-tune (Ray role: Ray Train workers). Real-scale defaults: paper Table 4."""

    epochs: float = 1.0
    lr_max: float = 2e-5
    lr_min: float = 2e-7
    warmup_frac: float = 0.03
    batch_size: int = 128  # global batch (sequences per optimizer step)
    micro_batch: int = 8  # per worker per forward pass; accumulation fills the global batch
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    zero_stage: int = 0  # DeepSpeed ZeRO stage 0-3
    num_workers: int = 1  # Ray Train workers
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    max_len: int = 512  # longer sequences are truncated (counted and reported)
    checkpoint_every: int = 0  # optimizer steps; 0: only at the end
    packing: bool = True  # length-bucketed batches to cut padding
    max_failures: int = 2  # Ray Train restarts of a failed worker group (resume from last checkpoint)

    def __post_init__(self):
        if not 0 <= self.zero_stage <= 3:
            raise ValueError(f"zero_stage must be 0..3, got {self.zero_stage}")
        if self.lr_min > self.lr_max:
            raise ValueError(f"lr_min ({self.lr_min}) must be <= lr_max ({self.lr_max})")
        if self.batch_size < 1 or self.micro_batch < 1 or self.num_workers < 1:
            raise ValueError("batch_size, micro_batch and num_workers must be >= 1")
        if self.epochs <= 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs}")


def _ei_train() -> TrainConfig:
    return TrainConfig(epochs=4, lr_max=2e-5, lr_min=2e-7, batch_size=128)


def _rm_train() -> TrainConfig:
    return TrainConfig(epochs=1, lr_max=2e-6, lr_min=2e-7, batch_size=256)


def _refiner_train() -> TrainConfig:
    return TrainConfig(epochs=1, lr_max=2e-5, lr_min=2e-7, batch_size=128)


@dataclass(frozen=True)
class TrainingConfig:
    student: TrainConfig = field(default_factory=_ei_train)
    rm: TrainConfig = field(default_factory=_rm_train)
    refiner: TrainConfig = field(default_factory=_refiner_train)
    pretrain: TrainConfig = field(default_factory=TrainConfig)  # the tiny base (section pretrain)


@dataclass(frozen=True)
class PretrainConfig:
    """Tiny world only: a base pretrained on bare arithmetic before SFT (stage ``pretrain``,
    glore_ray/tasks/arithmetic.py), as a real student's base comes pretrained. It has a seed of
    its own, so every ``run.seed`` starts from the same base and the seed only moves the SFT
    (docs/faithful-world.md)."""

    enabled: bool = False  # off: the student starts from random init (model.base: tiny)
    # problems: the world's worked problems as the student sees them (question and solution);
    # chains: the solutions alone; equations: independent lines with operands over the whole
    # range (learnt far slower: docs/faithful-world.md).
    corpus: str = "problems"
    seed: int = 0  # the base's own seed (corpus, fact split, init, training order); not run.seed
    rows: int = 20000  # corpus rows: problems or solutions, or blocks of lines_per_row equations
    lines_per_row: int = 12
    # Share of the facts (container sizes, else products) the base sees as often as the world
    # shows them; the rest it sees rare_sightings times in all.
    known_share: float = 1.0
    rare_sightings: int = 2
    # The base's world may be easier than the student's: chains of min_ops..max_ops operations
    # (null: the student's), so the student's SFT has to extend what the base practised, as a real
    # base is pretrained on other text than the task (docs/faithful-world.md).
    min_ops: int | None = None
    max_ops: int | None = None
    # Extra rows, this share of ``rows``, whose prompt ends in a slipped step and whose target
    # follows from the written number (tasks/slipped.py): the base learns to compute from its
    # scratchpad, not from a total it tracks apart (docs/faithful-world.md). Problems corpus only;
    # the rows use known facts only, so a rare fact keeps its rare_sightings.
    slipped_share: float = 0.0
    # Problems a corpus row holds in sequence, each solution trained (problems corpus): with 1 the
    # base only ever reads a problem at the start of its context and cannot read one anywhere else,
    # as a refiner must (docs/faithful-world.md). Raise training.pretrain.max_len with it.
    problems_per_row: int = 1
    # Where the stage's directory lives (null: the run directory). Runs that differ only in
    # run.seed (bench/student_sweep.py) point it at one place and train the base once.
    shared_dir: str | None = None

    def __post_init__(self):
        if self.rows < 1 or self.lines_per_row < 1 or self.rare_sightings < 0:
            raise ValueError("pretrain: need rows >= 1, lines_per_row >= 1, rare_sightings >= 0")
        if self.corpus not in ("problems", "chains", "equations"):
            raise ValueError(f"pretrain.corpus must be problems, chains or equations, got {self.corpus!r}")
        if (self.min_ops is None) != (self.max_ops is None) or (self.min_ops is not None and
                                                                not 1 <= self.min_ops <= self.max_ops):
            raise ValueError(f"pretrain: min_ops and max_ops are both null (the student's world) or "
                             f"1 <= min_ops <= max_ops, got {self.min_ops}, {self.max_ops}")
        if not 0 <= self.known_share <= 1:
            raise ValueError(f"pretrain.known_share must be in [0, 1], got {self.known_share}")
        if self.problems_per_row < 1 or (self.problems_per_row > 1 and self.corpus != "problems"):
            raise ValueError(f"pretrain.problems_per_row must be >= 1, and > 1 only with corpus problems, got "
                             f"{self.problems_per_row} with corpus {self.corpus!r}")
        if self.slipped_share < 0 or (self.slipped_share and self.corpus != "problems"):
            raise ValueError(f"pretrain.slipped_share must be >= 0, and > 0 only with corpus problems (whole "
                             f"problems), got {self.slipped_share} with corpus {self.corpus!r}")


@dataclass(frozen=True)
class StudentConfig:
    """SFT then Expert Iteration (paper 3.1 step 1, App. B)."""

    k: int = 96  # samples per train question per EI round
    max_rounds: int = 5
    tolerance: float = 0.01  # stop when maj@1 improves by less than this
    eval_k: int = 96  # samples per test question for maj@K / pass@K
    max_new_tokens: int = 256
    # Paper 3.1: every EI round fine-tunes the *base* model again on D_i. "previous" continues
    # from the last round's student instead (the tiny world's budget: its base is random init).
    ei_init: str = "base"
    ei_epochs: float | None = None  # epochs of an EI round (None: training.student.epochs)
    # Tiny world: extra SFT rows, this share of the train questions, whose prompt ends in a
    # slipped result and whose target follows from it: teaches computing from the written steps.
    slipped_rows: float = 0.0
    # Train questions each EI round samples K times (None: all): a seeded subset, so a large SFT
    # pool (the tiny world's 6,000 questions) does not multiply the cost of every round.
    ei_questions: int | None = None
    # What an EI round's correct samples are de-duplicated against: "dataset" (D_{i-1} and the
    # round: only solutions D_{i-1} lacks are added) or "round" (the round alone, the paper's R_i:
    # a sample equal to a row of D_{i-1} is added again). labeling/expert_iteration.next_dataset.
    ei_dedup: str = "dataset"

    def __post_init__(self):
        if self.k < 1 or self.eval_k < 1 or self.max_rounds < 0:
            raise ValueError("k and eval_k must be >= 1, max_rounds >= 0")
        if self.ei_questions is not None and self.ei_questions < 1:
            raise ValueError(f"ei_questions must be >= 1 (or null: all), got {self.ei_questions}")
        if self.ei_init not in ("base", "previous"):
            raise ValueError(f"ei_init must be base or previous, got {self.ei_init!r}")
        if self.ei_dedup not in ("dataset", "round"):
            raise ValueError(f"ei_dedup must be dataset or round, got {self.ei_dedup!r}")


@dataclass(frozen=True)
class LabelConfig:
    """ORM data and SORM labels (paper 3.1 step 2)."""

    orm_k: int = 96  # student samples per train question for ORM data
    # Train questions orm_data samples (None: all): the ORM, SORM and refiner data all come from
    # these samples, so this caps the cost of every labelling stage whatever the SFT pool's size.
    questions: int | None = None
    sorm_k: int = 8  # verification rollouts per step prefix
    sorm_max_new_tokens: int = 300
    consistency: bool = True  # post-processing (2): R_i must appear in the rollout's suffix
    strict_consistency: bool = False  # also every earlier unused result
    propagate_positive: bool = True  # post-processing (1)
    balance: bool = True  # post-processing (3), training set only
    scheduler: str = "efficient"  # efficient | naive (the baseline) | binary (OmegaPRM/EpicPRM's search; labels may differ)
    self_filter: bool = False  # App. I: drop samples whose label disagrees with a first SORM
    sorm_chunk: int = 2  # efficient scheduler: rollouts asked per undecided prefix per wave
    sorm_max_batch: int = 65536  # most verification requests in one scheduler wave's verify() call
    sorm_shard_solutions: int = 256  # solutions per actor call (whole questions; the unit of resume)
    sorm_samples_per_question: int | None = None  # label only the first N ORM samples of a question (None: all)
    # Balanced ORM: keep questions whose samples are all correct or all wrong? Off: strict
    # per-question balance leaves min(pos, neg) = 0 of them (see labeling/orm.py).
    balanced_orm_keep_single_class: bool = False

    def __post_init__(self):
        if self.sorm_chunk < 1 or self.sorm_max_batch < 1 or self.sorm_shard_solutions < 1:
            raise ValueError("sorm_chunk, sorm_max_batch and sorm_shard_solutions must be >= 1")
        if self.scheduler not in ("efficient", "naive", "binary"):
            raise ValueError(f"scheduler must be efficient, naive or binary, got {self.scheduler!r}")
        if self.orm_k < 1 or self.sorm_k < 1:
            raise ValueError("orm_k and sorm_k must be >= 1")
        if self.questions is not None and self.questions < 1:
            raise ValueError(f"labels.questions must be >= 1 (or null: all), got {self.questions}")


@dataclass(frozen=True)
class RefineConfig:
    """Refinement data and the when/where/how policy (paper 3.1 step 3, 3.2)."""

    max_pairs_per_question: int = 4  # global pairs cap per question
    max_triples_per_question: int = 4  # local (and App. J value) triples cap per question
    when_threshold: float = 0.5  # ORM score above which a draft is returned unrefined (<= : refine)
    where_threshold: float = 0.5  # first step whose (S)ORM score is <= this is [BAD]
    use_orm_for_where: bool = False  # paper 4.2 ablation: locate the [BAD] step with the ORM, not the SORM
    # App. J: also train and evaluate a value refiner ([BAD] after the step the student values most)
    value_refinement: bool = False
    max_new_tokens: int = 256

    def __post_init__(self):
        for name in ("when_threshold", "where_threshold"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]")


@dataclass(frozen=True)
class PipelineConfig:
    """What the main job runs beyond the core stages."""

    # e.g. [contrastive_orm, sorm_filtered] (App. F, I); sorm_oracle: the SORM's rows with the
    # tiny world's exact labels, the upper bound on better labels (docs/faithful-world.md; tiny world only);
    # sorm_soft: the SORM on soft labels (stage sorm_soft_labels, which the main job then runs).
    extra_reward_models: tuple[str, ...] = ()
    serve: bool = False  # start the HTTP endpoint at the end and block

    def __post_init__(self):
        known = ("contrastive_orm", "sorm_filtered", "sorm_oracle", "sorm_soft")
        unknown = set(self.extra_reward_models) - set(known)
        if unknown:
            raise ValueError(f"extra_reward_models: unknown {sorted(unknown)}; known: {', '.join(known)}")


@dataclass(frozen=True)
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)

    def __post_init__(self):
        if self.pretrain.enabled and (self.data.task != "tiny" or self.model.base != "tiny"):
            raise ValueError(f"pretrain.enabled builds the tiny world's base; it needs data.task=tiny and model.base=tiny "
                             f"(got {self.data.task!r}, {self.model.base!r}): a real base comes pretrained")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self, *sections: str) -> str:
        """A short hash of the named sections (all when none): the stage manifests record it so a
        changed config is never mistaken for a finished stage. Fields that only decide how much
        hardware does the work (:data:`RESOURCE_FIELDS`) are left out: a run resumed with more
        actors, or with other CPU/GPU shares, is the same run."""
        data = self.to_dict()
        for dotted in RESOURCE_FIELDS:
            section, field_name = dotted.split(".")
            data[section].pop(field_name, None)
        for path, names, off in OFF_FIELDS:
            section = data
            for part in path:
                section = section[part]
            if off(section):
                for name in names:
                    section.pop(name)
        picked = {}
        for name in sections:  # "student" or a dotted field such as "run.seed"
            node = data
            for part in name.split("."):
                node = node[part]
            picked[name] = node
        picked = picked or data
        return hashlib.sha256(json.dumps(picked, sort_keys=True, default=str).encode()).hexdigest()[:16]


# Resources, not results: rollouts are seeded per request and the SORM scheduler's labels do not
# depend on how its waves are cut into calls, so these never change an artifact. Prefix caching
# reuses a prefix's computed KV blocks instead of computing them again (bench/rollouts.py checks
# that the texts are the same with it on and off). Where the shared pretrain stage lives is a place, not a result.
# Knobs added after runs existed, left out of digests while they are off (they change nothing then),
# so the run directories made before them stay valid: (section, its fields, "are they off?").
OFF_FIELDS = (
    (("data", "tiny_world"), ("containers", "fact_seed"), lambda w: not w["containers"]),  # the knowledge world
    (("data", "tiny_world"), ("distractors",), lambda w: not any(w["distractors"])),
    (("pretrain",), ("min_ops", "max_ops"), lambda p: p["min_ops"] is None),  # the base's world is the student's
    (("pretrain",), ("slipped_share",), lambda p: not p["slipped_share"]),
    (("pretrain",), ("problems_per_row",), lambda p: p["problems_per_row"] == 1),
    (("student",), ("ei_dedup",), lambda s: s["ei_dedup"] == "dataset"),
)
RESOURCE_FIELDS = ("rollout.num_actors", "rollout.cpus_per_actor", "rollout.gpus_per_actor",
                   "rollout.max_attempts", "rollout.prefix_caching", "labels.sorm_max_batch",
                   "pretrain.shared_dir")


# --------------------------------------------------------------------------------------------
# Loading


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Build a :class:`Config` from a YAML file (or the defaults) plus ``key.sub=value`` overrides."""
    data, source = {}, "<defaults>"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text()
        except OSError as err:
            raise ConfigError(f"{path}: cannot read config file: {err.strerror}") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(data).__name__}")
    sources = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"<override> {item!r}: expected key.sub=value")
        set_dotted(data, key.strip(), yaml.safe_load(raw) if raw.strip() else None)
        sources[key.strip()] = "<override>"
    return build_dataclass(Config, data, "", source, sources)


__all__ = ["Config", "ConfigError", "ServeConfig", "ServeDeploymentConfig", "load_config"]
