"""pipelines.yaml: the shipped catalog, refused configurations, bare steps, and ordering properties."""

import heapq
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.pipelines import (
    DependencyCycle,
    InvalidPipelineConfig,
    PipelineError,
    UnknownPipeline,
    load_catalog,
    parse_catalog,
)
from streams.resolution import resolve
from tests.unit.factories import PIPELINES_FILE, catalog_doc, shipped_catalog, step_doc

SHIPPED_ORDERS = {
    "spellcheck": ["spellcheck"],
    "nlp": ["spellcheck", "nlp"],
    "cj_assessment": ["spellcheck", "cj_assessment"],
    "ai_feedback": ["spellcheck", "nlp", "ai_feedback"],
    "comprehensive": ["spellcheck", "nlp", "cj_assessment", "ai_feedback"],
}
STEP_EVENT_TYPES = {
    "spellcheck": "huleedu.els.spellcheck.initiate.command.v1",
    "nlp": "huleedu.batch.nlp.initiate.command.v1",
    "cj_assessment": "huleedu.batch.cj_assessment.initiate.command.v1",
    "ai_feedback": "huleedu.batch.ai_feedback.initiate.command.v1",
}


# ---- the shipped file -----------------------------------------------------------------------------


def test_shipped_file_has_the_five_pipelines_in_order() -> None:
    assert load_catalog(PIPELINES_FILE).names == list(SHIPPED_ORDERS)


@pytest.mark.parametrize(("name", "order"), SHIPPED_ORDERS.items())
def test_shipped_pipeline_order(name: str, order: list[str]) -> None:
    assert [s.name for s in shipped_catalog().plan(name)] == order


@pytest.mark.parametrize("name", SHIPPED_ORDERS)
def test_shipped_steps_carry_the_platform_event_types(name: str) -> None:
    for step in shipped_catalog().plan(name):
        assert step.event_type == STEP_EVENT_TYPES[step.name]
        assert step.service_name and step.event_data_model


def test_shipped_ai_feedback_depends_on_spellcheck_and_nlp() -> None:
    pipeline = shipped_catalog().pipelines["ai_feedback"]
    assert pipeline.step("ai_feedback").depends_on == ("spellcheck", "nlp")
    assert pipeline.closure("ai_feedback") == {"spellcheck", "nlp", "ai_feedback"}


def test_shipped_step_names_and_accepts() -> None:
    catalog = shipped_catalog()
    assert catalog.step_names == ["spellcheck", "nlp", "cj_assessment", "ai_feedback"]
    assert all(catalog.accepts(n) for n in [*catalog.names, *catalog.step_names])
    assert not catalog.accepts("ghost")


# ---- refused documents ----------------------------------------------------------------------------


def _one(*steps: dict[str, Any]) -> dict[str, Any]:
    return catalog_doc(x=list(steps))


def _without(step: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in step.items() if k != field}


INVALID_DOCUMENTS = [
    pytest.param(
        _one(step_doc("spellcheck"), step_doc("nlp", ["spellcheck", "ghost"])),
        "Step 'nlp' in pipeline 'x' depends on unknown step 'ghost'",
        id="unknown-dependency",
    ),
    pytest.param(
        _one(step_doc("a", ["b"]), step_doc("b", ["a"])),
        "Dependency cycle detected in pipeline 'x': a -> b -> a",
        id="two-cycle",
    ),
    pytest.param(
        _one(step_doc("a", ["b"]), step_doc("b", ["c"]), step_doc("c", ["a"])),
        "Dependency cycle detected in pipeline 'x': a -> b -> c -> a",
        id="three-cycle",
    ),
    pytest.param(_one(step_doc("a", ["a"])), "Dependency cycle detected in pipeline 'x': a -> a", id="self-loop"),
    pytest.param(
        _one(step_doc("root"), step_doc("a", ["root", "b"]), step_doc("b", ["a"])),
        "Dependency cycle detected in pipeline 'x': a -> b -> a",
        id="cycle-behind-a-valid-step",
    ),
    pytest.param(
        _one(step_doc("a"), step_doc("b", ["a"]), step_doc("a")),
        "Duplicate step 'a' in pipeline 'x'",
        id="duplicate-step",
    ),
    pytest.param(
        _one(step_doc("spellcheck"), _without(step_doc("nlp", ["spellcheck"]), "event_type")),
        "Step 'nlp' in pipeline 'x': missing field 'event_type'",
        id="missing-event-type",
    ),
    pytest.param(
        _one(_without(_without(step_doc("nlp"), "service_name"), "event_data_model")),
        "Step 'nlp' in pipeline 'x': missing field 'service_name'; missing field 'event_data_model'",
        id="two-missing-fields",
    ),
    pytest.param(
        _one(step_doc("a"), _without(step_doc("b"), "name")),
        "Step #2 in pipeline 'x': missing field 'name'",
        id="missing-name",
    ),
    pytest.param(
        _one({**step_doc("a"), "dependson": ["b"]}),
        "Step 'a' in pipeline 'x': unknown field 'dependson'",
        id="unknown-step-field",
    ),
    pytest.param(
        _one({**step_doc("a"), "depends_on": "b"}),
        "Step 'a' in pipeline 'x': field 'depends_on': Input should be a valid tuple",
        id="depends-on-not-a-list",
    ),
    pytest.param(
        _one({**step_doc("a"), "service_name": ""}),
        "Step 'a' in pipeline 'x': field 'service_name': String should have at least 1 character",
        id="empty-field",
    ),
    pytest.param(
        _one("just-a-string"),
        "Step #1 in pipeline 'x': field 'step': Input should be a valid dictionary or instance of PipelineStep",
        id="step-not-a-mapping",
    ),
    pytest.param(
        {"pipelines": {"x": ["a"]}},
        "Pipeline 'x' must be a mapping with 'description' and 'steps'",
        id="pipeline-not-a-mapping",
    ),
    pytest.param(
        {"pipelines": {"x": {"description": "d"}}},
        "Pipeline 'x' is missing field 'steps' (a non-empty list)",
        id="missing-steps",
    ),
    pytest.param(
        {"pipelines": {"x": {"steps": []}}},
        "Pipeline 'x' is missing field 'steps' (a non-empty list)",
        id="empty-steps",
    ),
    pytest.param(
        {"pipelines": {"x": {"steps": "spellcheck"}}},
        "Pipeline 'x' is missing field 'steps' (a non-empty list)",
        id="steps-a-string",
    ),
    pytest.param(None, "Top level must be a mapping with a 'pipelines' mapping", id="empty-document"),
    pytest.param(["a"], "Top level must be a mapping with a 'pipelines' mapping", id="list-document"),
    pytest.param("text", "Top level must be a mapping with a 'pipelines' mapping", id="scalar-document"),
    pytest.param({"other": {}}, "Top level must be a mapping with a 'pipelines' mapping", id="no-pipelines-key"),
    pytest.param({"pipelines": ["x"]}, "Top level must be a mapping with a 'pipelines' mapping", id="pipelines-list"),
    pytest.param({"pipelines": {}}, "'pipelines' is empty: define at least one pipeline", id="no-pipelines"),
]


@pytest.mark.parametrize(("document", "message"), INVALID_DOCUMENTS)
def test_invalid_document_is_refused_with_exact_message(document: Any, message: str) -> None:
    with pytest.raises(InvalidPipelineConfig) as info:
        parse_catalog(document)
    assert str(info.value) == message
    assert isinstance(info.value, PipelineError)


@pytest.mark.parametrize(
    "steps",
    [
        [step_doc("a", ["b"]), step_doc("b", ["a"])],
        [step_doc("a", ["a"])],
    ],
)
def test_cycle_is_a_dependency_cycle_error(steps: list[dict[str, Any]]) -> None:
    with pytest.raises(DependencyCycle):
        parse_catalog(catalog_doc(x=steps))


def test_error_names_the_offending_pipeline_among_several() -> None:
    doc = catalog_doc(good=[step_doc("a")], bad=[step_doc("a", ["ghost"])])
    with pytest.raises(InvalidPipelineConfig, match=r"^Step 'a' in pipeline 'bad' depends on unknown step 'ghost'$"):
        parse_catalog(doc)


def test_dependency_may_be_declared_later() -> None:
    catalog = parse_catalog(_one(step_doc("nlp", ["spellcheck"]), step_doc("spellcheck")))
    assert [s.name for s in catalog.plan("x")] == ["spellcheck", "nlp"]


def test_same_step_in_two_pipelines_is_not_a_duplicate() -> None:
    catalog = parse_catalog(catalog_doc(one=[step_doc("a")], two=[step_doc("a"), step_doc("b", ["a"])]))
    assert catalog.step_names == ["a", "b"]


def test_description_is_optional_and_kept() -> None:
    doc = {"pipelines": {"x": {"steps": [step_doc("a")]}, "y": {"description": "Why", "steps": [step_doc("a")]}}}
    catalog = parse_catalog(doc)
    assert catalog.pipelines["x"].description == ""
    assert catalog.pipelines["y"].description == "Why"


# ---- refused files --------------------------------------------------------------------------------


def test_bad_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pipelines.yaml"
    path.write_text("pipelines:\n  x: [unclosed\n", encoding="utf-8")
    with pytest.raises(InvalidPipelineConfig, match=rf"^Cannot parse pipelines file {path}: "):
        load_catalog(path)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(lambda d: d / "missing.yaml", "No such file or directory", id="missing"),
        pytest.param(lambda d: d, "Is a directory", id="directory"),
    ],
)
def test_unreadable_file_is_refused(tmp_path: Path, make: Any, reason: str) -> None:
    path = make(tmp_path)
    with pytest.raises(InvalidPipelineConfig) as info:
        load_catalog(path)
    assert str(info.value) == f"Cannot read pipelines file {path}: {reason}"


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pipelines.yaml"
    path.write_bytes(b"pipelines:\n  \xff\xfe: {}\n")
    with pytest.raises(InvalidPipelineConfig, match=rf"^Cannot read pipelines file {path}: not UTF-8 text"):
        load_catalog(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Top level must be a mapping with a 'pipelines' mapping"),
        ("# only a comment\n", "Top level must be a mapping with a 'pipelines' mapping"),
        ("- a\n- b\n", "Top level must be a mapping with a 'pipelines' mapping"),
        ("pipelines:\n", "Top level must be a mapping with a 'pipelines' mapping"),
        ("pipelines: {}\n", "'pipelines' is empty: define at least one pipeline"),
    ],
)
def test_empty_or_non_mapping_file_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pipelines.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidPipelineConfig) as info:
        load_catalog(path)
    assert str(info.value) == message


def test_yaml_file_with_a_cycle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pipelines.yaml"
    path.write_text(
        "pipelines:\n"
        "  x:\n"
        "    steps:\n"
        "      - {name: a, service_name: s, event_type: e, event_data_model: m, depends_on: [b]}\n"
        "      - {name: b, service_name: s, event_type: e, event_data_model: m, depends_on: [a]}\n",
        encoding="utf-8",
    )
    with pytest.raises(DependencyCycle, match=r"^Dependency cycle detected in pipeline 'x': a -> b -> a$"):
        load_catalog(path)


# ---- bare step names ------------------------------------------------------------------------------

BARE = catalog_doc(
    full=[
        step_doc("a"),
        step_doc("d", ["a"]),
        step_doc("b", ["a"]),
        step_doc("c", ["b"]),
        step_doc("e"),
    ]
)


@pytest.mark.parametrize(
    ("requested", "order"),
    [
        ("a", ["a"]),
        ("b", ["a", "b"]),
        ("c", ["a", "b", "c"]),
        ("d", ["a", "d"]),
        ("e", ["e"]),
        ("full", ["a", "d", "b", "c", "e"]),
    ],
)
def test_bare_step_means_step_plus_transitive_dependencies(requested: str, order: list[str]) -> None:
    catalog = parse_catalog(BARE)
    assert catalog.accepts(requested)
    assert [s.name for s in catalog.plan(requested)] == order


def test_unknown_name_raises_unknown_pipeline_naming_the_valid_ones() -> None:
    with pytest.raises(UnknownPipeline) as info:
        shipped_catalog().plan("ghost")
    assert str(info.value) == (
        "Unknown pipeline 'ghost'; valid pipelines: spellcheck, nlp, cj_assessment, ai_feedback, comprehensive"
    )


# ---- properties over random DAGs ------------------------------------------------------------------


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[str], dict[str, list[str]]]:
    """Draw (declaration order, dependencies) of an acyclic pipeline of 1-8 steps."""
    names = [f"s{i}" for i in range(draw(st.integers(1, 8)))]
    hidden_order = draw(st.permutations(names))  # any DAG has a topological order: draw that first
    deps = {
        name: draw(st.lists(st.sampled_from(hidden_order[:i]), unique=True)) if i else []
        for i, name in enumerate(hidden_order)
    }
    return list(draw(st.permutations(names))), deps


def _document(declared: list[str], deps: dict[str, list[str]]) -> dict[str, Any]:
    return catalog_doc(p=[step_doc(name, deps[name]) for name in declared])


def _reference_order(declared: list[str], deps: dict[str, list[str]], only: set[str]) -> list[str]:
    """Kahn's algorithm picking the earliest-declared ready step: the order the spec asks for."""
    index = {name: i for i, name in enumerate(declared)}
    remaining = {n: set(deps[n]) & only for n in only}
    ready = [index[n] for n in only if not remaining[n]]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = declared[heapq.heappop(ready)]
        order.append(name)
        for other in only:
            if name in remaining[other]:
                remaining[other].discard(name)
                if not remaining[other]:
                    heapq.heappush(ready, index[other])
    return order


def _closure(deps: dict[str, list[str]], step: str) -> set[str]:
    seen = {step}
    for dep in deps[step]:
        seen |= _closure(deps, dep)
    return seen


@given(dags())
def test_every_step_comes_after_its_dependencies(dag: tuple[list[str], dict[str, list[str]]]) -> None:
    declared, deps = dag
    order = [s.name for s in parse_catalog(_document(declared, deps)).plan("p")]
    assert sorted(order) == sorted(declared)
    for position, name in enumerate(order):
        assert set(deps[name]) <= set(order[:position])


@given(dags())
def test_ties_are_broken_by_declaration_order(dag: tuple[list[str], dict[str, list[str]]]) -> None:
    declared, deps = dag
    order = [s.name for s in parse_catalog(_document(declared, deps)).plan("p")]
    assert order == _reference_order(declared, deps, set(declared))


@given(dags(), st.randoms(use_true_random=False))
def test_order_is_deterministic_and_independent_of_presentation(
    dag: tuple[list[str], dict[str, list[str]]], rnd: random.Random
) -> None:
    declared, deps = dag
    expected = [s.name for s in parse_catalog(_document(declared, deps)).plan("p")]
    assert [s.name for s in parse_catalog(_document(declared, deps)).plan("p")] == expected
    # Same pipeline, presented differently: shuffled depends_on lists, shuffled keys inside each step,
    # and unrelated pipelines declared before and after it.
    steps = []
    for name in declared:
        step = step_doc(name, rnd.sample(deps[name], len(deps[name])))
        keys = rnd.sample(list(step), len(step))
        steps.append({k: step[k] for k in keys})
    shuffled = catalog_doc(before=[step_doc("zz"), step_doc("s0")], p=steps, after=[step_doc("s1")])
    assert [s.name for s in parse_catalog(shuffled).plan("p")] == expected


@given(dags(), st.data())
def test_bare_step_plan_is_its_closure_in_pipeline_order(
    dag: tuple[list[str], dict[str, list[str]]], data: st.DataObject
) -> None:
    declared, deps = dag
    step = data.draw(st.sampled_from(declared))
    plan = [s.name for s in parse_catalog(_document(declared, deps)).plan(step)]
    assert plan == _reference_order(declared, deps, _closure(deps, step))


@given(dags(), st.data())
def test_resolve_prunes_exactly_the_completed_steps_and_keeps_order(
    dag: tuple[list[str], dict[str, list[str]]], data: st.DataObject
) -> None:
    declared, deps = dag
    catalog = parse_catalog(_document(declared, deps))
    # Completed sets may also name steps outside the pipeline: they must not matter.
    completed = frozenset(data.draw(st.lists(st.sampled_from([*declared, "elsewhere"]), unique=True)))
    plan = [s.name for s in catalog.plan("p")]
    resolution = resolve(catalog, "p", completed)
    final, pruned = resolution.final_pipeline, resolution.pruned_steps
    assert final == [n for n in plan if n not in completed]  # relative order kept, nothing else dropped
    assert pruned == [n for n in plan if n in completed]
    assert set(final) | set(pruned) == set(plan)
    assert not set(final) & set(pruned)
    assert [s.name for s in resolution.steps] == final
    assert resolution == resolve(catalog, "p", completed)
