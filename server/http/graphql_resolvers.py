"""The resolvers of `POST /graphql/system` (contract §7).

They call the same ledger service as the REST routes (and the same send service for
creates), so both surfaces share one query path and one set of access rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from graphql import GraphQLObjectType, GraphQLResolveInfo
from graphql.execution.collect_fields import collect_sub_fields

from server.clock import utcnow
from server.http.graphql_types import AggregatedType
from server.http.send import send_from_request
from server.notifications import ledger, ledger_input
from server.notifications.filters import Context
from server.notifications.query import parse_query
from server.tokens import Session


@dataclass(frozen=True, slots=True)
class GraphQLContext:
    request: web.Request
    session: Session
    ledger: ledger.Ledger


def _ctx(info: GraphQLResolveInfo) -> GraphQLContext:
    context: GraphQLContext = info.context
    return context


def _params(args: dict[str, Any]) -> dict[str, Any]:
    names = ("filter", "sort", "limit", "offset", "page", "search", "groupBy")
    return {name: args[name] for name in names if args.get(name) is not None}


def _query_context(ctx: GraphQLContext) -> Context:
    return Context(user_id=ctx.session.user_id, now=utcnow())


async def resolve_notifications(_root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
    ctx = _ctx(info)
    query = parse_query(_params(args), _query_context(ctx))
    return (await ctx.ledger.read_by_query(ctx.session, query)).data


async def resolve_by_id(_root: Any, info: GraphQLResolveInfo, id: str) -> Any:
    ctx = _ctx(info)
    return await ctx.ledger.read_one(ctx.session, ledger_input.path_key(str(id)))


async def resolve_aggregated(_root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
    """Directus reads the wanted aggregates from the selection: `countAll`, `count { id }`."""
    ctx = _ctx(info)
    aggregate: dict[str, list[str]] = {}
    # graphql-core's own field collection: each fragment once, @skip/@include honoured.
    wanted = collect_sub_fields(
        info.schema, info.fragments, info.variable_values, AggregatedType, info.field_nodes
    )
    for nodes in wanted.values():
        function = nodes[0].name.value
        if function == "countAll":
            aggregate.setdefault("countAll", ["*"])
        elif function in ("count", "countDistinct", "min", "max"):
            sub_type = AggregatedType.fields[function].type
            assert isinstance(sub_type, GraphQLObjectType)
            names = [
                name
                for sub in collect_sub_fields(
                    info.schema, info.fragments, info.variable_values, sub_type, nodes
                ).values()
                if not (name := sub[0].name.value).startswith("__")
            ]
            aggregate.setdefault(function, [])
            aggregate[function] = list(dict.fromkeys(aggregate[function] + names))
    aggregate = {k: v for k, v in aggregate.items() if v}
    params = _params(args)
    if not aggregate and not params.get("groupBy"):
        aggregate = {"countAll": ["*"]}
    if aggregate:
        params["aggregate"] = aggregate
    query = parse_query(params, _query_context(ctx))
    rows = (await ctx.ledger.read_by_query(ctx.session, query)).data
    out = []
    for row in rows:
        shaped = {k: v for k, v in row.items() if k not in query.group_by}
        shaped["group"] = {k: row[k] for k in query.group_by} if query.group_by else None
        out.append(shaped)
    return out


async def resolve_create_item(_root: Any, info: GraphQLResolveInfo, data: Any) -> Any:
    return (await _send(info, [dict(data)]))[0]


async def resolve_create_items(_root: Any, info: GraphQLResolveInfo, data: Any) -> Any:
    return await _send(info, [dict(item) for item in data])


async def _send(info: GraphQLResolveInfo, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The send service of contract §6, shared with `POST /notifications`."""
    ctx = _ctx(info)
    return await send_from_request(ctx.request, ctx.session, items, surface="graphql")


async def resolve_update_item(
    _root: Any,
    info: GraphQLResolveInfo,
    id: str,
    data: Any,
) -> Any:
    ctx = _ctx(info)
    return await ctx.ledger.update_one(ctx.session, ledger_input.path_key(str(id)), data)


async def resolve_update_items(
    _root: Any, info: GraphQLResolveInfo, ids: list[Any], data: Any
) -> Any:
    ctx = _ctx(info)
    keys = ledger_input.parse_keys(list(ids), field="ids")
    return await ctx.ledger.update_many(ctx.session, keys, data)


async def resolve_delete_item(_root: Any, info: GraphQLResolveInfo, id: str) -> Any:
    ctx = _ctx(info)
    key = await ctx.ledger.delete_one(ctx.session, ledger_input.path_key(str(id)))
    return {"id": key}


async def resolve_delete_items(_root: Any, info: GraphQLResolveInfo, ids: list[Any]) -> Any:
    ctx = _ctx(info)
    keys = ledger_input.parse_keys(list(ids), field="ids")
    await ctx.ledger.delete_many(ctx.session, keys)
    return {"ids": keys}
