"""initial: every table of the run store

Revision ID: 0001
Revises:
Create Date: 2026-11-28

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _ts(name: str, **kw) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, **kw)


def _str(name: str, n: int, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(length=n), nullable=nullable)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "hardware",
        sa.Column("id", sa.Integer(), primary_key=True),
        _str("fingerprint", 64), _str("gpu", 200), _str("compute_capability", 16), _str("driver", 64),
        _str("torch", 64), _str("cuda", 64), _str("cupy", 64), _str("python", 64), _str("hostname", 255),
        _ts("created_at"),
        sa.UniqueConstraint("fingerprint"),
    )
    op.create_table(
        "tasks",
        _str("hash", 64), _str("name", 255),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=True),
        sa.Column("problem_id", sa.Integer(), nullable=True),
        _str("origin", 500, nullable=True),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("hash"),
    )
    op.create_table(
        "baselines",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("task_hash", sa.String(64), sa.ForeignKey("tasks.hash"), nullable=False),
        sa.Column("hardware_id", sa.Integer(), sa.ForeignKey("hardware.id"), nullable=False),
        sa.Column("eager_ms", sa.Float(), nullable=True),
        sa.Column("compiled_ms", sa.Float(), nullable=True),
        sa.Column("ratio", sa.Float(), nullable=True),
        sa.Column("data_json", JSON, nullable=False),
        _ts("updated_at"),
        sa.UniqueConstraint("task_hash", "hardware_id", name="uq_baselines_task_hardware"),
    )
    # runs.best_candidate_id -> candidates.id is circular: SQLite takes the constraint now
    # (it checks references only on writes), PostgreSQL gets it once candidates exists.
    best_fk = [sa.ForeignKeyConstraint(["best_candidate_id"], ["candidates.id"],
                                       name="fk_runs_best_candidate")] if sqlite else []
    op.create_table(
        "runs",
        _str("id", 64), _ts("created_at"), _ts("updated_at"),
        _str("status", 16), _str("kind", 16), _str("model", 200), _str("strategy", 100), _str("label", 100),
        sa.Column("config_json", JSON, nullable=False),
        sa.Column("budget_json", JSON, nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        _str("best_candidate_id", 64, nullable=True),
        sa.Column("hardware_id", sa.Integer(), sa.ForeignKey("hardware.id"), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        *best_fk,
    )
    op.create_index("ix_runs_created_at", "runs", ["created_at"])
    op.create_table(
        "llm_calls",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("task_hash", sa.String(64), sa.ForeignKey("tasks.hash"), nullable=True),
        _str("model", 200),
        sa.Column("prompt_json", JSON, nullable=False),
        sa.Column("completions_json", JSON, nullable=False),
        sa.Column("finish_reasons_json", JSON, nullable=False),
        *(sa.Column(c, sa.Integer(), nullable=False)
          for c in ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens")),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("latency_s", sa.Float(), nullable=False),
        _str("provider_call_id", 200),
        sa.Column("replayed", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _ts("created_at"),
    )
    op.create_index("ix_llm_calls_run_id", "llm_calls", ["run_id"])
    op.create_table(
        "candidates",
        _str("id", 64),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("task_hash", sa.String(64), sa.ForeignKey("tasks.hash"), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        _str("code_hash", 64),
        sa.Column("strategy_info_json", JSON, nullable=False),
        sa.Column("llm_call_id", sa.Integer(), sa.ForeignKey("llm_calls.id"), nullable=True),
        sa.Column("completion_index", sa.Integer(), nullable=True),
        _str("status", 16),
        sa.Column("format_error", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "seq", name="uq_candidates_run_seq"),
    )
    op.create_index("ix_candidates_code_hash", "candidates", ["code_hash"])
    op.create_index("ix_candidates_run_task", "candidates", ["run_id", "task_hash"])
    if not sqlite:
        op.create_foreign_key("fk_runs_best_candidate", "runs", "candidates", ["best_candidate_id"], ["id"])
    op.create_table(
        "candidate_parents",
        sa.Column("child_id", sa.String(64), sa.ForeignKey("candidates.id"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.String(64), sa.ForeignKey("candidates.id"), nullable=False),
        sa.PrimaryKeyConstraint("child_id", "position"),
    )
    op.create_index("ix_candidate_parents_parent_id", "candidate_parents", ["parent_id"])
    op.create_table(
        "evaluations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("candidate_id", sa.String(64), sa.ForeignKey("candidates.id"), nullable=False),
        _str("verdict", 32), _str("error_class", 32),
        sa.Column("message", sa.Text(), nullable=False),
        *(sa.Column(c, sa.Float(), nullable=True) for c in (
            "speedup_eager", "speedup_eager_ci_low", "speedup_eager_ci_high", "speedup_compile",
            "candidate_ms", "eager_ms", "compiled_ms", "max_abs_error", "rel_error", "compile_seconds")),
        sa.Column("gpu_seconds", sa.Float(), nullable=False),
        sa.Column("cached", sa.Boolean(), nullable=False),
        sa.Column("result_json", JSON, nullable=False),
        sa.Column("hardware_id", sa.Integer(), sa.ForeignKey("hardware.id"), nullable=True),
        _ts("created_at"),
    )
    op.create_index("ix_evaluations_candidate_id", "evaluations", ["candidate_id"])
    op.create_index("ix_evaluations_verdict", "evaluations", ["verdict"])
    op.create_table(
        "evaluation_stages",
        sa.Column("evaluation_id", sa.Integer(), sa.ForeignKey("evaluations.id"), nullable=False),
        _str("stage", 16),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        _str("error_class", 32),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("evaluation_id", "stage"),
    )
    op.create_table(
        "run_tasks",
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("task_hash", sa.String(64), sa.ForeignKey("tasks.hash"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        _str("status", 16),
        sa.Column("best_candidate_id", sa.String(64), sa.ForeignKey("candidates.id"), nullable=True),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("run_id", "task_hash"),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("fk_runs_best_candidate", "runs", type_="foreignkey")
    for table in ("run_tasks", "evaluation_stages", "evaluations", "candidate_parents", "candidates",
                  "llm_calls", "runs", "baselines", "tasks", "hardware"):
        op.drop_table(table)
