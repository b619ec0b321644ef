"""A Triton Inference Server model repository from exported graphs (.onnx) and engines (.plan).

    repo/
      NAME/config.pbtxt            platform tensorrt_plan or onnxruntime_onnx
      NAME/1/model.plan | model.onnx
      NAME_preprocess/...          --ensemble: Python backend, encoded video -> `video` tensor
      NAME_ensemble/config.pbtxt   --ensemble: bytes in, the engine's outputs out
      libvidtldr_plugins.so        only when a plan holds vidtldr plugin layers
      vidtldr.json, README.md      what was built from what, TensorRT version, how to load plugins

Files at the top level, not a plugins/ folder: Triton loads every subfolder of the repository as
a model, and a folder without a config stops the server at start-up.

The repository is written into a temporary folder beside the output and renamed into place at the
end, so a failure (or an exception anywhere) leaves the old repository, or nothing, behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vidtldr_deploy import __version__
from vidtldr_deploy.errors import InputError, VidTLDRError
from vidtldr_deploy.files import sha256_file, umask, write_error
from vidtldr_deploy.runtime.tensorrt import sidecar as sc
from vidtldr_deploy.serve import triton_config as tc

REPO_FORMAT = "vidtldr-triton-repository"
PLUGIN_FILENAME = "libvidtldr_plugins.so"
BYTES_INPUT = tc.BYTES_INPUT
PREPROCESS_SUFFIX = "_preprocess"
ENSEMBLE_SUFFIX = "_ensemble"
CONTAINER_REPO = "/models"  # where docker/docker-compose.triton.yml mounts the repository
KINDS = {"gpu": "KIND_GPU", "cpu": "KIND_CPU"}
MAX_INSTANCES = 256  # instance_group count is an int32, and each instance is an execution context
_PREPROCESS_TEMPLATE = Path(__file__).with_name("triton_preprocess.py")

# What the `*_preprocess` models need in the Triton image, as the repository README says it.
# Verified against tritonserver 2.51 (the 24.10 release) with its Python backend on the CPU.
PREPROCESS_IMAGE_NEEDS = (
    "## Ensemble: what the Triton image needs",
    "",
    "The `*_preprocess` models run in Triton's Python backend. Its stub embeds the image's",
    "Python and imports from that interpreter's site-packages (PYTHONPATH does not reach it;",
    "a virtualenv first on PATH when tritonserver starts does). They need no torch; the clip",
    "recipe (sampling, frames, resize, crop, mean/std) is in their config.pbtxt parameters:",
    "",
    "```",
    "pip install --no-deps vidtldr-deploy",
    'pip install "numpy<2" av pillow',
    "```",
    "",
    "numpy < 2: the Python backend of Triton 2.51 (24.10) and older crashes reading a BYTES",
    "input with numpy 2. Check the image before serving:",
    "",
    "```",
    'python3 -c "import sys, numpy, av, PIL, vidtldr_deploy.clips; '
    "assert int(numpy.__version__.split('.')[0]) < 2, numpy.__version__; "
    "assert 'torch' not in sys.modules; print('ok')\"",
    "```",
    "",
    "and once the server is up: `curl -s localhost:8000/v2/models/NAME_preprocess/ready -o /dev/null"
    " -w '%{http_code}'` prints 200.",
)


@dataclass(frozen=True)
class ModelSource:
    """One TARGET as Triton will see it."""

    path: Path
    platform: str  # tc.PLATFORM_PLAN or tc.PLATFORM_ONNX
    inputs: tuple[tc.TensorSpec, ...]
    outputs: tuple[tc.TensorSpec, ...]
    info: dict[str, str]  # provenance for `parameters` and vidtldr.json (schedule, hashes, ...)
    needs_plugin: bool = False
    plugin_sha256: str | None = None  # of the library the engine was built with
    tensorrt_version: str | None = None

    @property
    def filename(self) -> str:
        return "model.plan" if self.platform == tc.PLATFORM_PLAN else "model.onnx"


@dataclass(frozen=True)
class RepositoryOptions:
    name: str | None = None
    instances: int = 1
    device: str = "gpu"  # instance kind of ONNX models; plans always run on the GPU
    # Only for graphs with a dynamic first dimension; None: the graph's own --max-batch (or 8).
    max_batch_size: int | None = None
    max_queue_delay_us: int | None = None
    force: bool = False
    ensemble: bool = False
    plugins: Path | None = None
    warmup: bool = True


@dataclass(frozen=True)
class BuiltModel:
    name: str
    platform: str
    source: str
    max_batch_size: int
    files: tuple[str, ...]


@dataclass(frozen=True)
class RepositoryResult:
    path: Path
    models: tuple[BuiltModel, ...]
    plugin_library: Path | None = None
    tensorrt_version: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


# --- reading targets -----------------------------------------------------------------------------


def _json_or_none(value) -> str:
    return "" if value is None else tc.json_param(value)


def describe_plan(path: Path, sidecar: sc.EngineSidecar) -> ModelSource:
    """An engine is described by its sidecar only (read and checked by the target resolver):
    nothing here can deserialise it."""
    problems = sc.check_sidecar(sidecar, {"engine_sha256": sha256_file(path)})
    if problems:
        raise InputError(f"{path}: {problems[0]}")

    batch = sidecar.batch

    def specs(table: dict) -> tuple[tc.TensorSpec, ...]:
        # A dynamic batch is -1, as in an ONNX graph: the batching then follows the ONNX path.
        def shape(s: dict) -> tuple[int, ...]:
            return tuple(s["shape"]) if batch is None else (-1, *s["shape"][1:])

        return tuple(
            tc.TensorSpec(n, tc.triton_dtype_from_sidecar(s["dtype"]), shape(s))
            for n, s in table.items()
        )

    info = {
        "source": path.name,
        "toolkit_version": sidecar.toolkit_version or "",
        "arch": sidecar.arch or "",
        "merge_impl": sidecar.merge_impl or "",
        "schedule": _json_or_none(sidecar.schedule),
        "precision": sidecar.precision.value,
        "tensorrt_version": sidecar.tensorrt_version,
        "cuda_version": sidecar.cuda_version or "",
        "gpu_name": sidecar.gpu_name or "",
        "compute_capability": sidecar.compute_capability or "",
        "engine_sha256": sidecar.engine_sha256 or "",
        "onnx_sha256": sidecar.onnx_sha256 or "",
        "checkpoint_sha256": sidecar.checkpoint_sha256 or "",
        "plugin_library_sha256": sidecar.plugin_library_sha256 or "",
        "max_batch": "" if batch is None else str(batch.max),  # the engine's batch range's max
    }
    return ModelSource(
        path=path,
        platform=tc.PLATFORM_PLAN,
        inputs=specs(sidecar.inputs),
        outputs=specs(sidecar.outputs),
        info=info,
        needs_plugin=sidecar.has_plugin_layers,
        plugin_sha256=sidecar.plugin_library_sha256,
        tensorrt_version=sidecar.tensorrt_version,
    )


def _onnx_specs(values) -> tuple[tc.TensorSpec, ...]:
    import onnx

    specs = []
    for v in values:
        t = v.type.tensor_type
        dtype = tc.triton_dtype_from_onnx(onnx.TensorProto.DataType.Name(t.elem_type))
        # dim_param (named) or unset dims are dynamic: Triton writes them as -1.
        shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
        specs.append(tc.TensorSpec(v.name, dtype, shape))
    return tuple(specs)


def describe_onnx(path: Path) -> ModelSource:
    import onnx

    from vidtldr_deploy.export.metadata import (
        GraphFormError,
        read_metadata,
        require_local_functions,
    )

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # onnx raises DecodeError, OSError, ...: the user needs the cause
        raise InputError(f"{path} is not an ONNX model: {err}") from None
    if any(
        t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer
    ):  # Triton's repository holds model.onnx alone; its weights must be inside
        raise InputError(
            f"{path} keeps its weights in external data files: re-save it as one file "
            "(onnx.save(onnx.load(path), out)) before serving it"
        )
    initializers = {t.name for t in model.graph.initializer}
    meta = read_metadata(model)
    try:
        require_local_functions(meta, path)
    except GraphFormError as err:
        raise GraphFormError(
            f"{err}. Triton's ONNX Runtime backend cannot load it either: serve the engine built "
            "from it (.plan), or the --graph-form portable export"
        ) from None
    info = {
        "source": path.name,
        "toolkit_version": meta.get("version", ""),
        "arch": meta.get("arch", ""),
        "frames": meta.get("frames", ""),
        "merge_impl": meta.get("merge_impl", ""),
        "schedule": meta.get("schedule", ""),
        "checkpoint": meta.get("checkpoint", ""),
        "checkpoint_sha256": meta.get("checkpoint_sha256", ""),
        "onnx_sha256": sha256_file(path),
        "max_batch": meta.get("max_batch", ""),  # a dynamic batch's upper end (export --max-batch)
    }
    return ModelSource(
        path=path,
        platform=tc.PLATFORM_ONNX,
        inputs=_onnx_specs([i for i in model.graph.input if i.name not in initializers]),
        outputs=_onnx_specs(model.graph.output),
        info=info,
    )


def describe_target(path: str | Path) -> ModelSource:
    """A TARGET opened by the target resolver (target/resolver.py, `resolve_served`): an engine's
    sidecar, and the graph beside it where there is one, are checked as every command checks them."""
    from vidtldr_deploy.target import TargetKind, resolve_served

    target = resolve_served(path)
    if target.kind is TargetKind.ENGINE:
        return describe_plan(target.path, target.sidecar)
    return describe_onnx(target.path)


# --- names ---------------------------------------------------------------------------------------


def model_names(sources: Sequence[ModelSource], name: str | None, ensemble: bool) -> list[str]:
    """--name for one target, else the file stems; every derived name checked, no duplicates."""
    if name is not None and len(sources) != 1:
        raise InputError(
            f"--name names one model, but {len(sources)} targets were given: leave it out to "
            "name each model after its file"
        )
    names = [name] if name is not None else [tc.name_from_stem(s.path.stem) for s in sources]
    taken: dict[str, str] = {}
    for src, base in zip(sources, names):
        tc.check_model_name(base)
        derived = [base] + ([base + PREPROCESS_SUFFIX, base + ENSEMBLE_SUFFIX] if ensemble else [])
        for n in derived:
            tc.check_model_name(n)
            if n in taken:
                raise InputError(
                    f"two targets make the model name {n!r} ({taken[n]} and {src.path}): "
                    "rename a file, or build them into separate repositories with --name"
                )
            taken[n] = str(src.path)
    return names


# --- plugin library ------------------------------------------------------------------------------


def check_shared_object(path: Path) -> Path:
    """--plugins must be an ELF shared object (e_type ET_DYN): anything else would be copied into
    the repository and fail only when tritonserver loads it."""
    try:
        with open(path, "rb") as f:
            head = f.read(18)
    except OSError as err:
        raise InputError(f"--plugins {path} cannot be read: {err.strerror or err}") from None
    little = head[5:6] != b"\x02"  # EI_DATA: 1 little-endian, 2 big-endian
    e_type = int.from_bytes(head[16:18], "little" if little else "big") if len(head) == 18 else 0
    if head[:4] != b"\x7fELF" or e_type != 3:  # ET_DYN
        raise InputError(
            f"--plugins {path} is not an ELF shared object (.so): pass the libvidtldr_plugins.so "
            "that vidtldr build-plugins wrote"
        )
    return path


def resolve_plugin(sources: Sequence[ModelSource], plugins: Path | None) -> Path | None:
    """The plugin library the plans need (None if none does); checked against every sidecar."""
    from vidtldr_deploy.runtime import plugin_build

    needing = [s for s in sources if s.needs_plugin]
    if not needing:
        return None
    try:
        library = plugin_build.find_plugin_library(plugins)
    except VidTLDRError as err:
        raise InputError(
            f"{needing[0].path} holds vidtldr plugin layers, so Triton must load "
            f"libvidtldr_plugins.so built for TensorRT {needing[0].tensorrt_version}: {err} Or "
            "pass --plugins PATH."
        ) from None
    check_shared_object(library)
    digest = sha256_file(library)
    for src in needing:
        if src.plugin_sha256 and src.plugin_sha256 != digest:
            raise InputError(
                f"plugin library {library} (sha256 {digest[:12]}) is not the one {src.path} was "
                f"built with (sha256 {src.plugin_sha256[:12]}): pass that library with --plugins, "
                "or rebuild the engine with this one"
            )
    versions = sorted({s.tensorrt_version for s in needing if s.tensorrt_version})
    if len(versions) > 1:
        raise InputError(
            f"the plans were built with different TensorRT versions ({', '.join(versions)}): one "
            "Triton container has one TensorRT; build them into separate repositories"
        )
    return library


# --- writing -------------------------------------------------------------------------------------


def _check_options(opts: RepositoryOptions) -> None:
    if not 1 <= opts.instances <= MAX_INSTANCES:
        raise InputError(f"--instances must be 1 to {MAX_INSTANCES}, got {opts.instances}")
    if opts.device not in KINDS:
        raise InputError(f"--device must be one of {sorted(KINDS)}, got {opts.device!r}")
    if opts.plugins is not None:
        check_shared_object(opts.plugins)


def _settings(src: ModelSource, opts: RepositoryOptions) -> tc.ModelSettings:
    if src.platform == tc.PLATFORM_PLAN and opts.device != "gpu":
        raise InputError(f"{src.path}: a TensorRT engine runs on the GPU only; drop --device cpu")
    params = {k: v for k, v in src.info.items() if v}
    params["repository_toolkit_version"] = __version__
    return tc.ModelSettings(opts.instances, KINDS[opts.device], opts.warmup, params)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


DEFAULT_MAX_BATCH = 8  # a dynamic-batch graph that records no upper end


def _batching(src: ModelSource, opts: RepositoryOptions) -> tc.Batching:
    recorded = int(src.info.get("max_batch") or 0)
    wanted = opts.max_batch_size
    if wanted is None:
        wanted = recorded or DEFAULT_MAX_BATCH
    if recorded and wanted > recorded:
        raise InputError(
            f"--max-batch-size {wanted}: {src.path} takes at most {recorded} clips per batch "
            f"(exported with --max-batch {recorded}); leave --max-batch-size out or lower it"
        )
    return tc.choose_batching(
        src.inputs, src.outputs, wanted, opts.max_queue_delay_us, str(src.path)
    )


def _write_model(root: Path, name: str, src: ModelSource, opts: RepositoryOptions) -> BuiltModel:
    batching = _batching(src, opts)
    config = tc.model_config(
        name, src.platform, src.inputs, src.outputs, batching, _settings(src, opts), src.filename
    )
    (root / name / "1").mkdir(parents=True)
    shutil.copyfile(src.path, root / name / "1" / src.filename)  # byte for byte: hashes hold
    _write_text(root / name / "config.pbtxt", tc.to_pbtxt(config))
    return BuiltModel(
        name, src.platform, str(src.path), batching.max_batch_size,
        (f"{name}/config.pbtxt", f"{name}/1/{src.filename}"),
    )  # fmt: skip


def _clip_recipe(src: ModelSource, height: int, width: int):
    from vidtldr_deploy.clips.recipe import recipe_for

    arch = src.info.get("arch", "")
    if not arch:
        raise InputError(
            f"{src.path} records no architecture (vidtldr.arch), so the clip recipe of its "
            "preprocessing model is unknown: --ensemble needs a graph exported by vidtldr"
        )
    if height != width:
        raise InputError(f"{src.path}: --ensemble needs square frames, got {height}x{width}")
    return recipe_for(arch, image_size=height)


def _write_ensemble(
    root: Path, name: str, src: ModelSource, opts: RepositoryOptions
) -> list[BuiltModel]:
    if len(src.inputs) != 1:
        raise InputError(f"{src.path}: --ensemble needs a model with one video input")
    video = src.inputs[0]
    if len(video.shape) != 5 or any(d < 1 for d in video.shape[1:]):
        raise InputError(
            f"{src.path}: --ensemble needs a (B, 3, T, H, W) input, static but for a dynamic "
            f"batch, got {list(video.shape)}"
        )
    # A dynamic-batch graph: every model of the ensemble batches to the same max_batch_size.
    batching = _batching(src, opts) if video.shape[0] < 1 else tc.Batching(0)
    pre_name, ens_name = name + PREPROCESS_SUFFIX, name + ENSEMBLE_SUFFIX
    batch, _, frames, height, width = video.shape
    params = {
        "engine_model": name,
        "arch": src.info.get("arch", ""),
        # The whole recipe (sampling, size, crop, mean/std), so the Python backend reads it from
        # its config instead of the model registry, which would need torch in the Triton image.
        "recipe": _clip_recipe(src, height, width).to_json(),
        "input_shape": json.dumps(list(video.shape)),
        "frames": str(frames),
        "bytes_input": BYTES_INPUT,
    }
    settings = tc.ModelSettings(opts.instances, "KIND_CPU", False, params)
    pre = tc.preprocess_config(pre_name, BYTES_INPUT, video, settings, batching)
    _write_text(root / pre_name / "config.pbtxt", tc.to_pbtxt(pre))
    _write_text(root / pre_name / "1" / "model.py", _PREPROCESS_TEMPLATE.read_text())
    ens = tc.ensemble_config(ens_name, pre_name, name, BYTES_INPUT, video, src.outputs, batching)
    (root / ens_name / "1").mkdir(parents=True)  # Triton wants a version folder, even empty
    _write_text(root / ens_name / "config.pbtxt", tc.to_pbtxt(ens))
    return [
        BuiltModel(
            pre_name, "python", str(src.path), batching.max_batch_size,
            (f"{pre_name}/config.pbtxt", f"{pre_name}/1/model.py"),
        ),
        BuiltModel(
            ens_name, tc.PLATFORM_ENSEMBLE, str(src.path), batching.max_batch_size,
            (f"{ens_name}/config.pbtxt",),
        ),
    ]  # fmt: skip


def plugin_load_commands(repo_in_container: str = CONTAINER_REPO) -> dict[str, str]:
    """The two ways to get the plugin creators registered in tritonserver (one is enough)."""
    lib = f"{repo_in_container}/{PLUGIN_FILENAME}"
    return {
        "ld_preload": f"LD_PRELOAD={lib} tritonserver --model-repository={repo_in_container}",
        "backend_config": (
            f"tritonserver --model-repository={repo_in_container} "
            f"--backend-config=tensorrt,plugins={lib}"
        ),
    }


def _manifest(
    result_models: list[BuiltModel],
    sources: dict[str, ModelSource],
    plugin: Path | None,
    plugin_sha: str | None,
    trt: str | None,
) -> dict:
    return {
        "format": REPO_FORMAT,
        "format_version": 1,
        "toolkit_version": __version__,
        "tensorrt_version": trt,
        "triton_image": (
            "nvcr.io/nvidia/tritonserver:<yy.mm>-py3 of the same release as the "
            f"nvcr.io/nvidia/tensorrt:<yy.mm>-py3 that built the engines (TensorRT {trt})"
            if trt else "any nvcr.io/nvidia/tritonserver:<yy.mm>-py3 (ONNX Runtime backend)"
        ),
        "plugin_library": None if plugin is None else {
            "file": PLUGIN_FILENAME,
            "source": str(plugin),
            "sha256": plugin_sha,
            "built_for_tensorrt": trt,
            "load": plugin_load_commands(),
        },
        "models": [
            {
                "name": m.name,
                "platform": m.platform,
                "source": m.source,
                "max_batch_size": m.max_batch_size,
                "files": list(m.files),
                **({"provenance": sources[m.name].info} if m.name in sources else {}),
            }
            for m in result_models
        ],
    }  # fmt: skip


def _readme(manifest: dict) -> str:
    lines = [
        "# Triton model repository (vidtldr-deploy)",
        "",
        f"Built by vidtldr-deploy {manifest['toolkit_version']}. Models:",
        "",
        *[f"- `{m['name']}` ({m['platform']}, from {m['source']})" for m in manifest["models"]],
        "",
        "Serve it (see docker/docker-compose.triton.yml of vidtldr-deploy):",
        "",
        "```",
        f"tritonserver --model-repository={CONTAINER_REPO}",
        "```",
    ]
    plugin = manifest["plugin_library"]
    if plugin:
        load = plugin["load"]
        lines += [
            "",
            f"## Plugin library: `{PLUGIN_FILENAME}` (sha256 {plugin['sha256']})",
            "",
            f"Built for TensorRT {plugin['built_for_tensorrt']}: use the tritonserver image whose",
            "TensorRT is that version (same NGC release as the TensorRT image that built the",
            "engines). Load it with either of:",
            "",
            "```",
            load["backend_config"],
            load["ld_preload"],
            "```",
        ]
    if any(m["platform"] == "python" for m in manifest["models"]):
        lines += ["", *PREPROCESS_IMAGE_NEEDS]
    return "\n".join(lines) + "\n"


def _is_repository(folder: Path) -> bool:
    """A folder this toolkit wrote: its vidtldr.json names the repository format."""
    try:
        manifest = json.loads((folder / "vidtldr.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == REPO_FORMAT


def _prepare_output(out: Path, force: bool, targets: Sequence[str | Path] = ()) -> None:
    """Refuse an output folder whose replacement could delete what the user owns: the working
    folder or one above it, a folder holding a TARGET, and (even with --force) a non-empty folder
    that is not a repository this toolkit wrote."""
    if not out.parent.is_dir():
        raise InputError(
            f"output directory {out.parent} does not exist: create it or choose another -o"
        )
    if out.exists() and not out.is_dir():
        raise InputError(f"-o {out} is a file, not a repository folder")
    where = out.resolve()
    if where == Path.cwd().resolve() or where in Path.cwd().resolve().parents or not where.name:
        raise InputError(
            f"-o {out} is the working folder (or holds it): give the repository its own folder, "
            "e.g. -o model_repository"
        )
    for target in targets:
        if where in Path(target).resolve().parents:
            raise InputError(
                f"-o {out} holds the TARGET {target}: writing the repository there would replace "
                "it; choose another folder"
            )
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise InputError(
                f"-o {out} exists and is not empty: pass --force to replace the whole repository, "
                "or choose another folder"
            )
        if not _is_repository(out):
            raise InputError(
                f"-o {out} is not a repository vidtldr triton wrote (no vidtldr.json of one): "
                "--force replaces only such a repository, so nothing was touched; choose another "
                "folder"
            )
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise InputError(f"-o {out}: folder {out.parent} is not writable: choose another -o")


def _place(tmp: Path, out: Path) -> None:
    """Swap the finished repository in: the old one (if any) is removed only after the rename."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        os.replace(out, old / "repo")
    try:
        os.replace(tmp, out)
    except OSError:
        if old is not None:
            os.replace(old / "repo", out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build_repository(
    targets: Sequence[str | Path], out: str | Path, opts: RepositoryOptions = RepositoryOptions()
) -> RepositoryResult:
    """Write the Triton repository `out` for `targets` (see the module docstring)."""
    if not targets:
        raise InputError("give at least one TARGET (.plan with its sidecar, or .onnx)")
    out = Path(out)
    _check_options(opts)
    _prepare_output(out, opts.force, targets)
    sources = [describe_target(t) for t in targets]
    names = model_names(sources, opts.name, opts.ensemble)
    plugin = resolve_plugin(sources, opts.plugins)
    trt_versions = sorted({s.tensorrt_version for s in sources if s.tensorrt_version})
    trt = trt_versions[0] if len(trt_versions) == 1 else (", ".join(trt_versions) or None)
    notes = []
    if opts.plugins is not None and plugin is None:
        notes.append("--plugins given, but no engine needs the plugin library: not copied")
    if any(
        s.platform == tc.PLATFORM_ONNX and s.info.get("merge_impl") == "plugin" for s in sources
    ):
        notes.append(
            "plugin-form ONNX graphs run in Triton's ONNX Runtime backend as they are: ONNX "
            "Runtime inlines the vidtldr local functions (no plugin library needed)"
        )

    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp.", dir=out.parent))
    except OSError as err:
        raise (write_error(out, err) or err) from err
    try:
        built: list[BuiltModel] = []
        by_name: dict[str, ModelSource] = {}
        for name, src in zip(names, sources):
            built.append(_write_model(tmp, name, src, opts))
            by_name[name] = src
            if opts.ensemble:
                built += _write_ensemble(tmp, name, src, opts)
        plugin_sha = None
        if plugin is not None:
            shutil.copyfile(plugin, tmp / PLUGIN_FILENAME)
            plugin_sha = sha256_file(tmp / PLUGIN_FILENAME)
        manifest = _manifest(built, by_name, plugin, plugin_sha, trt)
        _write_text(tmp / "vidtldr.json", json.dumps(manifest, indent=2) + "\n")
        _write_text(tmp / "README.md", _readme(manifest))
        # mkdtemp makes it 0700: like every other output it follows the umask (the server in a
        # container may be another user)
        os.chmod(tmp, 0o777 & ~umask())
        _place(tmp, out)
    except OSError as err:
        named = write_error(out, err)
        if named is None:
            raise
        raise named from err
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return RepositoryResult(
        out, tuple(built), None if plugin is None else out / PLUGIN_FILENAME, trt, tuple(notes)
    )
