"""Every Kafka topic name Batch Conductor uses, defined once."""

from enum import StrEnum


class Topic(StrEnum):
    """Platform topics (names are the platform's, byte-for-byte)."""

    PIPELINE_COMMAND = "huleedu.commands.batch.pipeline.v1"
    BATCH_REGISTERED = "huleedu.batch.essays.registered.v1"
    SPELLCHECK_COMPLETED = "huleedu.essay.spellcheck.completed.v1"
    CJ_ASSESSMENT_COMPLETED = "huleedu.cj_assessment.completed.v1"
    ELS_PHASE_OUTCOME = "huleedu.els.batch.phase.outcome.v1"
    PIPELINE_RESOLVED = "huleedu.batch.pipeline.resolved.v1"
    PIPELINE_RESOLUTION_FAILED = "huleedu.batch.pipeline.resolution.failed.v1"
    PHASE_SKIPPED = "huleedu.batch.phase.skipped.v1"


# Our own internal topic: completion events normalised and re-keyed by batch id,
# co-partitioned with the command topic and the state tables.
BATCH_STATE_UPDATES = "batch_conductor.batch.state.updates.v1"

COMPLETION_TOPICS: tuple[str, ...] = (
    Topic.BATCH_REGISTERED,
    Topic.SPELLCHECK_COMPLETED,
    Topic.CJ_ASSESSMENT_COMPLETED,
    Topic.ELS_PHASE_OUTCOME,
)
OUTPUT_TOPICS: tuple[str, ...] = (
    Topic.PIPELINE_RESOLVED,
    Topic.PIPELINE_RESOLUTION_FAILED,
    Topic.PHASE_SKIPPED,
)
INPUT_TOPICS: tuple[str, ...] = (Topic.PIPELINE_COMMAND, *COMPLETION_TOPICS)


# Topics whose records can be dead-lettered: the inputs, and the re-keyed updates (a record there that the worker
# cannot fold would otherwise fail its whole batch).
DLQ_SOURCES: tuple[str, ...] = (*INPUT_TOPICS, BATCH_STATE_UPDATES)


def dlq_topic(topic: str) -> str:
    """Return the dead-letter topic for an input topic."""
    return f"{topic}.DLQ"


def all_topics() -> list[str]:
    """Return every topic the worker reads or writes, DLQs included (for creation at start-up)."""
    names = [*INPUT_TOPICS, BATCH_STATE_UPDATES, *OUTPUT_TOPICS]
    return names + [dlq_topic(t) for t in DLQ_SOURCES]
