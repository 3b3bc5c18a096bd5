"""The `$reindex` job (also `manage.py reindex`): rebuild the search index in batches.

fhir_search.reindexing walks fhir_api_resource by row id, one transaction per batch; each
committed batch is this job's checkpoint, so a job resumed after its worker died goes on
from the next row id (re-indexing a batch twice writes the same rows: idempotent).
"""
from __future__ import annotations

from typing import Any

from fhir_api.store import jobs
from fhir_search import stored_params
from fhir_search.reindexing import Progress, reindex

KIND = "reindex"


def run(ctx: jobs.Context) -> dict[str, Any]:
    plan = ctx.params
    state = ctx.checkpoint or {"from_id": plan.get("from_id", 0), "done": 0, "rows": 0}
    base_done, base_rows = state["done"], state["rows"]

    def on_batch(progress: Progress) -> None:
        done = base_done + progress.done
        total = base_done + progress.total
        ctx.save({"from_id": progress.last_id + 1, "done": done, "rows": base_rows + progress.rows},
                 progress=done / total if total else 1.0,
                 note=f"{done} of {total} resources re-indexed (last row id {progress.last_id})")

    progress = reindex(plan.get("types", []), from_id=state["from_id"], batch_size=plan.get("batch_size", 500),
                       limit=plan.get("limit"), on_batch=on_batch)
    result: dict[str, Any] = {"resources": base_done + progress.done, "indexRows": base_rows + progress.rows,
                              "complete": progress.finished}
    if not progress.finished:
        result["resumeFromId"] = progress.last_id + 1
    result["inactiveSearchParameters"] = [f"SearchParameter/{i}: {why}"
                                          for i, why in sorted(stored_params.inactive().items())]
    return result


jobs.register(jobs.Kind(KIND, run))
