"""Platform messages for the benchmarks, built from the platform's own samples, and a fast producer to feed them."""

import asyncio
import json
import random
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "samples"
BASE = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
OWNER = "bench-teacher"
PIPELINES = ("spellcheck", "nlp", "cj_assessment", "ai_feedback", "comprehensive")


@dataclass(frozen=True)
class Record:
    """One message to produce."""

    topic: str
    key: bytes | None
    value: bytes


class Templates:
    """The platform's sample messages (both generations), re-parsed for every message built from them."""

    def __init__(self) -> None:
        self._text = {
            (gen, path.stem): path.read_text() for gen in ("2025", "2026") for path in (SAMPLES / gen).glob("*.json")
        }

    def get(self, generation: str, name: str) -> dict[str, Any]:
        """Return a fresh copy of a sample message."""
        return dict(json.loads(self._text[(generation, name)]))


def _ts(seconds: float) -> str:
    return (BASE + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _stamp(msg: dict[str, Any], rng: random.Random, at: float) -> dict[str, Any]:
    msg["event_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    msg["event_timestamp"] = _ts(at)
    return msg


def _record(msg: dict[str, Any], key: str | None) -> Record:
    return Record(msg["event_type"], key.encode() if key is not None else None, json.dumps(msg).encode())


class Messages:
    """Builds completion events and commands of both generations, deterministic for a seed."""

    def __init__(self, seed: int = 7) -> None:
        self.templates = Templates()
        self.rng = random.Random(seed)

    def registered(self, batch: str, essays: Sequence[str], generation: str = "2026", at: float = 0) -> Record:
        """Return a BatchEssaysRegistered, keyed by batch id."""
        msg = self.templates.get(generation, "registered")
        data = msg["data"]
        data["batch_id" if generation == "2025" else "entity_id"] = batch
        data["essay_ids"] = list(essays)
        data["expected_essay_count"] = len(essays)
        if generation == "2026":
            data["user_id"] = OWNER
        return _record(_stamp(msg, self.rng, at), batch)

    def spellcheck(self, batch: str, essay: str, ok: bool = True, generation: str = "2026", at: float = 1) -> Record:
        """Return one essay's spellcheck completion, keyed by essay id as ELS keys it (the worker re-keys it)."""
        msg = self.templates.get(generation, "spellcheck_success_essay-a")
        data = msg["data"]
        ref = data["entity_ref"] if generation == "2025" else data
        ref["entity_id"], ref["parent_id"] = essay, batch
        meta = data["system_metadata"]["entity"] if generation == "2025" else data["system_metadata"]
        meta["entity_id"], meta["parent_id"] = essay, batch
        data["status"] = "spellchecked_success" if ok else "spellcheck_failed"
        data["timestamp"] = _ts(at)
        return _record(_stamp(msg, self.rng, at), essay)

    def phase_outcome(self, batch: str, phase: str, succeeded: Sequence[str], at: float = 2) -> Record:
        """Return an ELS phase outcome (2026 generation), keyed by batch id."""
        msg = self.templates.get("2026", "els_phase_outcome_nlp")
        msg["data"].update(
            batch_id=batch,
            phase_name=phase,
            processed_essays=[{"essay_id": e, "text_storage_id": f"text-{e}"} for e in succeeded],
            failed_essay_ids=[],
        )
        return _record(_stamp(msg, self.rng, at), batch)

    def cj_completed(self, batch: str, succeeded: Sequence[str], failed: Sequence[str], at: float = 3) -> Record:
        """Return a CJ assessment completion (2026 generation), keyed by batch id."""
        msg = self.templates.get("2026", "cj_assessment_completed")
        data = msg["data"]
        data["entity_id"] = data["system_metadata"]["entity_id"] = batch
        data["processing_summary"].update(successful_essay_ids=list(succeeded), failed_essay_ids=list(failed))
        data["timestamp"] = _ts(at)
        return _record(_stamp(msg, self.rng, at), batch)

    def command(self, batch: str, pipeline: str, at: float = 10) -> tuple[Record, str]:
        """Return a pipeline command keyed by batch id (as the gateway publishes it) and its correlation id."""
        msg = self.templates.get("2026", "client_pipeline_request")
        corr = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        msg["correlation_id"] = corr
        msg["data"].update(batch_id=batch, requested_pipeline=pipeline, client_correlation_id=corr, user_id=OWNER)
        return _record(_stamp(msg, self.rng, at), batch), corr


def essays_of(batch: str, count: int) -> list[str]:
    """Return the essay ids of a benchmark batch."""
    return [f"{batch}-e{j}" for j in range(count)]


def completion_mix(msgs: Messages, batches: Sequence[str], essays: int, wave: int = 16) -> list[Record]:
    """Return a batch's life as the platform reports it, for every batch, waves of batches interleaved.

    Per batch: a registration, one spellcheck completion per essay (keyed by essay id, one in ten failed, one batch
    in four from the 2025 generation), an NLP phase outcome and a CJ completion: `essays + 3` events.
    """
    out: list[Record] = []
    for start in range(0, len(batches), wave):
        group = batches[start : start + wave]
        regs, spells, tails = [], [], []
        for i, batch in enumerate(group):
            gen = "2025" if (start + i) % 4 == 3 else "2026"
            ids = essays_of(batch, essays)
            regs.append(msgs.registered(batch, ids, generation=gen))
            spells.extend(
                msgs.spellcheck(batch, e, ok=(j % 10 != 9), generation=gen, at=1 + j) for j, e in enumerate(ids)
            )
            tails.append(msgs.phase_outcome(batch, "nlp", ids, at=100))
            tails.append(msgs.cj_completed(batch, ids[1:], ids[:1], at=200))
        msgs.rng.shuffle(spells)
        out.extend(regs + spells + tails)
    return out


def registrations(msgs: Messages, batches: Iterable[str], essays: int, spellchecked: bool = False) -> list[Record]:
    """Return one registration per batch; with `spellchecked`, an ELS spellcheck outcome for all its essays too."""
    out = []
    for batch in batches:
        ids = essays_of(batch, essays)
        out.append(msgs.registered(batch, ids))
        if spellchecked:
            out.append(msgs.phase_outcome(batch, "spellcheck", ids, at=5))
    return out


def commands(msgs: Messages, batches: Sequence[str], count: int) -> tuple[list[Record], list[str]]:
    """Return `count` commands for random batches and pipelines, and their correlation ids."""
    records, ids = [], []
    for _ in range(count):
        record, corr = msgs.command(msgs.rng.choice(batches), msgs.rng.choice(PIPELINES))
        records.append(record)
        ids.append(corr)
    return records, ids


async def produce(bootstrap: str, records: Sequence[Record], progress: Callable[[int], None] | None = None) -> None:
    """Send every record (acks=all, batched), waiting for all acknowledgements."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024, request_timeout_ms=30000
    )
    await producer.start()
    try:
        pending: list[asyncio.Future[Any]] = []
        for i, record in enumerate(records, 1):
            pending.append(await producer.send(record.topic, record.value, key=record.key))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
                if progress:
                    progress(i)
        await asyncio.gather(*pending)
        if progress:
            progress(len(records))
    finally:
        await producer.stop()


def feed(bootstrap: str, records: Sequence[Record], progress: Callable[[int], None] | None = None) -> None:
    """Produce `records` from synchronous code."""
    asyncio.run(produce(bootstrap, records, progress))
