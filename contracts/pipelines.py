"""Pipeline definitions (`pipelines.yaml`): models, parsing, validation and dependency ordering."""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class PipelineError(Exception):
    """Base of every pipeline-definition and pipeline-lookup error."""


class InvalidPipelineConfig(PipelineError):
    """`pipelines.yaml` is malformed: bad YAML, a missing field, a duplicate or unknown step."""


class DependencyCycle(InvalidPipelineConfig):
    """Steps of a pipeline depend on each other in a circle."""


class UnknownPipeline(PipelineError):
    """The requested name is neither a pipeline nor a step."""


class PipelineStep(BaseModel):
    """One step (phase) of a pipeline, as BOS needs it to dispatch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    service_name: str = Field(min_length=1)
    event_type: str = Field(min_length=1)
    event_data_model: str = Field(min_length=1)
    depends_on: tuple[str, ...] = ()


class PipelineDefinition(BaseModel):
    """A named pipeline: its steps in declaration order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    steps: tuple[PipelineStep, ...]

    def step(self, name: str) -> PipelineStep:
        """Return the step called `name`."""
        return next(s for s in self.steps if s.name == name)

    def closure(self, step_name: str) -> set[str]:
        """Return `step_name` and all its transitive dependencies."""
        seen: set[str] = set()
        todo = [step_name]
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(self.step(current).depends_on)
        return seen

    def ordered(self, only: set[str] | None = None) -> list[str]:
        """Return a topological order (dependencies first, ties by declaration order) of `only` or all steps."""
        wanted = [s for s in self.steps if only is None or s.name in only]
        remaining = {s.name: set(s.depends_on) & {w.name for w in wanted} for s in wanted}
        order: list[str] = []
        while remaining:
            ready = next(s.name for s in wanted if s.name in remaining and not remaining[s.name])
            order.append(ready)
            del remaining[ready]
            for deps in remaining.values():
                deps.discard(ready)
        return order


class PipelineCatalog(BaseModel):
    """Every pipeline of `pipelines.yaml`, validated (no unknown dependency, duplicate or cycle)."""

    model_config = ConfigDict(frozen=True)

    pipelines: dict[str, PipelineDefinition]

    @property
    def names(self) -> list[str]:
        """Return the pipeline names in declaration order."""
        return list(self.pipelines)

    @property
    def step_names(self) -> list[str]:
        """Return every step name across pipelines, first declaration order."""
        return list(dict.fromkeys(s.name for p in self.pipelines.values() for s in p.steps))

    def accepts(self, requested: str) -> bool:
        """Return whether `requested` names a pipeline or a step."""
        return requested in self.pipelines or requested in self.step_names

    def plan(self, requested: str) -> list[PipelineStep]:
        """Return the ordered steps for a pipeline name, or for a bare step name plus its dependencies."""
        if requested in self.pipelines:
            pipeline = self.pipelines[requested]
            return [pipeline.step(n) for n in pipeline.ordered()]
        for pipeline in self.pipelines.values():
            if any(s.name == requested for s in pipeline.steps):
                return [pipeline.step(n) for n in pipeline.ordered(pipeline.closure(requested))]
        raise UnknownPipeline(f"Unknown pipeline '{requested}'; valid pipelines: {', '.join(self.names)}")


def _step_error(pipeline: str, index: int, raw: Any, exc: ValidationError) -> InvalidPipelineConfig:
    label = f"'{raw['name']}'" if isinstance(raw, Mapping) and raw.get("name") else f"#{index + 1}"
    problems = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "step"
        if err["type"] == "missing":
            problems.append(f"missing field '{field}'")
        elif err["type"] == "extra_forbidden":
            problems.append(f"unknown field '{field}'")
        else:
            problems.append(f"field '{field}': {err['msg']}")
    return InvalidPipelineConfig(f"Step {label} in pipeline '{pipeline}': {'; '.join(problems)}")


def _find_cycle(pipeline: PipelineDefinition) -> list[str] | None:
    deps = {s.name: s.depends_on for s in pipeline.steps}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in deps[node]:
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[node] = 2
        return None

    for step in pipeline.steps:
        if step.name not in state and (cycle := visit(step.name)):
            return cycle
    return None


def _parse_pipeline(name: str, raw: Any) -> PipelineDefinition:
    if not isinstance(raw, Mapping):
        raise InvalidPipelineConfig(f"Pipeline '{name}' must be a mapping with 'description' and 'steps'")
    raw_steps = raw.get("steps")
    if not isinstance(raw_steps, Sequence) or isinstance(raw_steps, str) or not raw_steps:
        raise InvalidPipelineConfig(f"Pipeline '{name}' is missing field 'steps' (a non-empty list)")
    steps: list[PipelineStep] = []
    for index, raw_step in enumerate(raw_steps):
        try:
            steps.append(PipelineStep.model_validate(raw_step))
        except ValidationError as exc:
            raise _step_error(name, index, raw_step, exc) from None
    seen: set[str] = set()
    for step in steps:
        if step.name in seen:
            raise InvalidPipelineConfig(f"Duplicate step '{step.name}' in pipeline '{name}'")
        seen.add(step.name)
    for step in steps:
        for dep in step.depends_on:
            if dep not in seen:
                raise InvalidPipelineConfig(f"Step '{step.name}' in pipeline '{name}' depends on unknown step '{dep}'")
    definition = PipelineDefinition(name=name, description=str(raw.get("description") or ""), steps=tuple(steps))
    if cycle := _find_cycle(definition):
        raise DependencyCycle(f"Dependency cycle detected in pipeline '{name}': {' -> '.join(cycle)}")
    return definition


def parse_catalog(document: Any) -> PipelineCatalog:
    """Validate a parsed `pipelines.yaml` document and return the catalog."""
    if not isinstance(document, Mapping) or not isinstance(document.get("pipelines"), Mapping):
        raise InvalidPipelineConfig("Top level must be a mapping with a 'pipelines' mapping")
    if not document["pipelines"]:
        raise InvalidPipelineConfig("'pipelines' is empty: define at least one pipeline")
    pipelines = {str(n): _parse_pipeline(str(n), raw) for n, raw in document["pipelines"].items()}
    return PipelineCatalog(pipelines=pipelines)


def load_catalog(path: str | Path) -> PipelineCatalog:
    """Read, parse and validate a pipelines file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidPipelineConfig(f"Cannot read pipelines file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:  # a ValueError, not an OSError: the file is there but is not UTF-8 text
        raise InvalidPipelineConfig(f"Cannot read pipelines file {path}: not UTF-8 text ({exc.reason})") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidPipelineConfig(f"Cannot parse pipelines file {path}: {exc}") from None
    return parse_catalog(document)
