"""minisearch's search inside veRL's multi-turn rollout (imported by veRL, never by minisearch).

Two pieces, both found by veRL through the exported config:

- `SearchTool`, a veRL native tool (`search_tool.yaml` names it): each call POSTs the
  queries to `minisearch serve` (or any Search-R1 retrieval server) and answers with
  minisearch's own `<information>` block, the task's own passage excluded (a RAMP task's
  `exclude_ids` arrive as the tool's create_kwargs).
- `SearchTagParser`, registered as veRL tool-call format `minisearch`
  (`actor_rollout_ref.rollout.multi_turn.format=minisearch`): it reads a model turn with
  minisearch's `parse_turn`, so `<search> keywords </search>` is a call of `search` and
  malformed text is no call at all, as in minisearch's rollout. Importing this module (veRL
  does so when it loads the tool, before it builds the parser) registers it.

The results reach the model as a tool message through the chat template (for Qwen:
a user turn holding `<tool_response>`), not inside the assistant's turn as in minisearch's
own rollout; the reward (verl_reward) reads both.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import uuid4

from verl.experimental.agent_loop.tool_parser import FunctionCall, ToolParser
from verl.tools.base_tool import BaseTool
from verl.tools.schemas import ToolResponse

from minisearch.agent.protocol import format_information, parse_turn
from minisearch.search.remote import RemoteSearcher

MAX_QUERIES_PER_CALL = 8


class SearchTool(BaseTool):
    """veRL tool `search(query_list)` over a retrieval server."""

    def __init__(self, config: dict, tool_schema):
        super().__init__(config, tool_schema)
        self.searcher = RemoteSearcher(config["retrieval_service_url"], timeout=float(config.get("timeout", 30)))
        self.topk = int(config.get("topk", 3))
        self.words_per_hit = int(config.get("words_per_hit", 80))
        self.excluded: dict[str, list[str]] = {}

    async def create(self, instance_id: str | None = None, **kwargs) -> tuple[str, ToolResponse]:
        instance_id = instance_id or uuid4().hex
        create = kwargs.get("create_kwargs") or {}
        self.excluded[instance_id] = [str(i) for i in (create.get("exclude_ids") or [])]
        return instance_id, ToolResponse()

    async def execute(self, instance_id: str, parameters: dict[str, Any], **kwargs) -> tuple[ToolResponse, float, dict]:
        queries = parameters.get("query_list", parameters.get("query"))
        queries = [queries] if isinstance(queries, str) else queries if isinstance(queries, list) else []
        queries = [q for q in queries if isinstance(q, str) and q.strip()][:MAX_QUERIES_PER_CALL]
        if not queries:
            return ToolResponse(text=format_information([])), 0.0, {"queries": 0}
        exclude = [self.excluded.get(instance_id, [])] * len(queries)
        hits = await asyncio.to_thread(self.searcher.search, queries, self.topk, exclude)
        text = "\n".join(format_information(row, self.words_per_hit) for row in hits)
        return ToolResponse(text=text), 0.0, {"queries": len(queries), "hits": sum(map(len, hits))}

    async def release(self, instance_id: str, **kwargs) -> None:
        self.excluded.pop(instance_id, None)


@ToolParser.register("minisearch")
class SearchTagParser(ToolParser):
    """A model turn's `<search> q </search>` as a call of `search` with `query_list=[q]`."""

    async def extract_tool_calls(self, responses_ids: list[int], tools=None) -> tuple[str, list[FunctionCall]]:
        text = await asyncio.to_thread(self.tokenizer.decode, responses_ids, skip_special_tokens=True)
        turn = parse_turn(text)
        if turn.kind != "search":
            return text, []
        return text, [FunctionCall(name="search", arguments=json.dumps({"query_list": [turn.query]}))]
