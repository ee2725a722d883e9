"""The run store's tables, as SQLAlchemy 2.0 typed models.

The schema itself is owned by the Alembic migrations in ``migrations/versions``; these
models must describe the same tables (``tests/store`` checks that autogenerate finds no
difference between a migrated database and this metadata). To change the schema: edit
the models, add the next numbered revision file, never edit a released one.

Statuses are plain strings checked in Python (``RUN_STATUSES`` ...), not database enums,
so adding one needs no migration.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

RUN_STATUSES = ("running", "finished", "interrupted", "failed")
RUN_KINDS = ("optimize", "bench", "serve", "eval", "generations")
RUN_TASK_STATUSES = ("pending", "running", "done", "failed")
CANDIDATE_STATUSES = ("proposed", "evaluating", "evaluated", "format_error")
STAGES = ("static", "compile", "check", "time")

Json = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    pass


class Hardware(Base):
    __tablename__ = "hardware"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)  # sha256(gpu, driver, torch, cuda)
    gpu: Mapped[str] = mapped_column(String(200), default="")
    compute_capability: Mapped[str] = mapped_column(String(16), default="")
    driver: Mapped[str] = mapped_column(String(64), default="")
    torch: Mapped[str] = mapped_column(String(64), default="")
    cuda: Mapped[str] = mapped_column(String(64), default="")
    cupy: Mapped[str] = mapped_column(String(64), default="")
    python: Mapped[str] = mapped_column(String(64), default="")
    hostname: Mapped[str] = mapped_column(String(255), default="")  # where it was first seen
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TaskRow(Base):
    __tablename__ = "tasks"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # Task.hash of the exact reference
    name: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(Text)
    level: Mapped[Optional[int]] = mapped_column(Integer)
    problem_id: Mapped[Optional[int]] = mapped_column(Integer)
    origin: Mapped[Optional[str]] = mapped_column(String(500))  # "tasks/level1/..." | "kernelbench:L1/P3"
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # "r-3f9a2c1b"
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="running")
    kind: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(200), default="")
    strategy: Mapped[str] = mapped_column(String(100), default="")
    label: Mapped[str] = mapped_column(String(100), default="")
    config_json: Mapped[dict[str, Any]] = mapped_column(Json)
    budget_json: Mapped[dict[str, Any]] = mapped_column(Json)
    notes: Mapped[str] = mapped_column(Text, default="")
    best_candidate_id: Mapped[Optional[str]] = mapped_column(
        String(64), ForeignKey("candidates.id", use_alter=True, name="fk_runs_best_candidate"))
    hardware_id: Mapped[Optional[int]] = mapped_column(ForeignKey("hardware.id"))


class RunTask(Base):
    __tablename__ = "run_tasks"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    task_hash: Mapped[str] = mapped_column(ForeignKey("tasks.hash"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)  # order the run met its tasks in
    status: Mapped[str] = mapped_column(String(16), default="pending")
    best_candidate_id: Mapped[Optional[str]] = mapped_column(ForeignKey("candidates.id"))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LLMCall(Base):
    __tablename__ = "llm_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    task_hash: Mapped[Optional[str]] = mapped_column(ForeignKey("tasks.hash"))
    model: Mapped[str] = mapped_column(String(200), default="")
    prompt_json: Mapped[list[Any]] = mapped_column(Json)  # the messages
    completions_json: Mapped[list[Any]] = mapped_column(Json)  # the n texts
    finish_reasons_json: Mapped[list[Any]] = mapped_column(Json)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    latency_s: Mapped[float] = mapped_column(Float, default=0.0)
    provider_call_id: Mapped[str] = mapped_column(String(200), default="")
    replayed: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[Optional[str]] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CandidateRow(Base):
    __tablename__ = "candidates"
    __table_args__ = (
        UniqueConstraint("run_id", "seq", name="uq_candidates_run_seq"),
        Index("ix_candidates_run_task", "run_id", "task_hash"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # "c-3f9a2c1b7d0e"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    seq: Mapped[int] = mapped_column(Integer)  # 1, 2, ... within the run: insertion order
    task_hash: Mapped[str] = mapped_column(ForeignKey("tasks.hash"))
    code: Mapped[str] = mapped_column(Text)
    code_hash: Mapped[str] = mapped_column(String(64), index=True)  # sha256(code), = EvalResult.candidate_hash
    strategy_info_json: Mapped[dict[str, Any]] = mapped_column(Json)
    llm_call_id: Mapped[Optional[int]] = mapped_column(ForeignKey("llm_calls.id"))
    completion_index: Mapped[Optional[int]] = mapped_column(Integer)  # which of the call's n texts
    status: Mapped[str] = mapped_column(String(16), default="proposed")
    format_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CandidateParent(Base):
    __tablename__ = "candidate_parents"

    child_id: Mapped[str] = mapped_column(ForeignKey("candidates.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0 = the first (main) parent
    parent_id: Mapped[str] = mapped_column(ForeignKey("candidates.id"), index=True)


class Evaluation(Base):
    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[str] = mapped_column(ForeignKey("candidates.id"), index=True)
    verdict: Mapped[str] = mapped_column(String(32), index=True)
    error_class: Mapped[str] = mapped_column(String(32), default="none")
    message: Mapped[str] = mapped_column(Text, default="")
    speedup_eager: Mapped[Optional[float]] = mapped_column(Float)
    speedup_eager_ci_low: Mapped[Optional[float]] = mapped_column(Float)
    speedup_eager_ci_high: Mapped[Optional[float]] = mapped_column(Float)
    speedup_compile: Mapped[Optional[float]] = mapped_column(Float)
    candidate_ms: Mapped[Optional[float]] = mapped_column(Float)
    eager_ms: Mapped[Optional[float]] = mapped_column(Float)
    compiled_ms: Mapped[Optional[float]] = mapped_column(Float)
    max_abs_error: Mapped[Optional[float]] = mapped_column(Float)
    rel_error: Mapped[Optional[float]] = mapped_column(Float)
    compile_seconds: Mapped[Optional[float]] = mapped_column(Float)
    gpu_seconds: Mapped[float] = mapped_column(Float, default=0.0)  # GPU stages of result.wall (not compile); 0 when cached
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    # config.HARNESS_VERSION that measured it (None: recorded before version 4 kept it)
    harness: Mapped[Optional[str]] = mapped_column(String(16))
    result_json: Mapped[dict[str, Any]] = mapped_column(Json)  # EvalResult.to_dict()
    hardware_id: Mapped[Optional[int]] = mapped_column(ForeignKey("hardware.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EvaluationStage(Base):
    __tablename__ = "evaluation_stages"

    evaluation_id: Mapped[int] = mapped_column(ForeignKey("evaluations.id"), primary_key=True)
    stage: Mapped[str] = mapped_column(String(16), primary_key=True)  # static | compile | check | time
    ok: Mapped[bool] = mapped_column(Boolean)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    error_class: Mapped[str] = mapped_column(String(32), default="none")
    message: Mapped[str] = mapped_column(Text, default="")


class Baseline(Base):
    __tablename__ = "baselines"
    __table_args__ = (UniqueConstraint("task_hash", "hardware_id", name="uq_baselines_task_hardware"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_hash: Mapped[str] = mapped_column(ForeignKey("tasks.hash"))
    hardware_id: Mapped[int] = mapped_column(ForeignKey("hardware.id"))
    eager_ms: Mapped[Optional[float]] = mapped_column(Float)
    compiled_ms: Mapped[Optional[float]] = mapped_column(Float)
    ratio: Mapped[Optional[float]] = mapped_column(Float)  # compiled / eager
    data_json: Mapped[dict[str, Any]] = mapped_column(Json)  # the baseline job's whole output
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
